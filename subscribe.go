package chat

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"
)

// The shared outbound path. Every connection of every surface that shows a room live
// subscribes to it here. The room's hub (follow.go) is its one reader: it keeps the recent
// events in a ring, and one render goroutine turns each event into frames once per wire
// format (Format) and keeps them beside it. A Subscription then takes the frames its viewer
// may see, the same bytes as every other connection of its format, without a queue of its
// own: an idle subscription costs a few words. One that falls behind the ring reads the store
// and renders for itself, holding up nobody.

// Format is one wire format of the outbound path: how a surface renders events for its
// connections. A surface makes one Format (or a few, when frames differ per connection in a
// way it can name, such as a subscription id) and shares it between its connections: the
// engine renders each event once per Format.
type Format struct {
	// Render returns the frames of one event for this format, or none. It is called once per
	// event and Format, from the engine's goroutines (several at once, for different rooms),
	// and must not call the Engine: everything it needs is in rc.
	Render func(rc *RenderContext) []Frame
	// Presence, if set, renders the frame that tells a room's subscribers that user came
	// (online) or went; nil sends none. It is called once per change, as Render is.
	Presence func(room *Room, user *User, online bool) []byte
}

// Frame is what a Format renders: encoded bytes, shared (never changed) by every subscription
// they go to, with who may have them.
type Frame struct {
	// Data is the encoded frame.
	Data []byte
	// Pos is the position of the event it was rendered from; 0 for a presence frame.
	Pos uint64
	// Of, when not nil, is the event whose visibility decides who gets the frame (a receipt's
	// frames about the messages it covers); nil means the event it was rendered from.
	Of *Event
	// NotTo, when not zero, is a user the frame is not for (its own typing, echoed).
	NotTo ID
}

// RenderContext is everything a Format needs to render an event, gathered by the engine once
// per event so that rendering never queries it.
type RenderContext struct {
	// Event is the event to render.
	Event *Event
	// Room is the room, as read at most a few seconds before.
	Room *Room
	// Author is the user behind Event.User (the zero User for System).
	Author *User
	// AuthorMember is the membership record Event.From (the zero Member for System).
	AuthorMember *Member
	// Original is, for an edit or a delete, the message it revises.
	Original *Event
	// Covered is, for a receipt, the messages of the room it newly covers (positions Prev+1
	// to Ref), at most MaxCovered of the latest.
	Covered []Event
	// Recipient is, for an event addressed To one member, that member's record.
	Recipient *Member
}

// MaxCovered is the most messages a receipt's RenderContext.Covered holds.
const MaxCovered = 256

// SubscribeOptions say what a Subscription delivers.
type SubscribeOptions struct {
	// From is the position of the first event; 0 means the next event to be appended.
	From uint64
	// Viewer is the user the frames are for: an event is delivered only if
	// Event.VisibleToMember(the viewer's membership record) says so; System (the zero ID)
	// sees every event. The record is read again when the viewer's membership changes.
	Viewer ID
	// Format renders the events.
	Format *Format
	// Notify is called when Next may have something new after it last returned less than a
	// full batch. It is called from the engine's goroutines and must not block (start a
	// writer, signal a channel).
	Notify func()
	// Presence counts the viewer as present in the room while the Subscription is open:
	// the room's other subscribers get the Format's presence frame when it comes and goes.
	Presence bool
}

// Subscription delivers a room's events, rendered, to one connection. Next is called by one
// goroutine at a time.
type Subscription struct {
	e      *Engine
	h      *hub
	o      SubscribeOptions
	viewer Member // the viewer's record; refreshed when stale
	stale  bool   // the viewer's membership changed
	user   *User  // the viewer, for presence frames; nil without presence

	// guarded by h.mu
	next    uint64
	waiting bool    // Next found nothing more: notify on new frames
	side    []Frame // presence frames, in order
	closed  bool

	buf []Event // slow path
}

// subscribeBatch is the most events one Next goes through.
const subscribeBatch = 64

