package chat_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/storage/memory"
)

// TestMergedAttributesAreBounded: the attribute limits hold for what a room stores, however
// many updates it took to get there (24 updates of 256 new keys each used to make a 24 MB
// room).
func TestMergedAttributesAreBounded(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore func(testing.TB) chat.Store) {
		e, _ := newEngine(t, newStore)
		room := must[chat.Room](t)(e.CreateRoom(ctx, chat.NewRoom{}))
		update := func(prefix string, n, size int) error {
			attrs := make(map[string]string, n)
			for i := range n {
				attrs[fmt.Sprintf("%s%d", prefix, i)] = strings.Repeat("v", size)
			}
			_, err := e.UpdateRoom(ctx, room.ID, chat.RoomUpdate{Attributes: attrs})
			return err
		}
		// Each update alone is within the limits; their sum is not.
		var refused int
		for i := range 24 {
			if err := update(fmt.Sprintf("u%d-", i), 8, 1024); err != nil {
				wantErr(t, err, chat.ErrInvalid)
				var inv *chat.InvalidError
				if !errors.As(err, &inv) || inv.Field != "attributes" {
					t.Fatalf("error %v does not name the attributes", err)
				}
				refused++
			}
		}
		if refused == 0 {
			t.Fatal("no update was refused")
		}
		got := must[chat.Room](t)(e.Room(ctx, room.ID))
		if total := attrBytes(got.Attributes); total > chat.MaxAttributesBytes {
			t.Fatalf("room stores %d bytes of attributes", total)
		}
		// Too many keys, each small.
		for i := 0; ; i++ {
			if err := update(fmt.Sprintf("k%d-", i), 100, 1); err != nil {
				wantErr(t, err, chat.ErrInvalid)
				break
			}
		}
		got = must[chat.Room](t)(e.Room(ctx, room.ID))
		if len(got.Attributes) > chat.MaxAttributes {
			t.Fatalf("room stores %d attributes", len(got.Attributes))
		}
		// Removing keys makes room again.
		del := map[string]string{}
		for k := range got.Attributes {
			del[k] = ""
		}
		if _, err := e.UpdateRoom(ctx, room.ID, chat.RoomUpdate{Attributes: del}); err != nil {
			t.Fatal(err)
		}
		if err := update("again", 8, 1024); err != nil {
			t.Fatal(err)
		}
	})
}

func attrBytes(a map[string]string) int {
	n := 0
	for k, v := range a {
		n += len(k) + len(v)
	}
	return n
}

func TestCheckJSON(t *testing.T) {
	deep := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	cases := []struct {
		doc string
		ok  bool
	}{
		{`{"a":[1,2,{"b":"c"}]}`, true},
		{`"a \\u0000 is an escaped backslash and text"`, true},
		{`"\u00000"`, false},
		{`{"k":"\u0000"}`, false},
		{"{\"k\":\"\x00\"}", false},
		{"\"\xc3\x28\"", false},
		{deep(chat.MaxJSONDepth), true},
		{deep(chat.MaxJSONDepth + 1), false},
		{strings.Repeat("[", 5000) + strings.Repeat("]", 5000), false},
		{`{"a":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}`, true}, // brackets in a string
		{`{`, false},
		{`{"a":"\"}"}`, true},
		{`"\ud83d\ude00"`, true},  // a pair: 😀
		{`"\ud83d"`, false},       // a high half alone
		{`"\ud83dx"`, false},      // followed by something else
		{`"\ud83d\u0041"`, false}, // followed by another escape
		{`"\ude00"`, false},       // a low half alone
		{`"\\ud800"`, true},       // an escaped backslash, then text
		{`"\uD83D\uDE00"`, true},  // upper case
	}
	for _, c := range cases {
		err := chat.CheckJSON("body", []byte(c.doc))
		if c.ok != (err == nil) {
			t.Errorf("CheckJSON(%.40q) = %v, want ok=%v", c.doc, err, c.ok)
		}
		if err != nil && !errors.Is(err, chat.ErrInvalid) {
			t.Errorf("CheckJSON(%.40q) = %v, not ErrInvalid", c.doc, err)
		}
	}
}

func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,{"b":"\u0041"}]}`, `"\\u0000"`, `[[[]]]`, `{"a":"\"}"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		if chat.CheckJSON("f", doc) != nil {
			return
		}
		// What passes decodes, holds no NUL, and re-encodes to a document that passes too.
		var v any
		if err := json.Unmarshal(doc, &v); err != nil {
			t.Fatalf("passed but does not decode: %v", err)
		}
		out, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if hasNUL(v) {
			t.Fatalf("passed with a NUL: %q", doc)
		}
		if err := chat.CheckJSON("f", out); err != nil {
			t.Fatalf("re-encoded %q fails: %v", out, err)
		}
	})
}

// failingStore fails every write with ErrUnavailable while full is set, as a full disk does.
type failingStore struct {
	chat.Store
	full bool
}

func (s *failingStore) Update(ctx context.Context, fn func(chat.Tx) error) error {
	if s.full {
		return fmt.Errorf("test store: no space left on device: %w", chat.ErrUnavailable)
	}
	return s.Store.Update(ctx, fn)
}

// TestHealthReportsAFailingStore: a store that stops taking writes shows in Health until a
// write succeeds again.
func TestHealthReportsAFailingStore(t *testing.T) {
	store := &failingStore{Store: memory.New()}
	e, err := chat.Open(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Health(ctx); err != nil {
		t.Fatalf("healthy engine: %v", err)
	}
	store.full = true
	_, err = e.CreateUser(ctx, chat.NewUser{})
	wantErr(t, err, chat.ErrUnavailable)
	wantErr(t, e.Health(ctx), chat.ErrUnavailable)
	store.full = false
	must[chat.User](t)(e.CreateUser(ctx, chat.NewUser{}))
	if err := e.Health(ctx); err != nil {
		t.Fatalf("after a good write: %v", err)
	}
	e.Close()
	wantErr(t, e.Health(ctx), chat.ErrClosed)
}

// hasNUL reports whether a decoded JSON value holds a NUL in a string or key.
func hasNUL(v any) bool {
	switch v := v.(type) {
	case string:
		return strings.IndexByte(v, 0) >= 0
	case []any:
		for _, x := range v {
			if hasNUL(x) {
				return true
			}
		}
	case map[string]any:
		for k, x := range v {
			if strings.IndexByte(k, 0) >= 0 || hasNUL(x) {
				return true
			}
		}
	}
	return false
}
