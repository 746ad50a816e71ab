package nexmo

import (
	"net/http"
	"time"
)

// This file holds every decision of ours (README "ours", or a gap the vendor's documents leave)
// in one place, so that each can be changed when better evidence appears. Facts from the
// vendor's documents are implemented where they are used and cited there.

// Limits and defaults.
const (
	// DefaultMaxBodyBytes is the largest request body accepted when Config.MaxBodyBytes is 0;
	// a larger one is answered 413 before anything is stored. (ours)
	DefaultMaxBodyBytes = 1 << 20

	// defaultTokenLifetime is how long a token without `exp` lives after its `iat`, and
	// maxTokenLifetime the longest `exp - iat` accepted. (fact: the vendor's JWT rules)
	defaultTokenLifetime = 15 * time.Minute
	maxTokenLifetime     = 24 * time.Hour

	// defaultPageSize and maxPageSize bound the HAL lists (fact), and, by our choice, the
	// plain-array user list too (the spec gives it no paging: ours).
	defaultPageSize = 10
	maxPageSize     = 100

	// maxEventsPage is the most events one GET .../events answers. The spec lists no paging
	// for events; the vendor's clients page with start_id/end_id, which we accept. (ours)
	maxEventsPage = 1000

	// maxTTLSeconds bounds properties.ttl (ten years) so that it fits a time.Duration. (ours)
	maxTTLSeconds = 10 * 365 * 24 * 3600
)

// Attribute keys this surface keeps on engine rooms and users (Room.Attributes and
// User.Attributes are opaque per-surface data). (ours)
const (
	attrNumbers    = "nexmo.numbers"    // the conversation's `numbers` object, as JSON
	attrProperties = "nexmo.properties" // the conversation's `properties` object minus ttl, as JSON
	attrChannels   = "nexmo.channels"   // the user's `channels` object, as JSON
	attrCreator    = "nexmo.creator"    // the engine ID of the user whose token created the conversation
)

// timeFormat renders timestamps: RFC 3339 in UTC with milliseconds, as the spec's examples
// ("2020-01-01T14:00:00.00Z"). (fact: RFC 3339; ours: millisecond precision)
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// Error codes. The ones the README lists as facts are the vendor's; the others are ours,
// named in the vendor's "<resource>:error:<what>" scheme.
const (
	codeValidation     = "http:error:validation-fail"              // 400 (fact)
	codeConvDuplicate  = "conversation:error:duplicate-name"       // 400 (fact)
	codeUserDuplicate  = "user:error:duplicate-name"               // 400 (fact)
	codeInvalidToken   = "system:error:invalid-token"              // 401 (fact)
	codeExpiredToken   = "system:error:expired-token"              // 401 (fact)
	codePermission     = "system:error:permission"                 // 403 (fact)
	codeConvNotFound   = "conversation:error:not-found"            // 404 (fact)
	codeUserNotFound   = "user:error:not-found"                    // 404 (fact)
	codeMemberNotFound = "member:error:not-found"                  // 404 (fact)
	codeEventNotFound  = "event:error:not-found"                   // 404 (fact)
	codeMethod         = "http:error:method-not-allowed"           // 405 (fact)
	codeLegNotFound    = "leg:error:not-found"                     // 404 (ours)
	codeRouteNotFound  = "http:error:not-found"                    // 404 for an unknown path (ours)
	codeTooLarge       = "http:error:request-too-large"            // 413 (ours)
	codeMemberState    = "conversation:error:invalid-member-state" // 400: illegal member transition (ours)
	codeEventConflict  = "event:error:already-deleted"             // 400: deleting a deleted message (ours)
	codeEnded          = "conversation:error:ended"                // 400: the conversation has ended (ours)
	codeUnavailable    = "system:error:unavailable"                // 503: store cannot write, engine closed (ours)
	codeInternal       = "system:error:internal-error"             // 500 (ours)

	// 429: a client's writes past Config.Limiter. The vendor's own code for its rate limit
	// (fact: its v1 API answers 429 with it, as the Vonage Java SDK's tests record); the body
	// is ours, in this API's {code, description} format.
	codeTooManyRequests = "http:error:too-many-request"
	// 415: a POST or PUT body that is not declared as JSON (ours, in the vendor's scheme).
	codeMediaType = "http:error:unsupported-media-type"
)

