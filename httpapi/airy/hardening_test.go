package airy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/limit"
	"github.com/parley-chat/chat/storage/memory"
)

// answer is an HTTP answer as a client sees it.
type answer struct {
	Status     int
	RetryAfter string
	Message    string // of an error body
	Body       string
}

// raw makes one request with the Content-Type given ("" sends none) and returns the answer.
func (f *fixture) raw(t *testing.T, endpoint, token, contentType, body string) answer {
	t.Helper()
	req, err := http.NewRequest("POST", f.srv.URL+"/"+endpoint, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{Status: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After"), Body: string(b)}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Message string `json:"message"`
		}
		if err := json.Unmarshal(b, &e); err != nil || e.Message == "" {
			t.Errorf("%s: error body %q is not {\"message\": ...}", endpoint, b)
		}
		a.Message = e.Message
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: error Content-Type %q", endpoint, ct)
		}
	}
	return a
}

// transcript is what the store holds, as far as these tests can change it.
type transcript struct {
	Rooms, Users int
	LastPos      map[chat.ID]uint64
}

func (f *fixture) transcript(t *testing.T) transcript {
	t.Helper()
	ctx := context.Background()
	rs, err := f.e.Rooms(ctx, chat.ListFilter{})
	if err != nil {
		t.Fatal(err)
	}
	us, err := f.e.Users(ctx, chat.ListFilter{})
	if err != nil {
		t.Fatal(err)
	}
	tr := transcript{Rooms: len(rs), Users: len(us), LastPos: map[chat.ID]uint64{}}
	for _, r := range rs {
		tr.LastPos[r.ID] = r.LastPos
	}
	return tr
}

// TestRateLimits: new conversations and writes are limited per client, on by default; a
// refusal is 429 with Retry-After in the vendor's error body and stores nothing.
func TestRateLimits(t *testing.T) {
	t.Run("default limiter", func(t *testing.T) {
		f := newFixture(t, memory.New(), nil) // Config.Limiter nil: limit.DefaultRates
		body := `{"channel_id":"` + testChannel + `"}`
		// A burst's worth is served (one more or two if the machine is so slow that the
		// bucket refills meanwhile), then 429.
		burst := limit.DefaultRates.Create.Burst
		var a answer
		var before transcript
		served := 0
		for ; served <= burst+2; served++ {
			before = f.transcript(t)
			if a = f.raw(t, "chatplugin.authenticate", "", "application/json", body); a.Status != 200 {
				break
			}
		}
		if a.Status != http.StatusTooManyRequests || served < burst {
			t.Fatalf("after %d new conversations: %d, want 429 after %d", served, a.Status, burst)
		}
		if s, err := strconv.Atoi(a.RetryAfter); err != nil || s < 1 {
			t.Errorf("Retry-After %q", a.RetryAfter)
		}
		// An unknown channel costs as much: guessing channels is limited too.
		if a := f.raw(t, "chatplugin.authenticate", "", "application/json", `{"channel_id":"guess"}`); a.Status != 429 {
			t.Errorf("unknown channel once limited: %d", a.Status)
		}
		if diff := cmp.Diff(before, f.transcript(t)); diff != "" {
			t.Errorf("a refused authenticate stored something (-before +after):\n%s", diff)
		}
	})

	t.Run("writes", func(t *testing.T) {
		lim := limit.New(limit.Rates{Create: limit.Rate{PerSecond: 1e-9, Burst: 2}, Write: limit.Rate{PerSecond: 1e-9, Burst: 3}})
		f := newFixture(t, memory.New(), func(c *Config) { c.Limiter = lim })
		a, _ := f.start(t)
		send := `{"message":{"text":"hi"}}`
		for i := 0; i < 2; i++ {
			if got := f.raw(t, "chatplugin.send", a.Token, "application/json", send); got.Status != 200 {
				t.Fatalf("send %d: %d", i, got.Status)
			}
		}
		var r struct {
			ResumeToken string `json:"resume_token"`
		}
		if st := f.call(t, "POST", "chatplugin.resumeToken", a.Token, `{}`, &r); st != 200 {
			t.Fatalf("resumeToken: %d", st)
		}
		before := f.transcript(t)
		for _, tc := range []struct{ endpoint, token, body string }{
			{"chatplugin.send", a.Token, send},
			{"chatplugin.resumeToken", a.Token, `{}`},
			{"chatplugin.resumeToken", testSystem, `{"channel_id":"x","conversation_id":"y"}`},
			{"chatplugin.send", "not even a token", send}, // charged before the token is checked
		} {
			got := f.raw(t, tc.endpoint, tc.token, "application/json", tc.body)
			if got.Status != http.StatusTooManyRequests || got.RetryAfter == "" {
				t.Errorf("%s once limited: %d, Retry-After %q", tc.endpoint, got.Status, got.RetryAfter)
			}
		}
		if diff := cmp.Diff(before, f.transcript(t)); diff != "" {
			t.Errorf("refused writes stored something (-before +after):\n%s", diff)
		}
		// Resuming creates nothing and costs nothing; a second new conversation still fits
		// the Create burst, a third does not.
		if got := f.raw(t, "chatplugin.authenticate", "", "application/json", `{"resume_token":"`+r.ResumeToken+`"}`); got.Status != 200 {
			t.Errorf("resume once writes are limited: %d", got.Status)
		}
		f.start(t)
		if got := f.raw(t, "chatplugin.authenticate", "", "application/json", `{"channel_id":"`+testChannel+`"}`); got.Status != 429 {
			t.Errorf("third conversation: %d, want 429", got.Status)
		}
	})

	t.Run("no limits", func(t *testing.T) {
		f := newFixture(t, memory.New(), func(c *Config) { c.Limiter = limit.New(limit.Rates{}) })
		for i := 0; i < limit.DefaultRates.Create.Burst+5; i++ {
			f.start(t)
		}
	})
}

