package bezlimit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/coder/websocket"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/wsconn"
)

// serveChat upgrades a /chat connection: authenticate, find the chat, check access, catch
// up from ?after=, then read client events until the connection ends.
func (h *Handler) serveChat(w http.ResponseWriter, r *http.Request) {
	if !h.enter() {
		writeHTTPError(w, fmt.Errorf("bezlimit: shutting down: %w", chat.ErrClosed))
		return
	}
	handed := false // to the reader goroutine, with the enter token
	defer func() {
		if !handed {
			h.leave()
		}
	}()
	ctx := r.Context()
	id, err := h.authenticate(r)
	if err != nil {
		writeHTTPError(w, err)
		return
	}
	q := r.URL.Query()
	roomID, err := parseChat(q.Get(paramChat))
	if err != nil {
		writeHTTPError(w, err)
		return
	}
	var after uint64
	resume := false // without after: live only
	if s, ok := q[paramAfter]; ok {
		if after, err = strconv.ParseUint(s[0], 10, 64); err != nil {
			writeHTTPError(w, fmt.Errorf("bezlimit: %s=%q is not a position: %w", paramAfter, s[0], chat.ErrInvalid))
			return
		}
		resume = true
	}
	user, err := h.ensureUser(ctx, id.User)
	if err != nil {
		writeHTTPError(w, err)
		return
	}
	room, err := h.e.Room(ctx, roomID)
	if err != nil {
		writeHTTPError(w, err)
		return
	}
	member, err := h.admit(ctx, id.User, user, room)
	if err != nil {
		writeHTTPError(w, err)
		return
	}
	if after > room.LastPos {
		writeHTTPError(w, fmt.Errorf("bezlimit: %s=%d is past the chat's last position %d: %w", paramAfter, after, room.LastPos, chat.ErrInvalid))
		return
	}
	hb, err := h.acquireHub(roomID)
	if err != nil {
		writeHTTPError(w, err)
		return
	}
	from := after + 1
	if !resume { // live only: from what the hub has not dispatched yet, before the upgrade
		hb.lock()
		from = hb.next
		hb.unlock()
	}

	ws, _, err := wsconn.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: h.cfg.OriginPatterns}, connBuffers)
	if err != nil {
		h.releaseHub(hb)
		return // Accept has answered
	}
	ws.SetReadLimit(h.cfg.ReadLimit)
	c := newConn(h, ws, id, user)
	c.room, c.member = roomID, member
	if !h.track(c) {
		_ = ws.Close(closeGone, "server shutting down")
		h.releaseHub(hb)
		return
	}
	end := func() {
		c.close(websocket.StatusNormalClosure, "")
		c.writer.Wait()
		h.untrack(c)
		h.releaseHub(hb)
	}
	if err := h.catchUp(c, hb, from); err != nil {
		code, reason := websocket.StatusInternalError, "internal error"
		switch {
		case errors.Is(err, chat.ErrNotFound):
			code, reason = closeChatGone, "chat deleted"
		case errors.Is(err, chat.ErrClosed), h.ctx.Err() != nil:
			code, reason = closeGone, "server shutting down"
		}
		c.close(code, reason)
		end()
		return
	}
	handed = true
	h.goRead(c, func(ctx context.Context, ev clientEvent) { h.handleChatEvent(ctx, c, ev) }, func() {
		hb.unregister(c)
		end()
	})
}

// admit checks that an identity may open a chat, joining it where the chat names it. It
// reports whether the user is a joined member (false: an operator watching).
func (h *Handler) admit(ctx context.Context, u User, user chat.ID, room chat.Room) (bool, error) {
	m, err := h.e.Member(ctx, room.ID, user)
	if err == nil && m.State == chat.Joined {
		return true, nil
	}
	if err != nil && !errors.Is(err, chat.ErrNotFound) {
		return false, err
	}
	ci, err := h.chatInfo(ctx, room.ID)
	if err != nil {
		return false, err
	}
	role := engineRole(u.Role)
	switch {
	case role == chat.RoleClient && ci.owner == u.ID,
		role == chat.RoleOperator && ci.operator == u.ID && h.mayView(u, room):
		_, err := h.e.Join(ctx, room.ID, user, chat.JoinOptions{Role: role})
		if errors.Is(err, chat.ErrConflict) { // joined concurrently
			err = nil
		}
		return err == nil, err
	case role == chat.RoleOperator && h.mayView(u, room):
		return false, nil // watches; posts are refused until joined
	}
	return false, fmt.Errorf("bezlimit: user %d is not in chat %s: %w", u.ID, room.ID.UUID(), chat.ErrForbidden)
}

