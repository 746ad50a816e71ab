package wsconn_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/chat/internal/wsconn"
)

// An echo server whose connections hold 512-byte buffers, with a write deadline per write.
func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, conn, err := wsconn.Accept(w, r, nil, wsconn.Buffers{Read: 512, Write: 512})
		if err != nil {
			return // Accept has answered
		}
		defer ws.CloseNow()
		for {
			typ, msg, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			err = ws.Write(context.Background(), typ, append([]byte("echo: "), msg...))
			conn.SetWriteDeadline(time.Time{})
			if err != nil {
				return
			}
		}
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.CloseNow()
	c.Write(ctx, websocket.MessageText, []byte("hello"))
	_, msg, _ := c.Read(ctx)
	fmt.Println(string(msg))
	c.Close(websocket.StatusNormalClosure, "")
	// Output: echo: hello
}
