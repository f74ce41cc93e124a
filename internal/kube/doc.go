// Package kube renders manifests, substitutes built images, applies them to
// the cluster with server-side apply (pruning what devloop applied before and
// no longer renders), and tracks rollouts, explaining failures in a form a
// developer can act on.
//
// The usual pipeline is Render → Substitute → Label → Applier.Apply →
// WaitRollout for each workload that uses a rebuilt image.
package kube
