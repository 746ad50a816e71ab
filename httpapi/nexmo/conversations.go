package nexmo

import (
	"errors"
	"net/http"

	"github.com/parley-chat/chat"
)

// adminOnly refuses user tokens.
func (q *request) adminOnly() error {
	if !q.p.admin {
		return forbidden("This operation requires an admin token.")
	}
	return nil
}

// room loads the conversation named by the first path id, for an admin; unknown or
// malformed ids are 404.
func (h *Handler) room(q *request) (chat.Room, error) {
	id, ok := parseID(prefixConversation, q.params[0])
	if !ok {
		return chat.Room{}, errConvNotFound
	}
	r, err := h.e.Room(q.ctx, id)
	return r, fail(err, resConversation, "")
}

// errConvNotFound is the answer for a conversation that does not exist, and for one the caller
// may not know of: the same error, so the same bytes.
var errConvNotFound = fail(chat.ErrNotFound, resConversation, "")

// standing is where the caller stands with a conversation.
type standing struct {
	room chat.Room
	// self is the user's latest membership record in the room: zero when it has none, and
	// for an admin.
	self chat.Member
	// known: the caller may know that the conversation exists (decisions.go): an admin, a
	// user with a membership record there (invited, joined or left), or its creator.
	known bool
}

// stand loads the conversation of the path and the caller's standing with it; unknown or
// malformed ids are 404. For a user it makes the same two lookups whether the conversation
// exists or not, so that the time taken tells as little as the answer.
func (h *Handler) stand(q *request) (standing, error) {
	id, ok := parseID(prefixConversation, q.params[0])
	if !ok {
		return standing{}, errConvNotFound
	}
	if q.p.admin {
		r, err := h.e.Room(q.ctx, id)
		return standing{room: r, known: true}, fail(err, resConversation, "")
	}
	m, merr := h.e.MemberByUser(q.ctx, id, q.p.user.ID)
	r, err := h.e.Room(q.ctx, id)
	switch {
	case err != nil:
		return standing{}, fail(err, resConversation, "")
	case merr != nil && !isNotFound(merr):
		return standing{}, merr
	}
	s := standing{room: r, known: merr == nil || createdBy(r, q.p.user.ID)}
	if merr == nil {
		s.self = m
	}
	return s, nil
}

// conversation is stand for every operation but a join: a conversation the caller may not
// know of is answered as one that does not exist.
func (h *Handler) conversation(q *request) (standing, error) {
	s, err := h.stand(q)
	if err == nil && !s.known {
		return standing{}, errConvNotFound
	}
	return s, err
}

// access checks that the caller may read and act in a conversation it knows: an admin always;
// a user while its membership is invited or joined.
func (q *request) access(s standing) error {
	if q.p.admin || s.self.State == chat.Invited || s.self.State == chat.Joined {
		return nil
	}
	return forbidden("You are not a member of this conversation.")
}

// createdBy reports whether user created the room through this API (attrCreator).
func createdBy(r chat.Room, user chat.ID) bool {
	c, ok := r.Attributes[attrCreator]
	return ok && c == user.String()
}

func (h *Handler) listConversations(q *request) error {
	if err := q.adminOnly(); err != nil {
		return err
	}
	l, err := parseListQuery(q.r.URL.Query())
	if err != nil {
		return err
	}
	page, err := h.e.Rooms(q.ctx, l.filter())
	if err != nil {
		return fail(err, resConversation, "date_end")
	}
	all := l.filter()
	all.Offset, all.Limit = 0, 0
	matching, err := h.e.Rooms(q.ctx, all) // count is the total matching (see the report)
	if err != nil {
		return fail(err, resConversation, "date_end")
	}
	out := convList{Count: len(matching), PageSize: l.PageSize, RecordIndex: l.RecordIndex}
	out.Links = h.listLinks("conversations", l, len(matching))
	out.Embedded.Conversations = make([]convListItem, 0, len(page))
	for _, r := range page {
		out.Embedded.Conversations = append(out.Embedded.Conversations,
			convListItem{UUID: conversationID(r.ID), Name: r.Name, Href: h.conversationHref(r.ID)})
	}
	writeJSON(q.w, http.StatusOK, out)
	return nil
}

// listLinks are a HAL list's self link and, where there are more records, next and prev.
func (h *Handler) listLinks(path string, l listQuery, count int) links {
	ls := links{Self: link{h.href(path) + "?" + l.query(l.RecordIndex)}}
	if next := l.RecordIndex + l.PageSize; next < count {
		ls.Next = &link{h.href(path) + "?" + l.query(next)}
	}
	if l.RecordIndex > 0 {
		ls.Prev = &link{h.href(path) + "?" + l.query(max(0, min(l.RecordIndex, count)-l.PageSize))}
	}
	return ls
}

