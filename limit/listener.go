package limit

import (
	"net"
	"sync"
	"sync/atomic"
)

// Conns caps the connections a listener keeps open.
type Conns struct {
	// PerClient is the most connections one client (as AddrKey names it) may keep open; 0
	// means no cap.
	PerClient int
	// Total is the most connections open at once; 0 means no cap. Keep it below the
	// process's file descriptor limit, with room for the store and logs.
	Total int
}

// Listener returns ln with the caps of c applied: a connection over a cap is closed as soon as
// it is accepted, and Accept goes on to the next. Refused counts them.
func Listener(ln net.Listener, c Conns) *CappedListener {
	return &CappedListener{Listener: ln, caps: c, open: make(map[string]int)}
}

// CappedListener is a net.Listener with caps on open connections.
type CappedListener struct {
	net.Listener
	caps    Conns
	mu      sync.Mutex
	open    map[string]int
	total   int
	refused atomic.Uint64
}

// Accept waits for and returns the next connection within the caps.
func (l *CappedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := AddrKey(c.RemoteAddr().String())
		if l.take(key) {
			return &cappedConn{Conn: c, l: l, key: key}, nil
		}
		l.refused.Add(1)
		c.Close()
	}
}

func (l *CappedListener) take(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if (l.caps.Total > 0 && l.total >= l.caps.Total) || (l.caps.PerClient > 0 && l.open[key] >= l.caps.PerClient) {
		return false
	}
	l.total++
	l.open[key]++
	return true
}

func (l *CappedListener) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.open[key]--; l.open[key] <= 0 {
		delete(l.open, key)
	}
}

// Open returns how many connections are open.
func (l *CappedListener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// Refused returns how many connections were closed for being over a cap.
func (l *CappedListener) Refused() uint64 { return l.refused.Load() }

type cappedConn struct {
	net.Conn
	l    *CappedListener
	key  string
	once sync.Once
}

func (c *cappedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.key) })
	return err
}
