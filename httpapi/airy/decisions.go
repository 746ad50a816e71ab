package airy

import "time"

// Our decisions (**ours** in specs/README.md), where the Airy docs, code and clients settle
// nothing. Each is a named constant here so that it can be changed in one place.
const (
	// AttrChannel is the room attribute that holds a conversation's Airy channel id.
	AttrChannel = "airy.channel_id"
	// AttrContact is the room attribute that holds the engine user ID (ULID form) of the
	// conversation's anonymous contact. The contact is a joined member with chat.RoleClient.
	AttrContact = "airy.contact_id"
	// ContactName is the display name of the anonymous contact user created for a new
	// conversation.
	ContactName = "Anonymous"

	// ClaimTokenType names the claim that says which kind of token a JWT is, so that an auth
	// token is never accepted as a resume token or the other way round.
	ClaimTokenType = "parley_token_type"
	// TokenTypeAuth and TokenTypeResume are the values of ClaimTokenType.
	TokenTypeAuth   = "airy.auth"
	TokenTypeResume = "airy.resume"

	// DefaultAuthTTL and DefaultResumeTTL are the tokens' lifetimes (fact: 1 h and 7 days).
	DefaultAuthTTL   = time.Hour
	DefaultResumeTTL = 7 * 24 * time.Hour
	// MinSecretLen is the shortest HS256 secret accepted: 256 bits, the hash's size
	// (RFC 7518 section 3.2 requires a key at least that long).
	MinSecretLen = 32

	// DeliveryDelivered is every message's delivery_state: a message exists in the engine
	// only once it is durably stored, which is what "delivered" means for the chat plugin
	// channel (fact: lower case, as the Airy code writes it, not the doc's upper case).
	DeliveryDelivered = "delivered"
	// SystemSenderID is sender.id of messages the embedding program sends as chat.System
	// (fact: Airy's own default for unauthenticated senders). Other senders' id is their
	// engine user ID in UUID form.
	SystemSenderID = "airy-core-anonymous"
	// SentAtLayout is the layout of sent_at: 'yyyy-MM-ddTHH:mm:ss.SSSZ' in UTC (fact).
	SentAtLayout = "2006-01-02T15:04:05.000Z"

	// DefaultMaxBodyBytes bounds a request body; a longer one is answered 413.
	DefaultMaxBodyBytes = 64 << 10
	// DefaultMaxHistory is the most messages authenticate returns with a resume token: the
	// latest ones, ordered by position.
	DefaultMaxHistory = 1000

	// RetryAfterRateLimited is the Retry-After of a 429 (rounded up to whole seconds on the
	// wire). limit.Limiter does not tell when a client's next token comes; with
	// limit.DefaultRates a write token comes within 50 ms and a new conversation's within
	// 3 s, so one second is an honest first wait: a client that comes back too early is
	// refused again, at no cost to anyone.
	RetryAfterRateLimited = time.Second
	// RetryAfterUnavailable is the Retry-After of a 503: the store cannot serve now (a full
	// disk, an I/O error; chat.ErrUnavailable) or the engine is closing.
	RetryAfterUnavailable = 5 * time.Second
	// MessageUnavailable is the message of a 503 (and of the STOMP ERROR frame that says
	// 503); the cause is logged, not shown.
	MessageUnavailable = "the service cannot take this request now: try again later"
)

// Media types: every request with a body must declare it as JSON (application/json or a
// +json type); anything else is 415. A missing Content-Type is refused too: the widget sends
// application/json on all three calls (airyhq/airy frontend/chat-plugin lib/src/api), and
// Airy's own Spring server answers 415 to a body without one. The one exception is the
// contact's resumeToken with an empty body (Content-Length: 0), which has nothing to
// declare; its body, if any, is not used but must still be a JSON value.
//
// Bad input: bodies are checked before they are decoded (httpx.DecodeJSON): invalid UTF-8,
// NUL characters (raw or \u0000) and nesting past chat.MaxJSONDepth are 400, and nothing is
// stored. Go's decoder would have turned invalid UTF-8 into U+FFFD.
//
// Rate limits (Config.Limiter, per client address): authenticate with a channel_id costs a
// limit.Create token, charged before the channel is looked up; authenticate with a resume
// token costs nothing (it creates nothing). send and resumeToken cost a limit.Write token,
// charged first, before the token is checked. A refusal is 429 with Retry-After and
// {"message"}.
//
// Joining: this surface joins a caller to one room only, the conversation authenticate
// creates for it, as its anonymous contact (chat.RoleClient). Tokens give access to that
// conversation and join nobody; no request joins an existing room. Agents are joined by the
// embedding program or another surface.
//
// No existence oracle: a token or a system request that names a conversation it cannot have
// (malformed id, no such room, a room of another channel or no Airy room at all) gets one
// answer with one message: 401 for a token (authenticate with a resume token, send,
// resumeToken), 404 for the system token, as the wire notes document.

// Message content: a message sent as {"text": "..."} alone is stored as the event's Text, with
// no Body, so that every surface reads it as plain text. Any other message object (an
// attachment, a text with more fields) is stored whole as the event's Body, with its text (if
// any) as Text. When a message is rendered, a Body that is a JSON object is the content as it
// came; otherwise the content is {"text": Text}.
