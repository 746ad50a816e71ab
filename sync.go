package chat

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"
)

// busSync keeps an Engine in step with the other processes that share its Store. One
// goroutine asks the Bus for changes when the Bus wakes it, when this process commits, and
// every syncEvery in any case (so that a lost wake-up only delays), and then:
//   - tells the hubs of followed rooms how far their rooms have got, and each hub's one reader
//     fetches what it lacks from the store (a follower never reads for another process's
//     events on its own);
//   - reads the events of every change once and hands them to the Feeds, each room's in
//     position order (the Bus's changes are complete and in commit order per room, so Feeds
//     on a shared store take every event from here, this process's too);
//   - ends the followers of deleted rooms.
//
// Every repairEvery it also compares the followed rooms' last positions with the store's, in
// case the Bus lost something (a cursor that fell behind its retention).
type busSync struct {
	e      *Engine
	bus    Bus
	cursor []byte
	poked  chan struct{}
	done   chan struct{}
}

// How often the Engine asks a Bus for changes without being woken, and compares followed
// rooms with the store.
const (
	syncEvery   = time.Second
	repairEvery = 10 * time.Second
)

func startBusSync(ctx context.Context, e *Engine, bus Bus) (*busSync, error) {
	_, cursor, err := bus.Changes(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("chat: starting the bus: %w", err)
	}
	b := &busSync{e: e, bus: bus, cursor: cursor, poked: make(chan struct{}, 1), done: make(chan struct{})}
	go b.run()
	return b, nil
}

// poke asks for a look at the Bus soon: this process has committed.
func (b *busSync) poke() {
	select {
	case b.poked <- struct{}{}:
	default:
	}
}

// wait returns once the goroutine has stopped, after the Engine's context ends.
func (b *busSync) wait() { <-b.done }

func (b *busSync) run() {
	defer close(b.done)
	tick := time.NewTicker(syncEvery)
	defer tick.Stop()
	wake := b.bus.Wake()
	lastRepair := time.Now()
	for {
		select {
		case <-b.e.ctx.Done():
			return
		case <-wake:
		case <-b.poked:
		case <-tick.C:
		}
		b.step()
		if time.Since(lastRepair) >= repairEvery {
			lastRepair = time.Now()
			b.repair()
		}
	}
}

// step takes the changes since the cursor and applies them. A panic is logged and contained:
// the next step tries again.
func (b *busSync) step() {
	defer func() {
		if p := recover(); p != nil {
			b.e.log.Error("chat: panic in the bus sync", "panic", p, "stack", string(debug.Stack()))
		}
	}()
	changes, cursor, err := b.bus.Changes(b.e.ctx, b.cursor)
	switch {
	case errors.Is(err, ErrLagged):
		b.e.log.Warn("chat: the bus lost track of changes; comparing followed rooms with the store", "err", err)
		if _, fresh, err := b.bus.Changes(b.e.ctx, nil); err == nil {
			b.cursor = fresh
		}
		b.e.feeds.lagged()
		b.repair()
		return
	case err != nil:
		if !b.e.closed() {
			b.e.log.Warn("chat: reading the bus", "err", err)
		}
		return
	}
	b.cursor = cursor
	b.apply(changes)
}

func (b *busSync) apply(changes []Change) {
	feeds := b.e.feeds.n.Load() > 0
	var buf []Event
	for _, c := range changes {
		if c.Deleted {
			b.e.hubs.deleted(c.Room)
			continue
		}
		if h := b.e.hubs.get(c.Room); h != nil {
			h.advance(c.To)
		}
		if !feeds {
			continue
		}
		for from := c.From; from <= c.To; {
			var err error
			buf, err = b.e.readEvents(b.e.ctx, c.Room, from, int(min(c.To-from+1, followBatch)), buf[:0])
			if isNotFound(err) {
				break // deleted since: a later change says so
			}
			if err != nil || len(buf) == 0 || buf[0].Pos != from {
				if !b.e.closed() {
					b.e.log.Warn("chat: reading a room for the feeds", "room", c.Room, "err", err)
				}
				b.e.feeds.lagged() // consumers repair from the store, as after any loss
				break
			}
			b.e.feeds.publish(buf)
			from = buf[len(buf)-1].Pos + 1
			clear(buf)
		}
	}
}

// repair compares each followed room's last position with the store's and tells the hubs.
func (b *busSync) repair() {
	rooms := b.e.hubs.rooms()
	if len(rooms) == 0 {
		return
	}
	last := make([]uint64, len(rooms))
	gone := make([]bool, len(rooms))
	err := b.e.store.View(b.e.ctx, func(tx ReadTx) error {
		for i, id := range rooms {
			r, err := tx.Room(id)
			if isNotFound(err) {
				gone[i] = true
				continue
			}
			if err != nil {
				return err
			}
			last[i] = r.LastPos
		}
		return nil
	})
	if err != nil {
		if !b.e.closed() {
			b.e.log.Warn("chat: comparing followed rooms with the store", "err", err)
		}
		return
	}
	for i, id := range rooms {
		if gone[i] {
			b.e.hubs.deleted(id)
		} else if h := b.e.hubs.get(id); h != nil {
			h.advance(last[i])
		}
	}
}
