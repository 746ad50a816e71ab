package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/httpapi/airy"
	"github.com/parley-chat/chat/internal/httpx"
	"github.com/parley-chat/chat/limit"
	"github.com/parley-chat/chat/wsapi/bezlimit"
)

// The demo page's own API, served with -demo only, under /demo/api/. It is not a vendor
// protocol: it gives the page what no vendor protocol does.
//
//	GET  /demo/api/config          the Airy channel id and the demo operator's Bezlimit token
//	GET  /demo/api/chats           the demo operator's open chats (Bearer: its Bezlimit token);
//	                               Bezlimit has no call that lists chats
//	POST /demo/api/visitor/receipt {"delivered": P} or {"read": P}: the Airy visitor's marks
//	POST /demo/api/visitor/typing  {"text": "...", "stopped": false}: the Airy visitor types
//	GET  /demo/api/visitor/state   the other side's marks and typing, for the Airy visitor
//	                               (long poll: ?known=<key of the state the page has>)
//
// The visitor calls carry the Airy auth token (Authorization: Bearer), as /chatplugin.send
// does: the Airy chat plugin protocol has neither read receipts nor typing, and the demo shows
// both ways of both.
const (
	pathDemoConfig  = "GET /demo/api/config"
	pathDemoChats   = "GET /demo/api/chats"
	pathDemoReceipt = "POST /demo/api/visitor/receipt"
	pathDemoTyping  = "POST /demo/api/visitor/typing"
	pathDemoState   = "GET /demo/api/visitor/state"

	demoMaxBody = 4 << 10          // a receipt or a typing preview
	demoPoll    = 25 * time.Second // longest wait of a state poll
	demoChats   = 100              // most chats listed
	lastTextWin = 64               // events read back to find a chat's last message
)

// demoAPI serves the demo page's API.
type demoAPI struct {
	e     *chat.Engine
	demo  *demo
	creds *credentials
	airy  *airy.Service
	lim   *limit.Limiter
	log   *slog.Logger
	// stopping ends when the server shuts down: polls answer at once instead of holding
	// the shutdown up.
	stopping context.Context
}

func (a *demoAPI) register(mux *http.ServeMux) {
	mux.HandleFunc(pathDemoConfig, a.config)
	mux.HandleFunc(pathDemoChats, a.chats)
	mux.HandleFunc(pathDemoReceipt, a.visitor(a.receipt))
	mux.HandleFunc(pathDemoTyping, a.visitor(a.typing))
	mux.HandleFunc(pathDemoState, a.visitor(a.state))
}

// demoError is the answer to a request the demo API refuses.
type demoError struct {
	Message string `json:"message"`
}

// fail answers err: the engine's errors by their kind, anything else 500 (logged).
func (a *demoAPI) fail(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, airy.ErrUnauthorized):
		status = http.StatusUnauthorized
	case errors.Is(err, chat.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, chat.ErrInvalid), errors.Is(err, httpx.ErrMalformed), errors.Is(err, httpx.ErrMediaType):
		status = http.StatusBadRequest
	case errors.Is(err, httpx.ErrTooLarge):
		status = http.StatusRequestEntityTooLarge
	case errors.Is(err, chat.ErrNotMember), errors.Is(err, chat.ErrEnded), errors.Is(err, chat.ErrForbidden):
		status = http.StatusForbidden
	case errors.Is(err, chat.ErrUnavailable), errors.Is(err, chat.ErrClosed):
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	default:
		a.log.Error("demo API", "err", err)
		err = errors.New("internal error")
	}
	httpx.WriteJSON(w, status, demoError{Message: err.Error()})
}

// demoConfig is the answer of /demo/api/config.
type demoConfig struct {
	AiryChannelID string        `json:"airy_channel_id"`
	OperatorToken string        `json:"operator_token"`
	Operator      bezlimit.User `json:"operator"` // the user OperatorToken stands for
}

func (a *demoAPI) config(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusOK, demoConfig{
		AiryChannelID: a.demo.get(varAiryChannel),
		OperatorToken: a.demo.get(varBezOperator),
		Operator:      demoOperator,
	})
}

// demoChat is one chat of /demo/api/chats.
type demoChat struct {
	UUID         string    `json:"uuid"`
	StartedAt    time.Time `json:"started_at"`
	LastPosition uint64    `json:"last_position"`
	LastAt       time.Time `json:"last_at"`
	LastText     string    `json:"last_text"` // the last message's text, "" if none
}