// Subscribe returns a Subscription of a room from position o.From (0: the next event). It
// returns ErrNotFound for an unknown room, ErrInvalid for a From beyond the next position or
// a missing Format.
func (e *Engine) Subscribe(ctx context.Context, roomID ID, o SubscribeOptions) (*Subscription, error) {
	if o.Format == nil || o.Format.Render == nil {
		return nil, invalid("format", "missing")
	}
	if e.closed() {
		return nil, fmt.Errorf("chat: engine: %w", ErrClosed)
	}
	h := e.hubs.acquire(roomID)
	var r Room
	var viewer Member
	err := e.store.View(ctx, func(tx ReadTx) (err error) {
		if r, err = tx.Room(roomID); err != nil {
			return err
		}
		if !o.Viewer.IsZero() {
			if viewer, err = tx.MemberByUser(roomID, o.Viewer); isNotFound(err) {
				viewer, err = Member{UserID: o.Viewer}, nil
			}
		}
		return err
	})
	if err == nil && o.From > r.LastPos+1 {
		err = invalidf("subscribe from position %d of room %s, whose next is %d", o.From, roomID, r.LastPos+1)
	}
	if err != nil {
		e.hubs.release(h)
		return nil, err
	}
	h.start(r.LastPos)
	if o.From == 0 {
		o.From = r.LastPos + 1
	}
	s := &Subscription{e: e, h: h, o: o, viewer: viewer}
	if o.Presence && o.Format.Presence != nil && !o.Viewer.IsZero() {
		if u, err := e.cachedUser(ctx, o.Viewer); err == nil {
			s.user = &u
		}
	}
	h.mu.Lock()
	s.next = o.From
	if h.subs == nil {
		h.subs, h.formats, h.present = make(map[*Subscription]struct{}), make(map[*Format]int), make(map[ID]int)
	}
	h.subs[s] = struct{}{}
	h.formats[o.Format]++
	if h.frames == nil {
		h.frames = make([]slotFrames, len(h.ring))
		h.rendered = h.low - 1 // the ring is rendered on demand from here
	}
	h.snap = &r
	h.roomRead.Store(time.Now().UnixNano())
	if o.Presence && !o.Viewer.IsZero() {
		if h.present[o.Viewer]++; h.present[o.Viewer] == 1 && s.user != nil {
			h.presenceLocked(&r, s.user, true, s)
		}
	}
	h.renderLocked()
	h.mu.Unlock()
	return s, nil
}

// Pos returns the position of the next event Next will go through.
func (s *Subscription) Pos() uint64 {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	return s.next
}

// Present returns the users present in the room (Presence subscriptions) in this process, at
// most max of them. Presence is per process: a user connected to another process sharing
// the store is not counted.
func (s *Subscription) Present(max int) []ID {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	var ids []ID
	for id := range s.h.present {
		if len(ids) == max {
			break
		}
		ids = append(ids, id)
	}
	return ids
}

// Next appends to dst the frames that are ready for the subscription, from the events it has
// not gone through yet (at most subscribeBatch of them), without waiting, and returns the
// extended slice. When it returns no new frame and no error, Notify is called once there are
// more. It returns ErrNotFound once the room is deleted, ErrClosed once the Subscription or
// the Engine is closed, or an error of the store when it had to read it (the subscription
// fell behind the room's ring) and could not: Next may be called again later.
func (s *Subscription) Next(ctx context.Context, dst []Frame) ([]Frame, error) {
	h, n0 := s.h, len(dst)
	if s.stale {
		s.refreshViewer(ctx)
	}
	h.mu.Lock()
	if s.closed {
		h.mu.Unlock()
		return dst, fmt.Errorf("chat: subscription: %w", ErrClosed)
	}
	dst = append(dst, s.side...)
	clear(s.side)
	s.side = s.side[:0]
	if h.err != nil {
		err := h.err
		h.mu.Unlock()
		return dst, err
	}
	if s.next < h.low && s.next <= h.high {
		upTo := h.low - 1 // the ring has the rest, rendered once for everyone
		h.mu.Unlock()
		return s.nextFromStore(ctx, dst, upTo)
	}
	n := uint64(len(h.ring))
	var missing []uint64 // ring positions not rendered for this format yet
	for i := 0; s.next <= h.rendered && i < subscribeBatch; i++ {
		p := s.next
		fr, ok := h.frames[p%n].get(s.o.Format)
		if !ok {
			missing = append(missing, p)
			break
		}
		ev := &h.ring[p%n]
		s.noteMembership(ev)
		for i := range fr {
			if s.sees(ev, &fr[i]) {
				dst = append(dst, fr[i])
			}
		}
		s.next++
	}
	if len(missing) == 0 && s.next > h.rendered {
		s.waiting = true
	}
	var ev Event
	if len(missing) > 0 {
		ev = h.ring[missing[0]%n]
	}
	h.mu.Unlock()
	if len(missing) > 0 {
		// A format that subscribed after the render goroutine went by: render here, once.
		fr := s.e.render(ctx, h, s.o.Format, &ev)
		h.mu.Lock()
		if p := missing[0]; p >= h.low && p <= h.high && h.ring[p%n].Pos == p {
			h.frames[p%n] = h.frames[p%n].with(s.o.Format, fr)
		}
		h.mu.Unlock()
		return s.Next(ctx, dst)
	}
	s.e.stats.delivered.Add(uint64(len(dst) - n0))
	return dst, nil
}

