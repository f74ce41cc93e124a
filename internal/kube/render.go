package kube

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/devloop-dev/devloop/internal/config"
)

// SourceAnnotation records where a rendered object came from
// ("path#docindex", or "dir (kustomize)"). Render sets it so later errors can
// name the file; the Applier strips it before sending the object.
const SourceAnnotation = "devloop.dev/source"

// clusterScopedKinds are the built-in kinds that have no namespace. Render
// uses this list; the Applier confirms scope with the RESTMapper.
var clusterScopedKinds = map[string]bool{
	"Namespace": true, "Node": true, "PersistentVolume": true, "StorageClass": true,
	"ClusterRole": true, "ClusterRoleBinding": true, "CustomResourceDefinition": true,
	"IngressClass": true, "PriorityClass": true, "ValidatingWebhookConfiguration": true,
	"MutatingWebhookConfiguration": true, "APIService": true, "CSIDriver": true,
	"CSINode": true, "RuntimeClass": true, "VolumeAttachment": true,
	"ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true,
	"MutatingAdmissionPolicy": true, "MutatingAdmissionPolicyBinding": true,
	"CertificateSigningRequest": true, "FlowSchema": true, "PriorityLevelConfiguration": true,
	"GatewayClass": true, "DeviceClass": true,
}

// Source returns the value of the object's source annotation, or "".
func Source(obj *unstructured.Unstructured) string {
	return obj.GetAnnotations()[SourceAnnotation]
}

// Render reads cfg.Manifests (files, globs, plain directories or kustomize
// directories, all absolute) and returns the objects in order. Objects that
// lack a namespace and are not of a known cluster-scoped kind get
// cfg.Namespace. Each object carries SourceAnnotation.
func Render(cfg *config.Config) ([]*unstructured.Unstructured, error) {
	ns := cfg.Namespace
	var out []*unstructured.Unstructured
	for _, m := range cfg.Manifests {
		objs, err := renderPath(m)
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	seen := map[string]string{}
	for _, o := range out {
		if o.GetNamespace() == "" && !clusterScopedKinds[o.GetKind()] {
			o.SetNamespace(ns)
		}
		key := o.GroupVersionKind().GroupKind().String() + "/" + o.GetNamespace() + "/" + o.GetName()
		if prev, ok := seen[key]; ok {
			return nil, fmt.Errorf("%s %s is defined twice: in %s and in %s", strings.ToLower(o.GetKind()), o.GetName(), prev, Source(o))
		}
		seen[key] = Source(o)
	}
	return out, nil
}

func renderPath(p string) ([]*unstructured.Unstructured, error) {
	if strings.ContainsAny(p, "*?[") {
		matches, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("manifest pattern %s: %w", p, err)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("manifest pattern %s matched no files", p)
		}
		sort.Strings(matches)
		var out []*unstructured.Unstructured
		for _, f := range matches {
			objs, err := renderPath(f)
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
		}
		return out, nil
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("reading manifests: %w", err)
	}
	if !fi.IsDir() {
		return renderFile(p)
	}
	if isKustomizeDir(p) {
		return renderKustomize(p)
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return nil, fmt.Errorf("reading manifest directory %s: %w", p, err)
	}
	var out []*unstructured.Unstructured
	for _, e := range entries { // ReadDir sorts by name
		if e.IsDir() || !isManifestFile(e.Name()) {
			continue
		}
		objs, err := renderFile(filepath.Join(p, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	return out, nil
}

func isManifestFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

func isKustomizeDir(dir string) bool {
	for _, n := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		if fi, err := os.Stat(filepath.Join(dir, n)); err == nil && !fi.IsDir() {
			return true
		}
	}
	return false
}

func renderKustomize(dir string) ([]*unstructured.Unstructured, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("rendering kustomization %s: %w", dir, err)
	}
	src := dir + " (kustomize)"
	var out []*unstructured.Unstructured
	for i, r := range m.Resources() {
		fields, err := r.Map()
		if err != nil {
			return nil, fmt.Errorf("rendering kustomization %s: resource %d: %w", dir, i, err)
		}
		objs, err := toObjects(fields, src)
		if err != nil {
			return nil, fmt.Errorf("%s: resource %d: %w", src, i, err)
		}
		out = append(out, objs...)
	}
	return out, nil
}

func renderFile(path string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	return parseManifests(data, path)
}

// parseManifests splits a YAML (or JSON) stream into objects, naming the
// source (name#docindex) in errors and in SourceAnnotation.
func parseManifests(data []byte, name string) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []*unstructured.Unstructured
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: reading document %d: %w", name, i, err)
		}
		src := fmt.Sprintf("%s#%d", name, i)
		var fields map[string]any
		if err := yaml.Unmarshal(doc, &fields); err != nil {
			return nil, fmt.Errorf("%s (document %d): parsing YAML: %w", name, i, err)
		}
		if len(fields) == 0 {
			continue
		}
		objs, err := toObjects(fields, src)
		if err != nil {
			return nil, fmt.Errorf("%s (document %d): %w", name, i, err)
		}
		out = append(out, objs...)
	}
}

// toObjects validates one decoded document and expands lists.
func toObjects(fields map[string]any, src string) ([]*unstructured.Unstructured, error) {
	// Decoders disagree on number types (YAML gives float64, kustomize int);
	// client-go's deep copies accept only JSON's (int64, float64). One JSON
	// round trip through the unstructured decoder makes every object uniform.
	raw, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("encoding object: %w", err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		if ka, _ := fields["kind"].(string); ka == "" {
			return nil, errors.New("object has no kind")
		}
		return nil, fmt.Errorf("decoding object: %w", err)
	}
	fields = u.Object
	if u.GetKind() == "" {
		return nil, errors.New("object has no kind")
	}
	if u.GetAPIVersion() == "" {
		return nil, fmt.Errorf("%s has no apiVersion", u.GetKind())
	}
	if _, isList := fields["items"].([]any); isList && strings.HasSuffix(u.GetKind(), "List") {
		list, err := u.ToList()
		if err != nil {
			return nil, fmt.Errorf("expanding %s: %w", u.GetKind(), err)
		}
		var out []*unstructured.Unstructured
		for j := range list.Items {
			item := list.Items[j]
			objs, err := toObjects(item.Object, fmt.Sprintf("%s[%d]", src, j))
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", j, err)
			}
			out = append(out, objs...)
		}
		return out, nil
	}
	if u.GetName() == "" {
		return nil, fmt.Errorf("%s has no metadata.name", u.GetKind())
	}
	ann := u.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[SourceAnnotation] = src
	u.SetAnnotations(ann)
	return []*unstructured.Unstructured{u}, nil
}
