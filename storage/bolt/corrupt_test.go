package bolt

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/chat"
)

// corruptEnv, when set, makes the test binary a child that opens the damaged file it names
// and checks what the Store does with it (see corruptChild).
const corruptEnv = "PARLEY_BOLT_CORRUPT_CHILD"

func init() {
	if path := os.Getenv(corruptEnv); path != "" {
		outcome, err := corruptChild(path)
		if err != nil {
			fmt.Println("FAIL:", err)
			os.Exit(1)
		}
		fmt.Println("PASS", outcome)
		os.Exit(0)
	}
}

// The corpus base: a valid store with users, rooms with members and revisions, and 3,000
// events, a few big enough to take overflow pages, written in many commits (so that the free
// list is not empty).
var (
	corpusUsers     = 8
	corpusRoomSizes = []int{1500, 700, 400, 200, 150, 50}
	corpusTime      = time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
)

func corpusUser(i int) chat.ID { return chat.ID{0x05, byte(i)} }
func corpusRoom(i int) chat.ID { return chat.ID{0x06, byte(i)} }

func corpusText(room, n int) string {
	if n%300 == 7 {
		return fmt.Sprintf("r%d-e%d ", room, n) + strings.Repeat("B", 12<<10)
	}
	return fmt.Sprintf("r%d-e%d ", room, n) + strings.Repeat(string(rune('a'+n%26)), 60+n%150)
}

