package nexmo_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/httpapi/nexmo"
	"github.com/parley-chat/chat/storage/memory"
)

// Example mounts the Nexmo Conversation API on a mux, creates a user and a conversation with
// an admin token, and sends a text as the user with the user's own token.
func Example() {
	ctx := context.Background()
	store := memory.New()
	defer store.Close()
	engine, err := chat.Open(ctx, store)
	if err != nil {
		panic(err)
	}
	defer engine.Close()

	// The application's key pair: the private key signs tokens (normally in the
	// application's backend), the public key is configured here.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	const appID = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
	api, err := nexmo.New(engine, nexmo.Config{
		BaseURL: "https://chat.example.com/beta",
		Keys:    map[string]*rsa.PublicKey{appID: &key.PublicKey},
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/beta/", api)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	admin, _ := nexmo.NewToken(key, appID, "", time.Hour)
	call := func(token, method, path, body string) map[string]any {
		req, _ := http.NewRequest(method, srv.URL+"/beta"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		fmt.Println(method, strings.SplitN(path, "/", 3)[1], resp.StatusCode)
		return out
	}

	user := call(admin, "POST", "/users", `{"name":"alice","display_name":"Alice"}`)
	conv := call(admin, "POST", "/conversations", `{"name":"support","display_name":"Support"}`)
	member := call(admin, "POST", "/conversations/"+conv["id"].(string)+"/members",
		`{"action":"join","user_id":"`+user["id"].(string)+`","channel":{"type":"app"}}`)

	alice, _ := nexmo.NewToken(key, appID, "alice", 15*time.Minute)
	ev := call(alice, "POST", "/conversations/"+conv["id"].(string)+"/events",
		`{"type":"text","from":"`+member["id"].(string)+`","body":{"text":"Hello!"}}`)
	fmt.Println("event id:", ev["id"])

	// The text is an engine message, which every other surface shows.
	room, _ := engine.RoomByName(ctx, "support")
	msg, _ := engine.Event(ctx, room.ID, 2)
	fmt.Println(msg.Type, msg.Text)
	// Output:
	// POST users 200
	// POST conversations 200
	// POST conversations 201
	// POST conversations 201
	// event id: 2
	// message Hello!
}
