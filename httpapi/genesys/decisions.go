package genesys

import "time"

// Every decision of this package that no public Genesys document settles ("ours" in
// specs/README.md, and a few more) is in this file, so that it can be changed in one place
// when better evidence appears. The facts of the wire notes are implemented in genesys.go and
// render.go.

// Defaults of Config.
const (
	// DefaultAlias is the alias answered when Config.Alias is empty. Real Chat Servers answer
	// a short decimal string ("117"); clients echo it back and never interpret it.
	DefaultAlias = "1"
	// DefaultMaxBodyBytes is the largest request body; a larger one gets HTTP 413.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultMaxEvents is the most transcript positions one answer covers; a client further
	// behind gets the rest on its next refresh (nextPosition says where to go on).
	DefaultMaxEvents = 1000
	// DefaultSystemNickname is the nickname of events from the embedding program (notices).
	DefaultSystemNickname = "system"
	// DefaultTenantName is the tenantName of refresh answers (the spec's only TenantEnum value).
	DefaultTenantName = "Resources"
	// DefaultIdleWarnText and DefaultIdleCloseText are the idle Notice texts.
	DefaultIdleWarnText  = "Are you still there? This chat will close soon due to inactivity."
	DefaultIdleCloseText = "This chat was closed due to inactivity."
	// DefaultIdleInterval is how often the idle sweeper looks at the chats.
	DefaultIdleInterval = 5 * time.Second
)

const (
	// retryAfterLimited is the Retry-After of a Limiter refusal: limit.Limiter does not tell
	// when a token comes back, and at the default write rate one does within a second.
	retryAfterLimited = time.Second
	// retryAfterUnavailable is the Retry-After of statusCode 1 answers for a store that
	// cannot serve now.
	retryAfterUnavailable = 5 * time.Second
)

// Error codes of the spec's table that this package answers with.
const (
	codeFirstName   = 102 // firstName is missing
	codeLastName    = 103 // lastName is missing
	codeUserData    = 105 // userData is missing
	codeAlias       = 151 // alias is missing
	codeUserID      = 152 // userId is missing
	codeSecureKey   = 153 // secureKey is missing
	codeChatID      = 154 // chatId is missing
	codeNickname    = 161 // nickname is missing
	codeMessage     = 162 // message is missing
	codePushURL     = 163 // pushUrl is missing
	codeLimit       = 200 // a limit of the server is exceeded (the 2xx family's base); advice says which
	codeUnexpected  = 240 // an unexpected error; advice has a reference
	codeNotFound    = 248 // the interaction was not found
	codeCannot      = 249 // the server could not execute the request (the chat has ended)
	codeInvalid     = 300 // a parameter is malformed or out of range (the 3xx family's base)
	codeServiceName = 306 // serviceName is not configured (HTTP 404)
	codeEmail       = 364 // emailAddress is not a valid address
)

