package genesys

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/parley-chat/chat"
)

// Message is one transcript event (the spec's ChatTranscriptResource).
type Message struct {
	// From is the party that caused the event.
	From Party `json:"from"`
	// Index is the event's engine position.
	Index uint64 `json:"index"`
	// Type is the Genesys event type: ParticipantJoined, ParticipantLeft, Message,
	// TypingStarted, TypingStopped, NicknameUpdated, PushUrl, CustomNotice or Notice.
	Type string `json:"type"`
	// UTCTime is the event time in milliseconds since the Unix epoch.
	UTCTime int64 `json:"utcTime"`
	// Text is the message, typing preview, new nickname, URL or notice text.
	Text string `json:"text,omitempty"`
	// MessageType is the messageType a message was sent with.
	MessageType string `json:"messageType,omitempty"`
}

// Party is the from of a transcript event (the spec's PartyResource).
type Party struct {
	// Nickname is the party's name in the chat.
	Nickname string `json:"nickname"`
	// ParticipantID is the party's engine JoinNumber: new for every join; 0 for the program.
	ParticipantID uint64 `json:"participantId"`
	// Type is Client, Agent or External.
	Type string `json:"type"`
}

// The participant types.
const (
	TypeClient   = "Client"
	TypeAgent    = "Agent"
	TypeExternal = "External"
)

// PartyType maps an engine role to a Genesys participant type.
func PartyType(role chat.Role) string {
	switch role {
	case chat.RoleClient:
		return TypeClient
	case chat.RoleAgent, chat.RoleOperator:
		return TypeAgent
	}
	return TypeExternal
}

// Names of the engine custom events this package appends and renders.
const (
	customPushURL = "genesys.PushUrl"
	customNotice  = "genesys.CustomNotice"
)

type messageBody struct {
	MessageType string `json:"messageType"`
}

type pushURLBody struct {
	URL string `json:"url"`
}

type noticeBody struct {
	Text string `json:"text"`
}

// Transcript renders the events of a room from position from on (at most Config.MaxEvents
// positions) as the member of user viewer sees them, with the nextPosition that follows them.
// It is the client's view for agent-side tools and tests; a zero viewer sees only events
// meant for everyone.
func (h *Handler) Transcript(ctx context.Context, roomID, viewer chat.ID, from uint64) ([]Message, uint64, error) {
	var m chat.Member
	if viewer != (chat.ID{}) {
		var err error
		if m, err = h.e.MemberByUser(ctx, roomID, viewer); err != nil && !errors.Is(err, chat.ErrNotFound) {
			return nil, 0, err
		}
	}
	msgs, next, _, err := h.transcript(ctx, roomID, m, from)
	return msgs, next, err
}

// transcript renders up to MaxEvents positions from from (none if from is 0) for viewer and
// returns them with nextPosition and the room as read at the end.
func (h *Handler) transcript(ctx context.Context, roomID chat.ID, viewer chat.Member, from uint64) ([]Message, uint64, chat.Room, error) {
	room, err := h.e.Room(ctx, roomID)
	if err != nil {
		return nil, 0, chat.Room{}, err
	}
	msgs := []Message{}
	next := room.LastPos + 1
	if from == 0 || from > room.LastPos {
		return msgs, next, room, nil
	}
	end := min(room.LastPos, from+uint64(h.cfg.MaxEvents)-1)
	r := renderer{h: h, ctx: ctx, room: roomID, viewer: viewer}
	var buf []chat.Event
	for pos := from; pos <= end; {
		buf, err = h.e.ReadAppend(ctx, buf[:0], roomID, chat.ReadOptions{From: pos, Limit: int(min(end-pos+1, 1000))})
		if err != nil {
			return nil, 0, chat.Room{}, err
		}
		if len(buf) == 0 {
			break
		}
		for i := range buf {
			if m, ok, err := r.render(&buf[i]); err != nil {
				return nil, 0, chat.Room{}, err
			} else if ok {
				msgs = append(msgs, m)
			}
		}
		pos = buf[len(buf)-1].Pos + 1
	}
	return msgs, end + 1, room, nil
}

// renderer turns engine events into Genesys events for one viewer, caching members and users.
type renderer struct {
	h       *Handler
	ctx     context.Context
	room    chat.ID
	viewer  chat.Member
	members map[chat.ID]chat.Member
	users   map[chat.ID]string
}

// render returns the Genesys event for ev, or false if Genesys shows none.
func (r *renderer) render(ev *chat.Event) (Message, bool, error) {
	if !ev.VisibleToMember(r.viewer) {
		return Message{}, false, nil
	}
	m := Message{Index: ev.Pos, UTCTime: ev.Time.UnixMilli()}
	switch ev.Type {
	case chat.EventJoined:
		m.Type = "ParticipantJoined"
	case chat.EventLeft:
		m.Type = "ParticipantLeft"
	case chat.EventMessage:
		m.Type, m.Text = "Message", ev.Text
		var b messageBody
		if len(ev.Body) > 0 && json.Unmarshal(ev.Body, &b) == nil {
			m.MessageType = b.MessageType
		}
	case chat.EventTypingStarted:
		m.Type, m.Text = "TypingStarted", ev.Text
	case chat.EventTypingStopped:
		m.Type = "TypingStopped"
	case chat.EventNickname:
		m.Type, m.Text = "NicknameUpdated", ev.Text
	case chat.EventNotice:
		m.Type, m.Text = "Notice", ev.Text
	case chat.EventCustom:
		switch ev.Name {
		case customPushURL:
			var b pushURLBody
			json.Unmarshal(ev.Body, &b)
			m.Type, m.Text = "PushUrl", b.URL
		case customNotice:
			var b noticeBody
			json.Unmarshal(ev.Body, &b)
			m.Type, m.Text = "CustomNotice", b.Text
		default:
			return Message{}, false, nil
		}
	default: // receipts, invitations, edits, deletions, the end: no Genesys event
		return Message{}, false, nil
	}
	from, err := r.party(ev)
	if err != nil {
		return Message{}, false, err
	}
	m.From = from
	return m, true, nil
}

func (r *renderer) party(ev *chat.Event) (Party, error) {
	if ev.From == (chat.ID{}) {
		return Party{Nickname: r.h.cfg.SystemNickname, Type: TypeExternal}, nil
	}
	if r.members == nil {
		ms, err := r.h.e.Members(r.ctx, r.room)
		if err != nil {
			return Party{}, err
		}
		r.members = make(map[chat.ID]chat.Member, len(ms))
		for _, m := range ms {
			r.members[m.ID] = m
		}
	}
	m, ok := r.members[ev.From]
	if !ok {
		return Party{Type: TypeExternal}, nil
	}
	p := Party{Nickname: m.Nickname, ParticipantID: m.JoinNumber, Type: PartyType(m.Role)}
	if ev.Type == chat.EventJoined && ev.Text != "" {
		p.Nickname = ev.Text
	}
	if p.Nickname == "" {
		name, err := r.userName(m.UserID)
		if err != nil {
			return Party{}, err
		}
		p.Nickname = name
	}
	return p, nil
}

func (r *renderer) userName(id chat.ID) (string, error) {
	if n, ok := r.users[id]; ok {
		return n, nil
	}
	if r.users == nil {
		r.users = map[chat.ID]string{}
	}
	u, err := r.h.e.User(r.ctx, id)
	if err != nil && !errors.Is(err, chat.ErrNotFound) {
		return "", err
	}
	n := u.DisplayName
	if n == "" {
		n = u.Name
	}
	r.users[id] = n
	return n, nil
}
