// Package helm is devloop's use of the Helm SDK (helm.sh/helm/v4, as a
// library: no helm binary): loading a chart of the repository with its
// dependencies and values, rendering it without a cluster, and installing,
// upgrading, listing and uninstalling its release.
//
// It knows nothing of devloop's images or labels: the caller (internal/kube)
// passes a post-renderer that substitutes the built images and labels every
// object, so the release's objects are what devloop would apply.
package helm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"helm.sh/helm/v4/pkg/action"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/cli"
	"helm.sh/helm/v4/pkg/downloader"
	"helm.sh/helm/v4/pkg/getter"
	release "helm.sh/helm/v4/pkg/release/v1"

	"github.com/devloop-dev/devloop/internal/config"
)

// Repositories says where `helm dependency build` finds the chart
// repositories a chart's dependencies come from (Helm's repositories.yaml
// and its index cache). The zero value uses Helm's own settings (HELM_*
// variables, ~/.config/helm), as the helm CLI would.
type Repositories struct {
	Config string // repositories.yaml
	Cache  string // the repository index cache directory
}

func (r Repositories) settings() *cli.EnvSettings {
	s := cli.New()
	if r.Config != "" {
		s.RepositoryConfig = r.Config
	}
	if r.Cache != "" {
		s.RepositoryCache = r.Cache
	}
	return s
}

// Chart is a loaded chart with the values devloop gives it.
type Chart struct {
	Spec   config.Chart
	Chart  *chart.Chart
	Values map[string]any
}

// Load loads spec's chart (a directory or a .tgz), with its dependencies:
// those in its charts/ directory, or, for a chart directory whose
// dependencies are missing there, downloaded as `helm dependency build`
// does (from Chart.lock when there is one). It merges the values files and
// the set values over nothing (the chart's values.yaml applies at render).
func Load(spec config.Chart, repos Repositories) (*Chart, error) {
	ch, err := loader.Load(spec.Chart)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", spec.Chart, loadProblem(err))
	}
	if missing := missingDependencies(ch); len(missing) > 0 {
		fi, statErr := os.Stat(spec.Chart)
		if statErr != nil || !fi.IsDir() {
			return nil, fmt.Errorf("chart %s: the packaged chart lacks its dependencies %s: package it with them (helm dependency build, then helm package)",
				spec.Chart, describeDeps(missing))
		}
		if err := BuildDependencies(spec.Chart, repos); err != nil {
			return nil, fmt.Errorf("chart %s: dependencies %s are not in its charts/ directory and could not be downloaded (helm dependency build): %w",
				spec.Chart, describeDeps(missing), err)
		}
		if ch, err = loader.Load(spec.Chart); err != nil {
			return nil, fmt.Errorf("chart %s: %w", spec.Chart, loadProblem(err))
		}
		if missing := missingDependencies(ch); len(missing) > 0 {
			return nil, fmt.Errorf("chart %s: dependencies %s are still missing from charts/ after helm dependency build", spec.Chart, describeDeps(missing))
		}
	}
	vals, err := Values(spec)
	if err != nil {
		return nil, err
	}
	return &Chart{Spec: spec, Chart: ch, Values: vals}, nil
}

// Values merges spec's values files in order (later files win, maps merged
// deeply, as `helm -f a -f b`), then its set values.
func Values(spec config.Chart) (map[string]any, error) {
	base := map[string]any{}
	for _, f := range spec.Values {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("chart %s: values file: %w", spec.Chart, err)
		}
		cur, err := loader.LoadValues(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("chart %s: values file %s is not valid YAML: %w", spec.Chart, f, err)
		}
		base = loader.MergeMaps(base, cur)
	}
	set, err := spec.SetValues()
	if err != nil {
		return nil, err
	}
	return loader.MergeMaps(base, set), nil
}

func loadProblem(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no such chart: %w", err)
	}
	return err
}

// missingDependencies are the dependencies Chart.yaml names that the chart
// does not carry (by name, as helm's CheckDependencies).
func missingDependencies(ch *chart.Chart) []*chart.Dependency {
	have := map[string]bool{}
	for _, d := range ch.Dependencies() {
		have[d.Name()] = true
	}
	var out []*chart.Dependency
	for _, d := range ch.Metadata.Dependencies {
		if !have[d.Name] {
			out = append(out, d)
		}
	}
	return out
}

func describeDeps(deps []*chart.Dependency) string {
	var parts []string
	for _, d := range deps {
		s := fmt.Sprintf("%q", d.Name)
		if d.Version != "" {
			s += " " + d.Version
		}
		if d.Repository != "" {
			s += " from " + d.Repository
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// BuildDependencies does what `helm dependency build` does in dir: fetch
// the dependencies Chart.lock pins (or resolve Chart.yaml's, without a lock
// file) from their repositories into charts/.
func BuildDependencies(dir string, repos Repositories) error {
	s := repos.settings()
	m := &downloader.Manager{
		Out:              io.Discard,
		ChartPath:        dir,
		Getters:          getter.All(s),
		RepositoryConfig: s.RepositoryConfig,
		RepositoryCache:  s.RepositoryCache,
		ContentCache:     s.ContentCache,
	}
	return m.Build()
}

// PostRenderer rewrites the rendered manifests (one YAML stream, hooks
// included) before Helm sorts and applies them.
type PostRenderer func(manifests []byte) ([]byte, error)

func (p PostRenderer) Run(in *bytes.Buffer) (*bytes.Buffer, error) {
	out, err := p(in.Bytes())
	if err != nil {
		return nil, err
	}
	return bytes.NewBuffer(out), nil
}

// Rendered is a chart rendered as its release would be.
type Rendered struct {
	// Manifest is the post-rendered, sorted manifest of the release's
	// objects (hooks excluded), as Helm stores it.
	Manifest string
	// Hooks are the hook manifests.
	Hooks []string
}

var quiet = slog.New(slog.DiscardHandler)

func newConfiguration() *action.Configuration {
	return action.NewConfiguration(action.ConfigurationSetLogger(quiet.Handler()))
}

// Render renders c without a cluster (helm template, with the same
// post-renderer an install uses). A template error is Helm's, with the
// template file and line.
func Render(ctx context.Context, c *Chart, post PostRenderer) (*Rendered, error) {
	in := action.NewInstall(newConfiguration())
	in.DryRunStrategy = action.DryRunClient
	in.ReleaseName = c.Spec.Release
	in.Namespace = c.Spec.Namespace
	in.Replace = true
	if post != nil {
		in.PostRenderer = post
	}
	r, err := in.RunWithContext(ctx, c.Chart, c.Values)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", c.Spec.Chart, err)
	}
	rel, err := v1(r)
	if err != nil {
		return nil, err
	}
	out := &Rendered{Manifest: rel.Manifest}
	for _, h := range rel.Hooks {
		out.Hooks = append(out.Hooks, h.Manifest)
	}
	return out, nil
}

func v1(r any) (*release.Release, error) {
	rel, ok := r.(*release.Release)
	if !ok {
		return nil, fmt.Errorf("helm returned a release of type %T, expected a v1 release", r)
	}
	return rel, nil
}
