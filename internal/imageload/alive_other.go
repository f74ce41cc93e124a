//go:build !unix

package imageload

// processAlive cannot tell here: every spool directory is kept.
func processAlive(int) bool { return true }