// chats lists the open chats the demo operator is joined to, latest activity first.
func (a *demoAPI) chats(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	token, _ := httpx.Bearer(r.Header.Get("Authorization"))
	op, ok := httpx.NewSecrets(a.creds.bezlimitUsers).Lookup(token)
	if !ok || op.Role != "operator" {
		httpx.WriteJSON(w, http.StatusUnauthorized, demoError{Message: "an operator's Bezlimit token is needed"})
		return
	}
	ctx := r.Context()
	list := []demoChat{}
	// "bezlimit:<id>" is the engine user of a Bezlimit user (wsapi/bezlimit's decisions).
	u, err := a.e.UserByName(ctx, fmt.Sprintf("bezlimit:%d", op.ID))
	if errors.Is(err, chat.ErrNotFound) { // it never connected: no chat yet
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"chats": list})
		return
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	ms, err := a.e.Memberships(ctx, u.ID)
	if err != nil {
		a.fail(w, err)
		return
	}
	seen := map[chat.ID]bool{}
	for _, m := range ms {
		if m.State != chat.Joined || seen[m.RoomID] {
			continue
		}
		seen[m.RoomID] = true
		room, err := a.e.Room(ctx, m.RoomID)
		if errors.Is(err, chat.ErrNotFound) {
			continue // deleted since
		}
		if err != nil {
			a.fail(w, err)
			return
		}
		if room.Ended() {
			continue
		}
		c := demoChat{UUID: room.ID.UUID(), StartedAt: room.CreatedAt, LastPosition: room.LastPos, LastAt: room.LastTime}
		evs, err := a.e.Read(ctx, room.ID, chat.ReadOptions{From: room.LastPos, Limit: lastTextWin, Backward: true})
		if err != nil {
			a.fail(w, err)
			return
		}
		for _, ev := range evs {
			if ev.Type == chat.EventMessage && ev.Visibility == "" {
				c.LastText = ev.Text
				break
			}
		}
		list = append(list, c)
	}
	slices.SortFunc(list, func(x, y demoChat) int { return y.LastAt.Compare(x.LastAt) })
	if len(list) > demoChats {
		list = list[:demoChats]
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"chats": list})
}

// visitor authorizes a visitor call by its Airy auth token and rate-limits its writes.
func (a *demoAPI) visitor(h func(http.ResponseWriter, *http.Request, airy.Conversation)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		token, _ := httpx.Bearer(r.Header.Get("Authorization"))
		conv, err := a.airy.Authorize(r.Context(), token)
		if err != nil {
			a.fail(w, err)
			return
		}
		if r.Method == http.MethodPost && !a.lim.AllowRequest(r, limit.Write) {
			w.Header().Set("Retry-After", "1")
			httpx.WriteJSON(w, http.StatusTooManyRequests, demoError{Message: "too many requests"})
			return
		}
		h(w, r, conv)
	}
}

// receiptBody is the body of /demo/api/visitor/receipt: a watermark to move, by position.
type receiptBody struct {
	Delivered uint64 `json:"delivered,omitempty"`
	Read      uint64 `json:"read,omitempty"`
}

func (a *demoAPI) receipt(w http.ResponseWriter, r *http.Request, conv airy.Conversation) {
	var b receiptBody
	if err := readDemoJSON(w, r, &b); err != nil {
		a.fail(w, err)
		return
	}
	ctx := r.Context()
	m, err := a.e.MemberByUser(ctx, conv.Room, conv.Contact)
	if err == nil && b.Delivered > m.Delivered {
		var ms chat.Membership
		ms, err = a.e.MarkDelivered(ctx, conv.Room, conv.Contact, b.Delivered)
		m = ms.Member
	}
	if err == nil && b.Read > m.Read {
		var ms chat.Membership
		ms, err = a.e.MarkRead(ctx, conv.Room, conv.Contact, b.Read)
		m = ms.Member
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, receiptBody{Delivered: m.Delivered, Read: m.Read})
}

// typingBody is the body of /demo/api/visitor/typing.
type typingBody struct {
	Text    string `json:"text"`
	Stopped bool   `json:"stopped"`
}

