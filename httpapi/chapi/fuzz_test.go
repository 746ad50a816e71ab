package chapi

import (
	"encoding/json"
	"net/url"
	"strconv"
	"testing"
)

// FuzzParseSendMessage checks that the POST body parser never panics and that what it accepts
// survives a round trip through JSON.
func FuzzParseSendMessage(f *testing.F) {
	for _, s := range []string{
		`{"messageRaw":"Hello World!","room":"CHAPI sandbox"}`,
		`{"messageRaw":"x"}`, `{}`, `null`, `[]`, `{"messageRaw":1}`, `{"messageRaw":"a"} {}`,
		`{"messageRaw":"\u00e9\ud800","room":""}`, `messageRaw=x`, ``, `{"room":"` + "\xff" + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := ParseSendMessage(body)
		if err != nil {
			return
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
		"ts=-5", "pageSize=99999999999", "room=%zz", "ts=1e3", "pageSize=3&pageSize=4", ";",
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
		if lq.room != v.Get("room") {
			t.Fatalf("room %q -> %q", v.Get("room"), lq.room)
		}
	})
}
