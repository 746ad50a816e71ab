package chat

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Room is a conversation: a Chapi room, a Genesys chat, a Nexmo conversation, a Bezlimit
// chat, an Airy conversation.
type Room struct {
	// ID identifies the room; the Engine assigns it.
	ID ID
	// Name is an optional unique name; "" for none.
	Name string
	// DisplayName is the name shown to people.
	DisplayName string
	// ImageURL points to the room's picture, if any.
	ImageURL string
	// Private rooms can be joined only by invited users.
	Private bool
	// Attributes are opaque key/values that surfaces keep for the room (Genesys userData,
	// Airy channel id, Nexmo properties...).
	Attributes map[string]string
	// EmptyTTL, when not zero, deletes the room once it has had no joined member for that long.
	EmptyTTL time.Duration
	// Idle, when on, ends the room once it goes quiet.
	Idle IdleControl
	// CreatedAt is when the room was created.
	CreatedAt time.Time
	// UpdatedAt is when the room's own fields last changed.
	UpdatedAt time.Time
	// EndedAt is when the room ended; zero while it is open. An ended room takes no new
	// messages.
	EndedAt time.Time
	// Joins counts the joins so far; each join's JoinNumber is the count after it.
	Joins uint64
	// LastPos is the position of the room's last event, 0 if it has none. Kept by the Store.
	LastPos uint64
	// LastTime is the time of the room's last event. Kept by the Store.
	LastTime time.Time
}

// Ended reports whether the room has ended.
func (r Room) Ended() bool { return !r.EndedAt.IsZero() }

// NewRoom is the input to CreateRoom.
type NewRoom struct {
	// Name is an optional unique name.
	Name string
	// DisplayName is the name shown to people.
	DisplayName string
	// ImageURL points to the room's picture.
	ImageURL string
	// Private rooms can be joined only by invited users.
	Private bool
	// Attributes are opaque key/values.
	Attributes map[string]string
	// EmptyTTL, when not zero, deletes the room once it has had no joined member for that long.
	EmptyTTL time.Duration
	// Idle, when on, ends the room once it goes quiet.
	Idle IdleControl
	// Members join the room in the same commit that creates it, in this order, so that a
	// room never exists without its first members (a Genesys chat and its client).
	Members []NewMember
}

// NewMember is a user who joins a room as it is created.
type NewMember struct {
	// User is the user who joins.
	User ID
	// NewUser, when not nil, is a user to create in the same commit and join instead of User.
	NewUser *NewUser
	// Nickname is its nickname in the room.
	Nickname string
	// Role is its role in the room.
	Role Role
}

// Validate checks lengths, encodings and the TTL.
func (n NewRoom) Validate() error {
	for _, m := range n.Members {
		if err := checkField("nickname", m.Nickname); err != nil {
			return err
		}
		if m.NewUser != nil {
			if err := m.NewUser.Validate(); err != nil {
				return err
			}
		}
		if err := checkField("role", string(m.Role)); err != nil {
			return err
		}
	}
	for _, f := range []struct{ what, v string }{
		{"name", n.Name}, {"display name", n.DisplayName}, {"image URL", n.ImageURL},
	} {
		if err := checkField(f.what, f.v); err != nil {
			return err
		}
	}
	if n.EmptyTTL < 0 {
		return invalid("TTL", "negative")
	}
	if err := n.Idle.Validate(); err != nil {
		return err
	}
	return checkAttributes(n.Attributes)
}

// IdleControl ends a room that goes quiet, as contact centres do: after Warn without an
// event, a notice with WarnText; after Close more without one, a notice with CloseText and the
// room's end (EventEnded). Any event counts as activity, a receipt or typing too. It is kept
// with the room and runs on the engine's timers, in whichever process sharing the store sees
// it due first, and at most once.
type IdleControl struct {
	// Warn is how long the room may be quiet before the warning; zero turns idle control off.
	Warn time.Duration
	// Close is how long after an unanswered warning the room ends; zero turns it off.
	Close time.Duration
	// WarnText and CloseText are the notices' texts.
	WarnText, CloseText string
}

// On reports whether idle control is on: both durations set.
func (c IdleControl) On() bool { return c.Warn > 0 && c.Close > 0 }

