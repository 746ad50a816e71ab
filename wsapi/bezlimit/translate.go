package bezlimit

import (
	"context"
	"encoding/json"

	"github.com/parley-chat/chat"
)

// sendTimeLayout is RFC 3339 with microseconds, the precision of engine times.
const sendTimeLayout = "2006-01-02T15:04:05.000000Z07:00"

// translator turns one room's engine events, taken in position order, into wire frames. It
// remembers the receipt watermarks it has seen so that a receipt updates exactly the
// messages it newly covers.
type translator struct {
	h         *Handler
	room      chat.ID
	delivered map[chat.ID]uint64 // member -> delivered watermark, as far as seen
	read      map[chat.ID]uint64 // member -> read watermark, as far as seen
	roles     map[chat.ID]chat.Role
}

func newTranslator(h *Handler, room chat.ID) *translator {
	return &translator{h: h, room: room, delivered: map[chat.ID]uint64{}, read: map[chat.ID]uint64{},
		roles: map[chat.ID]chat.Role{}}
}

// translate returns the frames of one event (none for the events Bezlimit has no frame for:
// joins, leaves, invites, nicknames, custom events, the end of a chat).
func (t *translator) translate(ctx context.Context, ev *chat.Event) []*frame {
	switch ev.Type {
	case chat.EventMessage, chat.EventNotice:
		f := t.messageFrame(ctx, evMessageAdded, ev, ev, statusNew, false, ev.Pos)
		if f == nil {
			return nil
		}
		return []*frame{f}
	case chat.EventEdit, chat.EventDelete:
		orig, err := t.h.e.Event(ctx, t.room, ev.Ref)
		if err != nil {
			t.warn(ev, err)
			return nil
		}
		cur := *ev
		cur.Body = ev.Body
		if ev.Type == chat.EventEdit && len(ev.Body) == 0 {
			cur.Body = orig.Body // an edit of the text keeps the type and attachments
		}
		f := t.messageFrame(ctx, evMessageUpdated, &orig, &cur, t.status(&orig), ev.Type == chat.EventDelete, ev.Pos)
		if f == nil {
			return nil
		}
		return []*frame{f}
	case chat.EventDelivered, chat.EventRead:
		return t.receipt(ctx, ev)
	case chat.EventTypingStarted, chat.EventTypingStopped:
		ci, err := t.h.chatInfo(ctx, t.room)
		if err != nil {
			t.warn(ev, err)
			return nil
		}
		stopped := ev.Type == chat.EventTypingStopped
		data := struct {
			User    *User           `json:"user"`
			Chat    json.RawMessage `json:"chat"`
			Text    string          `json:"text"`
			Stopped bool            `json:"stopped"`
		}{t.h.wireUser(ctx, ev.User), chatRef(ci), ev.Text, stopped}
		return []*frame{{data: encodeFrame(evTypingUpdated, data, ev.Pos), pos: ev.Pos, skip: ev.User, bc: true, room: t.room}}
	}
	return nil
}

// warn logs an event that could not be translated (the store failed under it, or the
// Handler is closing): its frames are skipped and its position passes.
func (t *translator) warn(ev *chat.Event, err error) {
	if ctx := t.h.ctx; ctx.Err() == nil {
		t.h.log.Warn("bezlimit: event not translated", "chat", t.room.UUID(), "position", ev.Pos, "type", ev.Type, "err", err)
	}
}

// chatRef is the {uuid} object that typing and presence frames carry.
func chatRef(ci *chatInfo) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"uuid": ci.room.ID.UUID()})
	return b
}

// messageFrame renders a message (orig: the EventMessage or EventNotice; cur: the event
// whose text and body are shown, orig itself or a later edit; pos: the position of the
// event the frame belongs to, for resume).
func (t *translator) messageFrame(ctx context.Context, typ string, orig, cur *chat.Event, status string, deleted bool, pos uint64) *frame {
	ci, err := t.h.chatInfo(ctx, t.room)
	if err != nil {
		t.warn(cur, err)
		return nil
	}
	mb := t.body(ctx, orig)
	var shown messageBody
	if b := parseBody(cur.Body); b != nil {
		shown = *b
	}
	m := wireMessage{
		ID: orig.Pos, Type: mb.Type, TypeRole: mb.TypeRole, Status: status, Text: cur.Text,
		SendTime: orig.Time.Format(sendTimeLayout), MessageIndex: orig.Pos, Chat: ci.wire,
		User: t.h.wireUser(ctx, orig.User), Attachments: shown.Attachments, Deleted: deleted,
	}
	if m.Attachments == nil {
		m.Attachments = []string{}
	}
	if deleted {
		m.Text, m.Attachments = "", []string{}
	}
	f := &frame{data: encodeFrame(typ, struct {
		Message wireMessage `json:"message"`
	}{m}, pos), pos: pos, vis: orig.Visibility, room: t.room}
	f.bc = onBroadcast(mb.Type) && orig.Visibility == "" && orig.To == (chat.ID{})
	if orig.To != (chat.ID{}) {
		f.only = []chat.ID{orig.User}
		if m, err := t.h.e.MemberByID(ctx, t.room, orig.To); err == nil {
			f.only = append(f.only, m.UserID)
		}
	}
	return f
}

