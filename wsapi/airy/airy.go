// Package airy serves the WebSocket half of the Airy Core chat plugin: STOMP 1.2 over a
// plain WebSocket at /ws.chatplugin, as the widget's @stomp/stompjs client speaks it.
//
// A client connects with CONNECT (or STOMP) carrying the STOMP header
// "Authorization: Bearer <auth token>" from POST /chatplugin.authenticate (package
// httpapi/airy, whose Service this handler shares), subscribes to /user/queue/message and
// receives every message of its conversation as a MESSAGE frame whose body is
// {"conversation_id", "channel_id", "message"}: its own messages (sent over REST), and those
// sent from Go or any other surface. A bad or expired token gets an ERROR frame whose message
// header contains 401, on which the widget authenticates again.
//
// Each MESSAGE frame carries the message's position in the header x-parley-position; a client
// that reconnects puts the last one it saw in the header x-parley-after of its SUBSCRIBE and
// receives what it missed, exactly once and in order, then the new messages (the engine's
// Follow). The original server replays nothing. Heart-beats are negotiated (server offer
// 30000,30000), sent, and checked: a client silent for twice the negotiated interval is
// dropped.
//
// Every connection has deadlines of its own, whatever it negotiated: CONNECT within
// ConnectTimeout; a WebSocket ping after PingInterval without a sign of life (a frame, a
// heart-beat, a pong), to be answered within PingTimeout; each write within WriteTimeout; and
// the end of its auth token's life, when the connection gets an ERROR frame whose message
// says 401 (the widget authenticates again on that) and is closed. A STOMP SEND costs a
// limit.Write token of the Service's Limiter, the same bucket as POST /chatplugin.send. A
// panic on one of a connection's goroutines is logged with its stack and closes that
// connection only. See decisions.go.
//
// Per connection the handler runs two goroutines: the WebSocket's one reader, and the
// connection's own, which handles what the reader hands it, follows the conversation while a
// subscription is active (waiting on the chat.Follower's Ready channel and taking messages
// with TryNext), writes, and keeps the heart-beats with a single timer. The hijacked
// connection's buffers are small (ReadBufferSize, WriteBufferSize) and an idle connection
// holds no frame buffer. The work of a turn (a frame, a batch of messages, a heart-beat) runs
// on a short-lived goroutine so that the connection's own keeps its first, smallest stack.
// An idle subscribed connection costs the server about 14 KB (TestIdleConnectionMemory),
// above DESIGN.md's 10 KB: 6 KB of it are the two goroutines' stacks, and the reader's (4 KiB,
// parked deep in the WebSocket library) is the one coder/websocket requires. Going further
// needs the connection to wait for its conversation without a goroutine of its own.
package airy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/chat"
	httpairy "github.com/parley-chat/chat/httpapi/airy"
	"github.com/parley-chat/chat/internal/httpx"
	"github.com/parley-chat/chat/internal/stomp"
	"github.com/parley-chat/chat/internal/wsconn"
	"github.com/parley-chat/chat/limit"
)

