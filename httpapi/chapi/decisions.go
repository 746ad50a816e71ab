package chapi

import "time"

// Every decision of this package that no public Chapi document settles ("ours" in
// specs/README.md) is in this file, so that it can be changed in one place when better evidence
// appears. The facts the wire notes record (paths, fields, the 401 body, microsecond
// timestamps) are in chapi.go.

const (
	// DefaultRoom is the room used when a request names none (a fact of the Chapi docs).
	DefaultRoom = "CHAPI sandbox"

	// DefaultPageSize is the page size of GET messages without pageSize (the spec's default).
	DefaultPageSize = 30

	// DefaultMaxPageSize caps pageSize; a larger value is clamped, not refused (ours).
	DefaultMaxPageSize = 1000

	// DefaultMaxBodyBytes is the largest request body; a larger one gets 413 (ours).
	DefaultMaxBodyBytes = 1 << 20

	// DefaultRole is the room role a key's user joins with when it first posts to a room
	// (ours): Chapi is a bot-style integration API, so its users are neither the customer nor
	// an agent of a Genesys chat; the Genesys surface renders them as "External".
	DefaultRole = "bot"
)

// Ours:
//   - ts=0 (or absent) lists the newest page; ts=X lists messages strictly older than X
//     microseconds, newest first. Engine event times strictly increase within a room, so a
//     client paging with the oldest timestamp it saw never skips or repeats a message.
//   - parsed is messageRaw with surrounding whitespace trimmed; Slack-style markup is kept.
//   - Only message events are listed, in their current state (an edited message shows its
//     latest text, a deleted one is left out). Events restricted to a role the reader's
//     membership does not have, or addressed to another member, are left out.
//   - A key's user may read a public room, or a private room in which it has an invitation or
//     a joined membership (a user who left a private room no longer reads it). It never posts
//     to a private room (403) nor creates one.
//   - An unknown room is created by POST (a public room with that name) but not by GET: GET
//     answers 404.
//   - Joining is a policy. No Chapi document speaks of rooms other programs made; Chapi
//     reaches them as the next three items say. POST joins the key's user to the rooms it
//     reaches that are public; reading joins nobody.
//   - Rooms reached by name: every room with that unique name, whichever surface or program
//     made it (the wire notes' fact: "the key's user sees all public rooms"). Such a room is
//     public unless its Private flag is set: a key's user reads it and joins it by posting.
//     A private one is answered 403 (the vendor's documented answer), except that its
//     invited or joined members read it. Giving a room a unique name publishes it to Chapi;
//     a surface or program that wants a named room kept from Chapi integrations makes it
//     private. Of the other surfaces, only Nexmo names rooms (a conversation's name), when
//     its client asks.
//   - Rooms reached by ID (a value that parses as a chat.ID, in ULID or UUID form): only a
//     room Chapi created (it carries the attribute "chapi.created"), a room the key's user
//     has been invited to or joined (the embedding program or another surface told it to),
//     or a room Config.MayUse allows. Knowing an ID is not enough: IDs of other surfaces'
//     rooms (a Genesys chatId, a Bezlimit chat) are their clients' credentials. Without
//     MayUse, Chapi reaches no room of another surface by ID, even a public named one.
//   - A room the user may not reach by ID is answered exactly as a room that does not
//     exist: the value is then a name like any other, so GET answers 404 and POST creates
//     (or posts to) the public room of that name, leaving the room with the ID untouched.
//     Both cases read the room and the user's membership, so the time taken tells little.
//     When a room the user may reach by ID exists, it wins over a room named like the ID,
//     so that nobody can shadow a chat by naming a room after its ID.
//   - Errors other than the Apigee 401 and 429 use the body Spring Boot gives (Chapi is a
//     Spring service, as its springfox operation ids show): {"timestamp","status","error",
//     "message","path"}.
//   - Content-Type: POST bodies must be JSON (application/json or any +json type); a request
//     without a Content-Type is read as JSON, anything else gets 415.
//   - Bad input is refused with 400 and stores nothing: a body or query that is not valid
//     UTF-8 or holds a NUL (the message names messageRaw or room when it is at fault), JSON
//     nested deeper than chat.MaxJSONDepth, trailing data.
//   - Rate limit: Config.Limiter (limit.DefaultRates when nil) takes a limit.Write token of
//     the client's address for every POST, before the key is checked; GET and health are not
//     limited. A refusal is 429 with Retry-After (retryAfterLimited) and TooManyRequestsBody,
//     the fault body Apigee's SpikeArrest policy answers with (errorcode
//     policies.ratelimit.SpikeArrestViolation), since real Chapi's limits are Apigee's. The
//     Limiter replaced the former per-user RateLimit hook: one mechanism for one job. A
//     program that wants other rates passes its own Limiter.
//   - A store that cannot take writes now (chat.ErrUnavailable: a full disk, an I/O error)
//     is answered 503 with Retry-After (retryAfterUnavailable) in the Spring body; health
//     answers {"status":"DOWN"} with 503 until a write succeeds again, and once the engine is
//     closed. Health needs no key.

const (
	// retryAfterLimited is the Retry-After of 429 answers: limit.Limiter does not tell
	// when a token comes back, and at the default rates one does within a second.
	retryAfterLimited = time.Second
	// retryAfterUnavailable is the Retry-After of 503 answers for a store that cannot serve.
	retryAfterUnavailable = 5 * time.Second
)
