package bezlimit

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/httpx"
)

// serveServer authenticates a server-to-server call by its Api-Token header and runs it.
// A body must be declared as JSON (or not declared) and be well-formed JSON text (valid
// UTF-8, no NUL, nesting within chat.MaxJSONDepth) before any endpoint reads it.
func (h *Handler) serveServer(w http.ResponseWriter, r *http.Request) {
	if !httpx.Equal(r.Header.Get(apiTokenHeader), h.cfg.APIToken) {
		writeHTTPError(w, fmt.Errorf("bezlimit: missing or bad %s: %w", apiTokenHeader, errUnauthorized))
		return
	}
	if r.URL.Path == pathOnlineUsers {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			writeHTTPError(w, errMethod)
			return
		}
		writeJSON(w, http.StatusOK, h.onlineUsers())
		return
	}
	switch r.Method {
	case http.MethodPost:
	case http.MethodPut, http.MethodPatch:
		if r.URL.Path != pathMessage {
			writeHTTPError(w, errMethod)
			return
		}
	default:
		writeHTTPError(w, errMethod)
		return
	}
	body, err := httpx.ReadBody(w, r, h.cfg.MaxBodyBytes, httpx.JSON, true)
	if err == nil {
		var doc json.RawMessage
		err = httpx.DecodeJSON(body, &doc)
	}
	if err != nil {
		writeHTTPError(w, err)
		return
	}
	ctx := r.Context()
	var status int
	var resp any
	switch r.URL.Path {
	case pathUpdateChat:
		resp, err = h.updateChat(ctx, body)
		status = http.StatusOK
	case pathUpdateOps:
		resp, err = h.updateOperators(ctx, body)
		status = http.StatusOK
	case pathMessage:
		resp, status, err = h.postMessage(ctx, body, r.Method != http.MethodPost)
	case pathGlobal:
		resp, err = h.global(body)
		status = http.StatusOK
	case pathNotifications:
		resp, err = h.notify(ctx, body)
		status = http.StatusOK
	}
	if err != nil {
		writeHTTPError(w, err)
		return
	}
	writeJSON(w, status, resp)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("bezlimit: "+format+": %w", append(args, chat.ErrInvalid)...)
}

