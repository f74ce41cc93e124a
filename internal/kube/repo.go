package kube

// SameRepo reports whether two image references name the same repository,
// ignoring tags and digests and normalising Docker Hub names ("hello",
// "docker.io/hello" and "docker.io/library/hello:1" are the same).
func SameRepo(a, b string) bool { return normalizeRepo(a) == normalizeRepo(b) }