// Validate refuses negative durations and texts a notice could not hold.
func (c IdleControl) Validate() error {
	if c.Warn < 0 || c.Close < 0 {
		return invalid("idle", "negative duration")
	}
	for _, t := range []string{c.WarnText, c.CloseText} {
		if len(t) > MaxAttributeValueBytes {
			return invalid("idle", "text longer than %d bytes", MaxAttributeValueBytes)
		}
		if err := checkString("idle text", t); err != nil {
			return err
		}
	}
	return nil
}

// RoomUpdate changes the fields that are not nil.
type RoomUpdate struct {
	// Name, when set, replaces the unique name ("" removes it).
	Name *string
	// DisplayName, when set, replaces the display name.
	DisplayName *string
	// ImageURL, when set, replaces the picture.
	ImageURL *string
	// Private, when set, changes who may join.
	Private *bool
	// Attributes, when not nil, are merged into the room's: a key with an empty value is
	// removed.
	Attributes map[string]string
	// EmptyTTL, when set, replaces the TTL.
	EmptyTTL *time.Duration
	// Idle, when set, replaces the idle control.
	Idle *IdleControl
}

// Validate checks lengths, encodings and the TTL.
func (u RoomUpdate) Validate() error {
	return NewRoom{
		Name: deref(u.Name), DisplayName: deref(u.DisplayName), ImageURL: deref(u.ImageURL),
		Attributes: u.Attributes, EmptyTTL: deref(u.EmptyTTL), Idle: deref(u.Idle),
	}.Validate()
}

// Membership is what a membership call answers: the record as it is after the call, and the
// event the call appended (the zero Event when it appended nothing: a receipt that moved no
// watermark, a join of a member joined already with KeepJoined).
type Membership struct {
	Member
	// Event is the event the call appended.
	Event Event
}

// MemberState is where a membership is in its life: Invited → Joined → Left, and from Left
// (or never a member) to Invited or Joined again as a new membership record.
type MemberState uint8

// The member states.
const (
	Invited MemberState = iota + 1
	Joined
	Left
)

// String returns "invited", "joined" or "left".
func (s MemberState) String() string {
	switch s {
	case Invited:
		return "invited"
	case Joined:
		return "joined"
	case Left:
		return "left"
	}
	return fmt.Sprintf("MemberState(%d)", s)
}

// Role is what a member is in a room. Surfaces use the constants below; others are allowed.
type Role string

// Common roles.
const (
	RoleClient   Role = "client"
	RoleAgent    Role = "agent"
	RoleOperator Role = "operator"
	RoleBot      Role = "bot"
	RoleSystem   Role = "system"
)

// Member is one membership record: a user's membership of a room from an invitation or join
// until it leaves. A user who leaves and comes back gets a new record with a new ID.
type Member struct {
	// ID identifies this membership record.
	ID ID
	// RoomID is the room.
	RoomID ID
	// UserID is the member.
	UserID ID
	// State is Invited, Joined or Left.
	State MemberState
	// Nickname is the member's name in this room; "" to use the user's display name.
	Nickname string
	// Role is the member's role in this room.
	Role Role
	// JoinNumber is given per join: the room's join count at this join (Genesys'
	// participantId). 0 while only invited.
	JoinNumber uint64
	// Delivered is the position up to which events were delivered to the member.
	Delivered uint64
	// Read is the position up to which the member has read; never above Delivered.
	Read uint64
	// InvitedBy is the user who invited the member (System if the program did).
	InvitedBy ID
	// InvitedAt, JoinedAt and LeftAt are when the membership reached each state; zero if not.
	InvitedAt, JoinedAt, LeftAt time.Time
	// Pos is the position of the event of the record's latest change: its invitation, join,
	// leave, nickname change or receipt. A caller learns from it the event its call appended
	// (a receipt that moved nothing leaves it as it was).
	Pos uint64
	// TypingUntil, when not zero, is when the member's typing indicator expires unless it is
	// renewed; it is cleared when the member stops typing or sends a message.
	TypingUntil time.Time
	// TypingText is the preview of what the member is typing, as last shown.
	TypingText string
}

// CreateRoom creates a room, with n.Members joined in the same commit (an EventJoined each;
// private rooms admit them uninvited), as CreateConversation does.
func (e *Engine) CreateRoom(ctx context.Context, n NewRoom) (Room, error) {
	c, err := e.CreateConversation(ctx, n)
	return c.Room, err
}

// Conversation is a room with the first members CreateConversation joined to it.
type Conversation struct {
	// Room is the room, with its first events counted in LastPos.
	Room Room
	// Members are the records of NewRoom.Members, in their order.
	Members []Member
}

