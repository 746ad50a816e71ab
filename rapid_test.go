package chat_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"pgregory.net/rapid"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/fakeclock"
	"github.com/parley-chat/chat/internal/testkit"
)

// The model: what the engine should hold, in the simplest terms.
type modelEvent struct {
	Type chat.EventType
	User chat.ID
	Ref  uint64
	Text string
}

type modelMember struct {
	state           chat.MemberState
	record          int // how many records this user has had in the room
	joinNumber      uint64
	delivered, read uint64
}

type modelRoom struct {
	id       chat.ID
	private  bool
	ended    bool
	joins    uint64
	events   []modelEvent
	members  map[chat.ID]*modelMember
	deleted  map[uint64]bool // message positions deleted
	follower *liveFollower
}

// typist is the model of a member's typing: its indicator's expiry as stored, the preview
// shown (its last typing event, at shownAt) and a preview held back until a second after it.
type typist struct {
	until   time.Time
	text    string
	shownAt time.Time
	pending string
	held    bool
}

// liveFollower follows a room from position 1 in its own goroutine, as a slow reader would.
type liveFollower struct {
	mu     sync.Mutex
	events []chat.Event
	err    error
	cancel context.CancelFunc
	done   chan struct{}
}

func startFollower(e *chat.Engine, room chat.ID) (*liveFollower, error) {
	f, err := e.Follow(context.Background(), room, 1)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	lf := &liveFollower{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(lf.done)
		defer f.Close()
		for {
			ev, err := f.Next(ctx)
			lf.mu.Lock()
			if err != nil {
				lf.err = err
				lf.mu.Unlock()
				return
			}
			lf.events = append(lf.events, ev)
			lf.mu.Unlock()
		}
	}()
	return lf, nil
}

func (lf *liveFollower) stop() { lf.cancel(); <-lf.done }

// waitFor waits until the follower has n events (or failed).
func (lf *liveFollower) waitFor(n int) ([]chat.Event, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		lf.mu.Lock()
		evs, err := slices.Clone(lf.events), lf.err
		lf.mu.Unlock()
		if len(evs) >= n || err != nil || time.Now().After(deadline) {
			return evs, err
		}
		time.Sleep(time.Millisecond)
	}
}

type engineMachine struct {
	t       *rapid.T
	e       *chat.Engine
	store   chat.Store
	clock   *fakeclock.Clock
	ttl     time.Duration
	users   []chat.ID
	rooms   []*modelRoom
	typing  map[[2]chat.ID]typist // room, user
	maxText int
}

func newEngineMachine(t *rapid.T, newStore func() chat.Store) *engineMachine {
	m := &engineMachine{t: t, clock: fakeclock.New(epoch), ttl: 5 * time.Second,
		typing: map[[2]chat.ID]typist{}, maxText: 16}
	m.store = newStore()
	var err error
	m.e, err = chat.Open(context.Background(), m.store, chat.WithClock(m.clock),
		chat.WithTypingTTL(m.ttl), chat.WithMaxMessageBytes(m.maxText), chat.WithFollowBuffer(4))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *engineMachine) cleanup() {
	for _, r := range m.rooms {
		if r.follower != nil {
			r.follower.stop()
		}
	}
	m.e.Close()
	m.store.Close()
}

func (m *engineMachine) pickUser(t *rapid.T) chat.ID {
	if len(m.users) == 0 || rapid.IntRange(0, 20).Draw(t, "ghostUser") == 0 {
		return chat.ID{0xee}
	}
	return rapid.SampledFrom(m.users).Draw(t, "user")
}

func (m *engineMachine) pickRoom(t *rapid.T) *modelRoom {
	if len(m.rooms) == 0 || rapid.IntRange(0, 20).Draw(t, "ghostRoom") == 0 {
		return &modelRoom{id: chat.ID{0xdd}, members: map[chat.ID]*modelMember{}}
	}
	return rapid.SampledFrom(m.rooms).Draw(t, "room")
}

func (m *engineMachine) exists(r *modelRoom) bool { return slices.Contains(m.rooms, r) }