// Config configures a Handler. Zero fields take their defaults.
type Config struct {
	// Service is the chat plugin service shared with the REST handler: its tokens, its
	// engine and its rendering of messages. Required.
	Service *httpairy.Service
	// OriginPatterns lists the origins, besides the server's own host, whose pages may open
	// the WebSocket (websocket.AcceptOptions.OriginPatterns), e.g. "example.com" or
	// "*.example.com". Requests without an Origin header (non-browser clients) are accepted.
	OriginPatterns []string
	// HeartBeat is the server's heart-beat offer in both directions (default
	// DefaultHeartBeat). Negative disables heart-beats.
	HeartBeat time.Duration
	// ConnectTimeout is how long a client may take to send CONNECT (default
	// DefaultConnectTimeout); then it gets an ERROR frame (408) and is closed.
	ConnectTimeout time.Duration
	// PingInterval is how long a connected client may give no sign of life (no frame, no
	// heart-beat, no pong) before the server sends it a WebSocket ping (default
	// DefaultPingInterval). It holds whatever heart-beats were negotiated: a client that
	// asked for none is still pinged. Negative disables pings, leaving a client that
	// negotiated heart-beat 0,0 open for as long as its token lives.
	PingInterval time.Duration
	// PingTimeout is how long a ping may wait for its pong (default DefaultPingTimeout); a
	// client that does not answer in time is closed, without a close handshake.
	PingTimeout time.Duration
	// WriteTimeout bounds each write (default DefaultWriteTimeout).
	WriteTimeout time.Duration
	// MaxFrameBytes, MaxHeaders and MaxHeaderBytes limit incoming frames (defaults
	// DefaultMaxFrameBytes, DefaultMaxHeaders, DefaultMaxHeaderBytes).
	MaxFrameBytes  int
	MaxHeaders     int
	MaxHeaderBytes int
	// Logger logs internal errors, store trouble and panics (default slog.Default()).
	Logger *slog.Logger

	// testHook, set by tests only, gives each new connection a function that its goroutines
	// call at named points ("read", "run", "turn", "ping"): tests inject panics through it.
	testHook func(r *http.Request) func(point string)
}

// Handler serves /ws.chatplugin. Mount it at that path: the widget opens its socket at the
// host's root whatever prefix its REST calls use.
type Handler struct {
	cfg    Config
	svc    *httpairy.Service
	e      *chat.Engine
	limits stomp.Limits
	log    *slog.Logger

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	open   atomic.Int64 // connections running
	mu     sync.Mutex
	closed bool
}

// New returns a Handler for cfg.
func New(cfg Config) (*Handler, error) {
	if cfg.Service == nil {
		return nil, errors.New("airy: Config needs a Service")
	}
	if cfg.HeartBeat == 0 {
		cfg.HeartBeat = DefaultHeartBeat
	}
	if cfg.HeartBeat < 0 {
		cfg.HeartBeat = 0
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = DefaultPingInterval
	}
	if cfg.PingInterval < 0 {
		cfg.PingInterval = 0
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = DefaultPingTimeout
	}
	if cfg.MaxFrameBytes <= 0 {
		cfg.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if cfg.MaxHeaders <= 0 {
		cfg.MaxHeaders = DefaultMaxHeaders
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	h := &Handler{
		cfg: cfg, svc: cfg.Service, e: cfg.Service.Engine(), log: cfg.Logger,
		limits: stomp.Limits{MaxFrameSize: cfg.MaxFrameBytes, MaxHeaders: cfg.MaxHeaders, MaxHeaderLen: cfg.MaxHeaderBytes},
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h, nil
}

// Close closes every connection (WebSocket status 1001, going away), refuses new ones with
// 503, and waits for the connections' goroutines to end. http.Server.Shutdown does not do
// this: the connections are hijacked.
func (h *Handler) Close() error {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.cancel()
	h.wg.Wait()
	return nil
}

// ServeHTTP upgrades the request to a WebSocket and serves STOMP on it until either side
// closes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	h.wg.Add(1)
	h.mu.Unlock()
	defer h.wg.Done()

	ws, nc, err := wsconn.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:   Subprotocols,
		OriginPatterns: h.cfg.OriginPatterns,
	}, wsconn.Buffers{Read: ReadBufferSize, Write: WriteBufferSize})
	if err != nil {
		return // Accept has answered
	}
	if ws.Subprotocol() == "" {
		ws.Close(websocket.StatusPolicyViolation, "a STOMP subprotocol (v12.stomp, v11.stomp, v10.stomp) is required")
		return
	}
	ws.SetReadLimit(int64(MessageLimitFactor * h.cfg.MaxFrameBytes))
	c := &conn{h: h, ws: ws, nc: nc, in: make(chan inbound, 1), key: limit.ClientKey(r)}
	if h.cfg.testHook != nil {
		c.hook = h.cfg.testHook(r)
	}
	// The connection's two goroutines are new ones, so that net/http's goroutine, with its
	// deep stack and the request it holds, ends now: the WebSocket is hijacked and lives on.
	// Neither is under net/http's recovery: each contains its own panics.
	h.wg.Add(2)
	h.open.Add(1)
	go c.read()
	go func() {
		defer h.wg.Done()
		defer h.open.Add(-1)
		defer func() {
			if v := recover(); v != nil {
				c.panicked("goroutine", v)
				for range c.in {
					// the reader ends now that the WebSocket is closed
				}
			}
		}()
		c.run()
	}()
}