// CreateConversation creates a room with its first members and attributes in one commit: a
// room never exists without them, and nothing is left behind if one of them is refused (a
// web visitor's chat, made with the visitor). A NewMember with NewUser set joins a user it
// creates in the same commit. It returns ErrInvalid, ErrConflict for a taken room or user
// name or a user listed twice, ErrNotFound for an unknown member user.
func (e *Engine) CreateConversation(ctx context.Context, n NewRoom) (Conversation, error) {
	if err := n.Validate(); err != nil {
		return Conversation{}, err
	}
	now := e.now()
	r := Room{
		ID: e.ids.New(now), Name: n.Name, DisplayName: n.DisplayName, ImageURL: n.ImageURL,
		Private: n.Private, Attributes: cloneMap(n.Attributes), EmptyTTL: n.EmptyTTL, Idle: n.Idle,
		CreatedAt: now, UpdatedAt: now,
	}
	users := make([]User, len(n.Members))
	for i, nm := range n.Members {
		if nm.NewUser != nil {
			users[i] = newUser(*nm.NewUser, e.ids.New(now), now)
		}
	}
	var c Conversation
	_, err := e.update(ctx, func(tx *wtx) error {
		var err error
		c, err = tx.createRoom(r, n.Members, users)
		return err
	})
	if err != nil {
		return Conversation{}, err
	}
	return c, nil
}

// createRoom stores r with its first members (users[i], when not zero, is created for
// members[i]) and arms its timers.
func (tx *wtx) createRoom(r Room, members []NewMember, users []User) (Conversation, error) {
	if r.Name != "" {
		if _, err := tx.RoomByName(r.Name); err == nil {
			return Conversation{}, fmt.Errorf("chat: room name %q: %w", r.Name, ErrConflict)
		}
	}
	r.Joins = 0
	if err := tx.PutRoom(r); err != nil {
		return Conversation{}, err
	}
	c := Conversation{Members: make([]Member, 0, len(members))}
	for i, nm := range members {
		user := nm.User
		if !users[i].ID.IsZero() {
			if err := tx.createUser(users[i]); err != nil {
				return Conversation{}, err
			}
			user = users[i].ID
		}
		m, err := tx.join(r.ID, user, JoinOptions{Nickname: nm.Nickname, Role: nm.Role}, true)
		if err != nil {
			return Conversation{}, err
		}
		c.Members = append(c.Members, m)
	}
	now := tx.e.now()
	if r.EmptyTTL > 0 && len(members) == 0 {
		if err := tx.setTimer(Timer{Kind: TimerRoomTTL, Room: r.ID, At: now.Add(r.EmptyTTL)}); err != nil {
			return Conversation{}, err
		}
	}
	if err := tx.armIdle(r, now); err != nil {
		return Conversation{}, err
	}
	var err error
	c.Room, err = tx.Room(r.ID)
	return c, err
}

// EnsureRoom returns the room named n.Name, creating it from n if there is none, and reports
// whether it created it. Two callers racing for one name get the same room: no ErrConflict.
// n.Name must not be empty. It returns ErrInvalid, and CreateConversation's errors.
func (e *Engine) EnsureRoom(ctx context.Context, n NewRoom) (Room, bool, error) {
	if n.Name == "" {
		return Room{}, false, invalid("name", "empty: EnsureRoom finds rooms by name")
	}
	if err := n.Validate(); err != nil {
		return Room{}, false, err
	}
	for attempt := 0; ; attempt++ {
		now := e.now()
		r := Room{
			ID: e.ids.New(now), Name: n.Name, DisplayName: n.DisplayName, ImageURL: n.ImageURL,
			Private: n.Private, Attributes: cloneMap(n.Attributes), EmptyTTL: n.EmptyTTL, Idle: n.Idle,
			CreatedAt: now, UpdatedAt: now,
		}
		users := make([]User, len(n.Members))
		for i, nm := range n.Members {
			if nm.NewUser != nil {
				users[i] = newUser(*nm.NewUser, e.ids.New(now), now)
			}
		}
		var got Room
		created := false
		_, err := e.update(ctx, func(tx *wtx) error {
			created = false
			if existing, err := tx.RoomByName(n.Name); err == nil {
				got = existing
				return nil
			} else if !isNotFound(err) {
				return err
			}
			c, err := tx.createRoom(r, n.Members, users)
			got, created = c.Room, err == nil
			return err
		})
		// A store with several processes finds the name taken only at commit: look again.
		if errors.Is(err, ErrConflict) && attempt == 0 {
			continue
		}
		return got, created, err
	}
}