func (m *engineMachine) check(err, want error, op string) {
	if want == nil && err != nil {
		m.t.Fatalf("%s: unexpected error %v", op, err)
	}
	if want != nil && !errors.Is(err, want) {
		m.t.Fatalf("%s: error %v, want %v", op, err, want)
	}
}

func (m *engineMachine) state(r *modelRoom, u chat.ID) chat.MemberState {
	if mm := r.members[u]; mm != nil {
		return mm.state
	}
	return 0
}

func (m *engineMachine) appendEvent(r *modelRoom, ev modelEvent) { r.events = append(r.events, ev) }

// tick moves the clock a little before each action.
func (m *engineMachine) tick() { m.advance(time.Millisecond) }

// advance moves the clock by d: typing indicators whose TTL passed end with
// EventTypingStopped, and previews held back show once their second is up, in the order of
// their times (ties in timer kind, room and member order). As on the fake clock, each acts
// with the time the clock moved to.
func (m *engineMachine) advance(d time.Duration) {
	end := m.clock.Now().Add(d)
	type due struct {
		at     time.Time
		kind   chat.TimerKind
		room   chat.ID
		member chat.ID // the membership record for an expiry, the user for a flush
		k      [2]chat.ID
	}
	var dues []due
	for k, ty := range m.typing {
		if !ty.until.After(end) {
			mem, err := m.e.MemberByUser(context.Background(), k[0], k[1])
			if err != nil {
				m.t.Fatal(err)
			}
			dues = append(dues, due{ty.until, chat.TimerTyping, k[0], mem.ID, k})
		}
		if at := ty.shownAt.Add(chat.TypingEvery); ty.held && !at.After(end) {
			dues = append(dues, due{at, "typing-flush", k[0], k[1], k})
		}
	}
	slices.SortFunc(dues, func(a, b due) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		if a.kind != b.kind {
			return strings.Compare(string(a.kind), string(b.kind))
		}
		if c := compareIDs(a.room, b.room); c != 0 {
			return c
		}
		return compareIDs(a.member, b.member)
	})
	for _, d := range dues {
		ty, ok := m.typing[d.k]
		if !ok {
			continue
		}
		r := m.roomByID(d.k[0])
		if d.kind == chat.TimerTyping {
			delete(m.typing, d.k)
			m.appendEvent(r, modelEvent{Type: chat.EventTypingStopped, User: d.k[1]})
			continue
		}
		// A held preview shows if the member still types when the clock has moved.
		ty.held = false
		switch {
		case !ty.until.After(end):
		case ty.pending == ty.text:
			if ty.until.Sub(end) < m.ttl/2 {
				ty.until = end.Add(m.ttl)
			}
		default:
			m.appendEvent(r, modelEvent{Type: chat.EventTypingStarted, User: d.k[1], Text: ty.pending})
			ty = typist{until: end.Add(m.ttl), text: ty.pending, shownAt: end}
		}
		m.typing[d.k] = ty
	}
	m.clock.Advance(d)
}

func (m *engineMachine) roomByID(id chat.ID) *modelRoom {
	for _, r := range m.rooms {
		if r.id == id {
			return r
		}
	}
	m.t.Fatalf("no room %s in the model", id)
	return nil
}

func (m *engineMachine) CreateUser(t *rapid.T) {
	m.tick()
	u, err := m.e.CreateUser(context.Background(), chat.NewUser{})
	m.check(err, nil, "CreateUser")
	m.users = append(m.users, u.ID)
}

func (m *engineMachine) CreateRoom(t *rapid.T) {
	m.tick()
	private := rapid.Bool().Draw(t, "private")
	r, err := m.e.CreateRoom(context.Background(), chat.NewRoom{Private: private})
	m.check(err, nil, "CreateRoom")
	mr := &modelRoom{id: r.ID, private: private, members: map[chat.ID]*modelMember{}, deleted: map[uint64]bool{}}
	if rapid.Bool().Draw(t, "follow") {
		mr.follower, err = startFollower(m.e, r.ID)
		m.check(err, nil, "Follow")
	}
	m.rooms = append(m.rooms, mr)
}