// errPanic is what a connection's turn or ping returns when it panicked.
var errPanic = errors.New("panic")

// panicked handles a panic recovered on one of c's goroutines: it logs it with the stack
// and closes the connection, without a close handshake (its state is unknown). The Handler
// and every other connection go on.
func (c *conn) panicked(where string, v any) {
	c.h.log.Error("airy: panic on a WebSocket connection's "+where+"; the connection is closed",
		"panic", v, "stack", string(debug.Stack()))
	c.ws.CloseNow()
}

// at calls the test hook, if any, at a named point.
func (c *conn) at(point string) {
	if c.hook != nil {
		c.hook(point)
	}
}

// Connections returns the number of open WebSocket connections.
func (h *Handler) Connections() int { return int(h.open.Load()) }

// inbound is what the reader hands the connection: the frames of one WebSocket message, and
// an error that ends the reading (a decoding error after the good frames, or the
// WebSocket's).
type inbound struct {
	frames []stomp.Frame
	err    error
	wsErr  bool // err is the WebSocket's: the connection is gone
}

// conn is one connection. Its fields belong to the connection's goroutine (run) except
// those marked otherwise.
type conn struct {
	h  *Handler
	ws *websocket.Conn
	nc net.Conn // the hijacked connection under ws: write deadlines

	in       chan inbound // reader → run; closed by the reader when it ends
	pending  inbound      // taken from in, for handlePending
	lastRead atomic.Int64 // unix nanoseconds of the last message read; set by the reader
	key      string       // the client, as rate limits name it (limit.ClientKey); set once
	hook     func(string) // the test hook; set once

	connected  bool
	conv       httpairy.Conversation
	startPos   uint64        // the room's last position at CONNECT
	subscribed bool          // a subscription was made on this connection
	sendEvery  time.Duration // heart-beats to send
	recvEvery  time.Duration // heart-beats expected
	timer      *time.Timer   // the CONNECT deadline, then the next deadline of any kind (arm)
	lastWrite  time.Time
	expires    time.Time  // when the auth token expires, on this clock
	pinging    bool       // a ping is under way
	pong       chan error // the ping's outcome; made with the first ping
	lastPong   time.Time  // when the last pong came

	// The subscription, while there is one: run follows the conversation itself, waiting on
	// the Follower's Ready channel beside the reader's and the timer's.
	subID    string
	follower *chat.Follower
	ready    <-chan struct{} // the follower's Ready channel, taken after each turn
}

// errClose ends run after a frame that closes the connection (DISCONNECT, ERROR sent).
var errClose = errors.New("close")

// errShuttingDown ends run when the Handler closes while the connection was busy.
var errShuttingDown = errors.New("shutting down")

// heartBeat is the frame of a heart-beat (an end-of-line). Shared and never changed.
var heartBeat = []byte{'\n'}

func (c *conn) run() {
	defer c.cleanup()
	c.lastRead.Store(time.Now().UnixNano())
	c.timer = time.NewTimer(c.h.cfg.ConnectTimeout)
	defer c.timer.Stop()
	for {
		var err error
		select {
		case in, ok := <-c.in:
			if !ok {
				return // the reader has ended (after handing over its error)
			}
			c.at("run")
			c.pending = in
			err = c.aside(c.handlePending)
		case <-c.ready:
			err = c.aside(c.pump)
		case <-c.timer.C:
			err = c.aside(c.tick)
		case perr := <-c.pong:
			err = c.aside(func() error { return c.ponged(perr) })
		case <-c.h.ctx.Done():
			err = c.aside(c.shutdown)
		}
		if err != nil {
			switch {
			case errors.Is(err, errClose):
			case c.h.ctx.Err() != nil: // shutting down: whatever failed, close with 1001
				c.aside(c.shutdown)
			default:
				c.ws.CloseNow()
			}
			return
		}
	}
}

