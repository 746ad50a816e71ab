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
)

// Message content: a message sent as {"text": "..."} alone is stored as the event's Text, with
// no Body, so that every surface reads it as plain text. Any other message object (an
// attachment, a text with more fields) is stored whole as the event's Body, with its text (if
// any) as Text. When a message is rendered, a Body that is a JSON object is the content as it
// came; otherwise the content is {"text": Text}.