// catchUp writes what the connection missed since position from, straight from the store,
// until it reaches the hub's live stream, then registers it with the hub.
func (h *Handler) catchUp(c *conn, hb *hub, from uint64) error {
	tr := newTranslator(h, c.room)
	var buf []chat.Event
	for {
		ok, err := hb.register(c, from)
		if err != nil || ok {
			return err
		}
		buf, err = h.e.ReadAppend(h.ctx, buf[:0], c.room, from, catchUpBatch, false)
		if err != nil {
			return err
		}
		if len(buf) == 0 || buf[0].Pos != from {
			return fmt.Errorf("bezlimit: chat %s: position %d missing: %w", c.room, from, chat.ErrNotFound)
		}
		for i := range buf {
			for _, f := range tr.translate(h.ctx, &buf[i]) {
				if !c.wants(f) {
					continue
				}
				if err := c.write(f.data); err != nil {
					c.close(websocket.StatusAbnormalClosure, "")
					return err
				}
			}
			from = buf[i].Pos + 1
		}
	}
}

// goRead runs a connection's reader on a goroutine of its own, with end after it, and
// lets the HTTP handler return: the upgrade's request, and the handler goroutine's stack
// grown while setting up, are then freed. The handler's enter token passes to the reader.
func (h *Handler) goRead(c *conn, handle func(context.Context, clientEvent), end func()) {
	go func() {
		defer h.leave()
		defer end()
		h.readLoop(c, handle)
	}()
}

// readLoop is a connection's one reader: it reads frames until the connection ends and
// hands each decoded event to handle; a frame that does not decode gets an error frame and
// the connection goes on.
func (h *Handler) readLoop(c *conn, handle func(context.Context, clientEvent)) {
	// Read ends when the connection closes (Handler.Close closes it with a handshake; a
	// cancelled context would drop it without one). Engine calls run under h.ctx.
	ctx := h.ctx
	for {
		typ, b, err := c.ws.Read(context.Background())
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			c.sendError("", fmt.Errorf("bezlimit: binary frames are not supported: %w", errBadFrame))
			continue
		}
		ev, err := decodeClientFrame(b)
		if err != nil {
			c.sendError("", err)
			continue
		}
		handle(ctx, ev)
	}
}

// sendError queues an error frame {"type":"error","data":{"event":...,"error":{code,message}}}.
func (c *conn) sendError(event string, err error) {
	c.enqueue(&frame{data: encodeFrame(frameTypeError, struct {
		Event string    `json:"event,omitempty"`
		Error wireError `json:"error"`
	}{event, wireErr(err)}, 0)})
}

// handleChatEvent performs one client event of a /chat connection.
func (h *Handler) handleChatEvent(ctx context.Context, c *conn, ev clientEvent) {
	switch ev.Type {
	case evSendMessage:
		m := ev.Send
		msg := chat.NewMessage{Text: m.Text}
		if len(m.Attachments) > 0 {
			msg.Body = encodeBody(messageBody{Type: typeStandard, TypeRole: c.id.User.Role, Attachments: m.Attachments})
		}
		if _, err := h.e.Send(ctx, c.room, c.user, msg); err != nil {
			att := m.Attachments
			if att == nil {
				att = []string{}
			}
			c.enqueue(&frame{data: encodeFrame(evMessageNotAdded, struct {
				Error       wireError `json:"error"`
				Text        string    `json:"text"`
				Attachments []string  `json:"attachments"`
			}{wireErr(err), m.Text, att}, 0)})
		}
	case evMarkDelivered, evMarkRead:
		var err error
		if ev.Type == evMarkRead {
			_, err = h.e.MarkRead(ctx, c.room, c.user, ev.Mark.MessageID)
		} else {
			_, err = h.e.MarkDelivered(ctx, c.room, c.user, ev.Mark.MessageID)
		}
		if err != nil {
			c.sendError(ev.Type, err)
		}
	case evUpdateTyping:
		var err error
		if ev.Typing.Stopped {
			_, err = h.e.StopTyping(ctx, c.room, c.user)
		} else {
			_, err = h.e.StartTyping(ctx, c.room, c.user, ev.Typing.Text)
		}
		if err != nil {
			c.sendError(ev.Type, err)
		}
	}
}

// encodeBody renders a message's Body.
func encodeBody(mb messageBody) json.RawMessage {
	b, _ := json.Marshal(map[string]messageBody{bodyKey: mb})
	return b
}
