package doctor

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/initcfg"
)

// checkBaseImages is the check name of BaseImages.
const checkBaseImages = "base images"

// BaseImages checks that the local Docker engine has the images each
// service's Dockerfile builds from (FROM, COPY --from=, RUN --mount=from=
// naming an image, build args applied): a missing one is pulled by the
// build, which needs registry access. images nil, or an engine that cannot
// be asked, gives one warning and no per-image verdict.
func BaseImages(ctx context.Context, cfg *config.Config, images initcfg.ImageChecker) []Result {
	var out []Result
	known := map[string]bool{}
	var engineErr error
	for _, svc := range cfg.Services {
		df := svc.Build.Dockerfile
		if df == "" {
			continue
		}
		data, err := os.ReadFile(df)
		if err != nil {
			out = append(out, Result{Level: Fail, Check: checkBaseImages, Message: fmt.Sprintf("service %s: cannot read its Dockerfile: %v", svc.Name, err),
				Fix: "set build.dockerfile (relative to build.context) in " + cfgName(cfg)})
			continue
		}
		bases, err := initcfg.BaseImages(data, svc.Build.Args)
		if err != nil {
			out = append(out, Result{Level: Fail, Check: checkBaseImages, Message: fmt.Sprintf("service %s: %s: %v", svc.Name, df, err),
				Fix: "fix the Dockerfile: BuildKit reads it the same way and the build fails"})
			continue
		}
		if len(bases) == 0 {
			out = append(out, Result{Level: OK, Check: checkBaseImages, Message: fmt.Sprintf("service %s: needs no base image (FROM scratch)", svc.Name)})
			continue
		}
		var present, missing, unresolved, unknown []string
		for _, b := range bases {
			if b.Unresolved {
				unresolved = append(unresolved, b.Ref)
				continue
			}
			ok, seen := known[b.Ref]
			if !seen {
				if images == nil || engineErr != nil {
					unknown = append(unknown, b.Ref)
					continue
				}
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				ok, err = images.HasImage(cctx, b.Ref)
				cancel()
				if err != nil {
					engineErr = err
					unknown = append(unknown, b.Ref)
					continue
				}
				known[b.Ref] = ok
			}
			if ok {
				present = append(present, b.Ref)
			} else {
				missing = append(missing, b.Ref)
			}
		}
		if len(missing) > 0 {
			out = append(out, Result{Level: Warn, Check: checkBaseImages,
				Message: fmt.Sprintf("service %s: %s %s not in the local Docker engine: the build pulls %s from the registry, which fails offline",
					svc.Name, strings.Join(missing, ", "), isAre(missing), itThem(missing)),
				Fix: "docker pull " + strings.Join(missing, " && docker pull ") + " (offline: build the image locally and tag it with that name)"})
		}
		if len(unresolved) > 0 {
			out = append(out, Result{Level: Warn, Check: checkBaseImages,
				Message: fmt.Sprintf("service %s: %s uses a build arg without a default value", svc.Name, strings.Join(unresolved, ", ")),
				Fix:     "give the ARG a default in the Dockerfile or set it under build.args in " + cfgName(cfg)})
		}
		if len(present) > 0 && len(missing) == 0 && len(unknown) == 0 {
			out = append(out, Result{Level: OK, Check: checkBaseImages,
				Message: fmt.Sprintf("service %s: %s %s in the local Docker engine", svc.Name, strings.Join(present, ", "), isAre(present))})
		}
		if len(unknown) > 0 {
			out = append(out, Result{Level: Warn, Check: checkBaseImages,
				Message: fmt.Sprintf("service %s: needs %s; not checked: %s", svc.Name, strings.Join(unknown, ", "), engineReason(images, engineErr)),
				Fix:     "make the Docker engine reachable (see the docker check) and run devloop doctor again"})
		}
	}
	return out
}

func engineReason(images initcfg.ImageChecker, err error) string {
	if images == nil || err == nil {
		return "no Docker engine to ask"
	}
	return "the Docker engine could not be asked (" + err.Error() + ")"
}

func cfgName(cfg *config.Config) string {
	if cfg.Path != "" {
		return cfg.Path
	}
	return "devloop.yaml"
}

func isAre(items []string) string {
	if len(items) == 1 {
		return "is"
	}
	return "are"
}

func itThem(items []string) string {
	if len(items) == 1 {
		return "it"
	}
	return "them"
}
