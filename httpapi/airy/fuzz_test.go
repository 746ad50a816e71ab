package airy

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzNewMessage: the message parser never panics, and whatever it accepts is a message the
// engine can store: text or a JSON object body, and the content rendered from it is JSON.
func FuzzNewMessage(f *testing.F) {
	for _, s := range []string{
		`{"text":"Hello World"}`,
		`{"attachment":{"type":"image","payload":{"url":"https://example.com/a.png"}}}`,
		`{"text":"hi","postback":"x"}`,
		`{"text":5}`, `"hi"`, `null`, `{}`, `{"attachment":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		nm, err := newMessage(data)
		if err != nil {
			return
		}
		if nm.Text == "" && len(nm.Body) == 0 {
			t.Fatalf("accepted %q as an empty message", data)
		}
		if len(nm.Body) > 0 && !json.Valid(nm.Body) {
			t.Fatalf("body %q is not JSON", nm.Body)
		}
		if !utf8.ValidString(nm.Text) {
			t.Fatalf("text %q is not UTF-8", nm.Text)
		}
		if c := content(nm.Text, nm.Body); !json.Valid(c) {
			t.Fatalf("content %q is not JSON", c)
		}
	})
}
