package storagetest

import (
	"context"
	"errors"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/storage/memory"
	"pgregory.net/rapid"
)

// fakeClock is a chat.Clock whose time advances a fixed step at each reading, so that two
// engines making the same calls see the same times. Its timers never fire.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(137 * time.Microsecond)
	return c.t
}

func (c *fakeClock) AfterFunc(time.Duration, func()) func() bool { return func() bool { return true } }

// pair is one entity as the memory engine and the bolt engine know it.
type pair [2]chat.ID

var sentinels = []error{chat.ErrNotFound, chat.ErrConflict, chat.ErrForbidden, chat.ErrNotMember,
	chat.ErrInvalid, chat.ErrEnded, chat.ErrClosed}

// errClass is the sentinel an error wraps, "" for nil, or its text.
func errClass(err error) string {
	if err == nil {
		return ""
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	return "other: " + err.Error()
}

// eventShape is what two engines' events must share (IDs are random per engine).
type eventShape struct {
	Pos        uint64
	Type       chat.EventType
	Name, Text string
	Body       string
	Ref        uint64
	Visibility chat.Role
	Time       time.Time
	HasFrom    bool
	HasTo      bool
}

func shapes(evs []chat.Event) []eventShape {
	var out []eventShape
	for _, ev := range evs {
		out = append(out, eventShape{ev.Pos, ev.Type, ev.Name, ev.Text, string(ev.Body), ev.Ref, ev.Visibility,
			ev.Time, !ev.From.IsZero(), !ev.To.IsZero()})
	}
	return out
}

// spread maps a drawn number (rapid favours small ones) to 0..n-1 evenly.
func spread(v uint32, n int) int { return int(uint64(v*2654435761) % uint64(n)) }

// Equivalence drives an engine on a memory store and an engine on a store made by newStore
// through the same random operations (rapid), and checks that they answer alike and end up
// holding the same data: DESIGN.md's invariant 8, for any Store. newStore must return a new,
// empty Store each time; Equivalence closes it.
func Equivalence(t *testing.T, newStore func(t *testing.T) chat.Store) {
	var statMu sync.Mutex
	ok, tried := map[string]int{}, map[string]int{}
	defer func() { t.Logf("operations that succeeded/tried: %v / %v", ok, tried) }()
	rapid.Check(t, func(rt *rapid.T) {
		ctx := context.Background()
		start := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
		mem := memory.New()
		bs := newStore(t)
		var engines [2]*chat.Engine
		seed := rapid.Uint64().Draw(rt, "seed")
		for i, s := range []chat.Store{mem, bs} {
			// The same entropy: both engines make the same IDs, in the same (random) order.
			entropy := mrand.NewChaCha8([32]byte{0: byte(seed), 1: byte(seed >> 8), 2: byte(seed >> 16), 3: byte(seed >> 24)})
			e, err := chat.Open(ctx, s, chat.WithClock(&fakeClock{t: start}), chat.WithEntropy(entropy))
			if err != nil {
				rt.Fatal(err)
			}
			engines[i] = e
		}
		defer func() {
			for _, e := range engines {
				e.Close()
			}
			mem.Close()
			bs.Close()
		}()

		var users, rooms []pair
		pick := func(label string, ps []pair) pair {
			if len(ps) == 0 || rapid.IntRange(0, 9).Draw(rt, label+"Unknown") == 9 {
				return pair{{0xff, byte(len(ps))}, {0xff, byte(len(ps))}} // nobody
			}
			return ps[spread(rapid.Uint32().Draw(rt, label), len(ps))]
		}
		// both runs op on each engine and checks that they fail alike.
		both := func(name string, op func(e *chat.Engine, side int) error) bool {
			var errs [2]error
			for i, e := range engines {
				errs[i] = op(e, i)
			}
			if a, b := errClass(errs[0]), errClass(errs[1]); a != b {
				rt.Fatalf("%s: memory says %q, bolt says %q", name, a, b)
			}
			statMu.Lock()
			tried[name]++
			if errs[0] == nil {
				ok[name]++
			}
			statMu.Unlock()
			return errs[0] == nil
		}
		names := rapid.SampledFrom([]string{"", "", "ann", "bob", "cat"})
		texts := rapid.SampledFrom([]string{"hi", "hello", "", "ça va?"})

		actions := map[string]func(*rapid.T){
			"createUser": func(rt *rapid.T) {
				name := names.Draw(rt, "name")
				var p pair
				if both("CreateUser", func(e *chat.Engine, i int) error {
					u, err := e.CreateUser(ctx, chat.NewUser{Name: name, DisplayName: "D" + name, Attributes: map[string]string{"x": name + "1"}})
					p[i] = u.ID
					return err
				}) {
					users = append(users, p)
				}
			},
			"createRoom": func(rt *rapid.T) {
				name := names.Draw(rt, "name")
				private := rapid.Bool().Draw(rt, "private")
				var p pair
				if both("CreateRoom", func(e *chat.Engine, i int) error {
					r, err := e.CreateRoom(ctx, chat.NewRoom{Name: name, Private: private})
					p[i] = r.ID
					return err
				}) {
					rooms = append(rooms, p)
				}
			},
			"join": func(rt *rapid.T) {
				r, u := pick("room", rooms), pick("user", users)
				role := rapid.SampledFrom([]chat.Role{chat.RoleClient, chat.RoleAgent, ""}).Draw(rt, "role")
				both("Join", func(e *chat.Engine, i int) error {
					_, err := e.Join(ctx, r[i], u[i], chat.JoinOptions{Role: role, Nickname: "n"})
					return err
				})
			},
			"invite": func(rt *rapid.T) {
				r, u := pick("room", rooms), pick("user", users)
				by := pair{}
				if rapid.Bool().Draw(rt, "byUser") {
					by = pick("by", users)
				}
				both("Invite", func(e *chat.Engine, i int) error {
					_, err := e.Invite(ctx, r[i], u[i], chat.InviteOptions{By: by[i]})
					return err
				})
			},
			"leave": func(rt *rapid.T) {
				r, u := pick("room", rooms), pick("user", users)
				both("Leave", func(e *chat.Engine, i int) error { _, err := e.Leave(ctx, r[i], u[i]); return err })
			},
			"send": func(rt *rapid.T) {
				r := pick("room", rooms)
				u := pair{}
				if rapid.IntRange(0, 4).Draw(rt, "asSystem") != 0 {
					u = pick("user", users)
				}
				text := texts.Draw(rt, "text")
				var evs [2]chat.Event
				if both("Send", func(e *chat.Engine, i int) (err error) {
					evs[i], err = e.Send(ctx, r[i], u[i], chat.NewMessage{Text: text})
					return err
				}) {
					if d := cmp.Diff(shapes(evs[:1]), shapes(evs[1:])); d != "" {
						rt.Fatalf("Send results differ (-memory +bolt):\n%s", d)
					}
				}
			},
			"notice": func(rt *rapid.T) {
				r := pick("room", rooms)
				both("Notice", func(e *chat.Engine, i int) error { _, err := e.Notice(ctx, r[i], "note"); return err })
			},
			"edit": func(rt *rapid.T) {
				r, u := pick("room", rooms), pick("user", users)
				pos := rapid.Uint64Range(0, 12).Draw(rt, "pos")
				both("Edit", func(e *chat.Engine, i int) error {
					_, err := e.Edit(ctx, r[i], u[i], pos, chat.NewMessage{Text: "edited"})
					return err
				})
			},
			"delete": func(rt *rapid.T) {
				r, u := pick("room", rooms), pick("user", users)
				if rapid.Bool().Draw(rt, "asSystem") {
					u = pair{}
				}
				pos := rapid.Uint64Range(0, 12).Draw(rt, "pos")
				both("Delete", func(e *chat.Engine, i int) error { _, err := e.Delete(ctx, r[i], u[i], pos); return err })
			},
			"mark": func(rt *rapid.T) {
				r, u := pick("room", rooms), pick("user", users)
				pos := rapid.Uint64Range(0, 12).Draw(rt, "pos")
				read := rapid.Bool().Draw(rt, "read")
				both("Mark", func(e *chat.Engine, i int) error {
					var err error
					if read {
						_, err = e.MarkRead(ctx, r[i], u[i], pos)
					} else {
						_, err = e.MarkDelivered(ctx, r[i], u[i], pos)
					}
					return err
				})
			},
			"nickname": func(rt *rapid.T) {
				r, u := pick("room", rooms), pick("user", users)
				nick := names.Draw(rt, "nick")
				both("UpdateMember", func(e *chat.Engine, i int) error {
					_, err := e.UpdateMember(ctx, r[i], u[i], chat.MemberUpdate{Nickname: &nick})
					return err
				})
			},
			"renameRoom": func(rt *rapid.T) {
				r := pick("room", rooms)
				name := names.Draw(rt, "name")
				both("UpdateRoom", func(e *chat.Engine, i int) error {
					_, err := e.UpdateRoom(ctx, r[i], chat.RoomUpdate{Name: &name, Attributes: map[string]string{"k": name}})
					return err
				})
			},
			"renameUser": func(rt *rapid.T) {
				u := pick("user", users)
				name := names.Draw(rt, "name")
				both("UpdateUser", func(e *chat.Engine, i int) error {
					_, err := e.UpdateUser(ctx, u[i], chat.UserUpdate{Name: &name})
					return err
				})
			},
			"deleteUser": func(rt *rapid.T) {
				u := pick("user", users)
				both("DeleteUser", func(e *chat.Engine, i int) error { return e.DeleteUser(ctx, u[i]) })
			},
			"deleteRoom": func(rt *rapid.T) {
				r := pick("room", rooms)
				both("DeleteRoom", func(e *chat.Engine, i int) error { return e.DeleteRoom(ctx, r[i]) })
			},
			"endRoom": func(rt *rapid.T) {
				r := pick("room", rooms)
				both("EndRoom", func(e *chat.Engine, i int) error { _, err := e.EndRoom(ctx, r[i]); return err })
			},
			"read": func(rt *rapid.T) {
				r := pick("room", rooms)
				from := rapid.Uint64Range(0, 15).Draw(rt, "from")
				limit := rapid.IntRange(0, 20).Draw(rt, "limit")
				back := rapid.Bool().Draw(rt, "backward")
				var got [2][]chat.Event
				if both("Read", func(e *chat.Engine, i int) (err error) {
					got[i], err = e.Read(ctx, r[i], chat.ReadOptions{From: from, Limit: limit, Backward: back})
					return err
				}) {
					if d := cmp.Diff(shapes(got[0]), shapes(got[1])); d != "" {
						rt.Fatalf("Read(%d, %d, %v) differs (-memory +bolt):\n%s", from, limit, back, d)
					}
				}
			},
			"message": func(rt *rapid.T) {
				r := pick("room", rooms)
				pos := rapid.Uint64Range(0, 12).Draw(rt, "pos")
				var got [2]chat.Message
				if both("Message", func(e *chat.Engine, i int) (err error) {
					got[i], err = e.Message(ctx, r[i], pos)
					return err
				}) {
					a, b := got[0], got[1]
					if a.Text != b.Text || !a.Edited.Equal(b.Edited) || !a.Deleted.Equal(b.Deleted) || a.Pos != b.Pos {
						rt.Fatalf("Message(%d) differs: %+v vs %+v", pos, a, b)
					}
				}
			},
		}
		// Creating is rarer than using, so that joins, leaves and rejoins of the same few
		// users and rooms are common.
		weights := map[string]int{"join": 6, "send": 6, "createUser": 5, "createRoom": 5, "leave": 4, "invite": 3,
			"mark": 3, "edit": 2, "delete": 2, "read": 2}
		var menu []string
		for name := range actions {
			for range max(1, weights[name]) {
				menu = append(menu, name)
			}
		}
		// rapid favours the first entries: put the common operations there.
		slices.SortStableFunc(menu, func(a, b string) int {
			if c := weights[b] - weights[a]; c != 0 {
				return c
			}
			return strings.Compare(a, b)
		})
		check := func(rt *rapid.T) {
			// The invariant checked after every step: both stores hold the same data.
			var snaps [2]Snapshot
			for i, s := range []chat.Store{mem, bs} {
				snap, err := Dump(ctx, s)
				if err != nil {
					rt.Fatal(err)
				}
				snaps[i] = snap.Normalize()
			}
			if !snaps[0].Equal(snaps[1]) {
				rt.Fatalf("stores differ (-memory +other):\n%s", cmp.Diff(snaps[0], snaps[1], cmpopts.EquateEmpty()))
			}
		}
		for range 30 + spread(rapid.Uint32().Draw(rt, "steps"), 90) {
			actions[menu[spread(rapid.Uint32().Draw(rt, "action"), len(menu))]](rt)
			check(rt)
		}
	})
}
