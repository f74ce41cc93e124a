package doctor

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/devloop-dev/devloop/internal/config"
)

// fakeRegistry answers /v2/ and blob uploads under prefix with status.
func fakeRegistry(t *testing.T, v2, upload int) (*httptest.Server, *[]string) {
	var calls []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls = append(calls, r.Method+" "+r.URL.Path)
		switch {
		case r.URL.Path == "/v2/":
			w.WriteHeader(v2)
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/blobs/uploads/"):
			w.Header().Set("Location", r.URL.Path+"u1")
			w.WriteHeader(upload)
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

// allowing answers SelfSubjectAccessReviews: allowed for the resources given.
func allowing(cs *fake.Clientset, resources ...string) {
	cs.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview)
		for _, res := range resources {
			if r.Spec.ResourceAttributes.Resource == res {
				r.Status.Allowed = true
			}
		}
		if !r.Status.Allowed {
			r.Status.Reason = "RBAC: no"
		}
		return true, r, nil
	})
}

func existingCfg(address string) *config.Config {
	return &config.Config{Name: "hello", Namespace: "hello-ana", Cluster: config.Cluster{Context: "team-dev", Registry: config.Registry{Address: address}}}
}

func resultsByCheck(rs []Result) map[string]Result {
	m := map[string]Result{}
	for _, r := range rs {
		m[r.Check] = r
	}
	return m
}

func TestExistingClusterAllGood(t *testing.T) {
	srv, calls := fakeRegistry(t, http.StatusOK, http.StatusAccepted)
	cs := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "hello-ana"}})
	allowing(cs, "deployments")
	addr := strings.TrimPrefix(srv.URL, "http://") + "/team"
	rs := resultsByCheck(ExistingCluster(context.Background(), existingCfg(addr), cs, "https://api", nil, srv.Client()))
	for _, c := range []string{checkContext, checkNamespace, checkRegistry} {
		if rs[c].Level != OK {
			t.Errorf("%s: %+v", c, rs[c])
		}
	}
	if got := strings.Join(*calls, ","); got != "GET /v2/,POST /v2/team/devloop-doctor/blobs/uploads/,DELETE /v2/team/devloop-doctor/blobs/uploads/u1" {
		t.Errorf("registry calls %s", got)
	}
}

func TestExistingClusterFailures(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		srv, _ := fakeRegistry(t, http.StatusOK, http.StatusAccepted)
		rs := resultsByCheck(ExistingCluster(context.Background(), existingCfg(strings.TrimPrefix(srv.URL, "http://")), nil, "", errors.New("no such host"), srv.Client()))
		if r := rs[checkContext]; r.Level != Fail || !strings.Contains(r.Message, "no such host") || !strings.Contains(r.Fix, "kubectl --context team-dev") {
			t.Errorf("%+v", r)
		}
		if _, ok := rs[checkNamespace]; ok {
			t.Error("namespace checked on an unreachable cluster")
		}
	})
	t.Run("namespace not writable", func(t *testing.T) {
		srv, _ := fakeRegistry(t, http.StatusOK, http.StatusAccepted)
		cs := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "hello-ana"}})
		allowing(cs)
		r := resultsByCheck(ExistingCluster(context.Background(), existingCfg(strings.TrimPrefix(srv.URL, "http://")), cs, "", nil, srv.Client()))[checkNamespace]
		if r.Level != Fail || !strings.Contains(r.Message, "may not create Deployments in namespace hello-ana (RBAC: no)") {
			t.Errorf("%+v", r)
		}
	})
	t.Run("namespace missing, not creatable", func(t *testing.T) {
		srv, _ := fakeRegistry(t, http.StatusOK, http.StatusAccepted)
		cs := fake.NewClientset()
		allowing(cs, "deployments")
		r := resultsByCheck(ExistingCluster(context.Background(), existingCfg(strings.TrimPrefix(srv.URL, "http://")), cs, "", nil, srv.Client()))[checkNamespace]
		if r.Level != Fail || !strings.Contains(r.Message, "does not exist, and you may not create it") {
			t.Errorf("%+v", r)
		}
	})
	for _, tc := range []struct {
		name       string
		v2, upload int
		want       string
	}{
		{"credentials, none stored", http.StatusUnauthorized, http.StatusAccepted, "`docker login` has none stored for 127.0.0.1"},
		{"not a registry", http.StatusNotFound, http.StatusAccepted, "not a registry"},
		{"refuses a push", http.StatusOK, http.StatusForbidden, "refuses a push into devloop-doctor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := fakeRegistry(t, tc.v2, tc.upload)
			defer stubLogin(false)()
			cs := fake.NewClientset()
			allowing(cs, "deployments", "namespaces")
			r := resultsByCheck(ExistingCluster(context.Background(), existingCfg(strings.TrimPrefix(srv.URL, "http://")), cs, "", nil, srv.Client()))[checkRegistry]
			if r.Level != Fail || !strings.Contains(r.Message, tc.want) || r.Fix == "" {
				t.Errorf("%+v", r)
			}
		})
	}
}

// stubLogin makes storedLogin answer stored; the returned func restores it.
func stubLogin(stored bool) func() {
	old := storedLogin
	storedLogin = func(string) (bool, error) { return stored, nil }
	return func() { storedLogin = old }
}

// A registry that asks for a login, with one stored by `docker login`: a
// warning that says devloop sends it (doctor does not try it), not a failure.
func TestRegistryLoginStored(t *testing.T) {
	srv, _ := fakeRegistry(t, http.StatusUnauthorized, http.StatusAccepted)
	defer stubLogin(true)()
	cs := fake.NewClientset()
	allowing(cs, "deployments", "namespaces")
	r := resultsByCheck(ExistingCluster(context.Background(), existingCfg(strings.TrimPrefix(srv.URL, "http://")), cs, "", nil, srv.Client()))[checkRegistry]
	if r.Level != Warn || !strings.Contains(r.Message, "devloop sends the ones `docker login` stored") {
		t.Errorf("%+v", r)
	}
}

func TestRegistryBase(t *testing.T) {
	for in, want := range map[string][2]string{
		"localhost:5001":                {"http://localhost:5001", ""},
		"127.0.0.1:5000/a/b":            {"http://127.0.0.1:5000", "a/b"},
		"registry.dev.example.com/team": {"https://registry.dev.example.com", "team"},
	} {
		if b, p := registryBase(in); b != want[0] || p != want[1] {
			t.Errorf("registryBase(%q) = %q, %q", in, b, p)
		}
	}
}