// aside runs fn, which may own the connection's fields as run does, on a goroutine of its
// own and waits for it. The connection's goroutine spends its life waiting in run's select;
// frame handling (token verification), JSON rendering and writes need deeper stacks, and
// the runtime never shrinks a stack that has grown past its first 2 KiB back to it. Run
// aside, they leave run with its first stack, and their own returns to the runtime's pool
// when they end: an idle connection keeps 2 KiB less.
// aside also takes the subscription's next Ready channel (nil, never ready, without a
// subscription): Ready locks the room's hub, which may park the goroutine.
// A panic in fn is contained: logged, the connection closed, and errPanic returned.
func (c *conn) aside(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				c.panicked("turn", v)
				done <- errPanic
			}
		}()
		c.at("turn")
		err := fn()
		c.ready = nil
		if err == nil && c.follower != nil {
			c.ready = c.follower.Ready()
		}
		done <- err
	}()
	return <-done
}

// shutdown closes the connection when the Handler closes.
func (c *conn) shutdown() error {
	c.ws.Close(websocket.StatusGoingAway, "server shutting down")
	return errClose
}

// arm sets the timer to the connection's next deadline once it is connected: a heart-beat
// to send or check, a ping to send, the token's expiry. It stops the timer when there is
// none (heart-beats off both ways, pings off, a ping under way, and no expiry).
func (c *conn) arm() {
	next, armed := time.Duration(0), false
	at := func(d time.Duration) {
		if !armed || d < next {
			next, armed = d, true
		}
	}
	if c.sendEvery > 0 {
		at(c.sendEvery - time.Since(c.lastWrite))
	}
	if c.recvEvery > 0 {
		at(c.recvEvery*HeartBeatGrace - time.Since(time.Unix(0, c.lastRead.Load())))
	}
	if c.h.cfg.PingInterval > 0 && !c.pinging {
		at(c.h.cfg.PingInterval - time.Since(c.lastAlive()))
	}
	if !c.expires.IsZero() {
		at(time.Until(c.expires))
	}
	if !armed {
		c.timer.Stop()
		return
	}
	c.timer.Reset(max(next, 0))
}

// lastAlive is when the peer last showed it is there: a message read, or a pong.
func (c *conn) lastAlive() time.Time {
	read := time.Unix(0, c.lastRead.Load())
	if c.lastPong.After(read) {
		return c.lastPong
	}
	return read
}

// tick handles the timer: no CONNECT in time, an expired token, a silent peer, a ping or a
// heart-beat to send.
func (c *conn) tick() error {
	if !c.connected {
		return c.fail(nil, http.StatusRequestTimeout, "no CONNECT frame in time", websocket.StatusPolicyViolation)
	}
	if !c.expires.IsZero() && !time.Now().Before(c.expires) {
		return c.fail(nil, http.StatusUnauthorized, "the auth token has expired: authenticate again", websocket.StatusPolicyViolation)
	}
	if c.recvEvery > 0 && time.Since(time.Unix(0, c.lastRead.Load())) >= c.recvEvery*HeartBeatGrace {
		// The peer is silent: no close handshake to wait for.
		c.ws.CloseNow()
		return errClose
	}
	if c.h.cfg.PingInterval > 0 && !c.pinging && time.Since(c.lastAlive()) >= c.h.cfg.PingInterval {
		c.startPing()
	}
	if c.sendEvery > 0 && time.Since(c.lastWrite) >= c.sendEvery {
		if err := c.write(heartBeat); err != nil {
			return err
		}
	}
	c.arm()
	return nil
}

