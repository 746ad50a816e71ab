package bezlimit

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/parley-chat/chat"
)

// FuzzServerBody: whatever body a server-to-server endpoint gets, it answers without a 500,
// in the package's error format when it refuses; and whatever it stores passes the engine's
// checks for JSON (the chat objects it keeps) and strings.
func FuzzServerBody(f *testing.F) {
	v := newEnv(f, envOpt{noLeakCheck: true})
	room := v.newChat(1, 2)
	u := room.UUID()
	paths := []string{pathMessage, pathUpdateChat, pathUpdateOps, pathGlobal, pathNotifications}
	for _, s := range []string{
		`{"text":"x","chat":{"uuid":"` + u + `"}}`,
		`{"uuid":"` + u + `","status":"a","owner_user":{"id":1}}`,
		`[{"id":2,"firstname":"x"}]`,
		`{"queue":1}`,
		`{"chat":{"uuid":"` + u + `"},"text":"x"}`,
		"{\"text\":\"\xff\"}", `{"text":"\u0000"}`, `{`, `[[[[]]]]`, ``, `{"uuid":"` + u + `","w":{"a":"\u0000"}}`,
	} {
		for i := range paths {
			f.Add(uint8(i), "application/json", []byte(s))
		}
	}
	f.Add(uint8(0), "text/plain", []byte(`{}`))
	f.Add(uint8(0), "", []byte(`{}`))
	f.Fuzz(func(t *testing.T, which uint8, ct string, body []byte) {
		// Keep the fuzzed chats in the one room: only its uuid is valid.
		path := paths[int(which)%len(paths)]
		r := httptest.NewRequest("POST", path, strings.NewReader(string(body)))
		r.Header.Set(apiTokenHeader, testAPIToken)
		if ct != "" {
			r.Header["Content-Type"] = []string{ct}
		}
		w := httptest.NewRecorder()
		v.h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%s %q: %d %s", path, body, w.Code, w.Body)
		}
		if w.Code >= 300 {
			var e struct {
				Error wireError `json:"error"`
			}
			if json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Error.Code != w.Code || e.Error.Message == "" {
				t.Fatalf("%s %q: %d %s, not in the error format", path, body, w.Code, w.Body)
			}
			return
		}
		rs, err := v.e.Rooms(context.Background(), chat.ListFilter{Limit: 100, Desc: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if s := r.Attributes[attrChat]; s != "" {
				if err := chat.CheckJSON("chat", []byte(s)); err != nil {
					t.Fatalf("%s %q stored the chat %q: %v", path, body, s, err)
				}
			}
		}
	})
}