func (m *engineMachine) Invite(t *rapid.T) {
	m.tick()
	r, u := m.pickRoom(t), m.pickUser(t)
	_, err := m.e.Invite(context.Background(), r.id, u, chat.InviteOptions{})
	var want error
	switch st := m.state(r, u); {
	case !m.exists(r):
		want = chat.ErrNotFound
	case r.ended:
		want = chat.ErrEnded
	case !slices.Contains(m.users, u):
		want = chat.ErrNotFound
	case st == chat.Invited || st == chat.Joined:
		want = chat.ErrConflict
	}
	m.check(err, want, "Invite")
	if want == nil {
		old := r.members[u]
		r.members[u] = &modelMember{state: chat.Invited, record: recordOf(old) + 1}
		m.appendEvent(r, modelEvent{Type: chat.EventInvited})
	}
}

func recordOf(mm *modelMember) int {
	if mm == nil {
		return 0
	}
	return mm.record
}

func (m *engineMachine) Join(t *rapid.T) {
	m.tick()
	r, u := m.pickRoom(t), m.pickUser(t)
	_, err := m.e.Join(context.Background(), r.id, u, chat.JoinOptions{})
	var want error
	st := m.state(r, u)
	switch {
	case !m.exists(r):
		want = chat.ErrNotFound
	case r.ended:
		want = chat.ErrEnded
	case !slices.Contains(m.users, u):
		want = chat.ErrNotFound
	case st == chat.Joined:
		want = chat.ErrConflict
	case st != chat.Invited && r.private:
		want = chat.ErrForbidden
	}
	m.check(err, want, "Join")
	if want == nil {
		r.joins++
		mm := r.members[u]
		if st != chat.Invited {
			mm = &modelMember{record: recordOf(mm) + 1}
			r.members[u] = mm
		}
		mm.state, mm.joinNumber = chat.Joined, r.joins
		m.appendEvent(r, modelEvent{Type: chat.EventJoined, User: u})
	}
}

func (m *engineMachine) Leave(t *rapid.T) {
	m.tick()
	r, u := m.pickRoom(t), m.pickUser(t)
	_, err := m.e.Leave(context.Background(), r.id, u)
	var want error
	switch st := m.state(r, u); {
	case !m.exists(r):
		want = chat.ErrNotFound
	case st != chat.Invited && st != chat.Joined:
		want = chat.ErrNotMember
	}
	m.check(err, want, "Leave")
	if want == nil {
		r.members[u].state = chat.Left
		delete(m.typing, [2]chat.ID{r.id, u})
		m.appendEvent(r, modelEvent{Type: chat.EventLeft, User: u})
	}
}

func (m *engineMachine) drawText(t *rapid.T) (string, bool) {
	switch rapid.IntRange(0, 9).Draw(t, "textKind") {
	case 0:
		return "", false
	case 1:
		return "bad\xff", false
	case 2:
		return longText(m.maxText + 1), false
	}
	return rapid.StringMatching(`[a-z ]{1,16}`).Draw(t, "text"), true
}

func (m *engineMachine) Send(t *rapid.T) {
	m.tick()
	r, u := m.pickRoom(t), m.pickUser(t)
	text, valid := m.drawText(t)
	_, err := m.e.Send(context.Background(), r.id, u, chat.NewMessage{Text: text})
	var want error
	switch {
	case !valid:
		want = chat.ErrInvalid
	case !m.exists(r):
		want = chat.ErrNotFound
	case r.ended:
		want = chat.ErrEnded
	case m.state(r, u) != chat.Joined:
		want = chat.ErrNotMember
	}
	m.check(err, want, "Send")
	if want == nil {
		delete(m.typing, [2]chat.ID{r.id, u})
		m.appendEvent(r, modelEvent{Type: chat.EventMessage, User: u, Text: text})
	}
}