// Retry-After, in seconds, of the answers that ask a client to come back (ours). A write
// refused by the rate limit can be retried once a token has refilled: at limit.DefaultRates
// that is 50 ms, and 1 s is the least the header can say. A store that cannot take writes (a
// full disk) needs someone to act, so clients are asked to wait longer.
const (
	retryAfterLimited     = 1
	retryAfterUnavailable = 5
)

// statusFor is the HTTP status of each code.
var statusFor = map[string]int{
	codeValidation: http.StatusBadRequest, codeConvDuplicate: http.StatusBadRequest,
	codeUserDuplicate: http.StatusBadRequest, codeInvalidToken: http.StatusUnauthorized,
	codeExpiredToken: http.StatusUnauthorized, codePermission: http.StatusForbidden,
	codeConvNotFound: http.StatusNotFound, codeUserNotFound: http.StatusNotFound,
	codeMemberNotFound: http.StatusNotFound, codeEventNotFound: http.StatusNotFound,
	codeMethod: http.StatusMethodNotAllowed, codeLegNotFound: http.StatusNotFound,
	codeRouteNotFound: http.StatusNotFound, codeTooLarge: http.StatusRequestEntityTooLarge,
	codeMemberState: http.StatusBadRequest, codeEventConflict: http.StatusBadRequest,
	codeEnded: http.StatusBadRequest, codeUnavailable: http.StatusServiceUnavailable,
	codeInternal: http.StatusInternalServerError, codeTooManyRequests: http.StatusTooManyRequests,
	codeMediaType: http.StatusUnsupportedMediaType,
}

// Event types on the wire. The first group is the vendor's (fact). Engine events that have
// no vendor type are rendered as custom events named after the engine type (ours):
//
//	engine EventEdit      → "custom:edit"      body {event_id, text[, body]}
//	engine EventNickname  → "custom:nickname"  body {nickname}
//	engine EventEnded     → "custom:ended"     body {}
//	engine EventNotice    → "text" without `from` (a text from the program, like an admin
//	                        text sent without `from`)
//
// A client can create custom:edit etc. itself; those are engine custom events and render
// the same way, which is what the vendor does with any custom:<name>.
const (
	typeText         = "text"
	typeImage        = "image"
	typeInvited      = "member:invited"
	typeJoined       = "member:joined"
	typeLeft         = "member:left"
	typeMedia        = "member:media" // voice only: refused with 400 (ours; no media in chat)
	typeSeen         = "text:seen"
	typeDelivered    = "text:delivered"
	typeTypingOn     = "text:typing:on"
	typeTypingOff    = "text:typing:off"
	typeDelete       = "event:delete"
	typeCustomPrefix = "custom:"
)

// Permissions of a user token (a JWT with `sub`); an admin token (no `sub`) may do
// everything. (README ours: "no sub = admin; with sub = that user, limited to its own
// conversations and memberships".) A conversation is the user's own while the user has an
// invited or joined membership in it.
//
//	POST   /conversations                     allowed (the creator is not made a member)
//	GET    /conversations                     admin only (the spec: "requires an admin JWT")
//	GET    /conversations/{id}                own conversation
//	PUT    /conversations/{id}                own conversation, joined
//	DELETE /conversations/{id}                admin only
//	GET    .../events, .../events/{id}        own conversation; only events visible to the
//	                                          user's member (Event.Visibility, Event.To)
//	POST   .../events                         own conversation; `from` must be the user's own
//	                                          member
//	DELETE .../events/{id}                    own conversation; the engine allows only the author
//	GET    .../members, .../members/{id}      own conversation
//	POST   .../members                        join: only itself, by the join policy below;
//	                                          invite: anyone, as itself (the engine requires
//	                                          the inviter to be joined)
//	PUT/DELETE .../members/{id}               its own member only
//	GET    /users, /users/{id}                allowed (names are needed to show members)
//	POST   /users, DELETE /users/{id}         admin only (the spec: users are created by admins)
//	PUT    /users/{id}                        itself only
//	GET    /users/{id}/conversations          itself only
//	GET    /legs, DELETE /legs/{id}           admin only
//
// A token whose `sub` names no user is an invalid token (401), not a forbidden one. The
// `acl` claim is not enforced: the rules above decide.
//
// No existence oracle (ours; issue 11). A user knows a conversation when it has a membership
// record there (invited, joined or left) or created it with its own token (attrCreator). On
// every route under /conversations/{id}, a conversation the user does not know is answered
// exactly as one that does not exist — 404 conversation:error:not-found, the same headers and
// bytes — whatever the method, the rest of the path or the body, and before anything in the
// body is looked at; the handler makes the same store lookups either way. A conversation the
// user knows but is not in (it left, or created it and has not joined) is answered 403
// system:error:permission as before: its existence is no secret to that user, whose own
// GET /users/{id}/conversations lists the conversations it left. The vendor's duplicate-name
// error still tells that a conversation *name* is taken (fact: names are unique); it gives
// no id.
//
// Joining is a policy, not a side effect of knowing an id (ours; issue 11). A user token may
// join itself (POST .../members with action join, its own user) only to a conversation
//
//   - where it is invited (the invitation becomes the joined member, same id);
//   - that it created with its own token and has not been a member of yet (the vendor's
//     clients create a conversation and then join it);
//   - that Config.MayJoin, asked when the rules above say no, lets it join.
//
// Otherwise: 404 conversation:error:not-found for a conversation it does not know (MayJoin was
// asked and said no: no other answer would be safe), 403 for one it knows. A user that left —
// by itself, or removed by an admin — does not come back by itself: it needs a new invitation
// (joining it makes a new member id, as the vendor's rejoin does, fact) or MayJoin. A program
// that wants open rooms sets MayJoin to return true. Admin tokens join anyone anywhere (the
// engine still keeps uninvited users out of a private room). The other ways to join — PUT
// .../members/{id} action join and a member:joined event — take an invitation already.

