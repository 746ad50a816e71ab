package nexmo

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/parley-chat/chat"
)

// BenchmarkCreateText measures POST .../events with a text, token check included.
func BenchmarkCreateText(b *testing.B) {
	v := newEnv(b, stores[0])
	c := v.chatRoom("bt")
	tok := v.token("bt-alice")
	body := fmt.Sprintf(`{"type":"text","from":%q,"body":{"text":"hello"}}`, c.aliceM)
	path := "/beta/conversations/" + c.cid + "/events"
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		v.h.ServeHTTP(w, req)
		if w.Code != 201 {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}

// BenchmarkListEvents measures GET .../events of 100 texts.
func BenchmarkListEvents(b *testing.B) {
	v := newEnv(b, stores[0])
	c := v.chatRoom("bl")
	for i := range 98 {
		if _, err := v.e.Send(context.Background(), c.room, engineID(b, "USR-", c.alice), chat.NewMessage{Text: fmt.Sprint(i)}); err != nil {
			b.Fatal(err)
		}
	}
	path := "/beta/conversations/" + c.cid + "/events?page_size=100"
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer "+v.admin)
		w := httptest.NewRecorder()
		v.h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

// BenchmarkVerify measures the token check alone (RS256, 2048-bit key).
func BenchmarkVerify(b *testing.B) {
	v := newEnv(b, stores[0])
	for b.Loop() {
		if _, err := v.h.verify(context.Background(), v.admin); err != nil {
			b.Fatal(err)
		}
	}
}