// body returns the Bezlimit type, type_role and attachments of a message.
func (t *translator) body(ctx context.Context, ev *chat.Event) messageBody {
	if ev.Type == chat.EventNotice {
		return messageBody{Type: typeSystem}
	}
	if b := parseBody(ev.Body); b != nil && b.Type != "" {
		if b.TypeRole == "" {
			b.TypeRole = t.authorRole(ctx, ev)
		}
		return *b
	}
	role := t.authorRole(ctx, ev)
	if role == wireRoleBot {
		return messageBody{Type: typeBot, TypeRole: role}
	}
	return messageBody{Type: typeStandard, TypeRole: role}
}

// authorRole is the wire role of a message's author: its Bezlimit role if it has one, else
// its member role in the room.
func (t *translator) authorRole(ctx context.Context, ev *chat.Event) string {
	if ev.User == chat.System() {
		return string(chat.RoleSystem)
	}
	if u := t.h.wireUser(ctx, ev.User); u != nil && u.Role != "" {
		return u.Role
	}
	return string(t.memberRole(ctx, ev.From))
}

func (t *translator) memberRole(ctx context.Context, member chat.ID) chat.Role {
	if r, ok := t.roles[member]; ok {
		return r
	}
	m, err := t.h.e.MemberByID(ctx, t.room, member)
	if err != nil {
		return ""
	}
	t.roles[member] = m.Role
	return m.Role
}

// parseBody returns the bodyKey part of a message body, or nil.
func parseBody(b json.RawMessage) *messageBody {
	if len(b) == 0 {
		return nil
	}
	var wrap map[string]json.RawMessage
	if json.Unmarshal(b, &wrap) != nil || wrap[bodyKey] == nil {
		return nil
	}
	var mb messageBody
	if json.Unmarshal(wrap[bodyKey], &mb) != nil {
		return nil
	}
	return &mb
}

// status is a message's status as far as this translator has seen the receipts.
func (t *translator) status(msg *chat.Event) string {
	s := statusNew
	for m, w := range t.delivered {
		if m != msg.From && w >= msg.Pos {
			s = statusDelivered
			break
		}
	}
	for m, w := range t.read {
		if m != msg.From && w >= msg.Pos {
			return statusRead
		}
	}
	return s
}

// receipt translates EventDelivered/EventRead from member M with Ref R: every message of
// someone else in (M's previous watermark, R] that M may see gets a message_updated with the
// new status (at most receiptSpan, the newest).
func (t *translator) receipt(ctx context.Context, ev *chat.Event) []*frame {
	isRead := ev.Type == chat.EventRead
	prev := t.prevMark(ctx, ev, isRead)
	if isRead {
		t.read[ev.From] = max(t.read[ev.From], ev.Ref)
	}
	t.delivered[ev.From] = max(t.delivered[ev.From], ev.Ref)
	if ev.Ref <= prev {
		return nil
	}
	from := prev + 1
	if ev.Ref-prev > receiptSpan {
		from = ev.Ref - receiptSpan + 1
	}
	evs, err := t.h.e.Read(ctx, t.room, chat.ReadOptions{From: from, Limit: int(ev.Ref - from + 1)})
	if err != nil {
		t.warn(ev, err)
		return nil
	}
	readerRole := t.memberRole(ctx, ev.From)
	status := statusDelivered
	if isRead {
		status = statusRead
	}
	var frames []*frame
	for i := range evs {
		msg := &evs[i]
		if msg.Pos > ev.Ref || (msg.Type != chat.EventMessage && msg.Type != chat.EventNotice) {
			continue
		}
		if msg.User == ev.User && msg.User != chat.System() || !msg.VisibleTo(readerRole) {
			continue
		}
		if !isRead && t.status(msg) == statusRead {
			continue // never "read" then "delivered"
		}
		cur, err := t.h.e.Message(ctx, t.room, msg.Pos)
		if err != nil {
			continue
		}
		shown := cur.Event
		// The frame belongs to the receipt's position (for resume), not the message's.
		f := t.messageFrame(ctx, evMessageUpdated, msg, &shown, status, !cur.Deleted.IsZero(), ev.Pos)
		if f == nil {
			continue
		}
		frames = append(frames, f)
	}
	return frames
}

// prevMark returns member M's watermark before ev: from memory, or found by reading back
// from ev (at most receiptSpan events; beyond that, ev.Ref-receiptSpan stands for it).
func (t *translator) prevMark(ctx context.Context, ev *chat.Event, isRead bool) uint64 {
	marks := t.delivered
	if isRead {
		marks = t.read
	}
	if w, ok := marks[ev.From]; ok {
		return w
	}
	var floor uint64
	if ev.Ref > receiptSpan {
		floor = ev.Ref - receiptSpan
	}
	if ev.Pos <= 1 {
		return floor
	}
	evs, err := t.h.e.Read(ctx, t.room, chat.ReadOptions{From: ev.Pos - 1, Limit: receiptSpan, Backward: true})
	if err != nil {
		return floor
	}
	for i := range evs {
		p := &evs[i]
		if p.From != ev.From {
			continue
		}
		if p.Type == chat.EventRead || (!isRead && p.Type == chat.EventDelivered) {
			return max(p.Ref, floor)
		}
	}
	return floor
}