// decodeObject parses a JSON object body.
func decodeObject(body []byte, v any) error {
	if b := bytes.TrimSpace(body); len(b) == 0 || b[0] != '{' {
		return invalid("body must be a JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return invalid("%v", err)
	}
	return nil
}

// chatBody is the part of the chat object that the package interprets; the whole object is
// kept and sent on as it came.
type chatBody struct {
	UUID         string `json:"uuid"`
	OwnerUser    *User  `json:"owner_user"`
	OperatorUser *User  `json:"operator_user"`
}

// updateChat: /update/chat {chat object}. See decisions.go.
func (h *Handler) updateChat(ctx context.Context, body []byte) (any, error) {
	var cb chatBody
	var obj wireChat
	if err := decodeObject(body, &cb); err != nil {
		return nil, err
	}
	_ = json.Unmarshal(body, &obj)
	delete(obj, "uuid")
	for _, u := range []*User{cb.OwnerUser, cb.OperatorUser} {
		if u != nil && u.ID == 0 {
			return nil, invalid("user without id")
		}
	}
	stored, _ := json.Marshal(obj)
	attrs := map[string]string{attrChat: string(stored)}
	if cb.OwnerUser != nil {
		attrs[attrOwnerID] = strconv.FormatInt(cb.OwnerUser.ID, 10)
	}
	if cb.OperatorUser != nil {
		attrs[attrOperatorID] = strconv.FormatInt(cb.OperatorUser.ID, 10)
	}
	var room chat.Room
	var err error
	if cb.UUID == "" {
		room, err = h.e.CreateRoom(ctx, chat.NewRoom{Attributes: attrs})
	} else {
		var id chat.ID
		if id, err = parseChat(cb.UUID); err != nil {
			return nil, err
		}
		room, err = h.e.UpdateRoom(ctx, id, chat.RoomUpdate{Attributes: attrs})
	}
	if err != nil {
		return nil, err
	}
	ci := newChatInfo(room)
	h.chats.Store(room.ID, ci)
	for _, m := range []struct {
		u    *User
		role string
	}{{cb.OwnerUser, wireRoleClient}, {cb.OperatorUser, wireRoleOperator}} {
		if m.u == nil {
			continue
		}
		u := *m.u
		if u.Role == "" {
			u.Role = m.role
		}
		uid, err := h.ensureUser(ctx, u)
		if err != nil {
			return nil, err
		}
		mem, err := h.e.MemberByUser(ctx, room.ID, uid)
		if err == nil && mem.State == chat.Joined {
			continue
		}
		if _, err := h.e.Join(ctx, room.ID, uid, chat.JoinOptions{Role: engineRole(m.role)}); err != nil && !errors.Is(err, chat.ErrConflict) {
			return nil, err
		}
	}
	h.bc.send(&frame{data: encodeFrame(evChatUpdated, struct {
		Chat json.RawMessage `json:"chat"`
	}{ci.wire}, 0), room: room.ID}, nil)
	return struct {
		Chat json.RawMessage `json:"chat"`
	}{ci.wire}, nil
}

// updateOperators: /update/operators [operator...]: each operator's user is brought up to
// date and announced with operator_updated.
func (h *Handler) updateOperators(ctx context.Context, body []byte) (any, error) {
	if b := bytes.TrimSpace(body); len(b) == 0 || b[0] != '[' {
		return nil, invalid("body must be a JSON array")
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, invalid("%v", err)
	}
	for i, raw := range raws {
		var u User
		if err := decodeObject(raw, &u); err != nil || u.ID == 0 {
			return nil, invalid("operator %d: an object with an id is required", i)
		}
		if u.Role == "" {
			u.Role = wireRoleOperator
		}
		if _, err := h.ensureUser(ctx, u); err != nil {
			return nil, err
		}
	}
	for _, raw := range raws {
		h.bc.send(&frame{data: encodeFrame(evOperatorUpdated, struct {
			Operator json.RawMessage `json:"operator"`
		}{raw}, 0)}, nil)
	}
	return struct {
		Updated int `json:"updated"`
	}{len(raws)}, nil
}

// messageRequest is the body of /message.
type messageRequest struct {
	ID          uint64   `json:"id"`
	Type        string   `json:"type"`
	TypeRole    string   `json:"type_role"`
	Text        string   `json:"text"`
	Attachments []string `json:"attachments"`
	Chat        struct {
		UUID string `json:"uuid"`
	} `json:"chat"`
	ChatUUID string `json:"chat_uuid"`
	User     *User  `json:"user"`
}

// postMessage: /message, create (no id) or update (id). Routing by type: see decisions.go.
func (h *Handler) postMessage(ctx context.Context, body []byte, update bool) (any, int, error) {
	var m messageRequest
	if err := decodeObject(body, &m); err != nil {
		return nil, 0, err
	}
	if update && m.ID == 0 {
		return nil, 0, invalid("an update needs the message id")
	}
	uuid := m.Chat.UUID
	if uuid == "" {
		uuid = m.ChatUUID
	}
	room, err := parseChat(uuid)
	if err != nil {
		return nil, 0, err
	}
	if m.Type == "" {
		m.Type = typeStandard
	}
	var vis chat.Role
	switch m.Type {
	case typeStandard, typeBot:
	case typeNote:
		vis, m.TypeRole = chat.RoleOperator, wireRoleOperator
	case typeSystem:
		if m.TypeRole == "" {
			return nil, 0, invalid("a system message needs a type_role")
		}
		vis = engineRole(m.TypeRole)
	default:
		return nil, 0, invalid("unknown message type %q", m.Type)
	}
	if m.Text == "" && len(m.Attachments) == 0 {
		return nil, 0, invalid("a message needs text or attachments")
	}
	if len(m.Attachments) > maxAttachments {
		return nil, 0, invalid("more than %d attachments", maxAttachments)
	}
	for _, a := range m.Attachments {
		if !isUUID(a) {
			return nil, 0, invalid("attachment %q is not a uuid", a)
		}
	}
	author := chat.System()
	if m.User != nil {
		if m.User.ID == 0 {
			return nil, 0, invalid("user without id")
		}
		if m.User.Role == "" {
			m.User.Role = m.Type // "bot" for bots; anything else must say its role
			if m.Type != typeBot {
				m.User.Role = wireRoleOperator
			}
		}
		if author, err = h.ensureUser(ctx, *m.User); err != nil {
			return nil, 0, err
		}
		if mem, err := h.e.MemberByUser(ctx, room, author); err != nil || mem.State != chat.Joined {
			if _, err := h.e.Join(ctx, room, author, chat.JoinOptions{Role: engineRole(m.User.Role)}); err != nil && !errors.Is(err, chat.ErrConflict) {
				return nil, 0, err
			}
		}
	}
	msg := chat.NewMessage{Text: m.Text, Visibility: vis,
		Body: encodeBody(messageBody{Type: m.Type, TypeRole: m.TypeRole, Attachments: m.Attachments})}
	var ev chat.Event
	status := http.StatusCreated
	if m.ID != 0 {
		ev, err = h.e.Edit(ctx, room, author, m.ID, msg)
		status = http.StatusOK
	} else {
		ev, err = h.e.Send(ctx, room, author, msg)
	}
	if err != nil {
		return nil, 0, err
	}
	ref := ev.Pos
	if m.ID != 0 {
		ref = m.ID
	}
	return struct {
		ID           uint64 `json:"id"`
		MessageIndex uint64 `json:"message_index"`
		Position     uint64 `json:"position"`
	}{ref, ref, ev.Pos}, status, nil
}

// global: /global {...}: global_updated to every operator.
func (h *Handler) global(body []byte) (any, error) {
	if b := bytes.TrimSpace(body); len(b) == 0 || b[0] != '{' {
		return nil, invalid("body must be a JSON object")
	}
	h.bc.send(&frame{data: encodeFrame(evGlobalUpdated, json.RawMessage(body), 0)}, nil)
	return struct{}{}, nil
}

// notify: /notifications/chat {chat, text, type}: chat_notification to the chat's operator
// only (chat.operator_user.id, or the operator last pushed to /update/chat).
func (h *Handler) notify(ctx context.Context, body []byte) (any, error) {
	var n struct {
		Chat chatBody        `json:"chat"`
		Text string          `json:"text"`
		Type json.RawMessage `json:"type"`
	}
	if err := decodeObject(body, &n); err != nil {
		return nil, err
	}
	room, err := parseChat(n.Chat.UUID)
	if err != nil {
		return nil, err
	}
	ci, err := h.chatInfo(ctx, room)
	if err != nil {
		return nil, err
	}
	op := ci.operator
	if n.Chat.OperatorUser != nil {
		op = n.Chat.OperatorUser.ID
	}
	if op == 0 {
		return nil, fmt.Errorf("bezlimit: chat %s has no operator: %w", ci.room.ID.UUID(), chat.ErrNotFound)
	}
	typ := n.Type
	if typ == nil {
		typ = json.RawMessage("null")
	}
	h.bc.send(&frame{data: encodeFrame(evChatNotification, struct {
		Chat json.RawMessage `json:"chat"`
		Text string          `json:"text"`
		Type json.RawMessage `json:"type"`
	}{chatRef(ci), n.Text, typ}, 0)}, func(c *conn) bool { return c.id.User.ID == op })
	return struct{}{}, nil
}

// onlineUser is one entry of /online-users.
type onlineUser struct {
	User        User            `json:"user"`
	Sources     json.RawMessage `json:"sources"`
	Connections int             `json:"connections"`
}

// onlineUsers lists the operators with an open /broadcast, one entry per user.
func (h *Handler) onlineUsers() []onlineUser {
	h.bc.mu.Lock()
	defer h.bc.mu.Unlock()
	idx := map[int64]int{}
	out := []onlineUser{}
	for c := range h.bc.conns {
		if i, ok := idx[c.id.User.ID]; ok {
			out[i].Connections++
			continue
		}
		src := c.id.Sources
		if src == nil {
			src = json.RawMessage("null")
		}
		idx[c.id.User.ID] = len(out)
		out = append(out, onlineUser{User: c.id.User, Sources: src, Connections: 1})
	}
	slices.SortFunc(out, func(a, b onlineUser) int { return cmp.Compare(a.User.ID, b.User.ID) })
	return out
}
