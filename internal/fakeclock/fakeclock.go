// Package fakeclock is a chat.Clock whose time moves only when a test advances it, so that
// typing expiry, TTLs and token lifetimes can be tested without sleeping.
package fakeclock

import (
	"sort"
	"sync"
	"time"
)

// Clock is a manual clock. It is safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	seq    int
	timers map[int]*timer
}

type timer struct {
	at time.Time
	f  func()
}

// New returns a Clock reading start.
func New(start time.Time) *Clock { return &Clock{now: start, timers: make(map[int]*timer)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc schedules f to run in the goroutine that advances the clock to or past now+d.
// A due function never runs inside AfterFunc itself, so callers may hold locks.
func (c *Clock) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	id := c.seq
	c.timers[id] = &timer{at: c.now.Add(d), f: f}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.timers[id]
		delete(c.timers, id)
		return ok
	}
}

// Advance moves the clock forward by d and runs, in deadline order and in the calling
// goroutine, every function that has come due (including ones scheduled meanwhile).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var due []int
		for id, t := range c.timers {
			if !t.at.After(c.now) {
				due = append(due, id)
			}
		}
		if len(due) == 0 {
			c.mu.Unlock()
			return
		}
		sort.Slice(due, func(i, j int) bool {
			a, b := c.timers[due[i]], c.timers[due[j]]
			if a.at.Equal(b.at) {
				return due[i] < due[j]
			}
			return a.at.Before(b.at)
		})
		t := c.timers[due[0]]
		delete(c.timers, due[0])
		c.mu.Unlock()
		t.f()
	}
}
