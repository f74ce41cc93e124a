package ui

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestPrinterPlain(t *testing.T) {
	var b bytes.Buffer
	p := NewPrinter(&b, false, false)
	p.SetPrefixWidth(6)
	p.Line("hello", "build ok in %s", "1.2s")
	p.Error("api", "line one\nline two")
	want := "hello  │ build ok in 1.2s\napi    │ line one\napi    │ line two\n"
	if b.String() != want {
		t.Fatalf("got %q\nwant %q", b.String(), want)
	}
}

func TestPrinterColorAndStamp(t *testing.T) {
	var b bytes.Buffer
	p := NewPrinter(&b, true, true)
	p.now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	p.Line("x", "hi")
	got := b.String()
	if !strings.HasPrefix(got, "03:04:05 \x1b[") || !strings.Contains(got, "hi\n") {
		t.Fatalf("got %q", got)
	}
}

func TestWriterLinesNeverInterleave(t *testing.T) {
	var b bytes.Buffer
	p := NewPrinter(&b, false, false)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		w := p.Writer(fmt.Sprintf("w%d", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				// Write each line in two halves to provoke interleaving.
				fmt.Fprintf(w, "line-%03d-", j)
				fmt.Fprintf(w, "end\n")
			}
			_ = w.Close()
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 800 {
		t.Fatalf("got %d lines", len(lines))
	}
	for _, l := range lines {
		if !strings.HasSuffix(l, "-end") || strings.Count(l, "line-") != 1 {
			t.Fatalf("interleaved line %q", l)
		}
	}
}

func TestWriterFlushesPartialLineOnClose(t *testing.T) {
	var b bytes.Buffer
	p := NewPrinter(&b, false, false)
	p.SetPrefixWidth(0)
	w := p.Writer("s")
	fmt.Fprint(w, "no newline")
	if b.Len() != 0 {
		t.Fatal("partial line printed early")
	}
	_ = w.Close()
	if b.String() != "s │ no newline\n" {
		t.Fatalf("got %q", b.String())
	}
}

func TestProgressSaysHowLongSoFar(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var b bytes.Buffer
		p := NewPrinter(&b, false, false)
		p.SetPrefixWidth(0)

		quick := p.Progress("q", "building")
		time.Sleep(progressFirst - time.Millisecond)
		quick()
		synctest.Wait()
		if b.Len() != 0 {
			t.Fatalf("a step shorter than %s printed %q", progressFirst, b.String())
		}

		stop := p.Progress("cluster", "creating cluster")
		time.Sleep(progressFirst + 2*progressEvery + time.Second)
		stop()
		stop() // idempotent
		synctest.Wait()
		want := "cluster │ still creating cluster (5s so far)\n" +
			"cluster │ still creating cluster (15s so far)\n" +
			"cluster │ still creating cluster (25s so far)\n"
		if b.String() != want {
			t.Fatalf("got %q\nwant %q", b.String(), want)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if b.String() != want {
			t.Fatalf("printed after stop: %q", b.String())
		}
	})
}

func TestProgressFuncAsksEachTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var b bytes.Buffer
		p := NewPrinter(&b, false, false)
		p.SetPrefixWidth(0)
		n := 0
		stop := p.ProgressFunc("d", func() string { n++; return fmt.Sprintf("waiting (look %d)", n) })
		time.Sleep(progressFirst + progressEvery + time.Second)
		stop()
		want := "d │ still waiting (look 1) (5s so far)\nd │ still waiting (look 2) (15s so far)\n"
		if b.String() != want {
			t.Fatalf("got %q\nwant %q", b.String(), want)
		}
	})
}

// TestWriterCarriageReturns: a progress bar redrawn with \r prints as its
// last state, with no raw carriage return, and a stream that never ends its
// line is not accumulated (issue 16, item 6).
func TestWriterCarriageReturns(t *testing.T) {
	var b bytes.Buffer
	p := NewPrinter(&b, false, false)
	p.SetPrefixWidth(1)
	w := p.Writer("x")
	fmt.Fprint(w, "fetching 10%\rfetching 20%\r")
	fmt.Fprint(w, "fetching 100%\r\nok\r\n")
	fmt.Fprint(w, "almost\rdone")
	_ = w.Close()
	if want := "x │ fetching 100%\nx │ ok\nx │ done\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}

	b.Reset()
	w = p.Writer("x")
	chunk := []byte(strings.Repeat("downloading 42% [=====>    ]\r", 1000)) // 28 kB
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 300 { // 8.4 MB that never ends its line
		_, _ = w.Write(chunk)
	}
	runtime.ReadMemStats(&after)
	_ = w.Close()
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("writing 8.4 MB of carriage-return updates allocated %d bytes", grew)
	}
	if want := "x │ downloading 42% [=====>    ]\n"; b.String() != want {
		t.Errorf("got %d bytes %.200q..., want %q", b.Len(), b.String(), want)
	}
}

// BenchmarkWriterCarriageReturns writes 32 MiB of progress updates that
// never end their line, in 32 KiB writes (what a pipe delivers).
func BenchmarkWriterCarriageReturns(b *testing.B) {
	chunk := []byte(strings.Repeat("downloading 42% [=====>    ]\r", 32<<10/29))
	p := NewPrinter(io.Discard, false, false)
	b.ReportAllocs()
	b.SetBytes(32 << 20)
	for b.Loop() {
		w := p.Writer("x")
		for n := 0; n < 32<<20; n += len(chunk) {
			_, _ = w.Write(chunk)
		}
		_ = w.Close()
	}
}
