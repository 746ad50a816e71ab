package bezlimit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/coder/websocket"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/storage/memory"
	"github.com/parley-chat/chat/wsapi/bezlimit"
)

// A visitor connects to a chat and sends a message; the server answers with message_added.
func ExampleNew() {
	ctx := context.Background()
	store := memory.New()
	defer store.Close()
	engine, err := chat.Open(ctx, store)
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Close()

	h := bezlimit.New(engine, bezlimit.Config{
		// The embedding program resolves client tokens; here "visitor-token" is user 42.
		Authenticate: func(_ context.Context, token string) (bezlimit.Identity, error) {
			if token != "visitor-token" {
				return bezlimit.Identity{}, errors.New("unknown token")
			}
			return bezlimit.Identity{User: bezlimit.User{ID: 42, Role: "client", FirstName: "Ada"}}, nil
		},
		APIToken:       "server-secret",
		OriginPatterns: []string{"*.example.com"},
	})
	defer h.Close()
	srv := httptest.NewServer(h)
	defer srv.Close()

	// The back end opens a chat for user 42 (server-to-server, with the Api-Token).
	req, _ := http.NewRequest("POST", srv.URL+"/update/chat",
		strings.NewReader(`{"status":"active","owner_user":{"id":42,"role":"client","firstname":"Ada"}}`))
	req.Header.Set("Api-Token", "server-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	var created struct {
		Chat struct {
			UUID string `json:"uuid"`
		} `json:"chat"`
	}
	json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()

	// The visitor's widget connects and sends a message.
	ws := "ws" + strings.TrimPrefix(srv.URL, "http")
	c, _, err := websocket.Dial(ctx, ws+"/chat?chat="+created.Chat.UUID+"&token=visitor-token", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseNow()
	c.Write(ctx, websocket.MessageText, []byte(`{"type":"send_message","data":{"text":"Hello!","attachments":[]}}`))

	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			log.Fatal(err)
		}
		var f struct {
			Type string `json:"type"`
			Data struct {
				Message struct {
					ID     uint64 `json:"id"`
					Type   string `json:"type"`
					Status string `json:"status"`
					Text   string `json:"text"`
					User   struct {
						ID int64 `json:"id"`
					} `json:"user"`
				} `json:"message"`
			} `json:"data"`
		}
		json.Unmarshal(b, &f)
		if f.Type == "message_added" {
			m := f.Data.Message
			fmt.Println(f.Type, m.Type, m.Status, m.User.ID, m.Text)
			return
		}
	}
	// Output:
	// message_added standard new 42 Hello!
}