// revise edits or deletes a message at a drawn position.
func (m *engineMachine) revise(t *rapid.T, del bool) {
	m.tick()
	r, u := m.pickRoom(t), m.pickUser(t)
	pos := uint64(rapid.IntRange(0, len(r.events)+1).Draw(t, "pos"))
	var err error
	var text string
	if del {
		_, err = m.e.Delete(context.Background(), r.id, u, pos)
	} else {
		text = rapid.StringMatching(`[a-z]{1,8}`).Draw(t, "newText")
		_, err = m.e.Edit(context.Background(), r.id, u, pos, chat.NewMessage{Text: text})
	}
	var want error
	switch {
	case !m.exists(r):
		want = chat.ErrNotFound
	case r.ended:
		want = chat.ErrEnded
	case pos == 0 || pos > uint64(len(r.events)) || r.events[pos-1].Type != chat.EventMessage:
		want = chat.ErrNotFound
	case m.state(r, u) != chat.Joined:
		want = chat.ErrNotMember
	case r.events[pos-1].User != u:
		want = chat.ErrForbidden
	case r.deleted[pos]:
		want = chat.ErrConflict
	}
	m.check(err, want, fmt.Sprintf("revise(delete=%v)", del))
	if want == nil {
		typ := chat.EventEdit
		if del {
			typ, r.deleted[pos] = chat.EventDelete, true
		}
		m.appendEvent(r, modelEvent{Type: typ, User: u, Ref: pos, Text: text})
	}
}

func (m *engineMachine) Edit(t *rapid.T)   { m.revise(t, false) }
func (m *engineMachine) Delete(t *rapid.T) { m.revise(t, true) }

func (m *engineMachine) Mark(t *rapid.T) {
	m.tick()
	r, u := m.pickRoom(t), m.pickUser(t)
	read := rapid.Bool().Draw(t, "read")
	pos := uint64(rapid.IntRange(0, len(r.events)+1).Draw(t, "pos"))
	var err error
	if read {
		_, err = m.e.MarkRead(context.Background(), r.id, u, pos)
	} else {
		_, err = m.e.MarkDelivered(context.Background(), r.id, u, pos)
	}
	var want error
	switch {
	case !m.exists(r):
		want = chat.ErrNotFound
	case m.state(r, u) != chat.Joined:
		want = chat.ErrNotMember
	case pos == 0 || pos > uint64(len(r.events)):
		want = chat.ErrInvalid
	}
	m.check(err, want, "Mark")
	if want != nil {
		return
	}
	mm := r.members[u]
	if read && pos > mm.read {
		mm.read, mm.delivered = pos, max(mm.delivered, pos)
		m.appendEvent(r, modelEvent{Type: chat.EventRead, User: u, Ref: pos})
	} else if !read && pos > mm.delivered {
		mm.delivered = pos
		m.appendEvent(r, modelEvent{Type: chat.EventDelivered, User: u, Ref: pos})
	}
}

func (m *engineMachine) StartTyping(t *rapid.T) {
	m.tick()
	r, u := m.pickRoom(t), m.pickUser(t)
	text := rapid.SampledFrom([]string{"", "h", "he"}).Draw(t, "preview")
	_, err := m.e.StartTyping(context.Background(), r.id, u, text)
	var want error
	switch {
	case !m.exists(r):
		want = chat.ErrNotFound
	case r.ended:
		want = chat.ErrEnded
	case m.state(r, u) != chat.Joined:
		want = chat.ErrNotMember
	}
	m.check(err, want, "StartTyping")
	if want == nil {
		now := m.clock.Now()
		k := [2]chat.ID{r.id, u}
		cur, ok := m.typing[k]
		if ok && cur.until.After(now) && (cur.text == text || now.Sub(cur.shownAt) < chat.TypingEvery) {
			// A renewal, or a new preview within the second: held back, the latest winning.
			if cur.until.Sub(now) < m.ttl/2 {
				cur.until = now.Add(m.ttl)
			}
			cur.held = cur.text != text
			cur.pending = text
			m.typing[k] = cur
			return
		}
		m.appendEvent(r, modelEvent{Type: chat.EventTypingStarted, User: u, Text: text})
		m.typing[k] = typist{until: now.Add(m.ttl), text: text, shownAt: now}
	}
}

