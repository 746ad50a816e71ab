package nexmo

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/parley-chat/chat"
)

// Wire shapes of answers. Field names and nesting follow the spec's schemas; where the spec
// leaves ids out of an answer that clients need, they are added (README ours).

type link struct {
	Href string `json:"href"`
}

type links struct {
	Self link  `json:"self"`
	Next *link `json:"next,omitempty"`
	Prev *link `json:"prev,omitempty"`
}

type idHref struct {
	ID   string `json:"id"`
	Href string `json:"href"`
}

type convListItem struct {
	UUID string `json:"uuid"`
	Name string `json:"name"`
	Href string `json:"href"`
}

type convList struct {
	Count       int   `json:"count"`
	PageSize    int   `json:"page_size"`
	RecordIndex int   `json:"record_index"`
	Links       links `json:"_links"`
	Embedded    struct {
		Conversations []convListItem `json:"conversations"`
	} `json:"_embedded"`
}

type convTimestamp struct {
	Created   string `json:"created"`
	Updated   string `json:"updated,omitempty"`
	Destroyed string `json:"destroyed,omitempty"`
}

type memberTimestamp struct {
	Invited string `json:"invited,omitempty"`
	Joined  string `json:"joined,omitempty"`
	Left    string `json:"left,omitempty"`
}

type initiatorRef struct {
	IsSystem bool   `json:"isSystem"`
	UserID   string `json:"user_id,omitempty"`
}

// initiator says who brought a member in. The engine records the inviter of an invitation
// (Member.InvitedBy) but not who performed a join, so only `invited` is rendered; see the
// report's engine gaps.
type initiator struct {
	Invited *initiatorRef `json:"invited,omitempty"`
}

type channel struct {
	Type string `json:"type"`
}

type convMember struct {
	MemberID  string          `json:"member_id"`
	UserID    string          `json:"user_id"`
	Name      string          `json:"name"`
	State     string          `json:"state"`
	Timestamp memberTimestamp `json:"timestamp"`
	Initiator *initiator      `json:"initiator,omitempty"`
	Channel   channel         `json:"channel"`
}

type conversation struct {
	UUID           string                     `json:"uuid"`
	Name           string                     `json:"name"`
	DisplayName    string                     `json:"display_name"`
	ImageURL       string                     `json:"image_url,omitempty"`
	Numbers        json.RawMessage            `json:"numbers"`
	Properties     map[string]json.RawMessage `json:"properties"`
	Timestamp      convTimestamp              `json:"timestamp"`
	SequenceNumber uint64                     `json:"sequence_number"`
	Members        []convMember               `json:"members"`
	Links          links                      `json:"_links"`
}

type memberListItem struct {
	ID       string `json:"id"`
	UserID   string `json:"user_id"`
	UserName string `json:"user_name"`
	Name     string `json:"name"`
	State    string `json:"state"`
}

type member struct {
	ID             string          `json:"id"`
	ConversationID string          `json:"conversation_id"`
	UserID         string          `json:"user_id"`
	Name           string          `json:"name"`
	State          string          `json:"state"`
	Timestamp      memberTimestamp `json:"timestamp"`
	Initiator      *initiator      `json:"initiator,omitempty"`
	Channel        channel         `json:"channel"`
	Href           string          `json:"href"`
}

type event struct {
	ID        uint64          `json:"id"`
	Type      string          `json:"type"`
	From      string          `json:"from,omitempty"`
	To        string          `json:"to,omitempty"`
	Body      json.RawMessage `json:"body"`
	Timestamp string          `json:"timestamp"`
	Href      string          `json:"href"`
}

type createdEvent struct {
	ID        uint64 `json:"id"`
	Timestamp string `json:"timestamp"`
	Href      string `json:"href"`
}

type userListItem struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Href string `json:"href"`
}

type user struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	DisplayName string          `json:"display_name"`
	ImageURL    string          `json:"image_url,omitempty"`
	Channels    json.RawMessage `json:"channels"`
	Href        string          `json:"href"`
}

type userConversation struct {
	ID             string `json:"id"`
	Name           string `json:"name"`
	DisplayName    string `json:"display_name"`
	ImageURL       string `json:"image_url,omitempty"`
	State          string `json:"state"`
	MemberID       string `json:"member_id"`
	SequenceNumber uint64 `json:"sequence_number"`
	Href           string `json:"href"`
	Timestamp      struct {
		Created string `json:"created"`
	} `json:"timestamp"`
}