// TestBadInputRefused: bodies not declared as JSON, or holding invalid UTF-8, NULs or JSON
// nested too deep, are refused with the vendor's error, and nothing is stored.
func TestBadInputRefused(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		a, conv := f.start(t)
		deep := strings.Repeat(`{"a":`, chat.MaxJSONDepth+1) + `1` + strings.Repeat(`}`, chat.MaxJSONDepth+1)
		const js = "application/json"
		tests := []struct {
			name, endpoint, token, contentType, body string
			want                                     int
		}{
			// Media types.
			{"authenticate as text", "chatplugin.authenticate", "", "text/plain", `{"channel_id":"` + testChannel + `"}`, 415},
			{"authenticate as a form", "chatplugin.authenticate", "", "application/x-www-form-urlencoded", `{"channel_id":"` + testChannel + `"}`, 415},
			{"authenticate without Content-Type", "chatplugin.authenticate", "", "", `{"channel_id":"` + testChannel + `"}`, 415},
			{"authenticate, malformed Content-Type", "chatplugin.authenticate", "", "application/json; =", `{"channel_id":"` + testChannel + `"}`, 415},
			{"send as text", "chatplugin.send", a.Token, "text/plain", `{"message":{"text":"hi"}}`, 415},
			{"send without Content-Type", "chatplugin.send", a.Token, "", `{"message":{"text":"hi"}}`, 415},
			{"resumeToken as text", "chatplugin.resumeToken", a.Token, "text/plain", `{}`, 415},
			{"resumeToken with a body, without Content-Type", "chatplugin.resumeToken", a.Token, "", `{}`, 415},
			{"system resumeToken without Content-Type", "chatplugin.resumeToken", testSystem, "", `{"channel_id":"` + testChannel + `","conversation_id":"` + conv.ID + `"}`, 415},
			// Invalid UTF-8.
			{"authenticate, invalid UTF-8", "chatplugin.authenticate", "", js, "{\"channel_id\":\"\xff\"}", 400},
			{"send, invalid UTF-8", "chatplugin.send", a.Token, js, "{\"message\":{\"text\":\"caf\xe9\"}}", 400},
			{"send, invalid UTF-8 in an attachment", "chatplugin.send", a.Token, js, "{\"message\":{\"attachment\":{\"x\":\"\xc3\"}}}", 400},
			{"send, invalid UTF-8 outside the message", "chatplugin.send", a.Token, js, "{\"x\":\"\xff\",\"message\":{\"text\":\"hi\"}}", 400},
			{"resumeToken, invalid UTF-8", "chatplugin.resumeToken", a.Token, js, "{\"x\":\"\xff\"}", 400},
			// NULs, escaped and raw.
			{"authenticate, escaped NUL", "chatplugin.authenticate", "", js, `{"channel_id":"` + testChannel + `\u0000"}`, 400},
			{"send, escaped NUL", "chatplugin.send", a.Token, js, `{"message":{"text":"a\u0000b"}}`, 400},
			{"send, escaped NUL in an attachment", "chatplugin.send", a.Token, js, `{"message":{"attachment":{"url":"\u0000"}}}`, 400},
			{"send, raw NUL", "chatplugin.send", a.Token, js, "{\"message\":{\"text\":\"a\x00b\"}}", 400},
			{"system resumeToken, escaped NUL", "chatplugin.resumeToken", testSystem, js, `{"channel_id":"` + testChannel + `\u0000","conversation_id":"` + conv.ID + `"}`, 400},
			// Depth and shape.
			{"send, nested too deep", "chatplugin.send", a.Token, js, `{"message":{"attachment":` + deep + `}}`, 400},
			{"send, two values", "chatplugin.send", a.Token, js, `{"message":{"text":"a"}}{"message":{"text":"b"}}`, 400},
		}
		before := f.transcript(t)
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if got := f.raw(t, tc.endpoint, tc.token, tc.contentType, tc.body); got.Status != tc.want {
					t.Errorf("status %d, want %d (%s)", got.Status, tc.want, got.Body)
				}
			})
		}
		if diff := cmp.Diff(before, f.transcript(t)); diff != "" {
			t.Errorf("refused requests stored something (-before +after):\n%s", diff)
		}
		// What the widget and other JSON clients send is taken.
		for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON", "application/vnd.api+json"} {
			if got := f.raw(t, "chatplugin.send", a.Token, ct, `{"message":{"text":"ok"}}`); got.Status != 200 {
				t.Errorf("Content-Type %q: %d %s", ct, got.Status, got.Body)
			}
		}
		// The contact's resumeToken without a body needs no Content-Type.
		if got := f.raw(t, "chatplugin.resumeToken", a.Token, "", ""); got.Status != 200 {
			t.Errorf("resumeToken without a body: %d %s", got.Status, got.Body)
		}
	})
}