func (m *engineMachine) StopTyping(t *rapid.T) {
	m.tick()
	r, u := m.pickRoom(t), m.pickUser(t)
	_, err := m.e.StopTyping(context.Background(), r.id, u)
	var want error
	switch {
	case !m.exists(r):
		want = chat.ErrNotFound
	case m.state(r, u) != chat.Joined:
		want = chat.ErrNotMember
	}
	m.check(err, want, "StopTyping")
	k := [2]chat.ID{r.id, u}
	if _, ok := m.typing[k]; ok && want == nil {
		delete(m.typing, k)
		m.appendEvent(r, modelEvent{Type: chat.EventTypingStopped, User: u})
	}
}

// Advance moves the clock by up to 8 s (see advance).
func (m *engineMachine) Advance(t *rapid.T) {
	m.advance(time.Duration(rapid.IntRange(1, 8000).Draw(t, "ms")) * time.Millisecond)
}

func (m *engineMachine) EndRoom(t *rapid.T) {
	m.tick()
	r := m.pickRoom(t)
	_, err := m.e.EndRoom(context.Background(), r.id)
	var want error
	switch {
	case !m.exists(r):
		want = chat.ErrNotFound
	case r.ended:
		want = chat.ErrEnded
	}
	m.check(err, want, "EndRoom")
	if want == nil {
		r.ended = true
		for k := range m.typing {
			if k[0] == r.id {
				delete(m.typing, k)
			}
		}
		m.appendEvent(r, modelEvent{Type: chat.EventEnded})
	}
}

func (m *engineMachine) DeleteRoom(t *rapid.T) {
	m.tick()
	r := m.pickRoom(t)
	err := m.e.DeleteRoom(context.Background(), r.id)
	var want error
	if !m.exists(r) {
		want = chat.ErrNotFound
	}
	m.check(err, want, "DeleteRoom")
	if want == nil {
		if r.follower != nil {
			m.checkFollower(r)
			_, ferr := r.follower.waitFor(len(r.events) + 1)
			if !errors.Is(ferr, chat.ErrNotFound) {
				m.t.Fatalf("follower of a deleted room: %v", ferr)
			}
			r.follower.stop()
		}
		m.rooms = slices.DeleteFunc(m.rooms, func(x *modelRoom) bool { return x == r })
		for k := range m.typing {
			if k[0] == r.id {
				delete(m.typing, k)
			}
		}
	}
}

func (m *engineMachine) checkFollower(r *modelRoom) {
	evs, err := r.follower.waitFor(len(r.events))
	if err != nil && len(evs) < len(r.events) {
		m.t.Fatalf("follower of room %s: %v after %d events", r.id, err, len(evs))
	}
	if len(evs) != len(r.events) {
		m.t.Fatalf("follower has %d events, model %d", len(evs), len(r.events))
	}
	for i, ev := range evs {
		if ev.Pos != uint64(i+1) {
			m.t.Fatalf("follower's event %d has position %d: gap or duplicate", i, ev.Pos)
		}
	}
	m.compareEvents(r, evs, "follower")
}

func (m *engineMachine) compareEvents(r *modelRoom, evs []chat.Event, who string) {
	got := make([]modelEvent, len(evs))
	for i, ev := range evs {
		got[i] = modelEvent{Type: ev.Type, User: ev.User, Ref: ev.Ref, Text: ev.Text}
		if ev.Type == chat.EventInvited {
			got[i].User = chat.ID{}
		}
	}
	if diff := cmp.Diff(r.events, got, cmpopts.EquateEmpty()); diff != "" {
		m.t.Fatalf("%s: transcript of room %s (-model +engine):\n%s", who, r.id, diff)
	}
}

