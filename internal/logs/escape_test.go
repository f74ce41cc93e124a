package logs

import (
	"context"
	"testing"
	"testing/synctest"
)

// TestAppEscapeSequencesAreNeutralised: what an app logs cannot drive the
// user's terminal; devloop's coloured prefix stays (issue 16, item 8).
func TestAppEscapeSequencesAreNeutralised(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const pod = "hello-7d9c5b6f4-x2x9z"
		h := start(t, Options{Color: true}, testPod(pod, nil, containerState{name: "app", id: "c1"}))
		h.fs.start(pod, "app", "c1")
		h.fs.log(pod, "app", at(0), "\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b[31mstarted\x1b[0m\rfake")
		if err := h.m.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		want := Prefix("hello", pod, "app", true) + ` | started\rfake` + "\n"
		if got := h.out.String(); got != want {
			t.Errorf("output %q, want %q", got, want)
		}
	})
}
