package bezlimit

import (
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/wsconn"
)

// This file holds every decision of ours (**ours** in specs/README.md) that the public
// Bezlimit document leaves open, in one place, so that each can be changed when better
// evidence appears. Everything else in the package is translation.

// Endpoint paths, relative to where the Handler is mounted.
const (
	pathChat          = "/chat"               // WebSocket: visitors and operators in one chat
	pathBroadcast     = "/broadcast"          // WebSocket: operators, every chat they may see
	pathUpdateChat    = "/update/chat"        // server-to-server
	pathUpdateOps     = "/update/operators"   // server-to-server
	pathMessage       = "/message"            // server-to-server: create (no id) and update (id)
	pathGlobal        = "/global"             // server-to-server
	pathOnlineUsers   = "/online-users"       // server-to-server
	pathNotifications = "/notifications/chat" // server-to-server
)

// Query parameters of the WebSocket upgrade request.
const (
	// paramChat names the chat of a /chat connection: the chat uuid (room.ID.UUID()); the
	// ULID form of the room ID is accepted too.
	paramChat = "chat"
	// paramAfter is the resume position: the last "position" the client received. The
	// connection first receives every frame of the events after it, exactly once and in
	// order, then live frames. Absent: live frames only. 0: the whole transcript.
	// A plain Bezlimit client may pass its last message_index: it then receives again the
	// status updates that came after that message, which are idempotent. One receipt event
	// can give several message_updated frames with the same position, queued together; a
	// client whose connection broke between them and wants them all resumes from position-1.
	paramAfter = "after"
	// paramToken carries the client token for browsers, which cannot set headers; an
	// "Authorization: Bearer <token>" header is accepted as well (the header wins).
	paramToken = "token"
)

// apiTokenHeader is the server-to-server credential header (fact).
const apiTokenHeader = "Api-Token"

// Defaults of Config's limits.
const (
	defaultReadLimit    = 64 << 10                 // bytes per client frame
	defaultSendQueue    = 256                      // frames queued per connection before it is "too slow"
	defaultWriteTimeout = 10 * time.Second         // one frame's write
	defaultMaxBody      = 256 << 10                // server-to-server request body, bytes
	maxAttachments      = 32                       // attachments per message
	catchUpBatch        = 256                      // events read from the store per resume step
	receiptSpan         = 1000                     // positions a single receipt may update, the newest
	maxPresenceSnapshot = 64                       // members a new socket is told about on arrival
	connBufferSize      = wsconn.DefaultBufferSize // read and write buffers of a connection, bytes
)

// Close codes and reasons sent to clients.
const (
	// closeTooSlow is sent to a connection whose send queue overflowed. The client should
	// reconnect with after=<last position it received>; nothing is lost. The close frame
	// waits behind what the peer has not read: a peer that reads nothing for 5 s (the
	// websocket library's close handshake limit) sees the TCP connection drop instead.
	closeTooSlow = websocket.StatusPolicyViolation
	// closeGone is sent when the Handler shuts down or the engine closes.
	closeGone = websocket.StatusGoingAway
	// closeChatGone is sent when the chat (room) is deleted. 4404: the application range.
	closeChatGone = websocket.StatusCode(4404)
)

// Wire names of the Bezlimit user roles and their engine roles (cross-surface rule:
// operator = chat.RoleOperator, client = chat.RoleClient).
const (
	wireRoleClient   = "client"
	wireRoleOperator = "operator"
	wireRoleBot      = "bot"
)

// engineRole maps a Bezlimit role string to an engine Role: "operator" and "client" map to the
// shared constants, "bot" to chat.RoleBot, anything else is kept as a free role string.
func engineRole(wire string) chat.Role {
	switch wire {
	case wireRoleOperator:
		return chat.RoleOperator
	case wireRoleClient, "":
		return chat.RoleClient
	case wireRoleBot:
		return chat.RoleBot
	}
	return chat.Role(wire)
}