// startPing sends a WebSocket ping on a goroutine of its own, which hands the outcome to run
// through c.pong. The pong is read by the connection's reader (coder/websocket answers and
// notes control frames inside Read), which is always reading.
func (c *conn) startPing() {
	c.pinging = true
	if c.pong == nil {
		c.pong = make(chan error, 1) // one ping at a time: the send never blocks
	}
	c.h.wg.Add(1)
	go c.ping()
}

// ping waits at most PingTimeout for the peer's pong. Its context ends when it returns,
// which is safe for the WebSocket: the ping frame's write is bounded by coder/websocket's own
// control-frame timeout, whose watch ends with the write (the house rule about write
// contexts is about data writes, whose watch the library keeps).
func (c *conn) ping() {
	defer c.h.wg.Done()
	err := errPanic
	defer func() {
		if v := recover(); v != nil {
			c.panicked("ping", v)
		}
		c.pong <- err
	}()
	c.at("ping")
	ctx, cancel := context.WithTimeout(context.Background(), c.h.cfg.PingTimeout)
	defer cancel()
	err = c.ws.Ping(ctx)
}

// ponged takes a ping's outcome: a peer that did not answer in time is gone (no close
// handshake to wait for); one that did is alive now.
func (c *conn) ponged(err error) error {
	c.pinging = false
	if err != nil {
		return fmt.Errorf("airy: no pong: %w", err) // run closes the connection
	}
	c.lastPong = time.Now()
	c.arm()
	return nil
}

// cleanup ends the subscription and the reader.
func (c *conn) cleanup() {
	c.unsubscribe()
	c.ws.CloseNow() // unblocks the reader if it is still reading
	for range c.in {
		// what the reader still hands over, until it ends
	}
}

// read is the connection's one reader goroutine. It ends on the WebSocket's error or after a
// message that does not decode, having handed the error over, and closes c.in.
func (c *conn) read() {
	defer c.h.wg.Done()
	defer close(c.in)
	defer func() {
		if v := recover(); v != nil {
			c.panicked("reader", v)
		}
	}()
	for {
		// context.Background: a cancelled read context closes the WebSocket at once, and
		// the connection's goroutine wants to close it itself, with a status. It ends this
		// read by closing the WebSocket.
		_, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.in <- inbound{err: err, wsErr: true}
			return
		}
		c.lastRead.Store(time.Now().UnixNano())
		c.at("read")
		frames, err := stomp.Decode(nil, data, c.h.limits)
		if len(frames) == 0 && err == nil {
			continue // a heart-beat
		}
		c.in <- inbound{frames: frames, err: err}
		if err != nil {
			return // the connection ends with an ERROR frame
		}
	}
}

// handlePending handles what the reader handed over last, and arms the timer once the
// client is connected.
func (c *conn) handlePending() error {
	in := c.pending
	c.pending = inbound{}
	wasConnected := c.connected
	err := c.handle(in)
	if err == nil && !wasConnected && c.connected {
		c.arm()
	}
	return err
}

// handle processes the frames of one message, then its error.
func (c *conn) handle(in inbound) error {
	for i := range in.frames {
		if err := c.frame(&in.frames[i]); err != nil {
			return err
		}
	}
	if in.err == nil {
		return nil
	}
	if in.wsErr {
		return in.err
	}
	status := http.StatusBadRequest
	if errors.Is(in.err, stomp.ErrTooLarge) || errors.Is(in.err, stomp.ErrTooManyHeaders) || errors.Is(in.err, stomp.ErrHeaderTooLong) {
		status = http.StatusRequestEntityTooLarge
	}
	return c.fail(nil, status, in.err.Error(), websocket.StatusProtocolError)
}

