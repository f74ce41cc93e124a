package main

// message is what GET / answers with. Edit it while `devloop up` runs to
// see a rebuild and rollout.
const message = "hello from devloop v1"
