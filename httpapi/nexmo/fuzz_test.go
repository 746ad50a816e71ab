package nexmo

import (
	"bytes"
	"crypto/rsa"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/parley-chat/chat"
)

func FuzzParseConversation(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"name":"a","display_name":"b","image_url":"c"}`,
		`{"numbers":{"sms":"44"},"properties":{"ttl":60,"video":false}}`, `{"properties":{"ttl":1.5}}`,
		`{"properties":{"ttl":null}}`, `{"properties":{"ttl":-1}}`, `{"properties":[]}`, `{"name":1}`,
		`[1]`, `{"a":1} x`, `{"properties":{"ttl":1e400}}`, "{\"name\":\"\xff\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := parseConversation(b)
		if err != nil {
			checkValidation(t, err)
			return
		}
		if in.TTL != nil && (*in.TTL < 0 || *in.TTL > maxTTLSeconds*time.Second) {
			t.Fatalf("ttl %v out of range", *in.TTL)
		}
		if in.Numbers != nil && (!json.Valid(in.Numbers) || in.Numbers[0] != '{') {
			t.Fatalf("numbers %q", in.Numbers)
		}
		if in.HasProps {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(in.Properties, &m); err != nil {
				t.Fatalf("properties %q: %v", in.Properties, err)
			}
			if _, ok := m["ttl"]; ok {
				t.Fatal("ttl kept in properties")
			}
		}
	})
}

func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{`{"type":"text","from":"MEM-x","body":{"text":"hi"}}`,
		`{"type":"text:seen","from":"MEM-x","body":{"event_id":"3"}}`, `{"type":"event:delete","body":{"event_id":3}}`,
		`{"type":"image","body":{"representations":{"original":{"url":"u"}}}}`, `{"type":"image","body":{"image":{"url":"u"}}}`,
		`{"type":"text:typing:on","body":{"text":"pre"}}`, `{"type":"custom:x","body":{"a":[1,2]}}`,
		`{"type":""}`, `{"type":"text","body":"x"}`, `{"type":"text:seen","body":{"event_id":-1}}`,
		`{"type":"text:seen","body":{"event_id":18446744073709551616}}`, `{"type":"text:seen","body":{"event_id":1.5}}`, `{}`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := parseEvent(b)
		if err != nil {
			checkValidation(t, err)
			return
		}
		if in.Type == "" {
			t.Fatal("empty type accepted")
		}
		if in.Body != nil && (!json.Valid(in.Body) || in.Body[0] != '{') {
			t.Fatalf("body %q", in.Body)
		}
		if _, err := textBody(in.Body); err != nil {
			checkValidation(t, err)
		}
		if n, err := eventIDBody(in.Body); err != nil {
			checkValidation(t, err)
		} else if n == 0 {
			t.Fatal("event id 0 accepted")
		}
		if _, err := typingBody(in.Body); err != nil {
			checkValidation(t, err)
		}
		_ = imageURL(in.Body)
		_ = isImageBody(in.Body)
	})
}

func FuzzParseMember(f *testing.F) {
	for _, s := range []string{`{"action":"join","user_id":"USR-x","channel":{"type":"app"}}`,
		`{"action":"invite","user_name":"a","channel":{"type":"app"},"member_id_inviting":"MEM-y","media":{}}`,
		`{"user_id":"u","channel":{"type":"phone"}}`, `{"user_id":"u","channel":{}}`, `{"action":"kick"}`,
		`{"action":"join"}`, `{"action":"join","channel":null}`, `{}`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := parseMember(b)
		if err != nil {
			checkValidation(t, err)
		} else if (in.Action != "join" && in.Action != "invite") || (in.UserID == "" && in.UserName == "") {
			t.Fatalf("accepted %+v", in)
		}
		if err := parseMemberUpdate(b); err != nil {
			checkValidation(t, err)
		}
	})
}

func FuzzParseUser(f *testing.F) {
	for _, s := range []string{`{"name":"a","display_name":"A","image_url":"u","channels":{"type":"app"}}`,
		`{"name":""}`, `{"name":null}`, `{"channels":[]}`, `{}`, ``, `{"name":"a"}}`} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, b []byte, create bool) {
		in, err := parseUser(b, create)
		if err != nil {
			checkValidation(t, err)
			return
		}
		if create && deref(in.Name) == "" {
			t.Fatal("a user without a name accepted")
		}
		if in.Channels != nil && !json.Valid(in.Channels) {
			t.Fatalf("channels %q", in.Channels)
		}
	})
}

func FuzzParseListQuery(f *testing.F) {
	for _, s := range []string{"", "page_size=10&record_index=5&order=DESC", "page_size=0", "page_size=101",
		"record_index=-1", "order=Asc", "date_start=2018-01-01+10:00:00&date_end=2018-01-01+12:00:00",
		"date_start=2018-01-01T10:00:00Z", "date_end=2018-01-01", "page_size=1e2", "start_id=3&end_id=9&event_type=text"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		l, err := parseListQuery(q)
		if err == nil {
			if l.PageSize < 1 || l.PageSize > maxPageSize || l.RecordIndex < 0 {
				t.Fatalf("accepted %+v", l)
			}
			if err := l.filter().Validate(); err != nil {
				t.Fatalf("filter of an accepted query: %v", err)
			}
			// The self link's query parses back to the same list.
			q2, err := url.ParseQuery(l.query(l.RecordIndex))
			if err != nil {
				t.Fatal(err)
			}
			l2, err := parseListQuery(q2)
			if err != nil || l2.PageSize != l.PageSize || l2.RecordIndex != l.RecordIndex || l2.Desc != l.Desc ||
				!l2.Start.Equal(l.Start) || !l2.End.Equal(l.End) {
				t.Fatalf("self link %q does not round-trip: %+v vs %+v (%v)", l.query(l.RecordIndex), l2, l, err)
			}
		} else {
			checkValidation(t, err)
		}
		if e, err := parseEventsQuery(q); err == nil {
			if e.PageSize < 1 || e.PageSize > maxEventsPage || (e.EndID != 0 && e.EndID < e.StartID) {
				t.Fatalf("accepted %+v", e)
			}
		} else {
			checkValidation(t, err)
		}
	})
}

func FuzzParseID(f *testing.F) {
	f.Add("CON-0192f3a4-5b6c-7d8e-9f00-112233445566")
	f.Add("MEM-01JD8X3QZ8Y9ZJ1K2M3N4P5Q6R")
	f.Add("USR-63f61863-4a51-4f6b-86e1-46edebio0391")
	f.Add("CON-00000000-0000-0000-0000-000000000000")
	f.Add("12")
	f.Add("+1")
	f.Fuzz(func(t *testing.T, s string) {
		for _, p := range []string{prefixConversation, prefixMember, prefixUser} {
			id, ok := parseID(p, s)
			if !ok {
				continue
			}
			if id.IsZero() {
				t.Fatal("zero id accepted")
			}
			back, ok := parseID(p, p+id.UUID())
			if !ok || back != id {
				t.Fatalf("%q: rendered id does not parse back", s)
			}
		}
		if n, ok := parseEventID(s); ok && (n == 0 || !strings.HasSuffix(s, string(rune('0'+n%10)))) {
			t.Fatalf("event id %q parsed as %d", s, n)
		}
	})
}

// FuzzVerify feeds arbitrary tokens to the JWT check: it must never panic and never accept a
// token that is not signed by the configured key.
func FuzzVerify(f *testing.F) {
	key, wrong := keys(f)
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	good := func(k any, m jwt.SigningMethod, c Claims) string {
		s, _ := jwt.NewWithClaims(m, c).SignedString(k)
		return s
	}
	c := Claims{ApplicationID: testApp, RegisteredClaims: jwt.RegisteredClaims{IssuedAt: jwt.NewNumericDate(now)}}
	f.Add(good(key, jwt.SigningMethodRS256, c))
	f.Add(good(wrong, jwt.SigningMethodRS256, c))
	f.Add(good([]byte("secret"), jwt.SigningMethodHS256, c))
	f.Add("e30.e30.")
	f.Add("a.b.c")
	h := &Handler{cfg: Config{Keys: map[string]*rsa.PublicKey{testApp: &key.PublicKey}, Now: func() time.Time { return now }}}
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := h.verify(t.Context(), raw)
		if err != nil {
			if ae := errorFor(err); ae.status != 401 {
				t.Fatalf("status %d", ae.status)
			}
			return
		}
		// Accepted: it must verify with the configured key as RS256.
		if _, err := jwt.Parse(raw, func(*jwt.Token) (any, error) { return &key.PublicKey, nil },
			jwt.WithValidMethods([]string{"RS256"}), jwt.WithoutClaimsValidation()); err != nil {
			t.Fatalf("accepted a token the key does not verify: %v", err)
		}
		if c.IssuedAt == nil || c.ExpiresAt == nil || c.ExpiresAt.Sub(c.IssuedAt.Time) > maxTokenLifetime {
			t.Fatalf("accepted claims %+v", c)
		}
	})
}

// FuzzHandler sends arbitrary requests through the whole handler with an admin token: no
// panic, no 500, always a JSON answer in the vendor's format.
func FuzzHandler(f *testing.F) {
	v := newEnv(f, stores[0])
	cid := v.conversation("fz")
	uid := v.user("fz")
	mid := v.join(cid, uid)
	v.user("fz-stranger")
	stranger := v.token("fz-stranger")
	missing := "CON-00000000-0000-0000-0000-000000000001"
	for _, s := range []struct{ m, p, b string }{
		{"POST", "/conversations/" + cid + "/events", `{"type":"text","from":"` + mid + `","body":{"text":"x"}}`},
		{"POST", "/conversations/" + cid + "/events", `{"type":"text:seen","from":"` + mid + `","body":{"event_id":1}}`},
		{"POST", "/conversations/" + cid + "/members", `{"action":"invite","user_id":"` + uid + `","channel":{"type":"app"}}`},
		{"PUT", "/conversations/" + cid + "/members/" + mid, `{"action":"join"}`},
		{"GET", "/conversations?page_size=5&order=desc", ``},
		{"PUT", "/conversations/" + cid, `{"properties":{"ttl":5}}`},
		{"POST", "/users", `{"name":"n"}`},
		{"DELETE", "/legs/x", ``},
	} {
		f.Add(uint8(slices.Index(fuzzMethods, s.m)), s.p, []byte(s.b))
	}
	f.Fuzz(func(t *testing.T, mi uint8, path string, body []byte) {
		method := fuzzMethods[int(mi)%len(fuzzMethods)]
		for _, c := range []byte(path) {
			if c <= ' ' || c >= 0x7f || c == '#' || c == '%' || c == '?' {
				return // not a request target httptest can parse
			}
		}
		if method == "DELETE" && (strings.HasPrefix(path, "/conversations/"+cid) && strings.Count(path, "/") <= 2 || strings.HasPrefix(path, "/users/"+uid)) {
			return // keep the seeds' objects alive
		}
		w := *v // the env of this input: its helpers report to t
		w.t = t
		r := w.do(method, path, v.admin, bytes.Clone(body))
		if r.Status >= 500 {
			t.Fatalf("%s %s %q: %d %s", method, path, body, r.Status, r.Raw)
		}
		if r.Status >= 400 && r.str("code") == "" {
			t.Fatalf("error without code: %s", r.Raw)
		}
		// A user not in the conversation learns nothing from any request under it: the
		// answer is the one for a conversation that does not exist.
		if rest, ok := strings.CutPrefix(path, "/conversations/"+cid); ok && (rest == "" || rest[0] == '/') {
			got := w.do(method, path, stranger, bytes.Clone(body))
			want := w.do(method, "/conversations/"+missing+rest, stranger, bytes.Clone(body))
			if got.Status != want.Status || string(got.Raw) != string(want.Raw) {
				t.Fatalf("%s %s %q: %d %s, for a missing conversation %d %s", method, path, body, got.Status, got.Raw, want.Status, want.Raw)
			}
		}
	})
}

var fuzzMethods = []string{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"}

func checkValidation(t *testing.T, err error) {
	t.Helper()
	ae := errorFor(err)
	if ae.Code != codeValidation || len(ae.Detail) != 1 {
		t.Fatalf("parse error %v is not one validation failure", err)
	}
}

// FuzzDecodeObject feeds arbitrary bodies to the JSON body decoder: it never panics, refuses
// with one validation failure whose field is "body" or a field-like top-level key, and never
// accepts what could not be stored as sent (chat.CheckJSON: invalid UTF-8, NULs, nesting past
// chat.MaxJSONDepth).
func FuzzDecodeObject(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"name":"a","n":1,"body":{"x":[1,{"y":null}]}}`, "{\"name\":\"\xff\"}",
		`{"name":"a\u0000"}`, "{\"name\":\"a\x00\"}", `{"body":` + strings.Repeat(`[`, 70) + strings.Repeat(`]`, 70) + `}`,
		"{\"na\xffme\":1}", `{"n":"x"}`, `{"N":1,"n":2}`, `[]`, `{} {}`, `{"a":1`, `{"\u0000":1}`, `{"body":"\ud800"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var dst struct {
			Name *string         `json:"name"`
			N    int             `json:"n"`
			Body json.RawMessage `json:"body"`
		}
		err := decodeObject(b, &dst, true)
		if err != nil {
			checkValidation(t, err)
			for field := range errorFor(err).Detail {
				if field != "body" && !isFieldName(field) {
					t.Fatalf("refusal names %q", field)
				}
			}
			return
		}
		if tb := bytes.TrimSpace(b); len(tb) > 0 {
			if err := chat.CheckJSON("body", tb); err != nil {
				t.Fatalf("accepted %q: %v", b, err)
			}
		}
		if field, _ := refusedField(b); field != "" {
			t.Fatalf("accepted %q, yet %q is to blame", b, field)
		}
	})
}
