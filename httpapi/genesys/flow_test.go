package genesys_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/httpapi/chapi"
	"github.com/parley-chat/chat/httpapi/genesys"
	"github.com/parley-chat/chat/internal/testkit"
	"github.com/parley-chat/chat/storage/bolt"
)

// TestClientLoop is a web client's life: requestChat, refresh polling with nextPosition while
// an agent joins from Go and replies (concurrently), typing, a read receipt, disconnect. The
// client must see every event it can see exactly once, in order.
func TestClientLoop(t *testing.T) {
	forEachStore(t, func(t *testing.T, mk storeFactory) {
		ctx := context.Background()
		ev := newEnv(t, mk)
		c := ev.requestChat(url.Values{"firstName": {"Ann"}, "lastName": {"Lee"}, "subject": {"billing"}})
		const replies = 25
		agentDone := make(chan error, 1)
		go func() {
			agentDone <- func() error {
				agent, err := ev.e.CreateUser(ctx, chat.NewUser{DisplayName: "Agent Smith"})
				if err != nil {
					return err
				}
				if _, err := ev.e.Join(ctx, c.room(), agent.ID, chat.JoinOptions{Role: chat.RoleAgent}); err != nil {
					return err
				}
				for i := range replies {
					if _, err := ev.e.StartTyping(ctx, c.room(), agent.ID, fmt.Sprintf("reply %d", i)); err != nil {
						return err
					}
					last, err := ev.e.Send(ctx, c.room(), agent.ID, chat.NewMessage{Text: fmt.Sprintf("reply %d", i)})
					if err != nil {
						return err
					}
					if _, err := ev.e.MarkRead(ctx, c.room(), agent.ID, last.Pos); err != nil {
						return err
					}
				}
				return nil
			}()
		}()
		agentMessages := 0
		for i := 0; agentMessages < replies; i++ {
			r := c.refresh()
			for _, m := range r.Messages {
				if m.Type == "Message" && m.From.Type == "Agent" {
					agentMessages++
				}
			}
			switch i % 4 {
			case 0:
				c.do("startTyping", "message", "typing...")
			case 1:
				c.do("send", "message", fmt.Sprintf("question %d", i), "messageType", "text")
			case 2:
				if len(c.seen) > 0 {
					c.do("readReceipt", "transcriptPosition", fmt.Sprint(c.seen[len(c.seen)-1].Index))
				}
			case 3:
				c.do("stopTyping")
			}
			if i > 10000 {
				t.Fatal("the client never saw the agent's replies")
			}
		}
		if err := <-agentDone; err != nil {
			t.Fatal(err)
		}
		c.refresh()
		res, r := c.do("disconnect", "transcriptPosition", fmt.Sprint(c.next))
		if res.status != 200 || r.StatusCode != 0 || !*r.ChatEnded {
			t.Fatalf("disconnect: %s", res.body)
		}
		c.seen = append(c.seen, r.Messages...)
		if last := c.seen[len(c.seen)-1]; last.Type != "ParticipantLeft" || last.From.Type != "Client" {
			t.Errorf("last event %+v", last)
		}

		// Exactly once, in order: indexes strictly increase, and the events are the transcript.
		for i := 1; i < len(c.seen); i++ {
			if c.seen[i].Index <= c.seen[i-1].Index {
				t.Fatalf("index %d after %d", c.seen[i].Index, c.seen[i-1].Index)
			}
		}
		all, next, err := ev.h.Transcript(ctx, c.room(), c.user(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(all, c.seen); diff != "" {
			t.Errorf("seen != transcript (-transcript +seen):\n%s", diff)
		}
		if next != must(ev.e.Room(ctx, c.room())).LastPos+1 {
			t.Errorf("Transcript next %d", next)
		}
		// The agent appears as an Agent with its own participantId, named by its user.
		types := map[string]int{}
		for _, m := range c.seen {
			types[m.Type+"/"+m.From.Type]++
			if m.From.Type == "Agent" && (m.From.ParticipantID != 2 || m.From.Nickname != "Agent Smith") {
				t.Errorf("agent party %+v", m.From)
			}
			if m.From.Type == "Client" && (m.From.ParticipantID != 1 || m.From.Nickname != "Ann Lee") {
				t.Errorf("client party %+v", m.From)
			}
		}
		if types["Message/Agent"] != replies || types["ParticipantJoined/Agent"] != 1 || types["TypingStarted/Agent"] != replies ||
			types["ParticipantJoined/Client"] != 1 || types["ParticipantLeft/Client"] != 1 || types["TypingStarted/Client"] == 0 {
			t.Errorf("event counts %v", types)
		}
	})
}

func TestCrossSurface(t *testing.T) {
	forEachStore(t, func(t *testing.T, mk storeFactory) {
		ctx := context.Background()
		ev := newEnv(t, mk)
		bot := must(ev.e.CreateUser(ctx, chat.NewUser{Name: "chapi", DisplayName: "Chapi Bot"}))
		// The program lets Chapi reach Genesys chats by chatId (see chapi.Config.MayUse).
		genesysChats := func(ctx context.Context, u chat.User, r chat.Room) bool {
			s, ok := genesys.Service(r)
			return ok && s == service
		}
		ch := must(chapi.New(ev.e, chapi.Config{Keys: map[string]chat.ID{"key": bot.ID}, MayUse: genesysChats}))
		chapiDo := func(method, target, body string) (int, string) {
			r := httptest.NewRequest(method, target, strings.NewReader(body))
			r.Header.Set("x-api-key", "key")
			r.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			ch.ServeHTTP(w, r)
			return w.Code, w.Body.String()
		}
		c := ev.requestChat(url.Values{"nickname": {"Ann"}})
		c.refresh()

		// Chapi → Genesys: the Chapi room is the chatId.
		if code, body := chapiDo("POST", "/api/chat/v1/messages/", `{"messageRaw":"hello from chapi","room":"`+c.chatID+`"}`); code != 200 {
			t.Fatalf("chapi send: %d %s", code, body)
		}
		r := c.refresh()
		want := []msg{{2, "ParticipantJoined", "", "Chapi Bot/2/External", ""}, {3, "Message", "hello from chapi", "Chapi Bot/2/External", ""}}
		if diff := cmp.Diff(want, compact(r.Messages)); diff != "" {
			t.Errorf("Genesys sees (-want +got):\n%s", diff)
		}

		// Genesys → Chapi.
		c.do("send", "message", "hi from genesys")
		code, body := chapiDo("GET", "/api/chat/v1/messages?room="+c.chatID, "")
		var ms []chapi.Message
		if err := json.Unmarshal([]byte(body), &ms); err != nil || code != 200 {
			t.Fatalf("chapi list: %d %s", code, body)
		}
		var got []string
		for _, m := range ms {
			got = append(got, m.AuthorUser.Name+": "+m.Parsed)
		}
		if diff := cmp.Diff([]string{"Ann: hi from genesys", "Chapi Bot: hello from chapi"}, got); diff != "" {
			t.Errorf("Chapi sees (-want +got):\n%s", diff)
		}

		// Without the program's hook, Chapi cannot reach the chat by its chatId: GET answers
		// as for a chat that does not exist, POST goes to a new Chapi room of that name.
		withHook := ch
		ch = must(chapi.New(ev.e, chapi.Config{Keys: map[string]chat.ID{"key": bot.ID}}))
		d := ev.requestChat(url.Values{"nickname": {"Dee"}})
		if code, body := chapiDo("GET", "/api/chat/v1/messages?room="+d.chatID, ""); code != 404 {
			t.Errorf("chapi read without MayUse: %d %s", code, body)
		}
		if code, body := chapiDo("POST", "/api/chat/v1/messages/", `{"messageRaw":"x","room":"`+d.chatID+`"}`); code != 200 {
			t.Errorf("chapi post without MayUse: %d %s", code, body)
		}
		if r := d.refresh(); len(r.Messages) != 0 || must(ev.e.Room(ctx, d.room())).LastPos != 1 {
			t.Errorf("chapi reached the chat without MayUse: %+v", r.Messages)
		}
		ch = withHook
		if s, ok := genesys.Service(must(ev.e.Room(ctx, d.room()))); !ok || s != service {
			t.Errorf("Service %q %v", s, ok)
		}
		if _, ok := genesys.Service(must(ev.e.RoomByName(ctx, d.chatID))); ok {
			t.Error("Service of a Chapi room")
		}

		// A private Genesys chat is closed to Chapi.
		ev2 := newEnv(t, mk, func(c *genesys.Config) { c.PrivateRooms = true })
		bot2 := must(ev2.e.CreateUser(ctx, chat.NewUser{Name: "chapi"}))
		ch = must(chapi.New(ev2.e, chapi.Config{Keys: map[string]chat.ID{"key": bot2.ID}, MayUse: genesysChats}))
		p := ev2.requestChat(url.Values{"nickname": {"Ann"}})
		if code, body := chapiDo("POST", "/api/chat/v1/messages/", `{"messageRaw":"x","room":"`+p.chatID+`"}`); code != 403 {
			t.Errorf("chapi post to a private chat: %d %s", code, body)
		}
		if code, _ := chapiDo("GET", "/api/chat/v1/messages?room="+p.chatID, ""); code != 403 {
			t.Errorf("chapi read of a private chat: %d", code)
		}
	})
}

func TestIdle(t *testing.T) {
	forEachStore(t, func(t *testing.T, mk storeFactory) {
		ctx := context.Background()
		ev := newEnv(t, mk, func(c *genesys.Config) {
			c.Idle = genesys.IdleConfig{Warn: 255 * time.Second, Close: 45 * time.Second, Interval: -1}
		})
		c := ev.requestChat(url.Values{"nickname": {"Ann"}})
		other := must(ev.e.CreateRoom(ctx, chat.NewRoom{Name: "not genesys"}))
		must(ev.e.Notice(ctx, other.ID, "hello"))
		step := func(d time.Duration, wantLast uint64) {
			t.Helper()
			ev.clock.Advance(d)
			if err := ev.h.CheckIdle(ctx); err != nil {
				t.Fatal(err)
			}
			if last := must(ev.e.Room(ctx, c.room())).LastPos; last != wantLast {
				t.Fatalf("after %v: last position %d, want %d", d, last, wantLast)
			}
		}
		step(254*time.Second, 1)
		step(time.Second, 2) // warning
		step(0, 2)           // warned once
		step(44*time.Second, 2)
		c.do("send", "message", "still here") // 3: activity
		step(254*time.Second, 3)
		step(time.Second, 4)    // warning again
		step(45*time.Second, 6) // closing notice (5) and the end (6)
		step(time.Hour, 6)
		if o := must(ev.e.Room(ctx, other.ID)); o.Ended() || o.LastPos != 1 {
			t.Errorf("idle control touched a room of another surface: %+v", o)
		}
		res, r := c.do("refresh", "transcriptPosition", "1")
		want := []msg{
			{1, "ParticipantJoined", "", "Ann/1/Client", ""},
			{2, "Notice", genesys.DefaultIdleWarnText, "system/0/External", ""},
			{3, "Message", "still here", "Ann/1/Client", ""},
			{4, "Notice", genesys.DefaultIdleWarnText, "system/0/External", ""},
			{5, "Notice", genesys.DefaultIdleCloseText, "system/0/External", ""},
		}
		if diff := cmp.Diff(want, compact(r.Messages)); diff != "" || !*r.ChatEnded || r.NextPosition != 7 {
			t.Errorf("%s\n(-want +got):\n%s", res.body, diff)
		}
		res, r = c.do("send", "message", "x")
		if r.StatusCode != 2 || !*r.ChatEnded {
			t.Errorf("send after idle close: %s", res.body)
		}

		// A request for a chat checks it first, without a sweeper.
		d := ev.requestChat(url.Values{"nickname": {"Dee"}})
		ev.clock.Advance(300 * time.Second)
		r = d.refresh()
		if len(r.Messages) != 1 || r.Messages[0].Type != "Notice" || r.Messages[0].Index != 2 || *r.ChatEnded {
			t.Errorf("refresh of an idle chat: %+v", r)
		}
	})
}

// TestIdleSweeper runs the background sweeper on the real clock and checks that Close stops
// it without leaking goroutines.
func TestIdleSweeper(t *testing.T) {
	testkit.CheckLeaks(t)
	ctx := context.Background()
	e := must(chat.Open(ctx, stores[0].Open(t)))
	defer e.Close()
	h := must(genesys.New(e, genesys.Config{ServiceNames: []string{service}, Logger: quiet, Limiter: unlimited,
		Idle: genesys.IdleConfig{Warn: 20 * time.Millisecond, Close: 20 * time.Millisecond, Interval: 5 * time.Millisecond}}))
	ev := &env{t: t, e: e, h: h}
	c := ev.requestChat(url.Values{"nickname": {"Ann"}})
	deadline := time.Now().Add(5 * time.Second)
	for !must(e.Room(ctx, c.room())).Ended() {
		if time.Now().After(deadline) {
			t.Fatal("the sweeper never closed the idle chat")
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.Close()
	h.Close() // idempotent
}

// TestRestartHandler: sessions live in the engine, so a new Handler serves them.
func TestRestartHandler(t *testing.T) {
	forEachStore(t, func(t *testing.T, mk storeFactory) {
		ev := newEnv(t, mk)
		c := ev.requestChat(url.Values{"nickname": {"Ann"}})
		ev.h.Close()
		ev.h = must(genesys.New(ev.e, ev.cfg))
		defer ev.h.Close()
		if res, r := c.do("send", "message", "after restart", "transcriptPosition", "2"); r.StatusCode != 0 || len(r.Messages) != 1 {
			t.Fatalf("%s", res.body)
		}
	})
}

// TestConcurrentClients runs several clients at once against one handler.
func TestConcurrentClients(t *testing.T) {
	ev := newEnv(t, stores[0].Open)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := ev.post("/"+service, url.Values{"nickname": {fmt.Sprint("c", i)}})
			var r genesys.Response
			json.Unmarshal([]byte(res.body), &r)
			for j := range 20 {
				f := url.Values{"alias": {r.Alias}, "userId": {r.UserID}, "secureKey": {r.SecureKey}, "message": {fmt.Sprint(j)}}
				res := ev.post("/"+service+"/"+r.ChatID+"/send", f)
				if !strings.Contains(res.body, `"statusCode":0`) {
					errs <- fmt.Errorf("send: %s", res.body)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestRestartBolt: a chat started before a restart of the whole program (engine and bbolt
// store) goes on after it with the same userId and secureKey.
func TestRestartBolt(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "chat.db")
	open := func() (*chat.Engine, *bolt.Store) {
		s, err := bolt.Open(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		return must(chat.Open(ctx, s)), s
	}
	e, s := open()
	cfg := genesys.Config{ServiceNames: []string{service}, Logger: quiet, Limiter: unlimited}
	ev := &env{t: t, e: e, h: must(genesys.New(e, cfg))}
	c := ev.requestChat(url.Values{"nickname": {"Ann"}})
	c.do("send", "message", "before")
	ev.h.Close()
	e.Close()
	s.Close()

	e, s = open()
	defer s.Close()
	defer e.Close()
	ev.e, ev.h = e, must(genesys.New(e, cfg))
	defer ev.h.Close()
	res, r := c.do("send", "message", "after", "transcriptPosition", "1")
	if r.StatusCode != 0 {
		t.Fatalf("%s", res.body)
	}
	want := []msg{{1, "ParticipantJoined", "", "Ann/1/Client", ""}, {2, "Message", "before", "Ann/1/Client", ""}, {3, "Message", "after", "Ann/1/Client", ""}}
	if diff := cmp.Diff(want, compact(r.Messages)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	res = c.ev.post("/"+service+"/"+c.chatID+"/refresh", url.Values{"alias": {"1"}, "userId": {c.userID}, "secureKey": {"wrong"}})
	if r := decodeResp(t, res.body); r.StatusCode != 2 {
		t.Errorf("wrong key after restart: %s", res.body)
	}
}
