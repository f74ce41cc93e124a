package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// fakeStreamer is a tiny kubelet: it serves timestamped lines per container
// instance, follows appended lines, honours SinceTime (1 s resolution, as
// the API does) and Previous, and can break or stall streams on script.
type fakeStreamer struct {
	mu        sync.Mutex
	changed   chan struct{}
	instances map[string][]*fakeInstance // pod/container → instances, last is current
	calls     []corev1.PodLogOptions
	// down, when set and true, makes Stream fail like an API server that
	// does not answer.
	down func() bool
}

type fakeInstance struct {
	id         string
	lines      []string // "<RFC3339Nano> <text>"
	terminated bool
	// script[i] applies to the i-th stream of this instance: break
	// (error) or stall after that many lines. Missing: behave.
	script []fakeFault
	opened int
}

type fakeFault struct {
	after int
	stall bool // stall (stay open, send nothing) instead of breaking
	eof   bool // end cleanly instead of with an error
}

func newFakeStreamer() *fakeStreamer {
	return &fakeStreamer{changed: make(chan struct{}), instances: map[string][]*fakeInstance{}}
}

func (f *fakeStreamer) broadcast() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// start adds a new current instance for pod/container, terminating the
// previous one (a restart).
func (f *fakeStreamer) start(pod, container, id string, script ...fakeFault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := pod + "/" + container
	if n := len(f.instances[key]); n > 0 {
		f.instances[key][n-1].terminated = true
	}
	f.instances[key] = append(f.instances[key], &fakeInstance{id: id, script: script})
	f.broadcast()
}

func (f *fakeStreamer) log(pod, container string, ts time.Time, text string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.instances[pod+"/"+container]
	cur := in[len(in)-1]
	cur.lines = append(cur.lines, ts.Format(time.RFC3339Nano)+" "+text)
	f.broadcast()
}

func (f *fakeStreamer) terminate(pod, container string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.instances[pod+"/"+container]
	in[len(in)-1].terminated = true
	f.broadcast()
}

type fakeStream struct {
	*io.PipeReader
	closed chan struct{}
	once   sync.Once
}

func (s *fakeStream) Close() error {
	s.once.Do(func() { close(s.closed) })
	return s.PipeReader.Close()
}

func (f *fakeStreamer) Stream(ctx context.Context, ns, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down != nil && f.down() {
		return nil, errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")
	}
	f.calls = append(f.calls, *opts)
	in := f.instances[pod+"/"+opts.Container]
	idx := len(in) - 1
	if opts.Previous {
		idx--
	}
	if idx < 0 {
		return nil, fmt.Errorf("container %s/%s: no such instance", pod, opts.Container)
	}
	inst := in[idx]
	var fault *fakeFault
	if inst.opened < len(inst.script) {
		fault = &inst.script[inst.opened]
	}
	inst.opened++
	pr, pw := io.Pipe()
	s := &fakeStream{PipeReader: pr, closed: make(chan struct{})}
	go f.serve(ctx, s, pw, inst, opts, fault)
	return s, nil
}

func (f *fakeStreamer) serve(ctx context.Context, s *fakeStream, pw *io.PipeWriter, inst *fakeInstance, opts *corev1.PodLogOptions, fault *fakeFault) {
	sent, i := 0, 0
	for {
		f.mu.Lock()
		var batch []string
		for ; i < len(inst.lines); i++ {
			line := inst.lines[i]
			if opts.SinceTime != nil {
				ts, _ := time.Parse(time.RFC3339Nano, line[:bytes.IndexByte([]byte(line), ' ')])
				if ts.Before(opts.SinceTime.Time.Truncate(time.Second)) {
					continue
				}
			}
			batch = append(batch, line)
		}
		done := inst.terminated || !opts.Follow
		changed := f.changed
		f.mu.Unlock()

		for _, line := range batch {
			if fault != nil && sent == fault.after {
				switch {
				case fault.stall:
					select {
					case <-s.closed:
					case <-ctx.Done():
					}
					pw.Close()
				case fault.eof:
					pw.Close()
				default:
					pw.CloseWithError(errors.New("stream reset by peer"))
				}
				return
			}
			if _, err := io.WriteString(pw, line+"\n"); err != nil {
				return
			}
			sent++
		}
		if done {
			pw.Close()
			return
		}
		select {
		case <-changed:
		case <-s.closed:
			return
		case <-ctx.Done():
			pw.CloseWithError(ctx.Err())
			return
		}
	}
}

// syncBuffer is a goroutine-safe output that also counts writes.
type syncBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes++
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
