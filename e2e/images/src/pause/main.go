// Command pause is the sandbox ("pause") container of the offline e2e node image: it blocks until
// SIGTERM or SIGINT and exits 0, like registry.k8s.io/pause.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	<-sigs
	os.Exit(0)
}