// frame processes one client frame.
func (c *conn) frame(f *stomp.Frame) error {
	if !c.connected {
		if f.Command != stomp.CmdConnect && f.Command != stomp.CmdStomp {
			return c.fail(f, http.StatusBadRequest, "the first frame must be CONNECT", websocket.StatusProtocolError)
		}
		return c.connect(f)
	}
	var err error
	switch f.Command {
	case stomp.CmdSubscribe:
		err = c.subscribe(f)
	case stomp.CmdUnsubscribe:
		if c.follower != nil && f.Value("id") == c.subID {
			c.unsubscribe()
		}
	case stomp.CmdAck, stomp.CmdNack:
		// ack mode auto: nothing to do
	case stomp.CmdDisconnect:
		if err := c.receipt(f); err != nil {
			return err
		}
		c.ws.Close(websocket.StatusNormalClosure, "")
		return errClose
	case stomp.CmdSend:
		return c.sendFrame(f)
	case stomp.CmdBegin, stomp.CmdCommit, stomp.CmdAbort:
		return c.fail(f, http.StatusMethodNotAllowed, f.Command+" is not served: send messages with POST /chatplugin.send", websocket.StatusPolicyViolation)
	case stomp.CmdConnect, stomp.CmdStomp:
		return c.fail(f, http.StatusBadRequest, "already connected", websocket.StatusProtocolError)
	default: // server commands
		return c.fail(f, http.StatusBadRequest, "unexpected command "+f.Command, websocket.StatusProtocolError)
	}
	if err != nil {
		return err
	}
	return c.receipt(f)
}

// sendFrame answers a SEND, which is not served (see decisions.go) but is a write all the
// same: it costs a limit.Write token, and a body that could not be stored as sent (invalid
// UTF-8, a NUL) is refused as such.
func (c *conn) sendFrame(f *stomp.Frame) error {
	if err := c.h.svc.Allow(c.key, limit.Write); err != nil {
		return c.failErr(f, err, websocket.StatusTryAgainLater)
	}
	if err := httpx.CheckText("the SEND body", string(f.Body)); err != nil {
		return c.fail(f, http.StatusBadRequest, err.Error(), websocket.StatusPolicyViolation)
	}
	return c.fail(f, http.StatusMethodNotAllowed, "SEND is not served: send messages with POST /chatplugin.send", websocket.StatusPolicyViolation)
}

func (c *conn) connect(f *stomp.Frame) error {
	version := negotiateVersion(f.Value("accept-version"))
	if version == "" {
		return c.fail(f, http.StatusBadRequest, "supported protocol versions are 1.2 and 1.1", websocket.StatusProtocolError,
			stomp.Header{Key: "version", Value: "1.2,1.1"})
	}
	cx, cy, err := stomp.ParseHeartBeat(f.Value("heart-beat"))
	if err != nil {
		return c.fail(f, http.StatusBadRequest, err.Error(), websocket.StatusProtocolError)
	}
	auth, ok := f.Get("Authorization")
	if !ok {
		auth = f.Value("authorization")
	}
	conv, err := c.h.svc.Authorize(c.h.ctx, httpairy.Bearer(auth))
	if err != nil {
		return c.failErr(f, err, websocket.StatusPolicyViolation)
	}
	c.conv = conv
	if !conv.Expires.IsZero() {
		// The token's remaining life, measured on the Tokens' clock, from now on this one.
		c.expires = time.Now().Add(conv.Expires.Sub(c.h.svc.Tokens().Now()))
	}
	// A subscription without x-parley-after starts after what the room held at CONNECT,
	// not at SUBSCRIBE: a message sent once the client has its CONNECTED frame (the widget
	// sends over REST as soon as it is connected) is never lost in between.
	room, err := c.h.e.Room(c.h.ctx, conv.Room)
	if err != nil {
		return c.failErr(f, err, websocket.StatusPolicyViolation)
	}
	c.startPos = room.LastPos
	s := c.h.cfg.HeartBeat
	c.sendEvery, c.recvEvery = stomp.NegotiateHeartBeat(cx, cy, s, s)
	// The server's offer, without the directions the client declined.
	var sx, sy time.Duration
	if cy > 0 {
		sx = s
	}
	if cx > 0 {
		sy = s
	}
	c.connected = true
	return c.send(&stomp.Frame{Command: stomp.CmdConnected, Headers: []stomp.Header{
		{Key: "version", Value: version},
		{Key: "heart-beat", Value: stomp.FormatHeartBeat(sx, sy)},
		{Key: "server", Value: ServerName},
		{Key: "user-name", Value: conv.ID},
	}})
}

