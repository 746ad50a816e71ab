package nexmo

import (
	"fmt"
	"net/http"

	"github.com/parley-chat/chat"
)

// join joins an invited member (the member state machine: INVITED → JOINED keeps the member
// id; a LEFT member cannot be joined again: its user joins anew and gets a new member id).
func (h *Handler) join(q *request, r chat.Room, m chat.Member) (chat.Member, error) {
	if m.State != chat.Invited {
		return chat.Member{}, fail(fmt.Errorf("member is %s: %w", m.State, chat.ErrConflict), resMember, "")
	}
	j, err := h.e.Join(q.ctx, r.ID, m.UserID, chat.JoinOptions{Role: h.cfg.MemberRole})
	if err != nil {
		return chat.Member{}, fail(err, resMember, "")
	}
	if j.ID != m.ID { // another request made the invitation a new membership meanwhile
		return chat.Member{}, fail(fmt.Errorf("member %s changed: %w", memberID(m.ID), chat.ErrConflict), resMember, "")
	}
	return j.Member, nil
}

// leave ends an invited or joined member: LEFT, and a member:left event.
func (h *Handler) leave(q *request, r chat.Room, m chat.Member) (chat.Member, error) {
	if m.State == chat.Left {
		return chat.Member{}, fail(fmt.Errorf("member has left: %w", chat.ErrConflict), resMember, "")
	}
	l, err := h.e.Leave(q.ctx, r.ID, m.UserID)
	if err != nil {
		return chat.Member{}, fail(err, resMember, "")
	}
	return l.Member, nil
}

// ownMember refuses a user token acting on another user's member.
func (q *request) ownMember(m chat.Member) error {
	if !q.p.admin && m.UserID != q.p.user.ID {
		return forbidden("You may only change your own member.")
	}
	return nil
}

func (h *Handler) listMembers(q *request) error {
	s, err := h.conversation(q)
	if err != nil {
		return err
	}
	if err := q.access(s); err != nil {
		return err
	}
	r := s.room
	ms, err := h.e.Members(q.ctx, r.ID)
	if err != nil {
		return fail(err, resConversation, "")
	}
	n := h.names(q.ctx, r.ID)
	out := make([]memberListItem, 0, len(ms))
	for _, m := range ms {
		name, err := n.user(m.UserID)
		if err != nil {
			return err
		}
		out = append(out, memberListItem{ID: memberID(m.ID), UserID: userID(m.UserID), UserName: name, Name: name, State: state(m.State)})
	}
	writeJSON(q.w, http.StatusOK, out)
	return nil
}

func (h *Handler) createMember(q *request) error {
	s, err := h.stand(q)
	if err != nil {
		return err
	}
	r := s.room
	in, err := parseMember(q.body)
	admitted := false // by Config.MayJoin
	if !s.known {
		// A user who may not know the conversation is told nothing, whatever its body says,
		// unless it asks to join itself and the program lets it (decisions.go).
		if err != nil || in.Action != "join" || !q.namesSelf(in) || !h.askMayJoin(q, r) {
			return errConvNotFound
		}
		admitted = true
	}
	if err != nil {
		return err
	}
	u, err := h.userRef(q.ctx, in.UserID, in.UserName, "user_id")
	if err != nil {
		return err
	}
	by := q.p.engineUser()
	if in.MemberIDInviting != "" {
		inviter, err := h.memberParam(q.ctx, r.ID, in.MemberIDInviting)
		if err != nil {
			return err
		}
		if err := q.ownMember(inviter); err != nil {
			return err
		}
		if inviter.State != chat.Joined {
			return forbidden("The inviting member is not joined to this conversation.")
		}
		by = inviter.UserID
	}
	var m chat.Membership
	switch in.Action {
	case "invite":
		m, err = h.e.Invite(q.ctx, r.ID, u.ID, chat.InviteOptions{By: by, Role: h.cfg.MemberRole})
	default: // join
		if !q.p.admin && u.ID != q.p.user.ID {
			return forbidden("You may only join yourself; invite others.")
		}
		if !q.p.admin && !admitted && !h.mayJoin(q, s) {
			return forbidden("You may only join a conversation you are invited to.")
		}
		// Allowed for its invitation alone: the engine checks it is still there as it joins.
		invitedOnly := !q.p.admin && !admitted && s.self.State == chat.Invited
		m, err = h.e.Join(q.ctx, r.ID, u.ID, chat.JoinOptions{Role: h.cfg.MemberRole, InvitedOnly: invitedOnly})
	}
	if err != nil {
		return fail(err, resMember, "user_id")
	}
	out, err := h.renderMember(h.names(q.ctx, r.ID), m.Member)
	if err != nil {
		return err
	}
	writeJSON(q.w, http.StatusCreated, out)
	return nil
}

// mayJoin is the join policy for a user who knows the conversation (decisions.go): it may join
// while invited (or joined: the engine then answers that it is), or as the creator that has
// not been a member yet; otherwise Config.MayJoin decides.
func (h *Handler) mayJoin(q *request, s standing) bool {
	switch {
	case s.self.State == chat.Invited, s.self.State == chat.Joined:
		return true
	case s.self.ID.IsZero() && createdBy(s.room, q.p.user.ID):
		return true
	}
	return h.askMayJoin(q, s.room)
}

// askMayJoin asks Config.MayJoin, if set, whether the user may join room.
func (h *Handler) askMayJoin(q *request, room chat.Room) bool {
	return h.cfg.MayJoin != nil && h.cfg.MayJoin(q.ctx, q.p.user, room)
}

// namesSelf reports whether a member body names the caller as its user (as userRef reads it:
// user_id first, else user_name), without a lookup.
func (q *request) namesSelf(in memberInput) bool {
	if in.UserID != "" {
		id, ok := parseID(prefixUser, in.UserID)
		return ok && id == q.p.user.ID
	}
	return in.UserName != "" && in.UserName == q.p.user.Name
}

func (h *Handler) getMember(q *request) error {
	s, err := h.conversation(q)
	if err != nil {
		return err
	}
	if err := q.access(s); err != nil {
		return err
	}
	r := s.room
	m, err := h.memberParam(q.ctx, r.ID, q.params[1])
	if err != nil {
		return err
	}
	out, err := h.renderMember(h.names(q.ctx, r.ID), m)
	if err != nil {
		return err
	}
	writeJSON(q.w, http.StatusOK, out)
	return nil
}

func (h *Handler) updateMember(q *request) error {
	s, err := h.conversation(q)
	if err != nil {
		return err
	}
	r := s.room
	m, err := h.memberParam(q.ctx, r.ID, q.params[1])
	if err != nil {
		return err
	}
	if err := q.ownMember(m); err != nil {
		return err
	}
	b := q.body
	if err := parseMemberUpdate(b); err != nil {
		return err
	}
	if m, err = h.join(q, r, m); err != nil {
		return err
	}
	out, err := h.renderMember(h.names(q.ctx, r.ID), m)
	if err != nil {
		return err
	}
	writeJSON(q.w, http.StatusOK, out)
	return nil
}

func (h *Handler) deleteMember(q *request) error {
	s, err := h.conversation(q)
	if err != nil {
		return err
	}
	r := s.room
	m, err := h.memberParam(q.ctx, r.ID, q.params[1])
	if err != nil {
		return err
	}
	if err := q.ownMember(m); err != nil {
		return err
	}
	if _, err := h.leave(q, r, m); err != nil {
		return err
	}
	writeJSON(q.w, http.StatusOK, emptyObject)
	return nil
}
