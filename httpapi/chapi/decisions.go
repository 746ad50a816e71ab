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
//   - Errors other than the Apigee 401 use the body Spring Boot gives (Chapi is a Spring
//     service, as its springfox operation ids show): {"timestamp","status","error","message",
//     "path"}.
//   - Content-Type: POST bodies must be JSON (application/json or any +json type); a request
//     without a Content-Type is read as JSON, anything else gets 415.
//   - A rate-limit hook refusal is 429 with Retry-After when the error says how long.
//   - Health answers {"status":"UP"} while the engine answers, {"status":"DOWN"} with 503 once
//     it is closed; it needs no key.

// retryAfterDefault is the Retry-After sent with 429 when the hook's error gives none.
const retryAfterDefault = time.Second
