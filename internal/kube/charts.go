package kube

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/helm"
)

// Release is one chart of the config, loaded and rendered with the built
// images: what its Helm release will hold.
type Release struct {
	Chart *helm.Chart
	// Post is the post-renderer the install or upgrade runs: the same
	// substitution and labels as Prepare gives plain manifests.
	Post helm.PostRenderer
	// Objects are the release's objects (its hooks excluded) as rendered,
	// each with SourceAnnotation naming the chart's template; they are
	// also in Manifests.Objects.
	Objects []*unstructured.Unstructured
}

// renderCharts loads and renders every chart of cfg with images
// substituted and cfg's labels, without a cluster.
func renderCharts(cfg *config.Config, images map[string]string) ([]Release, error) {
	var out []Release
	for _, spec := range cfg.Charts {
		// Missing dependencies come from the user's helm repositories.
		ch, err := helm.Load(spec, helm.Repositories{})
		if err != nil {
			return nil, err
		}
		post := PostRenderer(images, supervisedImages(cfg, images), cfg.Name)
		r, err := helm.Render(context.Background(), ch, post)
		if err != nil {
			return nil, err
		}
		objs, err := releaseObjects(r.Manifest, spec)
		if err != nil {
			return nil, err
		}
		out = append(out, Release{Chart: ch, Post: post, Objects: objs})
	}
	return out, nil
}

// releaseObjects parses a release manifest (Helm's "# Source: <template>"
// documents), naming each object's template in SourceAnnotation.
func releaseObjects(manifest string, spec config.Chart) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifest)))
	var out []*unstructured.Unstructured
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("chart %s: rendered manifest: %w", spec.Chart, err)
		}
		src := fmt.Sprintf("release %s #%d", spec.Release, i)
		for _, l := range strings.Split(string(doc), "\n") {
			if t, ok := strings.CutPrefix(l, "# Source: "); ok {
				src = fmt.Sprintf("%s (release %s)", strings.TrimSpace(t), spec.Release)
				break
			}
		}
		var fields map[string]any
		if err := yaml.Unmarshal(doc, &fields); err != nil {
			return nil, fmt.Errorf("%s: parsing YAML: %w", src, err)
		}
		if len(fields) == 0 {
			continue
		}
		objs, err := toObjects(fields, src)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		for _, o := range objs {
			if o.GetNamespace() == "" && !clusterScopedKinds[o.GetKind()] {
				o.SetNamespace(spec.Namespace)
			}
		}
		out = append(out, objs...)
	}
}

// PostRenderer returns the post-renderer of a project's charts: in every
// rendered document (hooks included) each container image whose repository
// is a key of images becomes the built ref with imagePullPolicy
// IfNotPresent (Substitute; a supervised image's `command:` behind its
// supervisor), and every object and pod template gets the
// project's labels (Label), so the shared informers see the release's pods.
func PostRenderer(images map[string]string, supervised map[string]bool, project string) helm.PostRenderer {
	return func(in []byte) ([]byte, error) {
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(in)))
		var out bytes.Buffer
		for i := 0; ; i++ {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				return out.Bytes(), nil
			}
			if err != nil {
				return nil, fmt.Errorf("reading rendered document %d: %w", i, err)
			}
			var fields map[string]any
			if err := yaml.Unmarshal(doc, &fields); err != nil {
				return nil, fmt.Errorf("rendered document %d is not YAML: %w", i, err)
			}
			if len(fields) == 0 {
				continue
			}
			o := &unstructured.Unstructured{Object: fields}
			objs := []*unstructured.Unstructured{o}
			if err := Substitute(objs, images, supervised); err != nil {
				return nil, err
			}
			Label(objs, project)
			data, err := yaml.Marshal(o.Object)
			if err != nil {
				return nil, fmt.Errorf("encoding rendered document %d: %w", i, err)
			}
			out.WriteString("---\n")
			out.Write(data)
		}
	}
}

// Releaser installs, upgrades, lists and uninstalls Helm releases
// (helm.Client; a fake in tests).
type Releaser interface {
	Deploy(ctx context.Context, ch *helm.Chart, post helm.PostRenderer, timeout time.Duration) (helm.Result, error)
	Releases() ([]helm.Deployed, error)
	// Uninstall returns the manifests of the release's hooks (Helm leaves
	// what they made).
	Uninstall(namespace, name string, timeout time.Duration) (hooks []string, err error)
}

// ReleaseLabels are the Helm release labels of cfg's project's releases.
func ReleaseLabels(project string) map[string]string {
	return map[string]string{ManagedByLabel: ManagedByValue, ProjectLabel: project}
}

// ReleaseLines are one account per release that changed ("release shop
// revision 3 (upgraded)").
func (d *Deployed) ReleaseLines() []string {
	var out []string
	for _, r := range d.Releases {
		switch {
		case r.Unchanged:
		case r.Installed:
			out = append(out, fmt.Sprintf("release %s revision %d (installed)", r.Release, r.Revision))
		default:
			out = append(out, fmt.Sprintf("release %s revision %d (upgraded)", r.Release, r.Revision))
		}
	}
	return out
}
