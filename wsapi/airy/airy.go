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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/chat"
	httpairy "github.com/parley-chat/chat/httpapi/airy"
	"github.com/parley-chat/chat/internal/stomp"
	"github.com/parley-chat/chat/internal/wsconn"
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
	// DefaultConnectTimeout).
	ConnectTimeout time.Duration
	// WriteTimeout bounds each write (default DefaultWriteTimeout).
	WriteTimeout time.Duration
	// MaxFrameBytes, MaxHeaders and MaxHeaderBytes limit incoming frames (defaults
	// DefaultMaxFrameBytes, DefaultMaxHeaders, DefaultMaxHeaderBytes).
	MaxFrameBytes  int
	MaxHeaders     int
	MaxHeaderBytes int
	// Logger logs internal errors (default slog.Default()).
	Logger *slog.Logger
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
	c := &conn{h: h, ws: ws, nc: nc, in: make(chan inbound, 1)}
	// The connection's two goroutines are new ones, so that net/http's goroutine, with its
	// deep stack and the request it holds, ends now: the WebSocket is hijacked and lives on.
	h.wg.Add(2)
	h.open.Add(1)
	go c.read()
	go func() {
		defer h.wg.Done()
		defer h.open.Add(-1)
		c.run()
	}()
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

	connected  bool
	conv       httpairy.Conversation
	startPos   uint64        // the room's last position at CONNECT
	subscribed bool          // a subscription was made on this connection
	sendEvery  time.Duration // heart-beats to send
	recvEvery  time.Duration // heart-beats expected
	timer      *time.Timer   // the CONNECT deadline, then the next heart-beat to send or check
	lastWrite  time.Time

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
			c.pending = in
			err = c.aside(c.handlePending)
		case <-c.ready:
			err = c.aside(c.pump)
		case <-c.timer.C:
			err = c.aside(c.tick)
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
func (c *conn) aside(fn func() error) error {
	done := make(chan error, 1)
	go func() {
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

// arm sets the timer to the next heart-beat to send or check, or stops it when heart-beats
// are off both ways.
func (c *conn) arm() {
	next, armed := time.Duration(0), false
	if c.sendEvery > 0 {
		next, armed = c.sendEvery-time.Since(c.lastWrite), true
	}
	if c.recvEvery > 0 {
		d := c.recvEvery*HeartBeatGrace - time.Since(time.Unix(0, c.lastRead.Load()))
		if !armed || d < next {
			next, armed = d, true
		}
	}
	if !armed {
		c.timer.Stop()
		return
	}
	c.timer.Reset(max(next, 0))
}

// tick handles the timer: no CONNECT in time, a heart-beat to send, a silent peer.
func (c *conn) tick() error {
	if !c.connected {
		return c.fail(nil, http.StatusRequestTimeout, "no CONNECT frame in time", websocket.StatusPolicyViolation)
	}
	if c.recvEvery > 0 && time.Since(time.Unix(0, c.lastRead.Load())) >= c.recvEvery*HeartBeatGrace {
		// The peer is silent: no close handshake to wait for.
		c.ws.CloseNow()
		return errClose
	}
	if c.sendEvery > 0 && time.Since(c.lastWrite) >= c.sendEvery {
		if err := c.write(heartBeat); err != nil {
			return err
		}
	}
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
	case stomp.CmdSend, stomp.CmdBegin, stomp.CmdCommit, stomp.CmdAbort:
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
		return c.fail(f, httpairy.Status(err), err.Error(), websocket.StatusPolicyViolation)
	}
	c.conv = conv
	// A subscription without x-parley-after starts after what the room held at CONNECT,
	// not at SUBSCRIBE: a message sent once the client has its CONNECTED frame (the widget
	// sends over REST as soon as it is connected) is never lost in between.
	room, err := c.h.e.Room(c.h.ctx, conv.Room)
	if err != nil {
		return c.fail(f, httpairy.Status(err), err.Error(), websocket.StatusPolicyViolation)
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
		return c.fail(f, httpairy.Status(err), err.Error(), websocket.StatusPolicyViolation)
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
			status := httpairy.Status(err)
			msg := "the conversation is no longer followed"
			if errors.Is(err, chat.ErrNotFound) {
				msg = "the conversation was deleted"
			}
			return c.fail(nil, status, msg, websocket.StatusGoingAway)
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

// fail sends an ERROR frame (its message header starts with the HTTP status, so that a bad
// token's contains 401), closes the connection with code, and returns errClose.
func (c *conn) fail(f *stomp.Frame, status int, detail string, code websocket.StatusCode, extra ...stomp.Header) error {
	if status == http.StatusInternalServerError {
		c.h.log.Error("airy: STOMP connection", "err", detail)
		detail = "internal error"
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