// Check verifies the invariants of DESIGN.md against the model after every step.
func (m *engineMachine) Check(t *rapid.T) {
	for _, r := range m.rooms {
		room, err := m.e.Room(context.Background(), r.id)
		m.check(err, nil, "Room")
		if room.LastPos != uint64(len(r.events)) || room.Ended() != r.ended || room.Joins != r.joins {
			t.Fatalf("room %+v, model has %d events, ended %v, joins %d", room, len(r.events), r.ended, r.joins)
		}
		var evs []chat.Event
		for from := uint64(1); from <= room.LastPos; from += 7 { // read in pages
			page, err := m.e.Read(context.Background(), r.id, chat.ReadOptions{From: from, Limit: 7})
			m.check(err, nil, "Read")
			evs = append(evs, page...)
		}
		for i, ev := range evs { // invariant 1: gapless from 1
			if ev.Pos != uint64(i+1) || ev.RoomID != r.id {
				t.Fatalf("event %d at position %d of room %s", i, ev.Pos, ev.RoomID)
			}
			if i > 0 && !ev.Time.After(evs[i-1].Time) {
				t.Fatalf("time does not increase at %d", ev.Pos)
			}
		}
		m.compareEvents(r, evs, "store")
		if len(evs) > 0 { // backwards reads mirror forwards ones
			back, err := m.e.Read(context.Background(), r.id, chat.ReadOptions{From: 0, Limit: 5, Backward: true})
			m.check(err, nil, "Read backwards")
			for i, ev := range back {
				if ev.Pos != uint64(len(evs)-i) {
					t.Fatalf("backward read %d has position %d", i, ev.Pos)
				}
			}
		}
		members, err := m.e.Members(context.Background(), r.id)
		m.check(err, nil, "Members")
		records := 0
		for u, mm := range r.members {
			records += mm.record
			got, err := m.e.MemberByUser(context.Background(), r.id, u)
			m.check(err, nil, "Member")
			// invariant 3 (receipts) and 4 (the state machine) through the model
			if got.State != mm.state || got.Delivered != mm.delivered || got.Read != mm.read || got.JoinNumber != mm.joinNumber {
				t.Fatalf("member %+v, model %+v", got, *mm)
			}
			if got.Read > got.Delivered || got.Delivered > room.LastPos {
				t.Fatalf("watermarks out of order: %+v", got)
			}
		}
		if len(members) != records {
			t.Fatalf("room has %d member records, model %d", len(members), records)
		}
		for _, mem := range members { // Member.Pos names the event of the record's last change
			if mem.Pos == 0 || mem.Pos > uint64(len(evs)) {
				t.Fatalf("member %s has Pos %d of %d", mem.ID, mem.Pos, len(evs))
			}
			if ev := evs[mem.Pos-1]; ev.From != mem.ID && ev.To != mem.ID {
				t.Fatalf("member %s has Pos %d, whose event %+v is another's", mem.ID, mem.Pos, ev)
			}
		}
		if r.follower != nil { // invariant 2
			m.checkFollower(r)
		}
		// invariant 5: who is typing matches the model
		var want []chat.ID
		for k := range m.typing {
			if k[0] == r.id {
				want = append(want, k[1])
			}
		}
		var got []chat.ID
		typists, err := m.e.Typing(ctx, r.id)
		if err != nil {
			t.Fatal(err)
		}
		for _, ty := range typists {
			got = append(got, ty.User)
		}
		slices.SortFunc(want, compareIDs)
		slices.SortFunc(got, compareIDs)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("typing in room %s (-model +engine):\n%s", r.id, diff)
		}
	}
}

func compareIDs(a, b chat.ID) int { return slices.Compare(a[:], b[:]) }

func TestEngineStateMachine(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		if strings.HasSuffix(t.Name(), "/postgres") {
			testkit.RapidChecks(t, 30) // each check makes a database (about 0.3 s)
		}
		rapid.Check(t, func(rt *rapid.T) {
			m := newEngineMachine(rt, func() chat.Store { return newStore(t) })
			defer m.cleanup()
			rt.Repeat(rapid.StateMachineActions(m))
		})
	})
}
