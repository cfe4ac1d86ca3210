package bench

import (
	"net"
	"sync"
	"time"
)

// SlowLink is a TCP proxy on loopback that carries each direction's bytes with a
// one-way delay and at most a number of bits per second, as a village school's link
// would: a benchmark dials Addr instead of the server.
type SlowLink struct {
	Addr  string
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

// NewSlowLink proxies to target (host:port) with the given one-way delay and rate
// (bits per second, each direction; 0: unlimited).
func NewSlowLink(target string, delay time.Duration, bps int) (*SlowLink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &SlowLink{Addr: ln.Addr().String(), ln: ln}
	l.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			l.mu.Lock()
			l.conns = append(l.conns, c, s)
			l.mu.Unlock()
			l.wg.Go(func() { carry(s, c, delay, bps) })
			l.wg.Go(func() { carry(c, s, delay, bps) })
		}
	})
	return l, nil
}

// Close stops the proxy and its connections.
func (l *SlowLink) Close() {
	l.ln.Close()
	l.mu.Lock()
	for _, c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// chunk is bytes read from one side, due at the other at a time.
type chunk struct {
	data []byte
	due  time.Time
}

// carry copies from src to dst: each chunk leaves when the link has sent the chunks
// before it at bps, and arrives delay later.
func carry(dst, src net.Conn, delay time.Duration, bps int) {
	ch := make(chan chunk, 1024)
	go func() {
		defer close(ch)
		free := time.Now() // when the link has sent everything read so far
		for {
			buf := make([]byte, 16<<10)
			n, err := src.Read(buf)
			if n > 0 {
				now := time.Now()
				if free.Before(now) {
					free = now
				}
				if bps > 0 {
					free = free.Add(time.Duration(int64(n) * 8 * int64(time.Second) / int64(bps)))
				}
				ch <- chunk{data: buf[:n], due: free.Add(delay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		time.Sleep(time.Until(c.due))
		if _, err := dst.Write(c.data); err != nil {
			break
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	for range ch { // let the reader end
	}
}
