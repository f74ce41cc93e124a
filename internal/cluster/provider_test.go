package cluster

import (
	"errors"
	"testing"
)

func TestIsNoSuch(t *testing.T) {
	tests := []struct {
		msg  string
		want bool
	}{
		{"docker image inspect: exit status 1: Error: No such image: x", true},
		{"docker container inspect: exit status 1: Error: No such container: x", true},
		{"docker cp: exit status 1: Error response from daemon: Could not find the file /kind/manifests/default-cni.yaml in container 2bc", true},
		{"docker image inspect: exit status 1: Cannot connect to the Docker daemon at unix:///var/run/docker.sock", false},
	}
	for _, tt := range tests {
		if got := isNoSuch(errors.New(tt.msg)); got != tt.want {
			t.Errorf("isNoSuch(%q) = %v, want %v", tt.msg, got, tt.want)
		}
	}
}
