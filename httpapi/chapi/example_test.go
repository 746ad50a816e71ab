package chapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/httpapi/chapi"
	"github.com/parley-chat/chat/storage/memory"
)

// Example mounts Chapi under /chat on a mux, posts a message with an API key and lists it.
func Example() {
	ctx := context.Background()
	store := memory.New()
	defer store.Close()
	engine, _ := chat.Open(ctx, store)
	defer engine.Close()

	bot, _ := engine.CreateUser(ctx, chat.NewUser{Name: "chapi", DisplayName: "Chapi", Email: "developer@example.com"})
	h, err := chapi.New(engine, chapi.Config{Keys: map[string]chat.ID{"secret-key": bot.ID}})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/chat/", http.StripPrefix("/chat", h))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	call := func(method, path, body string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("x-api-key", "secret-key")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		fmt.Println(resp.StatusCode, strings.TrimSpace(string(b)))
	}
	call("POST", "/chat/api/chat/v1/messages/", `{"messageRaw":" Hello World! ","room":"lobby"}`)
	call("GET", "/chat/api/chat/v1/health", "")

	resp, _ := http.Get(srv.URL + "/chat/api/chat/v1/messages?room=lobby") // no key
	fmt.Println(resp.StatusCode)
	resp.Body.Close()

	room, _ := engine.RoomByName(ctx, "lobby")
	last, _ := engine.Read(ctx, room.ID, chat.ReadOptions{From: 0, Limit: 1, Backward: true})
	fmt.Printf("%s: %s\n", last[0].Type, last[0].Text)
	// Output:
	// 200 {"parsed":"Hello World!"}
	// 200 {"status":"UP"}
	// 401
	// message: Hello World!
}
