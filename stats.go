package chat

import "sync/atomic"

// Stats is what an Engine has done and holds, for metrics.
type Stats struct {
	// Appended counts the events this engine committed.
	Appended uint64
	// Delivered counts the frames subscriptions took (Subscription.Next).
	Delivered uint64
	// CaughtUp counts the batches subscriptions behind their room's ring read from the store.
	CaughtUp uint64
	// PresenceDropped counts presence frames dropped for a subscription that did not read.
	PresenceDropped uint64
	// Rooms is how many rooms have followers or subscriptions in this process.
	Rooms int
	// Subscriptions is how many subscriptions are open.
	Subscriptions int
	// Feeds is how many Feeds are open.
	Feeds int
	// Lag is the largest number of committed events a subscription has not gone through yet.
	Lag uint64
}

// stats are the Engine's counters.
type stats struct {
	appended, delivered, caughtUp, presenceDropped atomic.Uint64
}

// Stats returns the engine's counters and what it holds now. It is cheap enough to call on
// every metrics scrape: it walks the followed rooms once.
func (e *Engine) Stats() Stats {
	s := Stats{
		Appended: e.stats.appended.Load(), Delivered: e.stats.delivered.Load(),
		CaughtUp: e.stats.caughtUp.Load(), PresenceDropped: e.stats.presenceDropped.Load(),
		Feeds: int(e.feeds.n.Load()),
	}
	e.hubs.mu.RLock()
	hs := make([]*hub, 0, len(e.hubs.m))
	for _, h := range e.hubs.m {
		hs = append(hs, h)
	}
	e.hubs.mu.RUnlock()
	s.Rooms = len(hs)
	for _, h := range hs {
		h.mu.Lock()
		s.Subscriptions += len(h.subs)
		for sub := range h.subs {
			if h.known >= sub.next {
				s.Lag = max(s.Lag, h.known-sub.next+1)
			}
		}
		h.mu.Unlock()
	}
	return s
}
