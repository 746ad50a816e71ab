package nexmo

import (
	"net/http"

	"github.com/parley-chat/chat"
)

// userParam loads the user named by the first path id; unknown or malformed ids are 404.
func (h *Handler) userParam(q *request) (chat.User, error) {
	id, ok := parseID(prefixUser, q.params[0])
	if !ok {
		return chat.User{}, fail(chat.ErrNotFound, resUser, "")
	}
	u, err := h.e.User(q.ctx, id)
	return u, fail(err, resUser, "")
}

// self refuses a user token acting on another user.
func (q *request) self(u chat.User) error {
	if !q.p.admin && u.ID != q.p.user.ID {
		return forbidden("You may only act on your own user.")
	}
	return nil
}

func userAttributes(in userInput) map[string]string {
	if in.Channels == nil {
		return nil
	}
	return map[string]string{attrChannels: string(in.Channels)}
}

func (h *Handler) listUsers(q *request) error {
	l, err := parseListQuery(q.r.URL.Query())
	if err != nil {
		return err
	}
	us, err := h.e.Users(q.ctx, l.filter())
	if err != nil {
		return fail(err, resUser, "date_end")
	}
	out := make([]userListItem, 0, len(us))
	for _, u := range us {
		out = append(out, userListItem{ID: userID(u.ID), Name: u.Name, Href: h.userHref(u.ID)})
	}
	writeJSON(q.w, http.StatusOK, out)
	return nil
}

func (h *Handler) createUser(q *request) error {
	if err := q.adminOnly(); err != nil {
		return err
	}
	b := q.body
	in, err := parseUser(b, true)
	if err != nil {
		return err
	}
	u, err := h.e.CreateUser(q.ctx, chat.NewUser{Name: deref(in.Name), DisplayName: deref(in.DisplayName),
		AvatarURL: deref(in.ImageURL), Attributes: userAttributes(in)})
	if err != nil {
		return fail(err, resUser, "body")
	}
	writeJSON(q.w, http.StatusOK, h.renderUser(u))
	return nil
}

func (h *Handler) getUser(q *request) error {
	u, err := h.userParam(q)
	if err != nil {
		return err
	}
	writeJSON(q.w, http.StatusOK, h.renderUser(u))
	return nil
}

func (h *Handler) updateUser(q *request) error {
	u, err := h.userParam(q)
	if err != nil {
		return err
	}
	if err := q.self(u); err != nil {
		return err
	}
	b := q.body
	in, err := parseUser(b, false)
	if err != nil {
		return err
	}
	up := chat.UserUpdate{Name: in.Name, DisplayName: in.DisplayName, AvatarURL: in.ImageURL}
	if in.Channels != nil {
		// UserUpdate.Attributes replaces them all: keep the other surfaces' keys.
		attrs := make(map[string]string, len(u.Attributes)+1)
		for k, v := range u.Attributes {
			attrs[k] = v
		}
		attrs[attrChannels] = string(in.Channels)
		up.Attributes = attrs
	}
	if u, err = h.e.UpdateUser(q.ctx, u.ID, up); err != nil {
		return fail(err, resUser, "body")
	}
	writeJSON(q.w, http.StatusOK, idHref{ID: userID(u.ID), Href: h.userHref(u.ID)})
	return nil
}

// deleteUser deletes a user; the engine ends its invited and joined memberships first, each
// with a member:left event, in the same commit.
func (h *Handler) deleteUser(q *request) error {
	if err := q.adminOnly(); err != nil {
		return err
	}
	u, err := h.userParam(q)
	if err != nil {
		return err
	}
	if err := h.e.DeleteUser(q.ctx, u.ID); err != nil {
		return fail(err, resUser, "")
	}
	writeJSON(q.w, http.StatusOK, emptyObject)
	return nil
}

// userConversations lists the conversations the user has a membership in (its latest
// membership of each, left ones included, with their state).
func (h *Handler) userConversations(q *request) error {
	u, err := h.userParam(q)
	if err != nil {
		return err
	}
	if err := q.self(u); err != nil {
		return err
	}
	ms, err := h.e.Memberships(q.ctx, u.ID)
	if err != nil {
		return fail(err, resUser, "")
	}
	out := make([]userConversation, 0, len(ms))
	for _, m := range ms {
		r, err := h.e.Room(q.ctx, m.RoomID)
		if isNotFound(err) {
			continue // deleted meanwhile
		}
		if err != nil {
			return err
		}
		c := userConversation{ID: conversationID(r.ID), Name: r.Name, DisplayName: r.DisplayName,
			ImageURL: r.ImageURL, State: state(m.State), MemberID: memberID(m.ID), SequenceNumber: r.LastPos,
			Href: h.conversationHref(r.ID)}
		c.Timestamp.Created = ts(r.CreatedAt)
		out = append(out, c)
	}
	writeJSON(q.w, http.StatusOK, out)
	return nil
}