// unavailableStore fails reads and writes with chat.ErrUnavailable while its switches are
// on, as a full disk or a failing device does.
type unavailableStore struct {
	chat.Store
	reads, writes atomic.Bool
}

func (s *unavailableStore) View(ctx context.Context, fn func(chat.ReadTx) error) error {
	if s.reads.Load() {
		return fmt.Errorf("test store: input/output error: %w", chat.ErrUnavailable)
	}
	return s.Store.View(ctx, fn)
}

func (s *unavailableStore) Update(ctx context.Context, fn func(chat.Tx) error) error {
	if s.writes.Load() {
		return fmt.Errorf("test store: no space left on device: %w", chat.ErrUnavailable)
	}
	return s.Store.Update(ctx, fn)
}

// TestStoreUnavailable: a store that cannot serve now is 503 with Retry-After and a message
// that says to try again (not a 500, and not the store's own words), and nothing is stored.
func TestStoreUnavailable(t *testing.T) {
	store := &unavailableStore{Store: memory.New()}
	var logs strings.Builder
	f := newFixture(t, store, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	a, conv := f.start(t)
	var r struct {
		ResumeToken string `json:"resume_token"`
	}
	if st := f.call(t, "POST", "chatplugin.resumeToken", a.Token, `{}`, &r); st != 200 {
		t.Fatal(st)
	}
	before := f.transcript(t)
	tests := []struct {
		name          string
		reads, writes bool
		endpoint      string
		token, body   string
	}{
		{"new conversation, disk full", false, true, "chatplugin.authenticate", "", `{"channel_id":"` + testChannel + `"}`},
		{"send, disk full", false, true, "chatplugin.send", a.Token, `{"message":{"text":"hi"}}`},
		{"send, store unreadable", true, false, "chatplugin.send", a.Token, `{"message":{"text":"hi"}}`},
		{"resume, store unreadable", true, false, "chatplugin.authenticate", "", `{"resume_token":"` + r.ResumeToken + `"}`},
		{"resumeToken, store unreadable", true, false, "chatplugin.resumeToken", a.Token, `{}`},
		{"system resumeToken, store unreadable", true, false, "chatplugin.resumeToken", testSystem, `{"channel_id":"` + testChannel + `","conversation_id":"` + conv.ID + `"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store.reads.Store(tc.reads)
			store.writes.Store(tc.writes)
			got := f.raw(t, tc.endpoint, tc.token, "application/json", tc.body)
			store.reads.Store(false)
			store.writes.Store(false)
			if got.Status != http.StatusServiceUnavailable || got.Message != MessageUnavailable {
				t.Errorf("%d %q, want 503 %q", got.Status, got.Message, MessageUnavailable)
			}
			if s, err := strconv.Atoi(got.RetryAfter); err != nil || s < 1 {
				t.Errorf("Retry-After %q", got.RetryAfter)
			}
		})
	}
	if diff := cmp.Diff(before, f.transcript(t)); diff != "" {
		t.Errorf("refused requests stored something (-before +after):\n%s", diff)
	}
	// The cause is the server's to know: logged, not shown.
	if n := strings.Count(logs.String(), `msg="airy: store unavailable"`); n != len(tests) {
		t.Errorf("%d of %d store failures logged:\n%s", n, len(tests), logs.String())
	}
}

// TestNoExistenceOracle: whatever a token or the system token names that the caller cannot
// have (no such conversation, one of another channel, a room that is no Airy conversation, a
// malformed id), the answer is the same: status and body.
func TestNoExistenceOracle(t *testing.T) {
	f := newFixture(t, memory.New(), func(c *Config) { c.Channels = Channels(testChannel, "other-channel") })
	ctx := context.Background()
	_, mine := f.start(t)
	var other authAnswer
	if st := f.call(t, "POST", "chatplugin.authenticate", "", map[string]string{"channel_id": "other-channel"}, &other); st != 200 {
		t.Fatal(st)
	}
	otherConv, err := f.svc.Authorize(ctx, other.Token)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := f.e.CreateRoom(ctx, chat.NewRoom{Name: "not an airy room"})
	if err != nil {
		t.Fatal(err)
	}
	noContact, err := f.e.CreateRoom(ctx, chat.NewRoom{Attributes: map[string]string{AttrChannel: testChannel}})
	if err != nil {
		t.Fatal(err)
	}
	deleted, err := f.e.CreateRoom(ctx, chat.NewRoom{Attributes: map[string]string{AttrChannel: testChannel}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.e.DeleteRoom(ctx, deleted.ID); err != nil {
		t.Fatal(err)
	}
	targets := map[string]string{
		"missing":                  chat.ID{9}.UUID(),
		"deleted":                  deleted.ID.UUID(),
		"another channel's":        otherConv.ID,
		"a room of no channel":     plain.ID.UUID(),
		"a room without a contact": noContact.ID.UUID(),
		"malformed":                "nope",
	}
	tok := f.svc.Tokens()
	seen := map[string]map[answer][]string{}
	note := func(kind, name string, a answer) {
		if seen[kind] == nil {
			seen[kind] = map[answer][]string{}
		}
		a.Body = ""
		seen[kind][a] = append(seen[kind][a], name)
	}
	for name, id := range targets {
		resume, _ := tok.IssueResume(id, testChannel)
		note("authenticate with a resume token", name, f.raw(t, "chatplugin.authenticate", "", "application/json", `{"resume_token":"`+resume+`"}`))
		auth, _ := tok.IssueAuth(id, testChannel)
		note("send", name, f.raw(t, "chatplugin.send", auth, "application/json", `{"message":{"text":"x"}}`))
		note("resumeToken", name, f.raw(t, "chatplugin.resumeToken", auth, "application/json", `{}`))
		note("system resumeToken", name, f.raw(t, "chatplugin.resumeToken", testSystem, "application/json", `{"channel_id":"`+testChannel+`","conversation_id":"`+id+`"}`))
	}
	want := map[string]int{"authenticate with a resume token": 401, "send": 401, "resumeToken": 401, "system resumeToken": 404}
	for kind, answers := range seen {
		if len(answers) != 1 {
			t.Errorf("%s: %d different answers: %v", kind, len(answers), answers)
		}
		for a := range answers {
			if a.Status != want[kind] {
				t.Errorf("%s: status %d, want %d", kind, a.Status, want[kind])
			}
		}
	}
	// The caller's own conversation is still served.
	if a := f.raw(t, "chatplugin.resumeToken", testSystem, "application/json", `{"channel_id":"`+testChannel+`","conversation_id":"`+mine.ID+`"}`); a.Status != 200 {
		t.Errorf("own conversation: %d", a.Status)
	}
}