// nextFromStore is Next for a subscription behind the ring: it reads and renders a batch of
// events up to upTo itself.
func (s *Subscription) nextFromStore(ctx context.Context, dst []Frame, upTo uint64) ([]Frame, error) {
	var err error
	s.buf, err = s.e.readEvents(ctx, s.h.room, s.next, int(min(upTo-s.next+1, subscribeBatch)), s.buf[:0])
	if err == nil && (len(s.buf) == 0 || s.buf[0].Pos != s.next) {
		err = fmt.Errorf("chat: room %s: position %d missing from the store: %w", s.h.room, s.next, ErrNotFound)
	}
	if err != nil {
		return dst, err
	}
	s.e.stats.caughtUp.Add(1)
	n := len(dst)
	defer func() { s.e.stats.delivered.Add(uint64(len(dst) - n)) }()
	for i := range s.buf {
		ev := &s.buf[i]
		s.noteMembership(ev)
		if s.stale {
			s.refreshViewer(ctx)
		}
		for _, f := range s.e.render(ctx, s.h, s.o.Format, ev) {
			if s.sees(ev, &f) {
				dst = append(dst, f)
			}
		}
	}
	s.h.mu.Lock()
	s.next = s.buf[len(s.buf)-1].Pos + 1
	s.h.mu.Unlock()
	clear(s.buf)
	return dst, nil
}

// sees reports whether the viewer may have frame f of event ev.
func (s *Subscription) sees(ev *Event, f *Frame) bool {
	if !f.NotTo.IsZero() && f.NotTo == s.o.Viewer {
		return false
	}
	if s.o.Viewer.IsZero() {
		return true
	}
	of := ev
	if f.Of != nil {
		of = f.Of
	}
	return of.VisibleToMember(s.viewer)
}

// noteMembership marks the viewer's record stale when ev changes its membership.
func (s *Subscription) noteMembership(ev *Event) {
	if s.o.Viewer.IsZero() || ev.User != s.o.Viewer {
		return
	}
	switch ev.Type {
	case EventJoined, EventLeft, EventInvited:
		s.stale = true
	}
}

func (s *Subscription) refreshViewer(ctx context.Context) {
	m, err := s.e.MemberByUser(ctx, s.h.room, s.o.Viewer)
	if err == nil {
		s.viewer, s.stale = m, false
	} else if isNotFound(err) {
		s.viewer, s.stale = Member{UserID: s.o.Viewer}, false
	}
}

// Close ends the Subscription.
func (s *Subscription) Close() error {
	h := s.h
	h.mu.Lock()
	if s.closed {
		h.mu.Unlock()
		return nil
	}
	s.closed = true
	delete(h.subs, s)
	if h.formats[s.o.Format]--; h.formats[s.o.Format] <= 0 {
		delete(h.formats, s.o.Format)
	}
	if s.o.Presence && !s.o.Viewer.IsZero() {
		if h.present[s.o.Viewer]--; h.present[s.o.Viewer] <= 0 {
			delete(h.present, s.o.Viewer)
			if s.user != nil && h.snap != nil {
				h.presenceLocked(h.snap, s.user, false, nil)
			}
		}
	}
	h.mu.Unlock()
	s.e.hubs.release(h)
	return nil
}

