package nexmo

import (
	"context"
	"net/http"
	"strings"

	"github.com/parley-chat/chat"
)

// visible reports whether the member self (zero for an admin) may see ev: the engine's
// visibility role, and a message addressed to one member only to it and its sender.
func visible(admin bool, self chat.Member, ev *chat.Event) bool {
	if admin {
		return true
	}
	return ev.VisibleToMember(self)
}

func (h *Handler) listEvents(q *request) error {
	s, err := h.conversation(q)
	if err != nil {
		return err
	}
	if err := q.access(s); err != nil {
		return err
	}
	r, self := s.room, s.self
	eq, err := parseEventsQuery(q.r.URL.Query())
	if err != nil {
		return err
	}
	from := eq.StartID
	if eq.Desc {
		from = eq.EndID // 0: the last
	}
	evs, err := h.e.Read(q.ctx, r.ID, chat.ReadOptions{From: from, Limit: eq.PageSize, Backward: eq.Desc})
	if err != nil {
		return fail(err, resConversation, "")
	}
	n := h.names(q.ctx, r.ID)
	out := make([]event, 0, len(evs))
	for i := range evs {
		ev := &evs[i]
		if (eq.EndID != 0 && ev.Pos > eq.EndID) || (eq.StartID != 0 && ev.Pos < eq.StartID) {
			break
		}
		if !visible(q.p.admin, self, ev) {
			continue
		}
		e, err := h.renderEvent(n, ev)
		if err != nil {
			return err
		}
		if eq.Type != "" && e.Type != eq.Type {
			continue
		}
		out = append(out, e)
	}
	writeJSON(q.w, http.StatusOK, out)
	return nil
}

// eventParam parses the event id of the path; a malformed id is an unknown event.
func eventParam(q *request) (uint64, error) {
	pos, ok := parseEventID(q.params[1])
	if !ok {
		return 0, fail(chat.ErrNotFound, resEvent, "")
	}
	return pos, nil
}

func (h *Handler) getEvent(q *request) error {
	s, err := h.conversation(q)
	if err != nil {
		return err
	}
	if err := q.access(s); err != nil {
		return err
	}
	r, self := s.room, s.self
	pos, err := eventParam(q)
	if err != nil {
		return err
	}
	ev, err := h.e.Event(q.ctx, r.ID, pos)
	if err != nil {
		return fail(err, resEvent, "")
	}
	if !visible(q.p.admin, self, &ev) {
		return fail(chat.ErrNotFound, resEvent, "")
	}
	out, err := h.renderEvent(h.names(q.ctx, r.ID), &ev)
	if err != nil {
		return err
	}
	writeJSON(q.w, http.StatusOK, out)
	return nil
}

func (h *Handler) deleteEvent(q *request) error {
	s, err := h.conversation(q)
	if err != nil {
		return err
	}
	if err := q.access(s); err != nil {
		return err
	}
	r := s.room
	pos, err := eventParam(q)
	if err != nil {
		return err
	}
	if _, err := h.e.Delete(q.ctx, r.ID, q.p.engineUser(), pos); err != nil {
		return fail(err, resEvent, "")
	}
	writeJSON(q.w, http.StatusOK, emptyObject)
	return nil
}

// memberParam resolves a member id of the request (path or body) in room; unknown or
// malformed ids are member:error:not-found.
func (h *Handler) memberParam(ctx context.Context, room chat.ID, s string) (chat.Member, error) {
	id, ok := parseID(prefixMember, s)
	if !ok {
		return chat.Member{}, fail(chat.ErrNotFound, resMember, "")
	}
	m, err := h.e.MemberByID(ctx, room, id)
	return m, fail(err, resMember, "")
}

// memberEvent returns the event of a membership change that a call made: the engine records
// on each membership record the position of its latest change (Member.Pos), so a Pos after
// the room's last position before the call is the call's own event; otherwise the call changed
// nothing (a receipt at or below the watermark) and ok is false.
func (h *Handler) memberEvent(ctx context.Context, m chat.Member, after uint64) (ev chat.Event, ok bool, err error) {
	if m.Pos <= after {
		return chat.Event{}, false, nil
	}
	ev, err = h.e.Event(ctx, m.RoomID, m.Pos)
	return ev, err == nil, err
}

// answerMemberChange answers a call that changed a membership with the event it appended,
// if any (memberEvent).
func (h *Handler) answerMemberChange(q *request, m chat.Member, after uint64) error {
	ev, ok, err := h.memberEvent(q.ctx, m, after)
	if err != nil {
		return fail(err, resConversation, "")
	}
	h.answerCreated(q, ev, ok)
	return nil
}

// answerCreated answers an event creation: 201 with the event appended; when the engine
// appended none (the state asked for was already the state), 200 with an empty object: no
// event was created, so there is no honest id to give. (ours)
func (h *Handler) answerCreated(q *request, ev chat.Event, ok bool) {
	if !ok {
		writeJSON(q.w, http.StatusOK, emptyObject)
		return
	}
	writeJSON(q.w, http.StatusCreated, createdEvent{ID: ev.Pos, Timestamp: ts(ev.Time), Href: h.eventHref(ev.RoomID, ev.Pos)})
}

