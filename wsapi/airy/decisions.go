package airy

import "time"

// Our decisions (**ours** in specs/README.md) for the STOMP side, in one place.
const (
	// Destination is the one destination a client may subscribe to (fact).
	Destination = "/user/queue/message"

	// HeaderAfter, on SUBSCRIBE, says where a reconnecting client left off: the position
	// (x-parley-position) of the last MESSAGE it received. The subscription then delivers
	// every message after it, exactly once and in order, before going on with new ones.
	// "x-parley-after:0" delivers the whole conversation. Without the header the
	// subscription starts with the first message after the CONNECT frame was served: the
	// original server delivers only what comes after SUBSCRIBE, which loses a message sent
	// between CONNECTED and SUBSCRIBE (the widget sends over REST as soon as it is connected).
	// A later subscription on the same connection, without the header, starts with the next
	// message.
	HeaderAfter = "x-parley-after"
	// HeaderPosition, on every MESSAGE frame, is the message's position in the conversation
	// (the engine event position). Positions of other events are skipped: only messages
	// become MESSAGE frames, so positions need not be consecutive.
	HeaderPosition = "x-parley-position"

	// ServerName is the CONNECTED frame's server header.
	ServerName = "parley"

	// DefaultHeartBeat is the server's heart-beat offer in both directions (fact: 30000,30000).
	DefaultHeartBeat = 30 * time.Second
	// HeartBeatGrace multiplies the negotiated incoming interval: a connection that has sent
	// nothing (no frame, no heart-beat) for that long is dead and is closed. stompjs uses the
	// same factor for the server's heart-beats.
	HeartBeatGrace = 2
	// DefaultConnectTimeout is how long a new connection may take to send CONNECT.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultWriteTimeout bounds each write; a client that does not read is dropped.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultPingInterval is how long a connected client may show no sign of life before
	// it is pinged, and DefaultPingTimeout how long the ping waits for its pong: a peer gone
	// without a word (a laptop closed, a network cut) is closed within 45 s of its last
	// sign, whatever heart-beats it negotiated. The widget's 4 s heart-beats keep it from
	// ever being pinged; browsers and the ws package answer pings by themselves.
	DefaultPingInterval = 30 * time.Second
	DefaultPingTimeout  = 15 * time.Second

	// HeaderRetryAfter, on an ERROR frame that says 429 or 503, is how many seconds the
	// client should wait before it connects again (httpairy.RetryAfterRateLimited,
	// httpairy.RetryAfterUnavailable), as HTTP's Retry-After.
	HeaderRetryAfter = "retry-after"

	// DefaultMaxFrameBytes, DefaultMaxHeaders and DefaultMaxHeaderBytes are the codec's limits
	// on an incoming frame. A frame over them gets an ERROR frame and the connection closes.
	DefaultMaxFrameBytes  = 64 << 10
	DefaultMaxHeaders     = 32
	DefaultMaxHeaderBytes = 4 << 10
	// The WebSocket read limit is MessageLimitFactor times the frame limit, so that an
	// oversized frame is still read and answered with an ERROR frame; a WebSocket message
	// over the read limit closes the connection with status 1009 (message too big).
	MessageLimitFactor = 2
)

// Subprotocols are the WebSocket subprotocols the server selects from, in its order of
// preference (fact: the widget offers all three). A client that offers none is refused.
var Subprotocols = []string{"v12.stomp", "v11.stomp", "v10.stomp"}

// Frames the server does not serve. The widget sends its messages over REST
// (/chatplugin.send), so SEND, and the transactions around it, are answered with an ERROR
// frame (405) and the connection closes, as every STOMP ERROR does. A SEND is a write all the
// same: it costs a limit.Write token of the Service's Limiter first (429 once the client has
// none left), and a body that is not valid UTF-8 or holds a NUL is refused as bad input
// (400) before the 405. Nothing a SEND carries is ever stored. A client may hold one
// subscription at a time, with ack mode auto; ACK and NACK are accepted and ignored. STOMP
// versions 1.1 and 1.2 are served (1.2 preferred); a client that offers neither gets an
// ERROR frame.

// Refusals on the socket. Every refusal is an ERROR frame whose message header starts with
// the HTTP status the REST half would answer (400, 401, 404, 405, 408, 409, 413, 429, 503),
// and the connection closes after it: STOMP 1.2 says a server MUST close the connection
// just after sending an ERROR frame, and stompjs treats it so. A rate-limited (429) or
// store-unavailable (503) refusal carries a retry-after header and closes with WebSocket
// status 1013 (try again later); a 503 says only that the service cannot take the request
// now (httpairy.MessageUnavailable), its cause is logged.
//
// Deadlines. A connection is closed: without CONNECT after ConnectTimeout (ERROR 408); when
// its auth token expires, measured at CONNECT from the token's exp on the Tokens' clock
// (ERROR 401, status 1008; the widget authenticates again on a 401); when it shows no sign of
// life for twice the negotiated heart-beat interval, or for PingInterval and then does not
// answer a ping within PingTimeout (closed without a frame: nobody is listening); when a write
// waits WriteTimeout. Heart-beats are the client's choice; pings and the token's expiry are
// not.
//
// Panics. A panic on a connection's reader, its own goroutine, a turn of its work or its ping
// is recovered, logged with its stack (Config.Logger, level Error), and closes that connection
// alone, without a close handshake; the Handler goes on serving every other one.

// Per-connection resources: what an idle connection keeps is most of the server's memory
// per client (DESIGN.md: at most 10 KB per idle WebSocket connection).
const (
	// ReadBufferSize and WriteBufferSize are the hijacked connection's buffers, in place of
	// net/http's 4 KiB + 4 KiB. Client frames are small (a CONNECT with its token is about
	// 400 bytes, heart-beats one byte); a MESSAGE frame of a short message fits the write
	// buffer in one system call; larger reads and writes bypass the buffers.
	ReadBufferSize  = 256
	WriteBufferSize = 1024
	// FollowBatch is how many of the conversation's events a connection takes in a row
	// before it serves its client's frames and its heart-beats again.
	FollowBatch = 64
)
