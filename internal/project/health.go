package project

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/devloop-dev/devloop/internal/cluster"
	"github.com/devloop-dev/devloop/internal/ui"
)

// clusterWatch tells the user when the cluster stops answering during `up`
// and why, and when it answers again. The forwards, log tails and rollout
// waits recover by themselves; without this, a cluster that went away (its
// API server restarting, its node stopped with the Docker engine and not
// started again) shows only as silence. It probes the API server every
// `every`; after `after` without an answer it asks diagnose (the cluster
// manager's Usable: node containers, kubeconfig, API server) at most every
// `rediagnose`, and prints what is wrong once, again only when that changes.
type clusterWatch struct {
	name       string
	out        *ui.Printer
	probe      func(ctx context.Context) error
	diagnose   func(ctx context.Context) error
	every      time.Duration
	after      time.Duration
	rediagnose time.Duration
	// onBack, when set, is called when the cluster answers again after it
	// was said not to.
	onBack func()
	// existing: the cluster of a kubeconfig context (name), not kind's.
	existing bool
}

// what names the cluster in what the watch says.
func (w *clusterWatch) what() string {
	if w.existing {
		return fmt.Sprintf("the cluster of context %q", w.name)
	}
	return fmt.Sprintf("kind cluster %q", w.name)
}

func newClusterWatch(name string, out *ui.Printer, conn *Conn, clusters Clusters) *clusterWatch {
	return &clusterWatch{
		name: name, out: out,
		probe: func(ctx context.Context) error {
			_, err := conn.Clients.Core.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
			if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
				return nil // it answers
			}
			return err
		},
		diagnose: func(ctx context.Context) error { _, err := clusters.Usable(ctx, name); return err },
		every:    2 * time.Second, after: 5 * time.Second, rediagnose: 10 * time.Second,
	}
}

func (w *clusterWatch) run(ctx context.Context) {
	var downSince, diagnosed time.Time
	said := ""
	tick := time.NewTicker(w.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		pctx, cancel := context.WithTimeout(ctx, w.every)
		err := w.probe(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		now := time.Now()
		if err == nil {
			if said != "" {
				w.out.Line("cluster", "%s answers again (it did not for %s); forwards and log tails resume",
					w.what(), now.Sub(downSince).Round(time.Second))
				if w.onBack != nil {
					w.onBack()
				}
			}
			downSince, diagnosed, said = time.Time{}, time.Time{}, ""
			continue
		}
		if downSince.IsZero() {
			downSince = now
		}
		if now.Sub(downSince) < w.after || now.Sub(diagnosed) < w.rediagnose {
			continue
		}
		diagnosed = now
		key, text := w.explain(ctx, err, now.Sub(downSince))
		if key != "" && key != said {
			w.out.Error("cluster", "%s", text)
			said = key
		}
	}
}

// explain says what is wrong with the cluster, with a key that changes only
// when the cause does (not with the seconds or the wording of a dial error).
func (w *clusterWatch) explain(ctx context.Context, probeErr error, down time.Duration) (key, text string) {
	derr := w.diagnose(ctx)
	if ctx.Err() != nil {
		return "", ""
	}
	var be *cluster.BrokenError
	switch {
	case derr == nil:
		// It answered the diagnosis: it is coming back.
		return "", ""
	case w.existing:
		return "api", fmt.Sprintf("%s: its API server has not answered for %s (%s); the forwards and log tails resume when it does",
			w.what(), down.Round(time.Second), oneLineErr(derr))
	case errors.As(derr, &be) && be.NodeDown:
		return "node:" + be.Reason, fmt.Sprintf("kind cluster %q: %s, and it did not come back by itself (after a Docker engine restart, say). "+
			"Repair it with `%s`: devloop resumes the forwards and log tails once it answers; or delete the cluster with `devloop down --cluster`",
			w.name, be.Reason, be.Repair)
	case errors.As(derr, &be):
		return "api", fmt.Sprintf("kind cluster %q: its API server has not answered for %s (%s); the forwards and log tails resume when it does. "+
			"If it never does: `%s`", w.name, down.Round(time.Second), oneLineErr(probeErr), be.Repair)
	default:
		// Docker itself does not answer: the node cannot even be inspected.
		return "engine", fmt.Sprintf("kind cluster %q does not answer, and neither does the Docker engine it runs on (%s); "+
			"devloop resumes when they are back", w.name, oneLineErr(derr))
	}
}

func oneLineErr(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
