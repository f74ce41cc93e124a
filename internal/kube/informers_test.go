package kube

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func labelledPod(ns, name string, l map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: l}}
}

// startInformers starts inf until the test ends.
func startInformers(t *testing.T, inf *Informers) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); inf.Shutdown() })
	if err := inf.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
}

func podNames(t *testing.T, inf *Informers) []string {
	t.Helper()
	pods, err := inf.Factory().Core().V1().Pods().Lister().List(labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pods {
		out = append(out, p.Namespace+"/"+p.Name)
	}
	sort.Strings(out)
	return out
}

func TestInformersListOnlyTheProjectsPods(t *testing.T) {
	cs := fake.NewClientset(
		labelledPod("dev", "mine", map[string]string{ProjectLabel: "proj", "app": "web"}),
		labelledPod("dev", "theirs", map[string]string{ProjectLabel: "other"}),
		labelledPod("dev", "unlabelled", nil),
		labelledPod("elsewhere", "mine-too", map[string]string{ProjectLabel: "proj"}),
	)
	inf := NewInformers(cs, "dev", "proj")
	if got := inf.Selector().String(); got != ProjectLabel+"=proj" {
		t.Errorf("Selector = %q", got)
	}
	startInformers(t, inf)
	if got := podNames(t, inf); len(got) != 1 || got[0] != "dev/mine" {
		t.Errorf("cached pods = %v, want only dev/mine", got)
	}
	// Every list the informers made asked for the project label.
	n := 0
	for _, a := range cs.Actions() {
		if la, ok := a.(k8stesting.ListAction); ok {
			n++
			if sel := la.GetListRestrictions().Labels.String(); sel != ProjectLabel+"=proj" {
				t.Errorf("list of %s used selector %q", la.GetResource().Resource, sel)
			}
			if la.GetNamespace() != "dev" {
				t.Errorf("list of %s in namespace %q", la.GetResource().Resource, la.GetNamespace())
			}
		}
	}
	if n < 5 { // pods, deployments, statefulsets, daemonsets, jobs
		t.Errorf("%d lists, want one per watched kind (5)", n)
	}
}

// waitFor receives from ch until cond holds; it fails the test when ctx ends first.
func waitFor(t *testing.T, ctx context.Context, ch <-chan struct{}, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatal("not woken before the test's deadline")
		}
	}
}

func TestInformersSubscribeWakesOnPodChangeAndCancelUnsubscribes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // failure guard only
	defer cancel()
	cs := fake.NewClientset()
	// The fake clientset drops events that happen between an informer's
	// list and its watch: let the test know when the pod watch is open.
	watching := make(chan struct{})
	var once sync.Once
	cs.PrependWatchReactor("pods", func(a k8stesting.Action) (bool, watch.Interface, error) {
		w, err := cs.Tracker().Watch(a.GetResource(), a.GetNamespace())
		once.Do(func() { close(watching) })
		return true, w, err
	})
	inf := NewInformers(cs, "dev", "proj")
	startInformers(t, inf)
	select {
	case <-watching:
	case <-ctx.Done():
		t.Fatal("pod informer never watched")
	}

	first, cancelFirst := inf.Subscribe()
	second, cancelSecond := inf.Subscribe()
	defer cancelSecond()
	if _, err := cs.CoreV1().Pods("dev").Create(ctx, labelledPod("dev", "web-1", map[string]string{ProjectLabel: "proj"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	has := func(name string) func() bool {
		return func() bool {
			for _, n := range podNames(t, inf) {
				if n == "dev/"+name {
					return true
				}
			}
			return false
		}
	}
	select { // the add must wake the subscriber
	case <-first:
	case <-ctx.Done():
		t.Fatal("subscriber not woken by a pod add")
	}
	waitFor(t, ctx, second, has("web-1"))

	// After cancel, nothing is sent to the first channel.
	cancelFirst()
	select {
	case <-first:
	default:
	}
	p := labelledPod("dev", "web-1", map[string]string{ProjectLabel: "proj", "ready": "yes"})
	if _, err := cs.CoreV1().Pods("dev").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, second, func() bool {
		got, err := inf.Factory().Core().V1().Pods().Lister().Pods("dev").Get("web-1")
		return err == nil && got.Labels["ready"] == "yes"
	})
	select {
	case <-first:
		t.Error("cancelled subscription still woken")
	default:
	}

	// Delete wakes too.
	if err := cs.CoreV1().Pods("dev").Delete(ctx, "web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, second, func() bool { return !has("web-1")() })
}

func TestInformersNotifyNeverBlocks(t *testing.T) {
	inf := NewInformers(fake.NewClientset(), "dev", "proj")
	ch, cancel := inf.Subscribe()
	defer cancel()
	for range 3 { // nobody reads: the buffered wake-up is kept, the rest dropped
		inf.notify()
	}
	if len(ch) != 1 {
		t.Errorf("channel holds %d wake-ups, want 1", len(ch))
	}
}

func TestInformersStartFailsWhenCacheCannotSync(t *testing.T) {
	cs := fake.NewClientset()
	cs.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("forbidden")
	})
	inf := NewInformers(cs, "dev", "proj")
	cause := errors.New("session ended")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	defer inf.Shutdown()
	err := inf.Start(ctx)
	if err == nil || !errors.Is(err, cause) {
		t.Fatalf("Start = %v, want the context's cause", err)
	}
}