// Room returns a room, or ErrNotFound.
func (e *Engine) Room(ctx context.Context, id ID) (r Room, err error) {
	err = e.view(ctx, func(tx ReadTx) error { r, err = tx.Room(id); return err })
	return r, err
}

// RoomFor returns a room and the user's latest membership record in it, read together: the
// zero Member if the user never was a member. Surfaces decide from it what a caller may see
// of the room. It returns ErrNotFound for an unknown room.
func (e *Engine) RoomFor(ctx context.Context, roomID, userID ID) (r Room, m Member, err error) {
	err = e.view(ctx, func(tx ReadTx) error {
		if r, err = tx.Room(roomID); err != nil {
			return err
		}
		if m, err = tx.MemberByUser(roomID, userID); isNotFound(err) {
			m, err = Member{}, nil
		}
		return err
	})
	return r, m, err
}

// RoomByName returns the room with a unique name, or ErrNotFound.
func (e *Engine) RoomByName(ctx context.Context, name string) (r Room, err error) {
	err = e.view(ctx, func(tx ReadTx) error { r, err = tx.RoomByName(name); return err })
	return r, err
}

// Rooms lists rooms in ID order, which is creation order to the millisecond (newest first with
// f.Desc), within f's time range.
func (e *Engine) Rooms(ctx context.Context, f ListFilter) (rs []Room, err error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	err = e.view(ctx, func(tx ReadTx) error { rs, err = tx.Rooms(f); return err })
	return rs, err
}

// UpdateRoom changes a room's own fields. It returns ErrNotFound, ErrInvalid, or
// ErrConflict for a taken name.
func (e *Engine) UpdateRoom(ctx context.Context, id ID, up RoomUpdate) (Room, error) {
	if err := up.Validate(); err != nil {
		return Room{}, err
	}
	var r Room
	_, err := e.updateIn(ctx, id, func(tx *wtx) (err error) {
		if r, err = tx.Room(id); err != nil {
			return err
		}
		if up.Name != nil && *up.Name != "" && *up.Name != r.Name {
			if _, err := tx.RoomByName(*up.Name); err == nil {
				return fmt.Errorf("chat: room name %q: %w", *up.Name, ErrConflict)
			}
		}
		setIf(&r.Name, up.Name)
		setIf(&r.DisplayName, up.DisplayName)
		setIf(&r.ImageURL, up.ImageURL)
		setIf(&r.Private, up.Private)
		setIf(&r.EmptyTTL, up.EmptyTTL)
		setIf(&r.Idle, up.Idle)
		if up.Attributes != nil {
			attrs := cloneMap(r.Attributes)
			if attrs == nil {
				attrs = make(map[string]string, len(up.Attributes))
			}
			for k, v := range up.Attributes {
				if v == "" {
					delete(attrs, k)
				} else {
					attrs[k] = v
				}
			}
			// The limits hold for what is stored, not only for this update.
			if err := checkAttributes(attrs); err != nil {
				return err
			}
			r.Attributes = attrs
		}
		r.UpdatedAt = tx.e.now()
		if err := tx.PutRoom(r); err != nil {
			return err
		}
		if up.Idle != nil {
			if err := tx.armIdle(r, tx.e.now()); err != nil {
				return err
			}
		}
		if up.EmptyTTL != nil {
			return tx.armRoomTTL(r)
		}
		return nil
	})
	e.hubs.roomChanged(id)
	return r, err
}

// DeleteRoom deletes a room with its members and transcript. Its followers end with
// ErrNotFound. It returns ErrNotFound if there is no such room.
func (e *Engine) DeleteRoom(ctx context.Context, id ID) error {
	_, err := e.updateIn(ctx, id, func(tx *wtx) error { return tx.DeleteRoom(id) })
	if err != nil {
		return err
	}
	e.hubs.deleted(id)
	return nil
}

// EndRoom ends a room: it appends EventEnded, after which the room takes no new messages,
// typing or joins. Members may still leave and mark receipts, and the transcript stays
// readable. It returns ErrNotFound, or ErrEnded if it has ended already.
func (e *Engine) EndRoom(ctx context.Context, id ID) (Event, error) {
	ev, err := e.updateIn(ctx, id, func(tx *wtx) error {
		r, err := tx.Room(id)
		if err != nil {
			return err
		}
		if r.Ended() {
			return fmt.Errorf("chat: room %s: %w", id, ErrEnded)
		}
		return tx.endRoom(r)
	})
	if err != nil {
		return Event{}, err
	}
	e.hubs.roomChanged(id)
	return ev, nil
}

