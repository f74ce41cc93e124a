package kube

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestSecretValues(t *testing.T) {
	objs := []*unstructured.Unstructured{
		mustObj(t, "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\ndata: {token: aHVudGVyMjI=, bad: '%%%'}\nstringData: {password: s3cr3t}\n"),
		mustObj(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {greeting: hello}\n"),
		mustObj(t, "apiVersion: example.com/v1\nkind: Secret\nmetadata: {name: other}\ndata: {x: not-core}\n"),
	}
	want := []string{"%%%", "aHVudGVyMjI=", "hunter22", "s3cr3t"}
	if got := SecretValues(objs); !reflect.DeepEqual(got, want) {
		t.Errorf("SecretValues = %q, want %q", got, want)
	}
}
