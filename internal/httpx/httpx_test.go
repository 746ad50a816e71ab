package httpx

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/parley-chat/chat"
)

func TestReadBody(t *testing.T) {
	cases := []struct {
		name         string
		ct, body     string
		accept       []string
		allowMissing bool
		want         error
	}{
		{"json", "application/json", `{}`, JSON, false, nil},
		{"json with charset", "application/json; charset=utf-8", `{}`, JSON, false, nil},
		{"+json", "application/vnd.x+json", `{}`, JSON, false, nil},
		{"form to json", "application/x-www-form-urlencoded", `a=b`, JSON, false, ErrMediaType},
		{"text to json", "text/plain", `{}`, JSON, true, ErrMediaType},
		{"missing, not allowed", "", `{}`, JSON, false, ErrMediaType},
		{"missing, allowed", "", `{}`, JSON, true, nil},
		{"garbage type", ";;;", `{}`, JSON, true, ErrMediaType},
		{"any type", "text/plain", `x`, nil, false, nil},
		{"too large", "application/json", strings.Repeat("x", 11), JSON, false, ErrTooLarge},
		{"at the limit", "application/json", strings.Repeat("x", 10), JSON, false, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(c.body))
			if c.ct != "" {
				r.Header.Set("Content-Type", c.ct)
			}
			b, err := ReadBody(httptest.NewRecorder(), r, 10, c.accept, c.allowMissing)
			if !errors.Is(err, c.want) || (c.want == nil && string(b) != c.body) {
				t.Fatalf("ReadBody = %q, %v; want %v", b, err, c.want)
			}
		})
	}
	// A body that lies about its length is cut at the limit too.
	r := httptest.NewRequest("POST", "/", strings.NewReader(strings.Repeat("x", 100)))
	r.ContentLength = -1
	if _, err := ReadBody(httptest.NewRecorder(), r, 10, nil, true); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("chunked body: %v", err)
	}
}

func TestDecodeJSON(t *testing.T) {
	type msg struct {
		Text string `json:"text"`
		N    int    `json:"n"`
	}
	cases := []struct {
		body string
		ok   bool
		msg  string
	}{
		{`{"text":"hi","n":1}`, true, ""},
		{` {"text":"hi"} `, true, ""},
		{"{\"text\":\"a\xffb\"}", false, "UTF-8"}, // json.Unmarshal would store "a\uFFFDb"
		{`{"text":"a\u0000b"}`, false, "NUL"},
		{`{"n":"x"}`, false, "n must be of type int"},
		{`{"text":"hi"} {}`, false, "not valid JSON"},
		{``, false, "empty"},
		{`{`, false, "JSON"},
		{strings.Repeat(`{"a":`, 70) + `1` + strings.Repeat(`}`, 70), false, "deeper"},
	}
	for _, c := range cases {
		var m msg
		err := DecodeJSON([]byte(c.body), &m)
		if c.ok != (err == nil) {
			t.Errorf("DecodeJSON(%.30q) = %v, want ok=%v", c.body, err, c.ok)
			continue
		}
		if err != nil && (!errors.Is(err, ErrMalformed) || !errors.Is(err, chat.ErrInvalid) || !strings.Contains(err.Error(), c.msg)) {
			t.Errorf("DecodeJSON(%.30q) = %v, want ErrMalformed saying %q", c.body, err, c.msg)
		}
	}
}

func TestCheckText(t *testing.T) {
	for s, ok := range map[string]bool{"": true, "héllo": true, "a\x00b": false, "a\xffb": false} {
		if err := CheckText("f", s); (err == nil) != ok || (err != nil && !errors.Is(err, ErrMalformed)) {
			t.Errorf("CheckText(%q) = %v", s, err)
		}
	}
}

func TestBearer(t *testing.T) {
	for in, want := range map[string]string{
		"Bearer abc": "abc", "bearer abc": "abc", "BEARER  abc ": "abc",
		"Basic abc": "", "Bearer": "", "Bearer ": "", "": "", "abc": "",
	} {
		got, ok := Bearer(in)
		if got != want || ok != (want != "") {
			t.Errorf("Bearer(%q) = %q, %v", in, got, ok)
		}
	}
}

func TestSecrets(t *testing.T) {
	s := NewSecrets(map[string]int{"key-one": 1, "key-two": 2, "": 3})
	for in, want := range map[string]int{"key-one": 1, "key-two": 2, "": 0, "key-on": 0, "key-one ": 0} {
		got, ok := s.Lookup(in)
		if got != want || ok != (want != 0) {
			t.Errorf("Lookup(%q) = %d, %v", in, got, ok)
		}
	}
	if Equal("", "") || !Equal("a", "a") || Equal("a", "b") {
		t.Error("Equal")
	}
	var none *Secrets[int]
	if _, ok := none.Lookup("x"); ok {
		t.Error("nil table matched")
	}
}

func TestWriteJSON(t *testing.T) {
	w := httptest.NewRecorder()
	if err := WriteJSON(w, 201, map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
	if w.Code != 201 || w.Body.String() != "{\"a\":1}\n" || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("%d %q %v", w.Code, w.Body.String(), w.Header())
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"text":"hi"}`, `[1,2]`, `"\u0000"`, "\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v any
		if err := DecodeJSON(b, &v); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error of another kind: %v", err)
		}
	})
}