func (a *demoAPI) typing(w http.ResponseWriter, r *http.Request, conv airy.Conversation) {
	var b typingBody
	if err := readDemoJSON(w, r, &b); err != nil {
		a.fail(w, err)
		return
	}
	var err error
	if b.Stopped {
		_, err = a.e.StopTyping(r.Context(), conv.Room, conv.Contact)
	} else {
		_, err = a.e.StartTyping(r.Context(), conv.Room, conv.Contact, b.Text)
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func readDemoJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	body, err := httpx.ReadBody(w, r, demoMaxBody, httpx.JSON, false)
	if err != nil {
		return err
	}
	return httpx.DecodeJSON(body, dst)
}

// visitorState is what the visitor's page shows of the other side: how far the operators
// (every other joined member) have had the conversation delivered and read, and who of them
// is typing.
type visitorState struct {
	// Key names this state; the page sends it back as ?known= to wait for the next one.
	Key       string        `json:"key"`
	Delivered uint64        `json:"delivered"`
	Read      uint64        `json:"read"`
	Typing    []typingState `json:"typing"`
}

// typingState is one member typing.
type typingState struct {
	Name string `json:"name"`
	Text string `json:"text"`
}

// state answers the other side's state at once if it is not the one the page knows (?known=),
// else when it changes, or after demoPoll with the same state.
func (a *demoAPI) state(w http.ResponseWriter, r *http.Request, conv airy.Conversation) {
	ctx, cancel := context.WithTimeout(r.Context(), demoPoll)
	defer cancel()
	stop := context.AfterFunc(a.stopping, cancel)
	defer stop()
	// A poll may outlast the server's write timeout: its answer is small and comes at once.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(demoPoll + 10*time.Second))

	room, err := a.e.Room(ctx, conv.Room)
	if err != nil {
		a.fail(w, err)
		return
	}
	st, err := a.visitorState(ctx, conv)
	if err != nil {
		a.fail(w, err)
		return
	}
	if known := r.URL.Query().Get("known"); known == st.Key {
		if st, err = a.waitState(ctx, conv, room.LastPos+1, st); err != nil {
			a.fail(w, err)
			return
		}
	}
	httpx.WriteJSON(w, http.StatusOK, st)
}

// waitState follows the conversation from position from until the state differs from st,
// and returns the new state, or st when ctx ends.
func (a *demoAPI) waitState(ctx context.Context, conv airy.Conversation, from uint64, st visitorState) (visitorState, error) {
	f, err := a.e.Follow(ctx, conv.Room, from)
	if err != nil {
		return st, err
	}
	defer f.Close()
	for {
		ev, err := f.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return st, nil // no change in time, or the server is stopping
			}
			return st, err
		}
		switch ev.Type {
		case chat.EventDelivered, chat.EventRead, chat.EventTypingStarted, chat.EventTypingStopped,
			chat.EventMessage, chat.EventJoined, chat.EventLeft: // a message or a leave ends typing
		default:
			continue
		}
		next, err := a.visitorState(ctx, conv)
		if err != nil {
			if ctx.Err() != nil {
				return st, nil
			}
			return st, err
		}
		if next.Key != st.Key {
			return next, nil
		}
	}
}

// visitorState reads the other side's state now.
func (a *demoAPI) visitorState(ctx context.Context, conv airy.Conversation) (visitorState, error) {
	st := visitorState{Typing: []typingState{}}
	ms, err := a.e.Members(ctx, conv.Room)
	if err != nil {
		return st, err
	}
	for _, m := range ms {
		if m.State == chat.Joined && m.UserID != conv.Contact {
			st.Delivered, st.Read = max(st.Delivered, m.Delivered), max(st.Read, m.Read)
		}
	}
	ts, err := a.e.Typing(ctx, conv.Room)
	if err != nil {
		return st, err
	}
	for _, t := range ts {
		if t.User == conv.Contact {
			continue
		}
		name := "Someone"
		if u, err := a.e.User(ctx, t.User); err == nil && u.DisplayName != "" {
			name = u.DisplayName
		}
		st.Typing = append(st.Typing, typingState{Name: name, Text: t.Text})
	}
	slices.SortFunc(st.Typing, func(x, y typingState) int { return cmp.Compare(x.Name, y.Name) })
	b, _ := json.Marshal(st)
	sum := sha256.Sum256(b)
	st.Key = hex.EncodeToString(sum[:8])
	return st, nil
}