type legList struct {
	Count       int   `json:"count"`
	PageSize    int   `json:"page_size"`
	RecordIndex int   `json:"record_index"`
	Links       links `json:"_links"`
	Embedded    struct {
		Legs []struct{} `json:"legs"`
	} `json:"_embedded"`
}

var emptyObject = json.RawMessage(`{}`)

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeFormat)
}

// state renders a member state upper case (fact: the wire says INVITED, JOINED, LEFT
// although the spec's enum is lower case).
func state(s chat.MemberState) string {
	switch s {
	case chat.Invited:
		return "INVITED"
	case chat.Joined:
		return "JOINED"
	case chat.Left:
		return "LEFT"
	}
	return "UNKNOWN"
}

func memberTimes(m chat.Member) memberTimestamp {
	return memberTimestamp{Invited: ts(m.InvitedAt), Joined: ts(m.JoinedAt), Left: ts(m.LeftAt)}
}

func initiatorOf(m chat.Member) *initiator {
	if m.InvitedAt.IsZero() {
		return nil
	}
	ref := &initiatorRef{IsSystem: m.InvitedBy == chat.System()}
	if !ref.IsSystem {
		ref.UserID = userID(m.InvitedBy)
	}
	return &initiator{Invited: ref}
}

// names resolves user and member ids to the users' names while rendering one answer.
type names struct {
	h       *Handler
	ctx     context.Context
	room    chat.ID
	users   map[chat.ID]string
	members map[chat.ID]chat.Member
}

func (h *Handler) names(ctx context.Context, room chat.ID) *names {
	return &names{h: h, ctx: ctx, room: room, users: map[chat.ID]string{}, members: map[chat.ID]chat.Member{}}
}

// user returns a user's name; "" for System or a deleted user.
func (n *names) user(id chat.ID) (string, error) {
	if id == chat.System() {
		return "", nil
	}
	if s, ok := n.users[id]; ok {
		return s, nil
	}
	u, err := n.h.e.User(n.ctx, id)
	if err != nil && !errors.Is(err, chat.ErrNotFound) {
		return "", err
	}
	n.users[id] = u.Name
	return u.Name, nil
}

func (n *names) member(id chat.ID) (chat.Member, error) {
	if m, ok := n.members[id]; ok {
		return m, nil
	}
	m, err := n.h.e.MemberByID(n.ctx, n.room, id)
	if err != nil && !errors.Is(err, chat.ErrNotFound) {
		return chat.Member{}, err
	}
	n.members[id] = m
	return m, nil
}

func (h *Handler) eventHref(room chat.ID, pos uint64) string {
	return h.href("conversations", conversationID(room), "events", strconv.FormatUint(pos, 10))
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return emptyObject
	}
	return b
}

type userRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// renderEvent translates an engine event to the vendor's event (type table in decisions.go).
func (h *Handler) renderEvent(n *names, ev *chat.Event) (event, error) {
	out := event{ID: ev.Pos, Timestamp: ts(ev.Time), Href: h.eventHref(ev.RoomID, ev.Pos), Body: emptyObject}
	if !ev.From.IsZero() {
		out.From = memberID(ev.From)
	}
	if !ev.To.IsZero() {
		out.To = memberID(ev.To)
	}
	refBody := func() json.RawMessage { return mustJSON(map[string]uint64{"event_id": ev.Ref}) }
	switch ev.Type {
	case chat.EventMessage:
		if isImageBody(ev.Body) {
			out.Type, out.Body = typeImage, ev.Body
		} else {
			out.Type, out.Body = typeText, mustJSON(map[string]string{"text": ev.Text})
		}
	case chat.EventNotice:
		out.Type, out.Body = typeText, mustJSON(map[string]string{"text": ev.Text})
	case chat.EventInvited:
		// The subject of member:invited is the invitee (To); the inviter is a user name in
		// body.invited_by.
		out.Type, out.From, out.To = typeInvited, memberID(ev.To), ""
		m, err := n.member(ev.To)
		if err != nil {
			return event{}, err
		}
		name, err := n.user(m.UserID)
		if err != nil {
			return event{}, err
		}
		by, err := n.user(ev.User)
		if err != nil {
			return event{}, err
		}
		body := map[string]any{"user": userRef{ID: userID(m.UserID), Name: name}}
		if by != "" {
			body["invited_by"] = by
		}
		out.Body = mustJSON(body)
	case chat.EventJoined, chat.EventLeft:
		out.Type = typeJoined
		if ev.Type == chat.EventLeft {
			out.Type = typeLeft
		}
		name, err := n.user(ev.User)
		if err != nil {
			return event{}, err
		}
		out.Body = mustJSON(map[string]any{"user": userRef{ID: userID(ev.User), Name: name}})
	case chat.EventRead:
		out.Type, out.Body = typeSeen, refBody()
	case chat.EventDelivered:
		out.Type, out.Body = typeDelivered, refBody()
	case chat.EventTypingStarted:
		out.Type = typeTypingOn
		if ev.Text != "" {
			out.Body = mustJSON(map[string]string{"text": ev.Text})
		}
	case chat.EventTypingStopped:
		out.Type = typeTypingOff
	case chat.EventDelete:
		out.Type, out.Body = typeDelete, refBody()
	case chat.EventCustom:
		out.Type = typeCustomPrefix + ev.Name
		if len(ev.Body) > 0 {
			out.Body = ev.Body
		}
	case chat.EventEdit:
		out.Type = typeCustomPrefix + string(chat.EventEdit)
		body := map[string]any{"event_id": ev.Ref, "text": ev.Text}
		if len(ev.Body) > 0 {
			body["body"] = ev.Body
		}
		out.Body = mustJSON(body)
	case chat.EventNickname:
		out.Type, out.Body = typeCustomPrefix+string(chat.EventNickname), mustJSON(map[string]string{"nickname": ev.Text})
	default: // EventEnded and any type added to the engine later
		out.Type = typeCustomPrefix + string(ev.Type)
		if len(ev.Body) > 0 {
			out.Body = ev.Body
		}
	}
	return out, nil
}