// roomAttributes turns a conversation body's numbers and properties into room attributes;
// for an update, an empty object removes the attribute (an empty value removes a key).
func roomAttributes(in conversationInput) map[string]string {
	var a map[string]string
	set := func(k string, v []byte, given bool) {
		if !given {
			return
		}
		if a == nil {
			a = map[string]string{}
		}
		if string(v) == "{}" {
			a[k] = ""
		} else {
			a[k] = string(v)
		}
	}
	set(attrNumbers, in.Numbers, in.Numbers != nil)
	set(attrProperties, in.Properties, in.HasProps)
	return a
}

func (h *Handler) createConversation(q *request) error {
	b := q.body
	in, err := parseConversation(b)
	if err != nil {
		return err
	}
	n := chat.NewRoom{Name: deref(in.Name), DisplayName: deref(in.DisplayName), ImageURL: deref(in.ImageURL)}
	for k, v := range roomAttributes(in) {
		if v != "" {
			if n.Attributes == nil {
				n.Attributes = map[string]string{}
			}
			n.Attributes[k] = v
		}
	}
	if in.TTL != nil {
		n.EmptyTTL = *in.TTL
	}
	if !q.p.admin { // the conversation a user creates is one it may join (decisions.go)
		if n.Attributes == nil {
			n.Attributes = map[string]string{}
		}
		n.Attributes[attrCreator] = q.p.user.ID.String()
	}
	r, err := h.e.CreateRoom(q.ctx, n)
	if err != nil {
		return fail(err, resConversation, "body")
	}
	writeJSON(q.w, http.StatusOK, idHref{ID: conversationID(r.ID), Href: h.conversationHref(r.ID)})
	return nil
}

func (h *Handler) getConversation(q *request) error {
	s, err := h.conversation(q)
	if err != nil {
		return err
	}
	if err := q.access(s); err != nil {
		return err
	}
	out, err := h.renderConversation(q.ctx, s.room)
	if err != nil {
		return err
	}
	writeJSON(q.w, http.StatusOK, out)
	return nil
}

func (h *Handler) updateConversation(q *request) error {
	s, err := h.conversation(q)
	if err != nil {
		return err
	}
	if err := q.access(s); err != nil {
		return err
	}
	if !q.p.admin && s.self.State != chat.Joined {
		return forbidden("Only joined members may update a conversation.")
	}
	r := s.room
	b := q.body
	in, err := parseConversation(b)
	if err != nil {
		return err
	}
	up := chat.RoomUpdate{Name: in.Name, DisplayName: in.DisplayName, ImageURL: in.ImageURL,
		Attributes: roomAttributes(in), EmptyTTL: in.TTL}
	if r, err = h.e.UpdateRoom(q.ctx, r.ID, up); err != nil {
		return fail(err, resConversation, "body")
	}
	writeJSON(q.w, http.StatusOK, idHref{ID: conversationID(r.ID), Href: h.conversationHref(r.ID)})
	return nil
}

func (h *Handler) deleteConversation(q *request) error {
	if err := q.adminOnly(); err != nil {
		return err
	}
	r, err := h.room(q)
	if err != nil {
		return err
	}
	if err := h.e.DeleteRoom(q.ctx, r.ID); err != nil {
		return fail(err, resConversation, "")
	}
	writeJSON(q.w, http.StatusOK, emptyObject)
	return nil
}

// listLegs lists the legs: voice calls, which chat members never have, so the list is empty
// (README fact: list what exists).
func (h *Handler) listLegs(q *request) error {
	if err := q.adminOnly(); err != nil {
		return err
	}
	l, err := parseListQuery(q.r.URL.Query())
	if err != nil {
		return err
	}
	out := legList{PageSize: l.PageSize, RecordIndex: l.RecordIndex, Links: h.listLinks("legs", l, 0)}
	out.Embedded.Legs = []struct{}{}
	writeJSON(q.w, http.StatusOK, out)
	return nil
}

// deleteLeg answers 404 for every id: there are no legs (README fact: 404 for unknown legs).
func (h *Handler) deleteLeg(q *request) error {
	if err := q.adminOnly(); err != nil {
		return err
	}
	return fail(chat.ErrNotFound, resLeg, "")
}

func isNotFound(err error) bool { return errors.Is(err, chat.ErrNotFound) }