// Request bodies (ours; issue 11). A POST or PUT with a body must declare a JSON media type:
// application/json (with any parameters) or a "+json" type; otherwise 415
// http:error:unsupported-media-type. A request without Content-Type is refused the same way
// unless it has no body at all (Content-Length: 0), which declares nothing: the vendor's
// legacy Node SDK (`nexmo` 2.x: Conversations, Members, Events, Users) sends
// "Content-Type: application/json" on every call, so only other clients omit it, and its
// HttpClient's default of application/x-www-form-urlencoded is always overridden for this API.
// GET and DELETE bodies are not read, so their Content-Type does not matter. A body that is
// not valid UTF-8, holds a NUL (raw or \u0000) or nests deeper than chat.MaxJSONDepth is
// refused 400 http:error:validation-fail naming the top-level field at fault ("body" when
// there is none to name), and nothing is stored; so is anything the engine refuses
// (*chat.InvalidError), naming the wire field behind the engine's field (wireFields). The
// media type and size are checked before the path's conversation is looked up, the content
// after (as before, a body sent to a conversation the caller cannot see is answered 404).
//
// Rate limits and a store that cannot write (ours; issue 11). Every POST, PUT and DELETE costs
// a limit.Write token of its client (Config.Limiter); past the rate it is answered 429
// http:error:too-many-request with Retry-After, checked before the token so that anonymous
// floods are cut cheaply. An engine error wrapping chat.ErrUnavailable (a full disk, an I/O
// error) is answered 503 system:error:unavailable with Retry-After, like a closed engine: the
// client may retry; nothing was stored.

// defaultMemberAction is the action of POST .../members when the body gives none: the spec's
// example is "join". (ours)
const defaultMemberAction = "join"

// The only member channel type a chat member can have: phone, sip and websocket channels are
// voice legs, which a chat engine has none of, so they are refused with 400. Every member
// renders channel {"type":"app"}. (ours; the engine keeps no per-member surface data to store
// anything else: see the report)
const channelApp = "app"

// Answers of POST .../events for the types whose engine call returns a membership record
// (member:*, text:seen, text:delivered) or a typing event: the event the call appended (the
// record's Pos, when it is after the room's last position before the call; memberEvent) is
// answered 201 {id, timestamp, href} with its engine position as the id. When the engine
// appended nothing — a receipt at or below the member's watermark, text:typing:on that only
// renewed a typing indicator with the same preview, text:typing:off while not typing — no
// event was created, and the answer is 200 {} rather than an id of some earlier event or a
// made-up one. (ours) Two identical requests racing may both be answered with the one event
// the first appended.

// PUT /conversations/{id} and PUT /users/{id} change only the fields the body gives
// (absent fields stay; `properties` given replaces the stored properties, and its ttl, when
// given, the engine TTL; an empty object removes numbers or properties). The spec calls the
// conversation operation "replace" but defines no field as required, so a full replacement
// would blank fields a client did not mean to touch. (ours)
//
// POST /conversations/{id}/members without `action` joins (the spec's example); `user_name`
// is accepted in place of `user_id`. Ids in paths that do not parse are unknown ids (404 of
// that resource), not validation failures. (ours)