func (h *Handler) createEvent(q *request) error {
	s, err := h.conversation(q)
	if err != nil {
		return err
	}
	if err := q.access(s); err != nil {
		return err
	}
	r := s.room
	b := q.body
	in, err := parseEvent(b)
	if err != nil {
		return err
	}
	// from: the member the event comes from. A user may only speak as its own member; an
	// admin may leave it out for texts, images, custom events and deletes, which then come
	// from the program (chat.System).
	var from chat.Member
	actor := chat.System()
	if in.From != "" {
		if from, err = h.memberParam(q.ctx, r.ID, in.From); err != nil {
			return err
		}
		actor = from.UserID
	}
	if !q.p.admin && (in.From == "" || from.UserID != q.p.user.ID) {
		if in.From == "" {
			return validation("from", "is required")
		}
		return forbidden("You may only create events from your own member.")
	}
	// Except for member:joined (from an invited member) and member:left, `from` must be the
	// user's joined member: the engine acts as the user's current membership, and an old
	// (left) member id of a user who has rejoined must not speak for the new one.
	if in.From != "" && in.Type != typeJoined && in.Type != typeLeft && from.State != chat.Joined {
		return forbidden("The member is not joined to this conversation.")
	}
	needFrom := func() error {
		if in.From == "" {
			return validation("from", "is required for "+in.Type)
		}
		return nil
	}
	var to chat.ID
	if in.To != "" {
		m, err := h.memberParam(q.ctx, r.ID, in.To)
		if err != nil {
			return err
		}
		to = m.ID
	}
	after := r.LastPos // a membership change after it is this call's (memberEvent)

	switch typ := in.Type; {
	case typ == typeText:
		text, err := textBody(in.Body)
		if err != nil {
			return err
		}
		ev, err := h.e.Send(q.ctx, r.ID, actor, chat.NewMessage{Text: text, To: to})
		if err != nil {
			return fail(err, resConversation, "body.text")
		}
		h.answerCreated(q, ev, true)

	case typ == typeImage:
		if in.Body == nil {
			return validation("body", "is required")
		}
		ev, err := h.e.Send(q.ctx, r.ID, actor, chat.NewMessage{Text: imageURL(in.Body), Body: in.Body, To: to})
		if err != nil {
			return fail(err, resConversation, "body")
		}
		h.answerCreated(q, ev, true)

	case strings.HasPrefix(typ, typeCustomPrefix) && len(typ) > len(typeCustomPrefix):
		ev, err := h.e.Custom(q.ctx, r.ID, actor, strings.TrimPrefix(typ, typeCustomPrefix), in.Body)
		if err != nil {
			return fail(err, resConversation, "type")
		}
		h.answerCreated(q, ev, true)

	case typ == typeDelete:
		pos, err := eventIDBody(in.Body)
		if err != nil {
			return err
		}
		ev, err := h.e.Delete(q.ctx, r.ID, actor, pos)
		if err != nil {
			return fail(err, resEvent, "body.event_id")
		}
		h.answerCreated(q, ev, true)

	case typ == typeSeen || typ == typeDelivered:
		if err := needFrom(); err != nil {
			return err
		}
		pos, err := eventIDBody(in.Body)
		if err != nil {
			return err
		}
		mark := h.e.MarkRead
		if typ == typeDelivered {
			mark = h.e.MarkDelivered
		}
		m, err := mark(q.ctx, r.ID, actor, pos)
		if err != nil {
			return fail(err, resEvent, "body.event_id")
		}
		return h.answerMemberChange(q, m.Member, after)

	case typ == typeTypingOn || typ == typeTypingOff:
		if err := needFrom(); err != nil {
			return err
		}
		var ev chat.Event // the zero Event when typing was only renewed, or was not on
		if typ == typeTypingOn {
			preview, err := typingBody(in.Body)
			if err != nil {
				return err
			}
			if ev, err = h.e.StartTyping(q.ctx, r.ID, actor, preview); err != nil {
				return fail(err, resConversation, "body.text")
			}
		} else if ev, err = h.e.StopTyping(q.ctx, r.ID, actor); err != nil {
			return fail(err, resConversation, "")
		}
		h.answerCreated(q, ev, ev.Pos != 0)

	case typ == typeJoined:
		if err := needFrom(); err != nil {
			return err
		}
		m, err := h.join(q, r, from)
		if err != nil {
			return err
		}
		return h.answerMemberChange(q, m, after)

	case typ == typeLeft:
		if err := needFrom(); err != nil {
			return err
		}
		m, err := h.leave(q, r, from)
		if err != nil {
			return err
		}
		return h.answerMemberChange(q, m, after)

	case typ == typeInvited:
		// The invitee is body.user {id | name}; from, when given, is the inviter's member.
		var body struct {
			User struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"user"`
		}
		if in.Body == nil {
			return validation("body.user", "is required")
		}
		if err := decodeObject(in.Body, &body, false); err != nil {
			return retarget(err, "body")
		}
		invitee, err := h.userRef(q.ctx, body.User.ID, body.User.Name, "body.user")
		if err != nil {
			return err
		}
		m, err := h.e.Invite(q.ctx, r.ID, invitee.ID, chat.InviteOptions{By: actor, Role: h.cfg.MemberRole})
		if err != nil {
			return fail(err, resMember, "body.user")
		}
		return h.answerMemberChange(q, m.Member, after)

	default: // member:media and anything unknown
		return validation("type", "unsupported event type "+typ)
	}
	return nil
}

// userRef resolves a user given by wire id or by name.
func (h *Handler) userRef(ctx context.Context, id, name, field string) (chat.User, error) {
	switch {
	case id != "":
		uid, ok := parseID(prefixUser, id)
		if !ok {
			return chat.User{}, fail(chat.ErrNotFound, resUser, "")
		}
		u, err := h.e.User(ctx, uid)
		return u, fail(err, resUser, "")
	case name != "":
		u, err := h.e.UserByName(ctx, name)
		return u, fail(err, resUser, "")
	}
	return chat.User{}, validation(field, "a user id or name is required")
}