// presenceLocked tells the hub's presence subscribers but skip that user came or went.
func (h *hub) presenceLocked(r *Room, u *User, online bool, skip *Subscription) {
	rendered := map[*Format][]byte{}
	var notify []func()
	for s := range h.subs {
		if s == skip || !s.o.Presence || s.o.Format.Presence == nil {
			continue
		}
		data, ok := rendered[s.o.Format]
		if !ok {
			data = s.o.Format.Presence(r, u, online)
			rendered[s.o.Format] = data
		}
		if data == nil {
			continue
		}
		if len(s.side) >= maxSide {
			h.e.stats.presenceDropped.Add(1) // best effort: a connection that does not read loses some
			continue
		}
		s.side = append(s.side, Frame{Data: data, NotTo: u.ID})
		if s.waiting && s.o.Notify != nil {
			s.waiting = false
			notify = append(notify, s.o.Notify)
		}
	}
	if len(notify) > 0 {
		go func() {
			for _, f := range notify {
				f()
			}
		}()
	}
}

// maxSide is the most presence frames a subscription keeps for its connection.
const maxSide = 64

// slotFrames are the frames of one ring slot, per format.
type slotFrames []formatFrames

type formatFrames struct {
	f      *Format
	frames []Frame
}

func (sf slotFrames) get(f *Format) ([]Frame, bool) {
	for i := range sf {
		if sf[i].f == f {
			return sf[i].frames, true
		}
	}
	return nil, false
}

func (sf slotFrames) with(f *Format, fr []Frame) slotFrames {
	if _, ok := sf.get(f); ok {
		return sf
	}
	return append(sf, formatFrames{f, fr})
}

// renderLocked makes sure a render goroutine brings rendered up to high. The caller holds
// h.mu.
func (h *hub) renderLocked() {
	if h.rendering || h.rendered >= h.high || len(h.formats) == 0 || h.err != nil {
		return
	}
	h.rendering = true
	h.e.bg.Add(1)
	go h.renderLoop()
}

// renderLoop renders the ring's new events for every format of the room's subscribers, then
// tells the subscribers that were waiting.
func (h *hub) renderLoop() {
	defer h.e.bg.Done()
	defer func() {
		if p := recover(); p != nil {
			h.e.log.Error("chat: panic rendering a room's events", "room", h.room, "panic", p, "stack", string(debug.Stack()))
			h.fail(fmt.Errorf("chat: room %s: rendering failed: %w", h.room, ErrUnavailable))
			h.mu.Lock()
			h.rendering = false
			h.mu.Unlock()
		}
	}()
	var evs []Event
	var formats []*Format
	for {
		h.mu.Lock()
		if h.err != nil || h.rendered >= h.high || len(h.formats) == 0 || h.e.closed() {
			h.rendering = false
			h.mu.Unlock()
			return
		}
		if h.rendered < h.low-1 {
			h.rendered = h.low - 1 // fell out of the ring unrendered: subscribers read the store
		}
		n := uint64(len(h.ring))
		evs = evs[:0]
		for p := h.rendered + 1; p <= h.high && len(evs) < subscribeBatch; p++ {
			evs = append(evs, h.ring[p%n])
		}
		formats = formats[:0]
		for f := range h.formats {
			formats = append(formats, f)
		}
		h.mu.Unlock()

		rendered := make([]slotFrames, len(evs))
		for i := range evs {
			for _, f := range formats {
				rendered[i] = append(rendered[i], formatFrames{f, h.e.render(h.e.ctx, h, f, &evs[i])})
			}
		}

		h.mu.Lock()
		n = uint64(len(h.ring))
		for i := range evs {
			p := evs[i].Pos
			if p >= h.low && p <= h.high && h.ring[p%n].Pos == p {
				h.frames[p%n] = rendered[i]
			}
			h.rendered = max(h.rendered, p)
		}
		var notify []func()
		for s := range h.subs {
			if s.waiting && s.next <= h.rendered {
				s.waiting = false
				if s.o.Notify != nil {
					notify = append(notify, s.o.Notify)
				}
			}
		}
		h.mu.Unlock()
		for _, f := range notify {
			f()
		}
	}
}

// render builds ev's RenderContext and renders it in format f.
func (e *Engine) render(ctx context.Context, h *hub, f *Format, ev *Event) []Frame {
	rc := e.renderContext(ctx, h, ev)
	frames := f.Render(rc)
	for i := range frames {
		if frames[i].Pos == 0 {
			frames[i].Pos = ev.Pos
		}
	}
	return frames
}

