package kube

import (
	"encoding/base64"
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// SecretValues returns the values of every Secret among objs (data,
// base64-decoded, and stringData), for devloop to keep out of its output.
// A data value that is not valid base64 is returned as written.
func SecretValues(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		if o.GetKind() != "Secret" || o.GroupVersionKind().Group != "" {
			continue
		}
		data, _, _ := unstructured.NestedMap(o.Object, "data")
		for _, v := range data {
			s, ok := v.(string)
			if !ok {
				continue
			}
			if dec, err := base64.StdEncoding.DecodeString(s); err == nil {
				out = append(out, string(dec))
			}
			out = append(out, s)
		}
		str, _, _ := unstructured.NestedMap(o.Object, "stringData")
		for _, v := range str {
			if s, ok := v.(string); ok {
				out = append(out, s)
			}
		}
	}
	sort.Strings(out)
	return out
}
