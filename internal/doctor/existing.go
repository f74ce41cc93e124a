package doctor

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/dockerhost"
)

const (
	checkContext   = "cluster context"
	checkNamespace = "namespace"
	checkRegistry  = "registry"
)

// existingTimeout bounds each check of an existing cluster.
const existingTimeout = 10 * time.Second

// ExistingCluster checks an existing cluster (cluster.context) as devloop
// will use it: its API server answers (cs, built from the context, nil when
// the context could not even be read: err), devloop may create Deployments
// in the namespace (a SelfSubjectAccessReview; and the namespace itself
// when it does not exist), and the registry accepts a push (its /v2/
// endpoint answers and a blob upload can be started, then is cancelled).
func ExistingCluster(ctx context.Context, cfg *config.Config, cs kubernetes.Interface, server string, err error, hc *http.Client) []Result {
	name := cfg.Cluster.Context
	var out []Result
	if err == nil {
		var v string
		v, err = serverVersion(ctx, cs)
		if err == nil {
			out = append(out, Result{Level: OK, Check: checkContext, Message: fmt.Sprintf("context %q answers (Kubernetes %s at %s)", name, v, server)})
			out = append(out, checkWritable(ctx, cs, cfg.Namespace))
		}
	}
	if err != nil {
		out = append(out, Result{Level: Fail, Check: checkContext, Message: fmt.Sprintf("context %q: %v", name, err),
			Fix: fmt.Sprintf("check the network or VPN and your credentials: kubectl --context %s get ns must work", name)})
	}
	return append(out, checkRegistryPush(ctx, hc, cfg.Cluster.Registry.Host()))
}

func serverVersion(ctx context.Context, cs kubernetes.Interface) (string, error) {
	type result struct {
		v   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		info, err := cs.Discovery().ServerVersion()
		if err != nil {
			ch <- result{err: fmt.Errorf("the API server does not answer: %w", err)}
			return
		}
		ch <- result{v: info.GitVersion}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-time.After(existingTimeout):
		return "", fmt.Errorf("the API server did not answer within %s", existingTimeout)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// checkWritable asks the API server whether devloop may create Deployments
// in ns (and ns itself, when it does not exist yet).
func checkWritable(ctx context.Context, cs kubernetes.Interface, ns string) Result {
	ctx, cancel := context.WithTimeout(ctx, existingTimeout)
	defer cancel()
	allowed := func(attrs authorizationv1.ResourceAttributes) (bool, string, error) {
		r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attrs}}, metav1.CreateOptions{})
		if err != nil {
			return false, "", err
		}
		return r.Status.Allowed, r.Status.Reason, nil
	}
	_, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	missing := apierrors.IsNotFound(err)
	if missing {
		ok, reason, err := allowed(authorizationv1.ResourceAttributes{Verb: "create", Resource: "namespaces"})
		switch {
		case err != nil:
			return Result{Level: Warn, Check: checkNamespace, Message: fmt.Sprintf("cannot tell whether you may create namespace %s: %v", ns, err)}
		case !ok:
			return Result{Level: Fail, Check: checkNamespace, Message: fmt.Sprintf("namespace %s does not exist, and you may not create it%s", ns, because(reason)),
				Fix: "ask the cluster's admins for a namespace of your own and set namespace: in devloop.yaml"}
		}
	}
	ok, reason, err := allowed(authorizationv1.ResourceAttributes{Namespace: ns, Verb: "create", Group: "apps", Resource: "deployments"})
	switch {
	case err != nil:
		return Result{Level: Warn, Check: checkNamespace, Message: fmt.Sprintf("cannot tell whether namespace %s is writable: %v", ns, err)}
	case !ok:
		return Result{Level: Fail, Check: checkNamespace, Message: fmt.Sprintf("you may not create Deployments in namespace %s%s", ns, because(reason)),
			Fix: "ask the cluster's admins for write access to it (a RoleBinding to edit), or set namespace: to one of yours"}
	case missing:
		return Result{Level: OK, Check: checkNamespace, Message: fmt.Sprintf("namespace %s does not exist yet; devloop up creates it (and down deletes it)", ns)}
	}
	return Result{Level: OK, Check: checkNamespace, Message: fmt.Sprintf("namespace %s is writable (create Deployments allowed)", ns)}
}

