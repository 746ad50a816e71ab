package airy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/chat"
	httpairy "github.com/parley-chat/chat/httpapi/airy"
	"github.com/parley-chat/chat/storage/memory"
)

// interopDir is the Node project of the interop test.
var interopDir = filepath.Join("..", "..", "interop", "airy")

// trackingListener remembers the connections it accepts so that a test can cut them all, as
// a network failure would.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

func (l *trackingListener) dropAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

// lockedBuffer is a bytes.Buffer that a process may write while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestInteropStompJS runs the widget's own client library (interop/airy/client.mjs:
// @stomp/stompjs 7.x over ws, reconnectDelay 0, heart-beats 4000/4000) against both
// handlers: it authenticates, subscribes, sends, receives an agent's reply sent from Go,
// exchanges heart-beats and answers WebSocket pings, reconnects after the server drops it
// and gets what it missed once, then resumes with a resume token. It needs node and
// `npm ci --prefix interop/airy`; without them it skips, except under CI=true, where it fails.
func TestInteropStompJS(t *testing.T) {
	need := func(msg string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: the interop test must run)")
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		need("node is not installed: the @stomp/stompjs interop test cannot run")
	}
	if _, err := os.Stat(filepath.Join(interopDir, "node_modules", "@stomp", "stompjs", "package.json")); err != nil {
		need("interop/airy/node_modules is missing: run `npm ci --prefix interop/airy`")
	}
	checkGoroutines(t)

	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	store := memory.New()
	defer store.Close()
	e, err := chat.Open(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	tokens, _ := httpairy.NewTokens(httpairy.TokenConfig{Secret: testSecret})
	svc, _ := httpairy.New(httpairy.Config{Engine: e, Tokens: tokens, Channels: httpairy.Channels(testChannel)})
	const serverHeartBeat = time.Second // negotiated with the widget's 4000: 4 s each way
	// Pings far more often than the widget's 4 s heart-beats: the ws package must answer
	// them, or the connection is closed and the heartbeats step sees it.
	h, _ := New(Config{
		Service: svc, HeartBeat: serverHeartBeat,
		PingInterval: 300 * time.Millisecond, PingTimeout: 2 * time.Second,
	})
	mux := http.NewServeMux()
	mux.Handle("/ws.chatplugin", h)
	mux.Handle("/", svc)
	srv := httptest.NewUnstartedServer(mux)
	lis := &trackingListener{Listener: srv.Listener}
	srv.Listener = lis
	srv.Start()
	defer srv.Close()
	defer h.Close()

	cmd := exec.CommandContext(ctx, node, "client.mjs")
	cmd.Dir = interopDir
	cmd.Env = append(os.Environ(),
		"PARLEY_BASE_URL="+srv.URL,
		"PARLEY_CHANNEL_ID="+testChannel,
		"RECONNECT_DELAY_MS=200",
		"HEARTBEAT_IDLE_MS=5000",
		"STEP_TIMEOUT_MS=8000",
	)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cmd.Wait(); err != nil {
			t.Errorf("node: %v\nstderr:\n%s", err, stderr.String())
		}
	}()

	var room, agent chat.ID
	reply := func(text string) {
		t.Helper()
		if _, err := e.Send(ctx, room, agent, chat.NewMessage{Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	var steps []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var ev struct {
			Event string `json:"event"`
			// error
			Message any `json:"message"`
			// echo
			ConversationID string            `json:"conversation_id"`
			ChannelID      string            `json:"channel_id"`
			Position       string            `json:"position"`
			MessageID      string            `json:"message_id"`
			Settings       map[string]int    `json:"settings"`
			Connected      map[string]string `json:"connected"`
			// agent_reply, resumed_after_drop, done
			Text        string `json:"text"`
			FromContact *bool  `json:"from_contact"`
			// heartbeats
			Pings, Pongs, Closes, Connects, Duplicates, Extra int
			// resumed
			History            []string `json:"history"`
			HistoryFromContact []bool   `json:"history_from_contact"`
			TokenChanged       bool     `json:"token_changed"`
			Echo               string   `json:"echo"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("node said %q: %v", sc.Text(), err)
		}
		t.Logf("node: %s", sc.Text())
		steps = append(steps, ev.Event)
		switch ev.Event {
		case "error":
			t.Fatalf("the node client failed: %v\nstderr:\n%s", ev.Message, stderr.String())
		case "echo":
			id, err := chat.ParseID(ev.ConversationID)
			if err != nil || ev.ChannelID != testChannel {
				t.Fatalf("echo names conversation %q of channel %q", ev.ConversationID, ev.ChannelID)
			}
			room = id
			if diff := cmp.Diff(map[string]int{"reconnectDelay": 0, "heartbeatIncoming": 4000, "heartbeatOutgoing": 4000}, ev.Settings); diff != "" {
				t.Errorf("widget settings (-want +got):\n%s", diff)
			}
			if ev.Connected["version"] != "1.2" || ev.Connected["heart-beat"] != "1000,1000" {
				t.Errorf("CONNECTED headers %v", ev.Connected)
			}
			if ev.Position == "" || ev.MessageID == "" {
				t.Errorf("MESSAGE headers missing: position %q, message-id %q", ev.Position, ev.MessageID)
			}
			u, err := e.CreateUser(ctx, chat.NewUser{DisplayName: "Agent"})
			if err != nil {
				t.Fatal(err)
			}
			agent = u.ID
			if _, err := e.Join(ctx, room, agent, chat.JoinOptions{Role: chat.RoleAgent}); err != nil {
				t.Fatal(err)
			}
			reply("agent reply 1")
		case "agent_reply":
			if ev.Text != "agent reply 1" || ev.FromContact == nil || *ev.FromContact {
				t.Errorf("agent reply: %q, from_contact %v", ev.Text, ev.FromContact)
			}
		case "heartbeats":
			if ev.Pings < 1 || ev.Pongs < 1 || ev.Closes != 0 {
				t.Errorf("after 5 s idle at 4 s heart-beats: %d sent, %d received, %d closes", ev.Pings, ev.Pongs, ev.Closes)
			}
			lis.dropAll()
			reply("agent reply 2, while the widget is away")
		case "resumed_after_drop":
			if ev.Text != "agent reply 2, while the widget is away" || ev.Connects != 2 || ev.Closes != 1 || ev.Duplicates != 0 || ev.Extra != 0 {
				t.Errorf("after the drop: %+v", ev)
			}
		case "resumed":
			want := []string{"hello from the widget", "agent reply 1", "agent reply 2, while the widget is away"}
			if diff := cmp.Diff(want, ev.History); diff != "" {
				t.Errorf("history with the resume token (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]bool{true, false, false}, ev.HistoryFromContact); diff != "" {
				t.Errorf("history from_contact (-want +got):\n%s", diff)
			}
			if !ev.TokenChanged || ev.Echo != "back again" || ev.ConversationID != room.UUID() {
				t.Errorf("resumed: %+v", ev)
			}
			reply("agent reply 3")
		case "done":
			if ev.Text != "agent reply 3" || ev.Duplicates != 0 {
				t.Errorf("done: %+v", ev)
			}
		default:
			t.Errorf("unknown step %q", ev.Event)
		}
	}
	want := []string{"echo", "agent_reply", "heartbeats", "resumed_after_drop", "resumed", "done"}
	if diff := cmp.Diff(want, steps); diff != "" {
		t.Errorf("steps (-want +got):\n%s\nstderr:\n%s", diff, stderr.String())
	}
}