// InviteOptions are the optional parts of an invitation.
type InviteOptions struct {
	// By is the inviting user (System for the program). A user must be a joined member to
	// invite.
	By ID
	// Nickname is the invitee's nickname in the room.
	Nickname string
	// Role is the invitee's role in the room.
	Role Role
}

// Invite invites a user to a room: a new membership record in state Invited and an
// EventInvited. It returns ErrNotFound for an unknown room or user, ErrConflict if the user is
// already invited or joined, ErrNotMember if the inviter is not a joined member, ErrEnded.
func (e *Engine) Invite(ctx context.Context, roomID, userID ID, o InviteOptions) (Membership, error) {
	if err := checkMember(o.Nickname, o.Role); err != nil {
		return Membership{}, err
	}
	var m Member
	ev, err := e.updateIn(ctx, roomID, func(tx *wtx) error {
		r, err := tx.openRoom(roomID)
		if err != nil {
			return err
		}
		if _, err := tx.User(userID); err != nil {
			return err
		}
		var from ID
		if o.By != System() {
			inviter, err := tx.joined(roomID, o.By)
			if err != nil {
				return err
			}
			from = inviter.ID
		}
		cur, err := tx.MemberByUser(roomID, userID)
		switch {
		case err == nil && cur.State != Left:
			return fmt.Errorf("chat: user %s in room %s is %s: %w", userID, roomID, cur.State, ErrConflict)
		case err != nil && !isNotFound(err):
			return err
		}
		now := tx.e.now()
		m = Member{
			ID: tx.e.ids.New(now), RoomID: r.ID, UserID: userID, State: Invited,
			Nickname: o.Nickname, Role: o.Role, InvitedBy: o.By, InvitedAt: now,
		}
		return tx.record(&m, Event{RoomID: roomID, Type: EventInvited, From: from, User: o.By, To: m.ID})
	})
	return Membership{m, ev}, err
}

// JoinOptions are the optional parts of a join.
type JoinOptions struct {
	// Nickname is the member's name in the room; it replaces an invitation's nickname when
	// not empty.
	Nickname string
	// Role is the member's role; it replaces an invitation's role when not empty.
	Role Role
	// InvitedOnly makes the join succeed only for a user with a pending invitation (ErrForbidden
	// otherwise, in any room): for a surface whose policy is that its callers join only where
	// they were invited, checked in the same transaction as the join.
	InvitedOnly bool
	// KeepJoined makes Join of a user who is joined already return its membership as it is,
	// appending nothing, instead of ErrConflict: a join that may be repeated.
	KeepJoined bool
}

// Join makes a user a joined member of a room, with a new JoinNumber, and appends
// EventJoined. An invited user's record moves to Joined; a user who was never a member or has
// left gets a new record. It returns ErrNotFound, ErrConflict if already joined, ErrForbidden
// for an uninvited user in a private room, ErrEnded.
func (e *Engine) Join(ctx context.Context, roomID, userID ID, o JoinOptions) (Membership, error) {
	if err := checkMember(o.Nickname, o.Role); err != nil {
		return Membership{}, err
	}
	var m Member
	ev, err := e.updateIn(ctx, roomID, func(tx *wtx) (err error) {
		m, err = tx.join(roomID, userID, o, false)
		return err
	})
	return Membership{m, ev}, err
}