func buildCorpusBase(t *testing.T, path string) {
	t.Helper()
	s, err := Open(path, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	update := func(fn func(tx chat.Tx) error) {
		t.Helper()
		if err := s.Update(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	update(func(tx chat.Tx) error {
		for i := range corpusUsers {
			u := chat.User{ID: corpusUser(i), Name: fmt.Sprint("user", i), DisplayName: fmt.Sprint("User ", i),
				Attributes: map[string]string{"n": fmt.Sprint(i)}, CreatedAt: corpusTime}
			if err := tx.PutUser(u); err != nil {
				return err
			}
		}
		for i := range corpusRoomSizes {
			r := chat.Room{ID: corpusRoom(i), Name: fmt.Sprint("room", i), DisplayName: fmt.Sprint("Room ", i),
				Attributes: map[string]string{"topic": strings.Repeat("t", 10*i)}, CreatedAt: corpusTime}
			if err := tx.PutRoom(r); err != nil {
				return err
			}
		}
		for u := range corpusUsers {
			for k, r := range []int{u % 6, (u + 1) % 6, (u + 3) % 6} {
				m := chat.Member{ID: chat.ID{0x08, byte(u), byte(k)}, RoomID: corpusRoom(r), UserID: corpusUser(u),
					State: chat.Joined, Role: chat.RoleClient, Nickname: fmt.Sprint("nick", u), JoinedAt: corpusTime}
				if u == 3 && k == 1 {
					m.State, m.LeftAt = chat.Left, corpusTime.Add(time.Hour)
				}
				if err := tx.PutMember(m); err != nil {
					return err
				}
			}
		}
		return nil
	})
	// Events in commits of 50, the rooms interleaved.
	done := make([]int, len(corpusRoomSizes))
	for more := true; more; {
		more = false
		for r, size := range corpusRoomSizes {
			if done[r] == size {
				continue
			}
			more = true
			update(func(tx chat.Tx) error {
				for range min(50, size-done[r]) {
					done[r]++
					ev := chat.Event{RoomID: corpusRoom(r), ID: chat.ID{0x09, byte(r), byte(done[r] >> 8), byte(done[r])},
						Type: chat.EventMessage, From: chat.ID{0x08, byte(r)}, User: corpusUser(r % corpusUsers),
						Text: corpusText(r, done[r]), Time: corpusTime.Add(time.Duration(done[r]) * time.Millisecond)}
					if err := tx.Append(&ev); err != nil {
						return err
					}
					if done[r]%97 == 0 {
						if err := tx.SetRevision(corpusRoom(r), uint64(done[r]-1), uint64(done[r])); err != nil {
							return err
						}
					}
				}
				return nil
			})
		}
	}
}

// corpusTargets are the byte ranges of the base file each kind of damage aims at.
type corpusTargets struct {
	size     int
	ps       int
	branch   [][2]int // used part of each branch page in use: [start, end) in the file
	leaf     [][2]int // the same for leaf pages
	leafHead [][2]int // the header and element array of each leaf page in use
	freelist [][2]int
	buckets  [][2]int // the value (header and inline page) of each bucket
}

func findTargets(t *testing.T, path string) corpusTargets {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	m, bad := readMeta(f, 0, 0)
	if bad != "" {
		t.Fatal(bad)
	}
	tg := corpusTargets{size: int(fi.Size()), ps: int(m.pageSize)}
	visit := func(id uint64, flags uint16, b []byte) {
		start := int(id) * tg.ps
		count := int(ne.Uint16(b[10:]))
		used := pageHeaderSize + count*elemSize
		for i := range count {
			e := b[pageHeaderSize+i*elemSize:]
			off := pageHeaderSize + i*elemSize
			switch flags {
			case branchPageFlag:
				used = max(used, off+int(ne.Uint32(e))+int(ne.Uint32(e[4:])))
			case leafPageFlag:
				v := off + int(ne.Uint32(e[4:])) + int(ne.Uint32(e[8:]))
				end := v + int(ne.Uint32(e[12:]))
				used = max(used, end)
				if ne.Uint32(e)&bucketLeafFlag != 0 {
					tg.buckets = append(tg.buckets, [2]int{start + v, start + end})
				}
			}
		}
		switch flags {
		case branchPageFlag:
			tg.branch = append(tg.branch, [2]int{start, start + used})
		case leafPageFlag:
			tg.leaf = append(tg.leaf, [2]int{start, start + min(used, len(b))})
			tg.leafHead = append(tg.leafHead, [2]int{start, start + pageHeaderSize + count*elemSize})
		case freelistPageFlag:
			tg.freelist = append(tg.freelist, [2]int{start, start + pageHeaderSize + 8*count})
		}
	}
	found, err := walkPages(f, fi.Size(), visit)
	if err != nil || len(found) > 0 {
		t.Fatalf("the base file: %v %v", found, err)
	}
	if len(tg.branch) == 0 || len(tg.leaf) == 0 || len(tg.freelist) == 0 || len(tg.buckets) == 0 {
		t.Fatalf("the base file lacks a kind of page: %d branch, %d leaf, %d free list pages, %d buckets",
			len(tg.branch), len(tg.leaf), len(tg.freelist), len(tg.buckets))
	}
	return tg
}

var corruptKinds = []string{"random", "meta", "freelist", "branch", "leaf", "leafhead", "bucket"}

// flips returns the offsets to damage for a kind of damage and a seed.
func (tg corpusTargets) flips(kind string, seed int) []int {
	r := rand.New(rand.NewPCG(uint64(seed), uint64(slices.Index(corruptKinds, kind))))
	in := func(ranges [][2]int, n int) []int {
		rg := ranges[r.IntN(len(ranges))]
		var offs []int
		for range n {
			offs = append(offs, rg[0]+r.IntN(rg[1]-rg[0]))
		}
		return offs
	}
	switch kind {
	case "random":
		return []int{r.IntN(tg.size), r.IntN(tg.size), r.IntN(tg.size), r.IntN(tg.size)}
	case "meta": // inside the meta itself, on page 0 or 1
		return []int{r.IntN(2)*tg.ps + pageHeaderSize + r.IntN(metaSize)}
	case "freelist":
		return in(tg.freelist, 1)
	case "branch":
		return in(tg.branch, 1)
	case "leaf":
		return in(tg.leaf, 1)
	case "leafhead":
		return in(tg.leafHead, 1)
	case "bucket":
		return in(tg.buckets, 1)
	}
	panic(kind)
}

type fileState struct {
	sum   [32]byte
	size  int64
	mtime time.Time
}

func stateOf(path string) (fileState, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return fileState{}, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fileState{}, err
	}
	return fileState{sha256.Sum256(b), fi.Size(), fi.ModTime()}, nil
}

// TestCorruptFiles damages copies of a valid store with byte flips, at 12 seeds, at random
// offsets and aimed at the meta pages, the free list, branch pages, leaf pages (anywhere in
// their data, or in their header and element array) and buckets (header and inline page), and
// opens each in a child process (so that a crash is a failure, not the end of the test binary).
// Open must refuse the file with ErrCorrupt and leave it untouched, or accept a file that
// passes the check and then serve reads and take writes correctly (corruptChild).
func TestCorruptFiles(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.db")
	buildCorpusBase(t, base)
	raw, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	tg := findTargets(t, base)
	t.Logf("base: %d bytes, %d branch and %d leaf pages in use, %d buckets", len(raw), len(tg.branch), len(tg.leaf), len(tg.buckets))
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	outcomes := map[string]int{}
	for seed := 1; seed <= 12; seed++ {
		for _, kind := range corruptKinds {
			t.Run(fmt.Sprintf("%s/seed=%d", kind, seed), func(t *testing.T) {
				b := bytes.Clone(raw)
				r := rand.New(rand.NewPCG(uint64(seed), 99))
				var flips []string
				for _, off := range tg.flips(kind, seed) {
					x := byte(1 + r.IntN(255))
					b[off] ^= x
					flips = append(flips, fmt.Sprintf("%#x^%#02x (page %d)", off, x, off/tg.ps))
				}
				path := filepath.Join(dir, fmt.Sprintf("%s-%d.db", kind, seed))
				if err := os.WriteFile(path, b, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(path, old, old); err != nil {
					t.Fatal(err)
				}
				before, err := stateOf(path)
				if err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), corruptEnv+"="+path)
				out, err := cmd.CombinedOutput()
				if err != nil || !bytes.Contains(out, []byte("PASS ")) {
					t.Fatalf("flips %v: child: %v\n%s", flips, err, out)
				}
				outcome := string(out[bytes.Index(out, []byte("PASS "))+5:])
				t.Logf("flips %v: %s", flips, outcome)
				word, _, _ := strings.Cut(outcome, " ")
				outcomes[kind+" "+word]++
				if word == "refused:" {
					if after, err := stateOf(path); err != nil || after != before {
						t.Errorf("the refused file changed: %+v → %+v (%v)", before, after, err)
					}
				}
			})
		}
	}
	t.Logf("outcomes: %v", outcomes)
}

// corruptChild opens a damaged file. If Open refuses it, the error must wrap ErrCorrupt and
// the file be untouched. If Open accepts it, every read must give data or an error wrapping
// ErrCorrupt or ErrNotFound; writes (a new room, appends to each room whose transcript reads)
// must succeed and read back exactly; what read before the writes must read the same after
// them; and the file must open again (so pass the check) with the same data.
func corruptChild(path string) (string, error) {
	before, err := stateOf(path)
	if err != nil {
		return "", err
	}
	s, err := Open(path, &Options{Timeout: 5 * time.Second})
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			return "", fmt.Errorf("Open refused the file without ErrCorrupt: %v", err)
		}
		if after, err2 := stateOf(path); err2 != nil || after != before {
			return "", fmt.Errorf("Open refused the file (%v) but changed it", err)
		}
		return "refused: " + err.Error(), nil
	}
	defer func() { s.Close() }()
	read1, failed, err := corpusSweep(s, func(r int) int { return corpusRoomSizes[r] })
	if err != nil {
		return "", fmt.Errorf("before writing: %w", err)
	}
	// Writes: a new user and room with members and events, and two events in each room whose
	// transcript reads.
	newRoom, newUser := chat.ID{0x07, 1}, chat.ID{0x07, 2}
	err = s.Update(ctx, func(tx chat.Tx) error {
		if err := tx.PutUser(chat.User{ID: newUser, Name: "newcomer", CreatedAt: corpusTime}); err != nil {
			return err
		}
		if err := tx.PutRoom(chat.Room{ID: newRoom, Name: "new room", CreatedAt: corpusTime}); err != nil {
			return err
		}
		return tx.PutMember(chat.Member{ID: chat.ID{0x07, 3}, RoomID: newRoom, UserID: newUser, State: chat.Joined, JoinedAt: corpusTime})
	})
	if err != nil {
		return "", fmt.Errorf("creating a room: %w", err)
	}
	for batch := range 3 {
		err := s.Update(ctx, func(tx chat.Tx) error {
			for i := range 20 {
				ev := chat.Event{RoomID: newRoom, Type: chat.EventMessage, Text: fmt.Sprint("new ", batch*20+i), Time: corpusTime}
				if err := tx.Append(&ev); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return "", fmt.Errorf("appending to the new room: %w", err)
		}
	}
	appended := map[int]uint64{} // room → position of its first new event
	for r := range corpusRoomSizes {
		if !strings.HasPrefix(read1[fmt.Sprint("events ", r)], "ok") {
			continue
		}
		var first chat.Event
		err := s.Update(ctx, func(tx chat.Tx) error {
			for i := range 2 {
				ev := chat.Event{RoomID: corpusRoom(r), Type: chat.EventMessage, Text: fmt.Sprint("appended ", i), Time: corpusTime}
				if err := tx.Append(&ev); err != nil {
					return err
				}
				if i == 0 {
					first = ev
				}
			}
			return nil
		})
		if err != nil {
			return "", fmt.Errorf("appending to room %d: %w", r, err)
		}
		appended[r] = first.Pos
	}
	// The transcripts as they were: up to the first appended event.
	limit := func(r int) int {
		if pos, ok := appended[r]; ok {
			return min(corpusRoomSizes[r], int(pos)-1)
		}
		return corpusRoomSizes[r]
	}
	check := func(when string) error {
		read, _, err := corpusSweep(s, limit)
		if err != nil {
			return fmt.Errorf("%s: %w", when, err)
		}
		for k, v := range read1 {
			if read[k] != v {
				return fmt.Errorf("%s: %s reads differently:\nbefore %.300s\nafter  %.300s", when, k, v, read[k])
			}
		}
		return s.View(ctx, func(tx chat.ReadTx) error {
			evs, err := tx.Events(newRoom, 1, 100, false, nil)
			if err != nil || len(evs) != 60 {
				return fmt.Errorf("%s: the new room has %d events (%v)", when, len(evs), err)
			}
			for i, ev := range evs {
				if ev.Pos != uint64(i+1) || ev.Text != fmt.Sprint("new ", i) {
					return fmt.Errorf("%s: the new room's event %d reads %d %q", when, i, ev.Pos, ev.Text)
				}
			}
			if m, err := tx.MemberByUser(newRoom, newUser); err != nil || m.State != chat.Joined {
				return fmt.Errorf("%s: the new member reads %+v, %v", when, m, err)
			}
			if u, err := tx.UserByName("newcomer"); err != nil || u.ID != newUser {
				return fmt.Errorf("%s: the new user reads %+v, %v", when, u, err)
			}
			for r, pos := range appended {
				evs, err := tx.Events(corpusRoom(r), pos, 10, false, nil)
				if err != nil || len(evs) != 2 || evs[0].Text != "appended 0" || evs[1].Text != "appended 1" || evs[1].Pos != pos+1 {
					return fmt.Errorf("%s: room %d from %d reads %+v, %v", when, r, pos, evs, err)
				}
			}
			return nil
		})
	}
	if err := check("after the writes"); err != nil {
		return "", err
	}
	if err := s.Close(); err != nil {
		return "", err
	}
	if s, err = Open(path, &Options{Timeout: 5 * time.Second}); err != nil {
		return "", fmt.Errorf("opening the file again after the writes: %w", err)
	}
	if err := check("after opening again"); err != nil {
		return "", err
	}
	return fmt.Sprintf("accepted: %d reads of %d failed with ErrCorrupt or ErrNotFound", failed, len(read1)), nil
}

// corpusSweep reads everything the corpus base holds, record by record (transcripts up to
// limit events), and returns what each read gave ("ok ..." or the error's class). Errors other
// than ErrCorrupt and ErrNotFound are failures.
func corpusSweep(s *Store, limit func(room int) int) (map[string]string, int, error) {
	out := map[string]string{}
	failed := 0
	note := func(key string, v any, err error) error {
		switch {
		case err == nil:
			out[key] = fmt.Sprintf("ok %+v", v)
		case errors.Is(err, ErrCorrupt):
			out[key] = "corrupt"
			failed++
		case errors.Is(err, chat.ErrNotFound):
			out[key] = "not found"
			failed++
		default:
			return fmt.Errorf("%s: %w", key, err)
		}
		return nil
	}
	err := s.View(ctx, func(tx chat.ReadTx) error {
		users, err := tx.Users(chat.ListFilter{})
		users = slices.DeleteFunc(users, func(u chat.User) bool { return u.ID[0] != 0x05 }) // the base's
		if err := note("users", users, err); err != nil {
			return err
		}
		for i := range corpusUsers {
			u, err := tx.User(corpusUser(i))
			if err := note(fmt.Sprint("user ", i), u, err); err != nil {
				return err
			}
			ms, err := tx.Memberships(corpusUser(i))
			if err := note(fmt.Sprint("memberships ", i), ms, err); err != nil {
				return err
			}
		}
		for r := range corpusRoomSizes {
			room, err := tx.Room(corpusRoom(r))
			room.LastPos, room.LastTime = 0, time.Time{} // appends change them
			if err := note(fmt.Sprint("room ", r), room, err); err != nil {
				return err
			}
			ms, err := tx.Members(corpusRoom(r))
			if err := note(fmt.Sprint("members ", r), ms, err); err != nil {
				return err
			}
			evs, err := tx.Events(corpusRoom(r), 1, limit(r), false, nil)
			sum := sha256.New()
			for _, ev := range evs {
				fmt.Fprintf(sum, "%+v\n", ev)
			}
			if err := note(fmt.Sprint("events ", r), fmt.Sprintf("%d %x", len(evs), sum.Sum(nil)), err); err != nil {
				return err
			}
			rev, err := tx.Revision(corpusRoom(r), 96)
			if err := note(fmt.Sprint("revision ", r), rev, err); err != nil {
				return err
			}
		}
		return nil
	})
	return out, failed, err
}