// negotiateVersion picks the highest version the client accepts among 1.2 and 1.1. A
// missing accept-version means 1.0 only, which is not served.
func negotiateVersion(accept string) string {
	best := ""
	for _, v := range strings.Split(accept, ",") {
		switch strings.TrimSpace(v) {
		case "1.2":
			best = "1.2"
		case "1.1":
			if best == "" {
				best = "1.1"
			}
		}
	}
	return best
}

func (c *conn) subscribe(f *stomp.Frame) error {
	id, ok := f.Get("id")
	if !ok || id == "" {
		return c.fail(f, http.StatusBadRequest, "SUBSCRIBE needs an id header", websocket.StatusProtocolError)
	}
	if d := f.Value("destination"); d != Destination {
		return c.fail(f, http.StatusNotFound, fmt.Sprintf("unknown destination %q; subscribe to %s", d, Destination), websocket.StatusPolicyViolation)
	}
	if ack := f.Value("ack"); ack != "" && ack != "auto" {
		return c.fail(f, http.StatusBadRequest, "only ack:auto is served", websocket.StatusPolicyViolation)
	}
	if c.follower != nil {
		return c.fail(f, http.StatusConflict, "one subscription at a time", websocket.StatusPolicyViolation)
	}
	from := uint64(0) // the next event
	if !c.subscribed {
		from = c.startPos + 1 // the first subscription: after CONNECT
	}
	if v, ok := f.Get(HeaderAfter); ok {
		after, err := strconv.ParseUint(v, 10, 64)
		if err != nil || after == ^uint64(0) {
			return c.fail(f, http.StatusBadRequest, fmt.Sprintf("bad %s header %q", HeaderAfter, v), websocket.StatusPolicyViolation)
		}
		from = after + 1
	}
	fl, err := c.h.e.Follow(c.h.ctx, c.conv.Room, from)
	if err != nil {
		return c.failErr(f, err, websocket.StatusPolicyViolation)
	}
	c.follower, c.subID, c.subscribed = fl, id, true
	return nil
}

func (c *conn) unsubscribe() {
	if c.follower != nil {
		c.follower.Close()
		c.follower, c.subID = nil, ""
	}
}

// pump delivers the conversation's messages that are ready, up to FollowBatch of them: run
// then serves the client's frames and the timer before going on.
func (c *conn) pump() error {
	for range FollowBatch {
		ev, ok, err := c.follower.TryNext(c.h.ctx)
		if err != nil {
			if c.h.ctx.Err() != nil {
				return c.shutdown()
			}
			if errors.Is(err, chat.ErrNotFound) {
				return c.fail(nil, http.StatusNotFound, "the conversation was deleted", websocket.StatusGoingAway)
			}
			return c.failErr(nil, err, websocket.StatusGoingAway)
		}
		if !ok {
			return nil
		}
		if !c.conv.Visible(&ev) {
			continue
		}
		if err := c.deliver(&ev); err != nil {
			return err
		}
	}
	return nil
}

// payload is a MESSAGE frame's body.
type payload struct {
	ConversationID string           `json:"conversation_id"`
	ChannelID      string           `json:"channel_id"`
	Message        httpairy.Message `json:"message"`
}

func (c *conn) deliver(ev *chat.Event) error {
	body, err := json.Marshal(payload{ConversationID: c.conv.ID, ChannelID: c.conv.ChannelID, Message: c.conv.Render(ev)})
	if err != nil {
		return err
	}
	return c.send(&stomp.Frame{Command: stomp.CmdMessage, Headers: []stomp.Header{
		{Key: "destination", Value: Destination},
		{Key: "subscription", Value: c.subID},
		{Key: "message-id", Value: ev.ID.UUID()},
		{Key: HeaderPosition, Value: strconv.FormatUint(ev.Pos, 10)},
		{Key: "content-type", Value: "application/json"},
	}, Body: body})
}

