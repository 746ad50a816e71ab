package chapi

import (
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/parley-chat/chat/internal/httpx"
)

// FuzzParseSendMessage checks that the POST body parser never panics, that what it accepts
// can be stored as sent (valid UTF-8, no NUL) and survives a round trip through JSON, and
// that what it refuses is refused as malformed.
func FuzzParseSendMessage(f *testing.F) {
	for _, s := range []string{
		`{"messageRaw":"Hello World!","room":"CHAPI sandbox"}`,
		`{"messageRaw":"x"}`, `{}`, `null`, `[]`, `{"messageRaw":1}`, `{"messageRaw":"a"} {}`,
		`{"messageRaw":"\u00e9\ud800","room":""}`, `messageRaw=x`, ``, `{"room":"` + "\xff" + `"}`,
		`{"messageRaw":"a\u0000"}`, "{\"messageRaw\":\"a\x00\"}", `{"x":[[[[[[[[[[]]]]]]]]]]}`, "{\"\xff\":1}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := ParseSendMessage(body)
		if err != nil {
			if !errors.Is(err, httpx.ErrMalformed) {
				t.Fatalf("%q: error %v is not ErrMalformed", body, err)
			}
			return
		}
		for _, s := range []string{m.MessageRaw, m.Room} {
			if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
				t.Fatalf("%q accepted with %q", body, s)
			}
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := ParseSendMessage(b)
		if err != nil || m2 != m {
			t.Fatalf("round trip: %+v -> %s -> %+v, %v", m, b, m2, err)
		}
	})
}

// FuzzParseListQuery checks the GET query parser: no panic, page size within bounds, ts
// non-negative, and accepted numbers are the ones given.
func FuzzParseListQuery(f *testing.F) {
	for _, s := range []string{
		"", "room=CHAPI+sandbox&pageSize=30&ts=1594918006814947", "pageSize=0", "pageSize=-1",
		"ts=-5", "pageSize=99999999999", "room=%zz", "ts=1e3", "pageSize=3&pageSize=4", ";", "room=a%00", "room=%ff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		lq, err := parseListQuery(q, 30, 100)
		if err != nil {
			return
		}
		if lq.pageSize < 1 || lq.pageSize > 100 || lq.ts < 0 {
			t.Fatalf("%q -> %+v", q, lq)
		}
		v, _ := url.ParseQuery(q)
		if s := v.Get("ts"); s != "" {
			if n, _ := strconv.ParseInt(s, 10, 64); n != lq.ts {
				t.Fatalf("ts %q -> %d", s, lq.ts)
			}
		}
		if !utf8.ValidString(lq.room) || strings.IndexByte(lq.room, 0) >= 0 {
			t.Fatalf("%q accepted with room %q", q, lq.room)
		}
		if lq.room != v.Get("room") {
			t.Fatalf("room %q -> %q", v.Get("room"), lq.room)
		}
	})
}