// renderMember is the full member answer (create, retrieve, update).
func (h *Handler) renderMember(n *names, m chat.Member) (member, error) {
	name, err := n.user(m.UserID)
	if err != nil {
		return member{}, err
	}
	return member{
		ID: memberID(m.ID), ConversationID: conversationID(m.RoomID), UserID: userID(m.UserID),
		Name: name, State: state(m.State), Timestamp: memberTimes(m), Initiator: initiatorOf(m),
		Channel: channel{Type: channelApp}, Href: h.memberHref(m.RoomID, m.ID),
	}, nil
}

// properties renders a room's properties: the stored object with ttl from Room.EmptyTTL.
func properties(r chat.Room) map[string]json.RawMessage {
	p := map[string]json.RawMessage{}
	if s := r.Attributes[attrProperties]; s != "" {
		_ = json.Unmarshal([]byte(s), &p)
	}
	if r.EmptyTTL > 0 {
		p["ttl"] = json.RawMessage(strconv.FormatFloat(r.EmptyTTL.Seconds(), 'f', -1, 64))
	}
	return p
}

func objectAttr(attrs map[string]string, key string) json.RawMessage {
	if s := attrs[key]; s != "" && json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	return emptyObject
}

func (h *Handler) renderConversation(ctx context.Context, r chat.Room) (conversation, error) {
	ms, err := h.e.Members(ctx, r.ID)
	if err != nil {
		return conversation{}, fail(err, resConversation, "")
	}
	n := h.names(ctx, r.ID)
	out := conversation{
		UUID: conversationID(r.ID), Name: r.Name, DisplayName: r.DisplayName, ImageURL: r.ImageURL,
		Numbers: objectAttr(r.Attributes, attrNumbers), Properties: properties(r),
		Timestamp:      convTimestamp{Created: ts(r.CreatedAt), Updated: ts(r.UpdatedAt), Destroyed: ts(r.EndedAt)},
		SequenceNumber: r.LastPos, Members: make([]convMember, 0, len(ms)),
		Links: links{Self: link{h.conversationHref(r.ID)}},
	}
	for _, m := range ms {
		name, err := n.user(m.UserID)
		if err != nil {
			return conversation{}, err
		}
		out.Members = append(out.Members, convMember{
			MemberID: memberID(m.ID), UserID: userID(m.UserID), Name: name, State: state(m.State),
			Timestamp: memberTimes(m), Initiator: initiatorOf(m), Channel: channel{Type: channelApp},
		})
	}
	return out, nil
}

func (h *Handler) renderUser(u chat.User) user {
	return user{ID: userID(u.ID), Name: u.Name, DisplayName: u.DisplayName, ImageURL: u.AvatarURL,
		Channels: objectAttr(u.Attributes, attrChannels), Href: h.userHref(u.ID)}
}
