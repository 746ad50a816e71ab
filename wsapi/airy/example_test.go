package airy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/chat"
	httpairy "github.com/parley-chat/chat/httpapi/airy"
	"github.com/parley-chat/chat/storage/memory"
	wsairy "github.com/parley-chat/chat/wsapi/airy"
)

// The REST and the STOMP handler share one Service; an agent's reply sent from Go reaches
// the visitor's STOMP subscription.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store := memory.New()
	defer store.Close()
	e, _ := chat.Open(ctx, store)
	defer e.Close()
	tokens, _ := httpairy.NewTokens(httpairy.TokenConfig{Secret: []byte("a secret of at least thirty-two bytes")})
	svc, _ := httpairy.New(httpairy.Config{Engine: e, Tokens: tokens, Channels: httpairy.Channels("web")})
	ws, _ := wsairy.New(wsairy.Config{Service: svc})
	defer ws.Close()
	mux := http.NewServeMux()
	mux.Handle("/ws.chatplugin", ws)
	mux.Handle("/", svc)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// The widget authenticates over REST...
	resp, err := http.Post(srv.URL+"/chatplugin.authenticate", "application/json", strings.NewReader(`{"channel_id":"web"}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	var auth struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&auth)
	resp.Body.Close()
	conv, _ := svc.Authorize(ctx, auth.Token)

	// ...then connects over STOMP and subscribes.
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws.chatplugin",
		&websocket.DialOptions{Subprotocols: []string{"v12.stomp", "v11.stomp", "v10.stomp"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.CloseNow()
	c.Write(ctx, websocket.MessageText, []byte("CONNECT\naccept-version:1.2\nheart-beat:0,0\nAuthorization:Bearer "+auth.Token+"\n\n\x00"))
	c.Write(ctx, websocket.MessageText, []byte("SUBSCRIBE\nid:sub-0\ndestination:/user/queue/message\nreceipt:1\n\n\x00"))
	for range 2 { // CONNECTED, RECEIPT
		_, frame, _ := c.Read(ctx)
		fmt.Println(strings.SplitN(string(frame), "\n", 2)[0])
	}

	// An agent replies from Go.
	agent, _ := e.CreateUser(ctx, chat.NewUser{DisplayName: "Agent"})
	e.Join(ctx, conv.Room, agent.ID, chat.JoinOptions{Role: chat.RoleAgent})
	e.Send(ctx, conv.Room, agent.ID, chat.NewMessage{Text: "How can I help?"})

	_, frame, _ := c.Read(ctx)
	head, body, _ := strings.Cut(string(frame), "\n\n")
	var p struct {
		Message struct {
			Content     json.RawMessage `json:"content"`
			FromContact bool            `json:"from_contact"`
		} `json:"message"`
	}
	json.Unmarshal([]byte(strings.TrimSuffix(body, "\x00")), &p)
	fmt.Println(strings.SplitN(head, "\n", 2)[0], string(p.Message.Content), p.Message.FromContact)
	// Output:
	// CONNECTED
	// RECEIPT
	// MESSAGE {"text":"How can I help?"} false
}
