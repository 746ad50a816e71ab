package airy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/httpapi/airy"
	"github.com/parley-chat/chat/storage/memory"
)

// A visitor starts a conversation on a configured channel and sends a message.
func Example() {
	ctx := context.Background()
	store := memory.New()
	defer store.Close()
	e, _ := chat.Open(ctx, store)
	defer e.Close()
	tokens, err := airy.NewTokens(airy.TokenConfig{Secret: []byte("a secret of at least thirty-two bytes")})
	if err != nil {
		fmt.Println(err)
		return
	}
	svc, _ := airy.New(airy.Config{Engine: e, Tokens: tokens, Channels: airy.Channels("web-channel")})

	post := func(path, token, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json") // as the widget sends it
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		svc.ServeHTTP(w, r)
		return w
	}
	w := post("/chatplugin.authenticate", "", `{"channel_id":"web-channel"}`)
	var auth struct {
		Token    string            `json:"token"`
		Messages []json.RawMessage `json:"messages"`
	}
	json.Unmarshal(w.Body.Bytes(), &auth)
	fmt.Println("authenticate:", w.Code, len(auth.Messages), "messages")

	w = post("/chatplugin.send", auth.Token, `{"message":{"text":"Hello World"}}`)
	var m airy.Message
	json.Unmarshal(w.Body.Bytes(), &m)
	fmt.Println("send:", w.Code, string(m.Content), m.DeliveryState, m.FromContact)

	w = post("/chatplugin.authenticate", "", `{"channel_id":"elsewhere"}`)
	fmt.Println("unknown channel:", w.Code, strings.TrimSpace(w.Body.String()))
	// Output:
	// authenticate: 200 0 messages
	// send: 200 {"text":"Hello World"} delivered true
	// unknown channel: 404 {"message":"airy: channel \"elsewhere\": unknown channel"}
}
