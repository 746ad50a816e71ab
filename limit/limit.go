// Package limit keeps one caller from taking more than its share of a server: rate limits per
// client on the requests of the HTTP and WebSocket surfaces, and caps on the connections a
// listener keeps open.
//
// Every surface takes a *Limiter in its Config. A nil Limiter there means the surface's
// default (DefaultRates); a Limiter made from zero Rates limits nothing. One Limiter may be
// shared by every surface of a server, so that a client's writes count once whichever API it
// uses.
package limit

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Class is a kind of request with a rate of its own.
type Class uint8

const (
	// Create is anonymous creation: a new chat or session by a caller nobody knows yet
	// (Genesys requestChat, Airy authenticate). Each one costs storage.
	Create Class = iota
	// Write is any other write: a message, a receipt, typing, a member change.
	Write
	numClasses
)

// String returns "create" or "write".
func (c Class) String() string {
	switch c {
	case Create:
		return "create"
	case Write:
		return "write"
	}
	return "class?"
}

// Rate is a token bucket: a client may make Burst requests at once, and one more every
// 1/PerSecond seconds after that. The zero Rate limits nothing.
type Rate struct {
	// PerSecond is how fast the bucket refills.
	PerSecond float64
	// Burst is the bucket's size.
	Burst int
}

// Rates are the rates of each class.
type Rates struct {
	// Create limits anonymous creation.
	Create Rate
	// Write limits other writes.
	Write Rate
}

// DefaultRates are what a surface applies when its Config names no Limiter: 20 new chats at
// once and one every 3 seconds after that, and 20 writes a second with bursts of 50, per
// client address.
var DefaultRates = Rates{
	Create: Rate{PerSecond: 1.0 / 3, Burst: 20},
	Write:  Rate{PerSecond: 20, Burst: 50},
}

// maxClients bounds the memory a Limiter keeps: past it, clients whose buckets have refilled
// are forgotten, and while none have, new clients are refused.
const maxClients = 1 << 16

// Limiter keeps a token bucket per client and class. Its methods are safe for concurrent use.
type Limiter struct {
	rates   [numClasses]Rate
	refill  time.Duration // how long the slowest bucket takes to refill from empty
	now     func() time.Time
	mu      sync.Mutex
	clients map[string]*client
	refused [numClasses]atomic.Uint64
}

type client struct {
	buckets [numClasses]*rate.Limiter
	seen    time.Time
}

// New returns a Limiter with the given rates.
func New(r Rates) *Limiter { return newLimiter(r, time.Now) }

func newLimiter(r Rates, now func() time.Time) *Limiter {
	l := &Limiter{now: now, clients: make(map[string]*client)}
	l.rates[Create], l.rates[Write] = r.Create, r.Write
	for _, rt := range l.rates {
		if rt.PerSecond > 0 {
			l.refill = max(l.refill, time.Duration(float64(rt.Burst)/rt.PerSecond*float64(time.Second)))
		}
	}
	return l
}

// Allow reports whether the client named by key may make a request of class c now, and takes
// a token if so. A nil Limiter allows everything.
func (l *Limiter) Allow(key string, c Class) bool {
	if l == nil || c >= numClasses || l.rates[c].PerSecond <= 0 {
		return true
	}
	now := l.now()
	l.mu.Lock()
	cl := l.clients[key]
	if cl == nil {
		if len(l.clients) >= maxClients {
			l.forget(now)
		}
		if len(l.clients) >= maxClients {
			l.mu.Unlock()
			l.refused[c].Add(1)
			return false
		}
		cl = &client{}
		l.clients[key] = cl
	}
	cl.seen = now
	b := cl.buckets[c]
	if b == nil {
		b = rate.NewLimiter(rate.Limit(l.rates[c].PerSecond), max(l.rates[c].Burst, 1))
		cl.buckets[c] = b
	}
	ok := b.AllowN(now, 1)
	l.mu.Unlock()
	if !ok {
		l.refused[c].Add(1)
	}
	return ok
}

// RetryAfter returns how long the client named by key must wait before a request of class c
// would be allowed: what a refusal's Retry-After header says. It takes nothing.
func (l *Limiter) RetryAfter(key string, c Class) time.Duration {
	if l == nil || c >= numClasses || l.rates[c].PerSecond <= 0 {
		return 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	cl := l.clients[key]
	if cl == nil || cl.buckets[c] == nil {
		return 0
	}
	tokens := cl.buckets[c].TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) / l.rates[c].PerSecond * float64(time.Second))
}

// AllowRequest is Allow for the client that made r, named by ClientKey.
func (l *Limiter) AllowRequest(r *http.Request, c Class) bool {
	if l == nil {
		return true
	}
	return l.Allow(ClientKey(r), c)
}

// Refused returns how many requests of class c the Limiter has refused.
func (l *Limiter) Refused(c Class) uint64 {
	if l == nil || c >= numClasses {
		return 0
	}
	return l.refused[c].Load()
}

// forget drops clients that have not been seen for as long as their buckets take to refill:
// they are as good as new. The caller holds mu.
func (l *Limiter) forget(now time.Time) {
	for k, cl := range l.clients {
		if now.Sub(cl.seen) >= l.refill {
			delete(l.clients, k)
		}
	}
}

// Sweep forgets clients whose buckets have refilled; a server calls it now and then (once a
// minute is plenty) to give back the memory of clients that went away. Allow also sweeps when
// the Limiter is full.
func (l *Limiter) Sweep() {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.forget(l.now())
	l.mu.Unlock()
}

// ClientKey names the client that made r for rate limits: its IP address from r.RemoteAddr,
// and for IPv6 its /64 network, which one host usually has whole. It does not trust
// forwarding headers: a server behind a proxy sets RemoteAddr from them itself, for the
// proxies it trusts.
func ClientKey(r *http.Request) string { return AddrKey(r.RemoteAddr) }

// AddrKey is ClientKey for a "host:port" or bare host address.
func AddrKey(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