// Message types (fact) and how each maps onto the engine and the channels:
//
//	standard  Visibility "" (everyone in the chat), also on /broadcast
//	bot       Visibility "" (everyone in the chat), also on /broadcast
//	system    Visibility = engineRole(type_role): only members with that role; not on /broadcast
//	note      Visibility = chat.RoleOperator: operators in the chat only; not on /broadcast
//
// A message's type, type_role and attachments are kept in its Body as
// {"bezlimit":{"type":...,"type_role":...,"attachments":[...]}}. A message without that body
// (sent through another surface) is "bot" if its author's role is bot, else "standard"; an
// engine notice (EventNotice) is a "system" message for everyone, not on /broadcast.
const (
	typeStandard = "standard"
	typeSystem   = "system"
	typeNote     = "note"
	typeBot      = "bot"
)

// onBroadcast reports whether messages of a type go to /broadcast (fact).
func onBroadcast(typ string) bool { return typ == typeStandard || typ == typeBot }

// Message statuses (ours, from the engine's receipts): a message is "new" when added; a
// receipt event of another member (EventDelivered/EventRead with Ref = R) makes every message
// of someone else up to R that the member had not yet acknowledged "delivered"/"read" (a
// watermark), one message_updated each, at most receiptSpan per receipt. "read" is never
// followed by "delivered" for the same message within one stream.
const (
	statusNew       = "new"
	statusDelivered = "delivered"
	statusRead      = "read"
)

// User mapping (ours): a Bezlimit user id N is the engine user with the unique name
// "bezlimit:N"; its wire fields live in the user's Attributes under the keys below. Users
// created by other surfaces appear with id 0 and their display name as firstname.
const (
	userNamePrefix = "bezlimit:"
	attrUserID     = "bezlimit.id"
	attrUserRole   = "bezlimit.role"
	attrFirstName  = "bezlimit.firstname"
	attrLastName   = "bezlimit.lastname"
	attrPatronymic = "bezlimit.patronymic"
	attrAvatar     = "bezlimit.avatar"
	attrChat       = "bezlimit.chat"          // room: the chat object last pushed to /update/chat (JSON)
	attrOwnerID    = "bezlimit.owner_user"    // room: owner_user.id
	attrOperatorID = "bezlimit.operator_user" // room: operator_user.id
	bodyKey        = "bezlimit"               // message Body: {"bezlimit":{...}}
	frameTypeError = "error"                  // error frame for non-send client events (ours)
	framePosField  = "position"               // top-level field on frames from the transcript
)

// Access (ours):
//   - a client may open /chat for a chat it is a joined member of, or whose owner_user (as
//     pushed to /update/chat) it is (it is then joined as chat.RoleClient);
//   - an operator may open /chat for any chat Config.MayView allows; it is joined as
//     chat.RoleOperator if it is the chat's operator_user, else it watches and its posts are
//     refused with message_not_added 403 until it is joined;
//   - /broadcast is for operators only and carries the chats Config.MayView allows.
//
// /update/chat creates a chat (room) when the body has no uuid and answers its uuid; an
// unknown uuid is 404 (chat uuids are engine room IDs). It joins owner_user (client) and
// operator_user (operator) when they are not joined yet; it does not remove anyone.
//
// /message: POST without "id" creates, POST/PUT/PATCH with "id" edits the text of message
// id (an engine Edit by System). A "user" in the body is the author: it is created and joined
// with its role if need be; without one the author is System (user null on the wire).
//
// /broadcast has no resume: it carries what happens while it is open. When the engine Feed
// reports ErrLagged, the handler repairs the gap itself by re-reading each room from the
// last position it had seen (or, for rooms it had not seen, the events since the Feed
// started) before it goes on; clients see every event once, in order per chat.
//
// user_connected/user_disconnected are presence, not transcript, and only for joined
// members (an operator watching a chat is not announced): the first socket of a member on a
// chat announces it to the chat's other sockets, the last one to close says goodbye; a new
// socket is first told, with one user_connected each, which members are there already (at
// most maxPresenceSnapshot). They have no position and are not replayed on resume.

// connBuffers are the connection buffers a WebSocket is accepted with: small, since most of an
// idle connection's memory would otherwise be net/http's 4 KiB + 4 KiB.
var connBuffers = wsconn.Buffers{Read: connBufferSize, Write: connBufferSize}
