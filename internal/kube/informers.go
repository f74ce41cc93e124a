package kube

import (
	"context"
	"fmt"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Informers is a session's one watch on the cluster: a shared informer
// factory for the project's namespace, filtered by its project label, so
// pods (and the workloads and Services devloop applied) are watched once
// for the forwards, the log tails, the rollout waits and the live view.
// The factory keeps serving while builds run: nothing waits for the loop.
type Informers struct {
	factory  informers.SharedInformerFactory
	selector labels.Selector

	mu   sync.Mutex
	subs map[int]chan struct{}
	next int
}

// ProjectSelector selects what devloop applied for project.
func ProjectSelector(project string) labels.Selector {
	return labels.SelectorFromSet(labels.Set{ProjectLabel: project})
}

// NewInformers makes the project's informers; Start starts them.
func NewInformers(cs kubernetes.Interface, namespace, project string) *Informers {
	sel := ProjectSelector(project)
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel.String() }))
	return &Informers{factory: f, selector: sel, subs: map[int]chan struct{}{}}
}

// Factory is the shared factory; informers taken from it after Start run
// once the taker calls Factory().Start again (Start is idempotent).
func (i *Informers) Factory() informers.SharedInformerFactory { return i.factory }

// Selector is the project label selector every informer of the factory uses.
func (i *Informers) Selector() labels.Selector { return i.selector }

// Start runs the pod and workload informers until ctx ends and waits for
// their first sync. Subscribers are woken on every change.
func (i *Informers) Start(ctx context.Context) error {
	wake := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { i.notify() },
		UpdateFunc: func(_, _ any) { i.notify() },
		DeleteFunc: func(any) { i.notify() },
	}
	for _, inf := range []cache.SharedIndexInformer{
		i.factory.Core().V1().Pods().Informer(),
		i.factory.Apps().V1().Deployments().Informer(),
		i.factory.Apps().V1().StatefulSets().Informer(),
		i.factory.Apps().V1().DaemonSets().Informer(),
		i.factory.Batch().V1().Jobs().Informer(),
	} {
		if _, err := inf.AddEventHandler(wake); err != nil {
			return fmt.Errorf("watching the cluster: %w", err)
		}
	}
	i.factory.Start(ctx.Done())
	for typ, ok := range i.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("waiting for the %v cache to sync: %w", typ, context.Cause(ctx))
		}
	}
	return nil
}

// Shutdown stops every informer of the factory and waits for them (call
// after the context given to Start has ended).
func (i *Informers) Shutdown() { i.factory.Shutdown() }

// Subscribe returns a channel that receives, without ever blocking the
// informers, after any pod or workload change; cancel unsubscribes.
func (i *Informers) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	i.mu.Lock()
	id := i.next
	i.next++
	i.subs[id] = ch
	i.mu.Unlock()
	return ch, func() {
		i.mu.Lock()
		delete(i.subs, id)
		i.mu.Unlock()
	}
}

func (i *Informers) notify() {
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, ch := range i.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

var _ Waker = (*Informers)(nil)