// Ours:
//
//   - Room mapping: a chat is an engine room; chatId is the room ID in ULID form (26
//     characters). The room is public unless Config.PrivateRooms is set, so that Chapi clients
//     (which never post to private rooms) can take part in Genesys chats by chatId.
//   - Room attributes (all prefixed "genesys."): serviceName; subject; userData.<key> for
//     each userData[key]; party.<userId> = "<engine user ULID> <hex SHA-256 of the secureKey>"
//     for each party created by requestChat; idleWarnPos, the position of the last idle
//     warning. Keeping these in the engine makes sessions survive a restart on a durable store.
//   - userId is 64 random bits as 16 upper-case hex digits (what real servers' ids look like);
//     secureKey 128 random bits as 32 lower-case hex digits; only its SHA-256 is stored and the
//     comparison is constant time.
//   - A wrong secureKey, an unknown chatId, serviceName mismatch, an unknown userId, another
//     chat's userId or a party that has left: HTTP 200, statusCode 2, chatEnded true, errors
//     [{248}] — the same answer, byte for byte, for all, so that it tells a guesser nothing;
//     no secureKey, userId or nextPosition. Nothing of the chat is read beyond its
//     credentials, and nothing is changed (idle control runs only for an authenticated
//     party), before the party is authenticated; the secureKey is hashed in every case. The
//     party is NOT removed from the chat on a bad key (Chat Server does): that would let
//     anyone who knows a userId end someone else's chat.
//   - An ended chat: refresh, disconnect and readReceipt still work (the client reads the end
//     of the transcript, with chatEnded true); every other operation gets statusCode 2 with
//     errors [{249}], chatEnded true, and nextPosition.
//   - Missing parameters: HTTP 400 with every applicable 1xx code at once. Malformed values
//     (a transcriptPosition that is not a number, a pushUrl that is not an absolute http(s)
//     URL, text the engine refuses, any field name or value that is not valid UTF-8 or holds
//     a NUL byte, whether the operation uses it or not) and readReceipt without
//     transcriptPosition (the spec's table has no code for it): HTTP 400 with code 300, the
//     advice naming the field. Nothing is stored.
//   - Limits: what userData (requestChat's or updateData's) would add to a chat past the
//     engine's limits on a room's attributes (chat.MaxAttributes entries,
//     chat.MaxAttributesBytes in all, chat.MaxAttributeValueBytes a value, counted with the
//     package's own attributes) is refused whole, nothing stored: HTTP 400 with code 200, the
//     base of the spec's 2xx family ("outside the range configured ... an advice field that
//     displays the allowable range or limit"); the 1xx codes are for missing parameters and
//     the 3xx for malformed ones. The attributes the package keeps for itself are written at
//     requestChat in a fixed width, so that a chat full of userData still gets idle control. Unknown operation: HTTP 404, code
//     300. Not POST: HTTP 405. A body that is not a form (JSON...): HTTP 415, code 300.
//   - Transcript indexes are engine positions. Events that Genesys has no type for are not
//     rendered: receipts (readReceipt's own EventRead included), invitations, edits,
//     deletions, the end of the room, custom events of other surfaces, and events restricted
//     to another role or addressed to another member. Their positions are gaps in the indexes
//     the client sees: index stays "the serial number of this event within the chat session"
//     and nextPosition (last position + 1) steps over the gaps, so a client that copies
//     nextPosition into transcriptPosition sees every rendered event exactly once. Renumbering
//     rendered events densely would need a per-room counter the engine does not keep (and a
//     full scan per request to derive it), and would make readReceipt's index ambiguous.
//   - from.nickname is the member's current nickname (the user's display name if it has
//     none); ParticipantJoined shows the nickname it joined with.
//   - Events from the program (notices, idle warnings) come from {nickname: system,
//     participantId: 0, type: External}.
//   - send's messageType is kept in the message body as {"messageType": "..."} and rendered
//     back from any message body with a string messageType.
//   - pushUrl and customNotice are engine custom events named "genesys.PushUrl" (body
//     {"url"}) and "genesys.CustomNotice" (body {"text"}), rendered as PushUrl and CustomNotice
//     with the URL or text as text.
//   - updateData merges userData[key]=value into the room attributes; an empty value removes
//     the key. It adds no event.
//   - refresh with a non-empty message starts (or renews) typing with that preview, as the
//     spec's typing-preview text describes. stopTyping's message is ignored.
//   - disconnect makes the client leave (ParticipantLeft) and answers chatEnded true; it does
//     not end the room for the other parties, which the embedding program (or idle control)
//     ends with Engine.EndRoom.
//   - Idle control (off unless Config.Idle.Warn and Close are set): a chat whose last event is
//     older than Warn gets a Notice; if nothing follows it for Close, a second Notice and the
//     room ends. Any event counts as activity; refresh alone does not (it keeps the HTTP
//     session alive, not the conversation). The check runs on each request for a chat and in
//     one background sweeper per Handler, stopped by Close.
//   - Anonymous by design: the Genesys API has no credentials before requestChat, so a
//     service listed in Config.ServiceNames is open to anyone who can reach the handler.
//     Config.Limiter (limit.DefaultRates when nil) bounds what one client address does:
//     requestChat costs a limit.Create token, every write a limit.Write token (refresh only
//     when it carries a typing preview: polling is not limited), charged before the body is
//     read (refresh: once its form is read) and whether or not the credentials are right.
//     Config.Gate then refuses requests (403, or 429 for an error with a RetryAfter method)
//     before anything is read or stored.
//   - A rate-limit refusal (the Limiter's, or the Gate's with a RetryAfter method) is HTTP
//     429 with Retry-After and a BaseResponse body with statusCode 1, the spec's "the client
//     can keep trying", and errors [{200}] (a configured limit, the advice saying when to
//     retry). The Limiter's Retry-After is retryAfterLimited.
//   - A store that cannot serve now (chat.ErrUnavailable: a full disk, an I/O error): HTTP
//     503 with Retry-After (retryAfterUnavailable) and statusCode 1, errors [{240}] — "keep
//     trying", never a generic failure. Closing the engine answers the same way without
//     Retry-After.
//   - The idle sweeper goroutine survives a panic: it is logged with its stack and the next
//     sweep runs as usual. A sweep goes on past a chat it cannot check (the error is logged
//     once per sweep) so that one chat cannot stop idle control of the others.
//   - Every statusCode 0 answer carries nextPosition; messages is always present (possibly
//     empty); chatEnded is present on every answer but requestChat's (as in the spec's
//     schemas); refresh also carries tenantName.
