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
	room, user, member, err := h.admit(ctx, id, roomID)
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
	// The catch-up runs here, after the hijack: a panic in it is no longer net/http's to
	// recover, so it is contained like the reader's.
	defer h.contain("chat catch-up", func() {
		if !handed {
			c.close(closeInternal, "internal error")
			end()
		}
	})
	if err := h.catchUp(c, hb, from); err != nil {
		c.close(closeFor(h, err))
		end()
		return
	}
	handed = true
	h.goRead(c, func(ctx context.Context, ev clientEvent) { h.handleChatEvent(ctx, c, ev) }, func() {
		hb.unregister(c)
		end()
	})
}

// admit decides whether an identity may open a chat (the policy is in decisions.go) and
// returns the chat, the identity's engine user and whether it is a joined member (false: an
// operator watching). A chat it may not open is errNoChat, as one that does not exist is;
// nothing is created or joined for it.
func (h *Handler) admit(ctx context.Context, id Identity, roomID chat.ID) (chat.Room, chat.ID, bool, error) {
	member := false
	user, err := h.lookupUser(ctx, id.User.ID)
	switch {
	case errors.Is(err, chat.ErrNotFound): // never seen: a member of nothing
	case err != nil:
		return chat.Room{}, chat.ID{}, false, err
	default:
		m, err := h.e.MemberByUser(ctx, roomID, user)
		switch {
		case errors.Is(err, chat.ErrNotFound):
		case err != nil:
			return chat.Room{}, chat.ID{}, false, err
		case m.State == chat.Joined:
			member = true
		case m.State == chat.Invited: // an invitation is a placement: accepting it is connecting
			_, err := h.e.Join(ctx, roomID, user, chat.JoinOptions{Role: engineRole(id.User.Role)})
			switch {
			case err == nil, errors.Is(err, chat.ErrConflict): // joined concurrently
				member = true
			case errors.Is(err, chat.ErrNotFound), errors.Is(err, chat.ErrEnded):
			default:
				return chat.Room{}, chat.ID{}, false, err
			}
		}
	}
	if !member && engineRole(id.User.Role) != chat.RoleOperator {
		return chat.Room{}, chat.ID{}, false, errNoChat
	}
	room, err := h.e.Room(ctx, roomID)
	switch {
	case errors.Is(err, chat.ErrNotFound):
		return chat.Room{}, chat.ID{}, false, errNoChat
	case err != nil:
		return chat.Room{}, chat.ID{}, false, err
	case !member && !h.mayView(id.User, room):
		return chat.Room{}, chat.ID{}, false, errNoChat
	}
	// Let in: the engine user is made, or its wire fields brought up to date, only now.
	if user, err = h.ensureUser(ctx, id.User); err != nil {
		return chat.Room{}, chat.ID{}, false, err
	}
	return room, user, member, nil
}

// closeFor is the close code and reason for a connection whose chat can no longer be served.
func closeFor(h *Handler, err error) (websocket.StatusCode, string) {
	switch {
	case errors.Is(err, chat.ErrNotFound):
		return closeChatGone, "chat deleted"
	case errors.Is(err, chat.ErrClosed), h.ctx.Err() != nil:
		return closeGone, "server shutting down"
	case errors.Is(err, chat.ErrUnavailable):
		return closeTryAgain, "store unavailable; reconnect later with after=<last position received>"
	}
	return closeInternal, "internal error; reconnect with after=<last position received>"
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
		buf, err = h.e.ReadAppend(h.ctx, buf[:0], c.room, chat.ReadOptions{From: from, Limit: catchUpBatch})
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
// The connection's pings and token expiry start with it.
func (h *Handler) goRead(c *conn, handle func(context.Context, clientEvent), end func()) {
	c.start()
	go func() {
		defer h.leave()
		defer h.contain("connection end", nil)
		defer end()
		defer c.stop()
		defer h.contain("connection reader", func() { c.close(closeInternal, "internal error") })
		h.readLoop(c, handle)
	}()
}

// readLoop is a connection's one reader: it reads frames until the connection ends and
// hands each decoded event to handle; a frame that does not decode gets an error frame (or
// message_not_added) and the connection goes on. Reading also answers the peer's pongs to
// the Handler's pings.
func (h *Handler) readLoop(c *conn, handle func(context.Context, clientEvent)) {
	// Read ends when the connection closes (Handler.Close closes it with a handshake; a
	// cancelled context would drop it without one). Engine calls run under h.ctx.
	ctx := h.ctx
	for {
		typ, b, err := c.ws.Read(context.Background())
		if err != nil {
			return
		}
		if hook := h.testHookRead; hook != nil {
			hook(c)
		}
		if typ != websocket.MessageText {
			c.sendError("", fmt.Errorf("bezlimit: binary frames are not supported: %w", errBadFrame))
			continue
		}
		ev, err := decodeClientFrame(b)
		switch {
		case err != nil && ev.Send != nil:
			c.notAdded(ev.Send, err)
		case err != nil:
			c.sendError(ev.Type, err)
		default:
			handle(ctx, ev)
		}
	}
}

// sendError queues an error frame {"type":"error","data":{"event":...,"error":{code,message}}}.
func (c *conn) sendError(event string, err error) {
	c.enqueue(&frame{data: encodeFrame(frameTypeError, struct {
		Event string    `json:"event,omitempty"`
		Error wireError `json:"error"`
	}{event, wireErr(err)}, 0)})
}

// notAdded queues message_not_added for a refused send_message.
func (c *conn) notAdded(m *sendMessage, err error) {
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

// handleChatEvent performs one client event of a /chat connection. Each costs a write token
// of the identity first (see decisions.go).
func (h *Handler) handleChatEvent(ctx context.Context, c *conn, ev clientEvent) {
	limited := h.allowWrite(c)
	switch ev.Type {
	case evSendMessage:
		m := ev.Send
		if limited != nil {
			c.notAdded(m, limited)
			return
		}
		msg := chat.NewMessage{Text: m.Text}
		if len(m.Attachments) > 0 {
			msg.Body = encodeBody(messageBody{Type: typeStandard, TypeRole: c.id.User.Role, Attachments: m.Attachments})
		}
		if _, err := h.e.Send(ctx, c.room, c.user, msg); err != nil {
			c.notAdded(m, err)
		}
	case evMarkDelivered, evMarkRead:
		err := limited
		switch {
		case err != nil:
		case ev.Type == evMarkRead:
			_, err = h.e.MarkRead(ctx, c.room, c.user, ev.Mark.MessageID)
		default:
			_, err = h.e.MarkDelivered(ctx, c.room, c.user, ev.Mark.MessageID)
		}
		if err != nil {
			c.sendError(ev.Type, err)
		}
	case evUpdateTyping:
		err := limited
		switch {
		case err != nil:
		case ev.Typing.Stopped:
			_, err = h.e.StopTyping(ctx, c.room, c.user)
		default:
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
