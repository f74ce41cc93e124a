// Package linebuf splits a byte stream into lines the way a terminal shows
// them, in bounded memory, for everything that prints or keeps command
// output line by line.
//
// A carriage return not followed by a line feed returns to the start of the
// line, so what follows overwrites it: a progress bar redrawn with \r ten
// thousand times is one line, its last state, and never more than Max bytes
// are held however long the stream runs without a newline. A line longer
// than Max is passed on in pieces of at most Max bytes.
package linebuf

import "unicode/utf8"

// DefaultMax is the longest line held when Splitter.Max is not set.
const DefaultMax = 16 << 10

// Splitter turns written bytes into lines. The zero value is ready to use.
// It is not safe for concurrent use.
type Splitter struct {
	// Max is the longest line held (bytes); DefaultMax when <= 0.
	Max int
	buf []byte
	// cr: the last byte seen was a carriage return; whether it ends the
	// line (CR LF) or rewinds it depends on the next byte.
	cr bool
}

func (s *Splitter) max() int {
	if s.Max <= 0 {
		return DefaultMax
	}
	return s.Max
}

// Write feeds p, calling emit with every complete line, without its line
// end. emit must not keep the slice it is given.
func (s *Splitter) Write(p []byte, emit func(line []byte)) {
	for len(p) > 0 {
		c := p[0]
		switch {
		case c == '\n':
			s.cr = false
			emit(s.buf)
			s.buf = s.buf[:0]
			p = p[1:]
			continue
		case c == '\r':
			s.cr = true
			p = p[1:]
			continue
		case s.cr:
			s.cr = false
			s.buf = s.buf[:0] // overwritten from its start
		}
		// Copy up to the next line end, splitting at Max.
		n := 0
		for n < len(p) && p[n] != '\n' && p[n] != '\r' {
			n++
		}
		s.add(p[:n], emit)
		p = p[n:]
	}
}

func (s *Splitter) add(b []byte, emit func([]byte)) {
	max := s.max()
	for len(b) > 0 {
		room := max - len(s.buf)
		if room <= 0 {
			// Pass the full line on, cut at a character boundary.
			cut := len(s.buf)
			for i := len(s.buf) - 1; i >= 0 && i > len(s.buf)-utf8.UTFMax; i-- {
				if utf8.RuneStart(s.buf[i]) {
					if !utf8.FullRune(s.buf[i:]) {
						cut = i
					}
					break
				}
			}
			if cut == 0 {
				cut = len(s.buf)
			}
			emit(s.buf[:cut])
			s.buf = append(s.buf[:0], s.buf[cut:]...)
			continue
		}
		k := min(room, len(b))
		s.buf = append(s.buf, b[:k]...)
		b = b[k:]
	}
}

// Flush emits the partial line, if there is one, and empties the Splitter.
func (s *Splitter) Flush(emit func(line []byte)) {
	if len(s.buf) > 0 {
		emit(s.buf)
	}
	s.buf = s.buf[:0]
	s.cr = false
}

// Pending reports whether a partial line is held.
func (s *Splitter) Pending() bool { return len(s.buf) > 0 }

// Partial is the partial line held (valid until the next Write or Flush).
func (s *Splitter) Partial() []byte { return s.buf }
