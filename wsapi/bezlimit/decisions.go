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
	defaultPingInterval = 30 * time.Second         // between two server pings of a WebSocket
	defaultPingTimeout  = 15 * time.Second         // a ping's wait for its pong
	retryAfter          = 5 * time.Second          // Retry-After of 503 answers: the store is down
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
	// closeTokenExpired is sent when the Identity's Expires passes (the Bezlimit document
	// names no close codes): 4401, the application range's mirror of HTTP 401, like 4404.
	// The client gets a fresh token and reconnects with after=<last position received>.
	closeTokenExpired = websocket.StatusCode(4401)
	// closeInternal is sent when a panic was recovered in the connection's goroutine or in its
	// chat's hub; the client may reconnect with after=<last position received>.
	closeInternal = websocket.StatusInternalError
	// closeTryAgain is sent when the store cannot serve the connection (chat.ErrUnavailable).
	closeTryAgain = websocket.StatusTryAgainLater
	// A connection that does not answer a ping within Config.PingTimeout is dropped without a
	// close frame: a peer that does not read pongs back would not read that either.
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

// Access (ours). Opening a chat is a policy, never a side effect of knowing its uuid:
//   - a client may open /chat only for a chat it is a joined member of: the server-to-server
//     API put it there (/update/chat joins owner_user, /message joins its author), or another
//     surface or the embedding program did. Connecting joins nobody, with one exception: a
//     member the engine holds as Invited (an explicit invitation) is joined on connect, as
//     chat.RoleClient or chat.RoleOperator after its identity. An owner who has left is let
//     in again only when /update/chat names it again;
//   - an operator may open /chat for a chat it is a joined member of (as a client may), and
//     watch any chat Config.MayView allows: a watcher is not joined, gets no presence, and its
//     posts, receipts and typing are refused with 403 until the server-to-server API joins it;
//   - /broadcast is for operators only and carries the chats Config.MayView allows.
//
// Config.MayView nil lets every operator see every chat: Bezlimit's own model, one support
// team per installation. It is safe when Config.Authenticate gives the operator role only to
// staff allowed to see every chat; an installation shared by several teams or customers sets
// MayView.
//
// A chat the identity may not open gets exactly the answer of a chat that does not exist,
// before the upgrade: HTTP 404 with the body of errNoChat, which names no uuid. A client's
// check reads only its user and its membership, the same lookups whether the chat exists or
// not; an operator's also reads the room, for MayView. Nothing is created for a refused identity: its
// engine user is made (or brought up to date) only once it is let in.
//
// Rate limits (ours): each client frame that writes (send_message, mark_message_delivered,
// mark_message_read, update_typing) costs one limit.Write token of Config.Limiter, keyed by
// the identity (limitKey: "bezlimit:<user id>"), not by address: the identity is what the
// embedding program authenticated, and many visitors (mobile carriers' NAT) or a whole
// office of operators share one address. A program that hands out tokens to anonymous
// visitors freely caps them by address where it issues them and with limit.Listener. A
// refused send_message gets message_not_added with error.code 429; another refused frame
// gets the error frame with code 429; nothing is stored. The server-to-server endpoints are
// not limited: they carry the back end's Api-Token.
//
// Error codes (ours), HTTP statuses that are also error.code in message_not_added and error
// frames (wireErr). HTTP: 400 a server-to-server body that is not well-formed JSON text
// (invalid UTF-8, a NUL, nesting past chat.MaxJSONDepth, broken syntax: internal/httpx's
// ErrMalformed); 413 a body over Config.MaxBodyBytes; 415 a body declared as anything but
// JSON (a missing Content-Type is taken: back ends' HTTP clients often send none, and the
// Api-Token header already rules out browser forms); 422 JSON of the wrong shape. Socket: 422
// a client frame that cannot be taken (malformed, wrong shape, or bytes that cannot be stored
// as sent: invalid UTF-8, a NUL, nesting past chat.MaxJSONDepth; a send_message refused for
// its bytes gets message_not_added, so that the sender sees which text failed, everything else
// the error frame). Both: 429 a write over the rate limit; 503 "try again": the store is
// unavailable (chat.ErrUnavailable; with Retry-After on HTTP), or the handler is shutting down.
//
// Idle rule (ours): every WebSocket, /chat and /broadcast, is pinged (a WebSocket ping, which
// browsers and client libraries answer by themselves) Config.PingInterval after it opened and
// after each pong, and dropped when the pong has not come within Config.PingTimeout: a peer
// that went away without closing holds no socket for longer than about PingInterval +
// PingTimeout. The Handler's one watchdog ticker decides which connections are due; a ping
// runs on a goroutine of its own only while it waits for its pong, so an idle connection has
// no goroutine but its reader. Tokens: an Identity with Expires set is closed with
// closeTokenExpired when it passes (one runtime timer, no goroutine); one that has already
// expired is refused at the upgrade with 401.
//
// Panics outside the HTTP handlers (a connection's reader and writer, pings, a chat's hub,
// the /broadcast pump, the watchdog) are recovered and logged with their stack: a
// connection's closes that connection, a hub's closes the hub's connections, the pump's
// closes every /broadcast connection, all with closeInternal; they may reconnect (and /chat
// resume by position). Everything else goes on serving.
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