func because(reason string) string {
	if reason == "" {
		return ""
	}
	return " (" + reason + ")"
}

// registryBase is the URL of the registry of address host[:port][/path]
// and the path prefix: plain HTTP for a loopback registry (as Docker pushes
// to it), HTTPS otherwise.
func registryBase(address string) (base, prefix string) {
	host, prefix, _ := strings.Cut(address, "/")
	scheme := "https"
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	if h == "localhost" || net.ParseIP(h).IsLoopback() {
		scheme = "http"
	}
	return scheme + "://" + host, prefix
}

// storedLogin reports whether `docker login` stored credentials for a
// registry host (dockerhost.Credentials); a test seam.
var storedLogin = func(host string) (bool, error) {
	_, ok, err := dockerhost.Credentials(os.Getenv, host, nil)
	return ok, err
}

// checkRegistryPush checks the registry at address accepts a push: /v2/
// answers, and a blob upload into <address>/devloop-doctor starts (it is
// cancelled at once; nothing is stored).
func checkRegistryPush(ctx context.Context, hc *http.Client, address string) Result {
	if hc == nil {
		hc = &http.Client{Timeout: existingTimeout}
	}
	base, prefix := registryBase(address)
	fail := func(msg, fix string) Result {
		return Result{Level: Fail, Check: checkRegistry, Message: fmt.Sprintf("registry %s: %s", address, msg), Fix: fix}
	}
	do := func(method, u string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, method, u, nil)
		if err != nil {
			return nil, err
		}
		return hc.Do(req)
	}
	resp, err := do(http.MethodGet, base+"/v2/")
	if err != nil {
		return fail(fmt.Sprintf("does not answer (%v)", err), "check cluster.registry.address, and that the registry runs and is reachable from here")
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		host := dockerhost.RegistryHost(address)
		stored, err := storedLogin(host)
		switch {
		case err != nil:
			return fail(fmt.Sprintf("asks for credentials (401), and reading what `docker login` stored failed: %v", err), "fix the docker CLI's config.json or its credential helper")
		case !stored:
			return fail(fmt.Sprintf("asks for credentials (401), and `docker login` has none stored for %s", host), "docker login "+host)
		}
		return Result{Level: Warn, Check: checkRegistry, Message: fmt.Sprintf("registry %s asks for credentials (401); devloop sends the ones `docker login` stored for %s with each push (doctor does not try them)", address, host),
			Fix: "if a push is refused, run `docker login " + host + "` again"}
	case resp.StatusCode != http.StatusOK:
		return fail(fmt.Sprintf("GET /v2/ answered %s: not a registry (Docker Registry HTTP API v2)", resp.Status), "check cluster.registry.address")
	}
	repo := "devloop-doctor"
	if prefix != "" {
		repo = prefix + "/" + repo
	}
	resp, err = do(http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/")
	if err != nil {
		return fail(fmt.Sprintf("starting a blob upload failed: %v", err), "check that the registry accepts pushes")
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fail(fmt.Sprintf("refuses a push into %s (starting a blob upload answered %s)", repo, resp.Status),
			"check that the registry accepts pushes to that path from your machine")
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		if u, err := url.Parse(base); err == nil {
			if l, err := u.Parse(loc); err == nil {
				if r, err := do(http.MethodDelete, l.String()); err == nil {
					r.Body.Close()
				}
			}
		}
	}
	return Result{Level: OK, Check: checkRegistry, Message: fmt.Sprintf("registry %s accepts a push (%s/v2/ answers, a blob upload starts)", address, base)}
}