// join joins a user; admitted lets it into a private room uninvited (a room's first members).
func (tx *wtx) join(roomID, userID ID, o JoinOptions, admitted bool) (Member, error) {
	r, err := tx.openRoom(roomID)
	if err != nil {
		return Member{}, err
	}
	if _, err := tx.User(userID); err != nil {
		return Member{}, err
	}
	now := tx.e.now()
	var m Member
	cur, err := tx.MemberByUser(roomID, userID)
	switch {
	case err == nil && cur.State == Joined && o.KeepJoined:
		return cur, nil
	case err == nil && cur.State == Joined:
		return Member{}, fmt.Errorf("chat: user %s already joined room %s: %w", userID, roomID, ErrConflict)
	case err == nil && cur.State == Invited:
		m = cur
	case err != nil && !isNotFound(err):
		return Member{}, err
	default: // never a member, or left
		if o.InvitedOnly {
			return Member{}, fmt.Errorf("chat: user %s is not invited to room %s: %w", userID, roomID, ErrForbidden)
		}
		if r.Private && !admitted {
			return Member{}, fmt.Errorf("chat: room %s is private and user %s is not invited: %w", roomID, userID, ErrForbidden)
		}
		m = Member{ID: tx.e.ids.New(now), RoomID: roomID, UserID: userID}
	}
	r.Joins++
	m.State, m.JoinNumber, m.JoinedAt = Joined, r.Joins, now
	if o.Nickname != "" {
		m.Nickname = o.Nickname
	}
	if o.Role != "" {
		m.Role = o.Role
	}
	if err := tx.PutRoom(r); err != nil {
		return Member{}, err
	}
	if r.EmptyTTL > 0 { // not empty any more
		if err := tx.DeleteTimer(TimerRoomTTL, roomID, ID{}); err != nil {
			return Member{}, err
		}
	}
	err = tx.record(&m, Event{RoomID: roomID, Type: EventJoined, From: m.ID, User: userID, Text: m.Nickname})
	return m, err
}

// Leave ends a user's invitation or membership: the record moves to Left and EventLeft is
// appended. It ends the user's typing. It returns ErrNotMember if the user is neither invited
// nor joined.
func (e *Engine) Leave(ctx context.Context, roomID, userID ID) (Membership, error) {
	var m Member
	ev, err := e.updateIn(ctx, roomID, func(tx *wtx) error {
		if _, err := tx.Room(roomID); err != nil {
			return err
		}
		cur, err := tx.MemberByUser(roomID, userID)
		if isNotFound(err) || (err == nil && cur.State == Left) {
			return fmt.Errorf("chat: user %s in room %s: %w", userID, roomID, ErrNotMember)
		}
		if err != nil {
			return err
		}
		m, err = tx.leave(cur)
		return err
	})
	if err != nil {
		return Membership{}, err
	}
	return Membership{m, ev}, nil
}

// record appends ev, the event of a change to the membership m, and stores m with Pos set
// to ev's position.
func (tx *wtx) record(m *Member, ev Event) error {
	appended, err := tx.append(ev)
	if err != nil {
		return err
	}
	m.Pos = appended.Pos
	return tx.PutMember(*m)
}

// leave ends a membership: its typing ends with it, and a room it leaves empty starts its
// TTL.
func (tx *wtx) leave(m Member) (Member, error) {
	if err := tx.clearTyping(&m); err != nil {
		return Member{}, err
	}
	m.State, m.LeftAt = Left, tx.e.now()
	if err := tx.record(&m, Event{RoomID: m.RoomID, Type: EventLeft, From: m.ID, User: m.UserID}); err != nil {
		return Member{}, err
	}
	r, err := tx.Room(m.RoomID)
	if err != nil {
		return Member{}, err
	}
	return m, tx.armRoomTTL(r)
}

// MemberUpdate changes the fields of a membership that are not nil.
type MemberUpdate struct {
	// Nickname, when set, replaces the nickname and appends EventNickname.
	Nickname *string
	// Role, when set, replaces the role.
	Role *Role
}

// UpdateMember changes a joined member's nickname or role. A nickname change appends
// EventNickname with the new nickname as its text. It returns ErrNotMember, ErrInvalid,
// ErrEnded.
func (e *Engine) UpdateMember(ctx context.Context, roomID, userID ID, up MemberUpdate) (Membership, error) {
	if err := checkMember(deref(up.Nickname), deref(up.Role)); err != nil {
		return Membership{}, err
	}
	var m Member
	ev, err := e.updateIn(ctx, roomID, func(tx *wtx) (err error) {
		if _, err := tx.openRoom(roomID); err != nil {
			return err
		}
		if m, err = tx.joined(roomID, userID); err != nil {
			return err
		}
		setIf(&m.Role, up.Role)
		changed := up.Nickname != nil && *up.Nickname != m.Nickname
		setIf(&m.Nickname, up.Nickname)
		if changed {
			return tx.record(&m, Event{RoomID: roomID, Type: EventNickname, From: m.ID, User: userID, Text: m.Nickname})
		}
		return tx.PutMember(m)
	})
	return Membership{m, ev}, err
}

// MemberByUser returns the latest membership record of a user in a room, or ErrNotFound.
func (e *Engine) MemberByUser(ctx context.Context, roomID, userID ID) (m Member, err error) {
	err = e.view(ctx, func(tx ReadTx) error { m, err = tx.MemberByUser(roomID, userID); return err })
	return m, err
}

