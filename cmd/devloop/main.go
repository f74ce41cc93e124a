// Command devloop is the Kubernetes inner loop in one command: see
// internal/app for the commands and README.md for how to use it.
package main

import "github.com/devloop-dev/devloop/internal/app"

func main() { app.Main() }