// renderContext gathers what renderers need about ev, from the hub's ring and the engine's
// caches first, the store when they do not have it. A lookup that fails leaves its field at
// its zero value (the renderer shows less) rather than holding the room up.
func (e *Engine) renderContext(ctx context.Context, h *hub, ev *Event) *RenderContext {
	rc := &RenderContext{Event: ev, Room: h.roomSnapshot(ctx), Author: &User{}, AuthorMember: &Member{}}
	if !ev.User.IsZero() {
		if u, err := e.cachedUser(ctx, ev.User); err == nil {
			rc.Author = &u
		}
	}
	needMember := !ev.From.IsZero()
	needTo := !ev.To.IsZero() && ev.Type != EventInvited
	needOrig := ev.Type == EventEdit || ev.Type == EventDelete
	needCovered := (ev.Type == EventDelivered || ev.Type == EventRead) && ev.Ref > ev.Prev
	if !needMember && !needTo && !needOrig && !needCovered {
		return rc
	}
	_ = e.store.View(ctx, func(tx ReadTx) error {
		if needMember {
			if m, err := tx.MemberByID(ev.RoomID, ev.From); err == nil {
				rc.AuthorMember = &m
			}
		}
		if needTo {
			if m, err := tx.MemberByID(ev.RoomID, ev.To); err == nil {
				rc.Recipient = &m
			}
		}
		if needOrig {
			if o, err := tx.Event(ev.RoomID, ev.Ref); err == nil {
				rc.Original = &o
			}
		}
		if needCovered {
			from := max(ev.Prev+1, ev.Ref-min(ev.Ref, 4*MaxCovered)+1)
			evs, err := tx.Events(ev.RoomID, from, int(ev.Ref-from+1), false, nil)
			if err == nil {
				for _, c := range evs {
					if c.Type == EventMessage {
						rc.Covered = append(rc.Covered, c)
					}
				}
				if len(rc.Covered) > MaxCovered {
					rc.Covered = rc.Covered[len(rc.Covered)-MaxCovered:]
				}
			}
		}
		return nil
	})
	return rc
}

// roomSnapshot returns the room as last read, reading it again when it may have changed.
func (h *hub) roomSnapshot(ctx context.Context) *Room {
	h.mu.Lock()
	r := h.snap
	fresh := r != nil && time.Since(h.roomAt()) < roomSnapshotTTL
	h.mu.Unlock()
	if fresh {
		return r
	}
	var nr Room
	if err := h.e.store.View(ctx, func(tx ReadTx) (err error) { nr, err = tx.Room(h.room); return err }); err != nil {
		if r != nil {
			return r
		}
		return &Room{ID: h.room}
	}
	h.mu.Lock()
	h.snap = &nr
	h.roomRead.Store(time.Now().UnixNano())
	h.mu.Unlock()
	return &nr
}

// roomSnapshotTTL bounds how stale a RenderContext's Room may be when another process changed
// it; this process's changes refresh it at once.
const roomSnapshotTTL = 2 * time.Second

func (h *hub) roomAt() time.Time { return time.Unix(0, h.roomRead.Load()) }

// roomChanged drops the snapshot of a room this process changed.
func (hs *hubs) roomChanged(room ID) {
	if h := hs.get(room); h != nil {
		h.mu.Lock()
		h.snap = nil
		h.mu.Unlock()
	}
}

// userCache keeps users for RenderContext: rendering an event needs its author, and a room's
// events come from few authors. Entries expire after userCacheTTL (another process may have
// changed the user); this process's changes drop them at once.
type userCache struct {
	mu sync.Mutex
	m  map[ID]cachedUser
}

type cachedUser struct {
	u  User
	at time.Time
}

const (
	userCacheTTL = 5 * time.Second
	userCacheMax = 1 << 14
)

// cachedUser returns a user from the cache or the store.
func (e *Engine) cachedUser(ctx context.Context, id ID) (User, error) {
	if u, ok := e.users.peek(id); ok {
		return u, nil
	}
	u, err := e.User(ctx, id)
	if err == nil {
		e.users.put(u)
	}
	return u, err
}

func (c *userCache) peek(id ID) (User, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cu, ok := c.m[id]
	if !ok || time.Since(cu.at) > userCacheTTL {
		return User{}, false
	}
	return cu.u, true
}

func (c *userCache) put(u User) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= userCacheMax {
		c.m = make(map[ID]cachedUser)
	}
	c.m[u.ID] = cachedUser{u, time.Now()}
}

func (c *userCache) drop(id ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, id)
}