// MemberByID returns a membership record by its ID, or ErrNotFound.
func (e *Engine) MemberByID(ctx context.Context, roomID, memberID ID) (m Member, err error) {
	err = e.view(ctx, func(tx ReadTx) error { m, err = tx.MemberByID(roomID, memberID); return err })
	return m, err
}

// Members lists every membership record of a room, left ones included, in ID order (creation
// order to the millisecond).
func (e *Engine) Members(ctx context.Context, roomID ID) (ms []Member, err error) {
	err = e.view(ctx, func(tx ReadTx) error { ms, err = tx.Members(roomID); return err })
	return ms, err
}

// Memberships lists a user's latest membership record in each room it was ever in.
func (e *Engine) Memberships(ctx context.Context, userID ID) (ms []Member, err error) {
	err = e.view(ctx, func(tx ReadTx) error {
		if _, err := tx.User(userID); err != nil {
			return err
		}
		ms, err = tx.Memberships(userID)
		return err
	})
	return ms, err
}

// openRoom returns the room if it exists and has not ended.
func (tx *wtx) openRoom(id ID) (Room, error) {
	r, err := tx.Room(id)
	if err != nil {
		return Room{}, err
	}
	if r.Ended() {
		return Room{}, fmt.Errorf("chat: room %s: %w", id, ErrEnded)
	}
	return r, nil
}

// joined returns the user's membership if it is joined, or ErrNotMember.
func (tx *wtx) joined(roomID, userID ID) (Member, error) {
	m, err := tx.MemberByUser(roomID, userID)
	if err == nil && m.State == Joined {
		return m, nil
	}
	if err != nil && !isNotFound(err) {
		return Member{}, err
	}
	if _, err := tx.Room(roomID); err != nil {
		return Member{}, err
	}
	return Member{}, fmt.Errorf("chat: user %s in room %s: %w", userID, roomID, ErrNotMember)
}

// MarkDelivered moves a member's delivered watermark up to pos and appends EventDelivered
// (Ref = pos, Prev = the watermark it moved from). A pos at or below the watermark changes
// nothing and appends nothing. It returns ErrNotMember, or ErrInvalid for a pos past the
// room's last event.
func (e *Engine) MarkDelivered(ctx context.Context, roomID, userID ID, pos uint64) (Membership, error) {
	return e.mark(ctx, roomID, userID, pos, false)
}

// MarkRead moves a member's read watermark (and its delivered watermark, which read implies)
// up to pos and appends EventRead (Ref = pos, Prev = the read watermark it moved from). A pos
// at or below the read watermark changes nothing and appends nothing. It returns
// ErrNotMember, or ErrInvalid for a pos past the room's last event.
func (e *Engine) MarkRead(ctx context.Context, roomID, userID ID, pos uint64) (Membership, error) {
	return e.mark(ctx, roomID, userID, pos, true)
}

func (e *Engine) mark(ctx context.Context, roomID, userID ID, pos uint64, read bool) (Membership, error) {
	var m Member
	ev, err := e.updateIn(ctx, roomID, func(tx *wtx) (err error) {
		if m, err = tx.joined(roomID, userID); err != nil {
			return err
		}
		r, err := tx.Room(roomID)
		if err != nil {
			return err
		}
		if pos == 0 || pos > r.LastPos {
			return invalid("position", "receipt for position %d of room %s, whose last is %d", pos, roomID, r.LastPos)
		}
		typ, prev := EventDelivered, m.Delivered
		if read {
			if pos <= m.Read {
				return nil
			}
			typ, prev = EventRead, m.Read
			m.Read = pos
			m.Delivered = max(m.Delivered, pos)
		} else {
			if pos <= m.Delivered {
				return nil
			}
			m.Delivered = pos
		}
		return tx.record(&m, Event{RoomID: roomID, Type: typ, From: m.ID, User: userID, Ref: pos, Prev: prev})
	})
	return Membership{m, ev}, err
}

// armRoomTTL sets the TTL timer of r if it has a TTL and no joined member, and removes it
// otherwise.
func (tx *wtx) armRoomTTL(r Room) error {
	empty := false
	if r.EmptyTTL > 0 {
		var err error
		if empty, err = isEmpty(tx, r.ID); err != nil {
			return err
		}
	}
	if !empty {
		return tx.DeleteTimer(TimerRoomTTL, r.ID, ID{})
	}
	return tx.setTimer(Timer{Kind: TimerRoomTTL, Room: r.ID, At: tx.e.now().Add(r.EmptyTTL)})
}