// receipt answers a frame's receipt header, if it has one.
func (c *conn) receipt(f *stomp.Frame) error {
	id, ok := f.Get("receipt")
	if !ok {
		return nil
	}
	return c.send(&stomp.Frame{Command: stomp.CmdReceipt, Headers: []stomp.Header{{Key: "receipt-id", Value: id}}})
}

// failErr is fail for an error of the Service or the engine: its status and what the client
// may be told of it (httpairy.Status, httpairy.ErrorMessage). Internal errors and store
// trouble are logged.
func (c *conn) failErr(f *stomp.Frame, err error, code websocket.StatusCode) error {
	status := httpairy.Status(err)
	switch {
	case status == http.StatusInternalServerError:
		c.h.log.Error("airy: STOMP connection", "err", err)
	case errors.Is(err, chat.ErrUnavailable):
		c.h.log.Warn("airy: STOMP connection: store unavailable", "err", err)
	}
	return c.fail(f, status, httpairy.ErrorMessage(err), code)
}

// fail sends an ERROR frame (its message header starts with the HTTP status, so that a bad
// token's contains 401), closes the connection with code, and returns errClose. A refusal
// that is worth trying again later (429, 503) says when in a retry-after header (seconds)
// and closes with 1013, try again later, whatever code says.
func (c *conn) fail(f *stomp.Frame, status int, detail string, code websocket.StatusCode, extra ...stomp.Header) error {
	switch status {
	case http.StatusInternalServerError:
		c.h.log.Error("airy: STOMP connection", "err", detail)
		detail = "internal error"
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		wait := httpairy.RetryAfterRateLimited
		if status == http.StatusServiceUnavailable {
			wait = httpairy.RetryAfterUnavailable
		}
		extra = append(extra, stomp.Header{Key: HeaderRetryAfter, Value: strconv.Itoa(int((wait + time.Second - 1) / time.Second))})
		code = websocket.StatusTryAgainLater
	}
	msg := fmt.Sprintf("%d %s", status, http.StatusText(status))
	hs := append([]stomp.Header{{Key: "message", Value: msg}, {Key: "content-type", Value: "text/plain"}}, extra...)
	if f != nil {
		if r, ok := f.Get("receipt"); ok {
			hs = append(hs, stomp.Header{Key: "receipt-id", Value: r})
		}
	}
	if err := c.send(&stomp.Frame{Command: stomp.CmdError, Headers: hs, Body: []byte(detail)}); err != nil {
		return err
	}
	c.ws.Close(code, "")
	return errClose
}

// frameBuffers hold encoded frames between their encoding and their write, so that an idle
// connection keeps no buffer.
var frameBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxPooledFrame is the largest buffer frameBuffers keeps.
const maxPooledFrame = 64 << 10

func (c *conn) send(f *stomp.Frame) error {
	bp := frameBuffers.Get().(*[]byte)
	b, err := stomp.AppendFrame((*bp)[:0], f)
	if err == nil {
		err = c.write(b)
	}
	if cap(b) <= maxPooledFrame {
		*bp = b[:0]
		frameBuffers.Put(bp)
	}
	return err
}

// write writes one WebSocket message. Its time limit is a write deadline on the connection
// (WriteTimeout) rather than a context: a context with a timer per write costs more than the
// rest of a small write but the system call. The context it passes must never end: the
// WebSocket keeps watching the last write's context after the write, and closes the
// connection without a close frame when it ends (a Handler's context, cancelled by Close,
// made clients see 1006 instead of 1001). So a write under way when the Handler closes ends
// within WriteTimeout.
func (c *conn) write(b []byte) error {
	if c.h.ctx.Err() != nil {
		// The Handler is closing: a write on its cancelled context would drop the connection
		// without a close frame; run closes it with 1001 instead.
		return errShuttingDown
	}
	c.lastWrite = time.Now()
	c.nc.SetWriteDeadline(c.lastWrite.Add(c.h.cfg.WriteTimeout))
	err := c.ws.Write(context.Background(), websocket.MessageText, b) // bounded by the write deadline
	c.nc.SetWriteDeadline(time.Time{})
	return err
}