func isEmpty(tx ReadTx, roomID ID) (bool, error) {
	ms, err := tx.Members(roomID)
	if err != nil {
		return false, err
	}
	for _, m := range ms {
		if m.State == Joined {
			return false, nil
		}
	}
	return true, nil
}

// expireRoom acts on a due TimerRoomTTL: it deletes the room if it has had no joined member and
// no event for its TTL, and reports whether it did.
func (tx *wtx) expireRoom(t Timer, now time.Time) (bool, error) {
	r, err := tx.Room(t.Room)
	if isNotFound(err) {
		return false, nil // gone already, with its timers
	}
	if err != nil {
		return false, err
	}
	empty := false
	if r.EmptyTTL > 0 {
		if empty, err = isEmpty(tx, r.ID); err != nil {
			return false, err
		}
	}
	if !empty {
		return false, tx.DeleteTimer(t.Kind, t.Room, t.Member)
	}
	since := r.CreatedAt
	if r.LastTime.After(since) {
		since = r.LastTime
	}
	if due := since.Add(r.EmptyTTL); due.After(now) { // activity since: later
		return false, tx.setTimer(Timer{Kind: TimerRoomTTL, Room: r.ID, At: due})
	}
	return true, tx.DeleteRoom(r.ID)
}

// endRoom ends r: EndedAt, every typing indicator cleared, EventEnded.
func (tx *wtx) endRoom(r Room) error {
	r.EndedAt = tx.e.now()
	if err := tx.PutRoom(r); err != nil {
		return err
	}
	// Nobody types in an ended room: the end ends every indicator.
	ms, err := tx.Members(r.ID)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := tx.clearTyping(&m); err != nil {
			return err
		}
	}
	if err := tx.DeleteTimer(TimerIdle, r.ID, ID{}); err != nil {
		return err
	}
	_, err = tx.append(Event{RoomID: r.ID, Type: EventEnded})
	return err
}

// armIdle sets r's idle timer for its next check, or removes it when idle control is off.
func (tx *wtx) armIdle(r Room, now time.Time) error {
	if !r.Idle.On() || r.Ended() {
		return tx.DeleteTimer(TimerIdle, r.ID, ID{})
	}
	last := r.CreatedAt
	if r.LastTime.After(last) {
		last = r.LastTime
	}
	return tx.setTimer(Timer{Kind: TimerIdle, Room: r.ID, At: last.Add(r.Idle.Warn)})
}

// expireIdle acts on a due TimerIdle: the warning notice, or the closing one and the end, if
// the room has been quiet long enough; otherwise it sets the timer for the next check. A room
// is warned when its last event is the warning notice.
func (tx *wtx) expireIdle(t Timer, now time.Time) (bool, error) {
	r, err := tx.Room(t.Room)
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !r.Idle.On() || r.Ended() {
		return false, tx.DeleteTimer(t.Kind, t.Room, t.Member)
	}
	last := r.CreatedAt
	if r.LastTime.After(last) {
		last = r.LastTime
	}
	warned := false
	if r.LastPos > 0 {
		ev, err := tx.Event(r.ID, r.LastPos)
		if err != nil {
			return false, err
		}
		warned = ev.Type == EventNotice && ev.User.IsZero() && ev.Text == r.Idle.WarnText
	}
	switch {
	case warned && now.Sub(last) >= r.Idle.Close:
		if _, err := tx.append(Event{RoomID: r.ID, Type: EventNotice, Text: r.Idle.CloseText}); err != nil {
			return false, err
		}
		return true, tx.endRoom(r)
	case warned:
		return false, tx.setTimer(Timer{Kind: TimerIdle, Room: r.ID, At: last.Add(r.Idle.Close)})
	case now.Sub(last) >= r.Idle.Warn:
		if _, err := tx.append(Event{RoomID: r.ID, Type: EventNotice, Text: r.Idle.WarnText}); err != nil {
			return false, err
		}
		return false, tx.setTimer(Timer{Kind: TimerIdle, Room: r.ID, At: now.Add(r.Idle.Close)})
	}
	return false, tx.setTimer(Timer{Kind: TimerIdle, Room: r.ID, At: last.Add(r.Idle.Warn)})
}
