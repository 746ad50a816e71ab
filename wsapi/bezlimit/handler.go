package bezlimit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/httpx"
	"github.com/parley-chat/chat/limit"
)

// Config configures a Handler. The zero Config refuses every client (no Authenticate) and
// every server-to-server call (no APIToken): the embedding program turns access on.
type Config struct {
	// Authenticate resolves a client token (from ?token= or "Authorization: Bearer") to an
	// identity. An error, or a nil Authenticate, refuses the connection with 401.
	Authenticate func(ctx context.Context, token string) (Identity, error)
	// APIToken is the secret of the server-to-server endpoints, compared in constant time
	// with the Api-Token header. Empty: those endpoints answer 401.
	APIToken string
	// OriginPatterns are the host patterns (path.Match syntax, e.g. "*.example.com") of the
	// browser origins allowed besides the request's own host; widgets run on customers'
	// sites. Passed to websocket.AcceptOptions.OriginPatterns.
	OriginPatterns []string
	// MayView reports whether an operator may see a chat on /broadcast and watch it on /chat
	// without being its member. Nil: operators see every chat, which is safe when
	// Authenticate gives the operator role only to staff allowed to see every chat (see
	// decisions.go).
	MayView func(operator User, room chat.Room) bool
	// ReadLimit is the largest client frame in bytes (default 64 KiB). A larger frame
	// closes the connection with 1009 (message too big).
	ReadLimit int64
	// SendQueue is how many frames may wait for a connection's writer (default 256). A
	// connection whose queue overflows is closed with 1008 "too slow".
	SendQueue int
	// WriteTimeout bounds the write of one frame (default 10s); a connection whose write
	// takes longer is closed.
	WriteTimeout time.Duration
	// MaxBodyBytes bounds server-to-server request bodies (default 256 KiB).
	MaxBodyBytes int64
	// PingInterval is how often the server pings each WebSocket (default 30s; negative: no
	// pings). A connection whose pong has not come within PingTimeout is dropped: the idle
	// rule that frees the sockets of peers that went away without closing.
	PingInterval time.Duration
	// PingTimeout is how long a ping waits for its pong (default 15s).
	PingTimeout time.Duration
	// Limiter limits each identity's writing client frames (see decisions.go). Nil:
	// limit.New(limit.DefaultRates), made by New; limit.New(limit.Rates{}) limits nothing.
	Limiter *limit.Limiter
	// Logger receives the handler's warnings (default slog.Default()).
	Logger *slog.Logger
}

// Handler serves the Bezlimit Chat WS API on an Engine: the /chat and /broadcast
// WebSockets and the server-to-server endpoints. It routes on the request path, so mount it
// at the root of a mux or under a prefix with http.StripPrefix.
type Handler struct {
	e   *chat.Engine
	cfg Config
	log *slog.Logger

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the Handler starts

	users     sync.Map // int64 (Bezlimit id) -> userEntry
	wireUsers sync.Map // chat.ID (engine user) -> *User
	chats     sync.Map // chat.ID (room) -> *chatInfo

	hubsMu sync.Mutex
	hubs   map[chat.ID]*hub

	bc broadcaster

	connsMu sync.Mutex
	conns   map[*conn]struct{}
	closed  bool

	limiter    *limit.Limiter
	ownLimiter bool         // made by New: the watchdog sweeps it
	panics     atomic.Int64 // panics recovered, for tests

	// Test hooks, nil outside tests: run by a connection's reader for each frame it reads, by
	// a connection's writer before each write, and by a hub before it translates an event.
	testHookRead  func(*conn)
	testHookWrite func(*conn)
	testHookHub   func(*chat.Event)
}

type userEntry struct {
	id   chat.ID
	user User
}

// chatInfo is what the package caches about a room: the wire chat object and the Bezlimit
// ids of its owner and operator.
type chatInfo struct {
	room     chat.Room
	wire     json.RawMessage
	owner    int64
	operator int64
}

// New returns a Handler serving engine with cfg.
func New(engine *chat.Engine, cfg Config) *Handler {
	if cfg.ReadLimit <= 0 {
		cfg.ReadLimit = defaultReadLimit
	}
	if cfg.SendQueue <= 0 {
		cfg.SendQueue = defaultSendQueue
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = defaultWriteTimeout
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = defaultMaxBody
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = defaultPingInterval
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = defaultPingTimeout
	}
	h := &Handler{e: engine, cfg: cfg, log: cfg.Logger, hubs: make(map[chat.ID]*hub),
		conns: make(map[*conn]struct{}), limiter: cfg.Limiter}
	if h.limiter == nil {
		h.limiter, h.ownLimiter = limit.New(limit.DefaultRates), true
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.bc.init(h)
	h.wg.Add(1)
	go h.watchdog()
	return h
}

// watchdog is the Handler's one ticker. It closes the connections whose current write has
// taken longer than Config.WriteTimeout (a peer that stopped reading with its TCP window
// full), starts the pings that are due, and now and then sweeps the Limiter New made. It
// looks four times per WriteTimeout and per PingInterval, at most once every 10 ms.
func (h *Handler) watchdog() {
	defer h.wg.Done()
	every := h.cfg.WriteTimeout
	if h.cfg.PingInterval > 0 {
		every = min(every, h.cfg.PingInterval)
	}
	t := time.NewTicker(max(every/4, 10*time.Millisecond))
	defer t.Stop()
	swept := time.Now()
	var stuck, due []*conn
	for {
		select {
		case <-h.ctx.Done():
			return
		case now := <-t.C:
			stuck, due = h.watch(now, stuck[:0], due[:0])
			if h.ownLimiter && now.Sub(swept) > time.Minute {
				h.limiter.Sweep()
				swept = now
			}
		}
	}
}

// watch is one look of the watchdog; a panic in it is logged and the next tick goes on.
func (h *Handler) watch(now time.Time, stuck, due []*conn) ([]*conn, []*conn) {
	defer h.contain("watchdog", nil)
	h.connsMu.Lock()
	for c := range h.conns {
		switch {
		case c.stuck(now, h.cfg.WriteTimeout):
			stuck = append(stuck, c)
		case h.cfg.PingInterval > 0 && c.pingDue(now):
			due = append(due, c)
		}
	}
	h.connsMu.Unlock()
	for _, c := range stuck {
		c.close(websocket.StatusAbnormalClosure, "") // ends the write; no close frame can get through
	}
	for _, c := range due {
		h.wg.Add(1) // the watchdog holds a count: Close cannot be past its Wait
		go h.ping(c)
	}
	clear(stuck)
	clear(due)
	return stuck, due
}

// ping pings a connection and drops it when the pong does not come within
// Config.PingTimeout. It runs only while it waits: an idle connection has no ping goroutine.
func (h *Handler) ping(c *conn) {
	defer h.wg.Done()
	defer h.contain("ping", func() { c.close(closeInternal, "internal error") })
	// The context only bounds the wait for the pong (and the ping's write): a connection
	// that does not answer in time is closed anyway.
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.PingTimeout)
	err := c.ws.Ping(ctx)
	cancel()
	if err != nil {
		c.close(websocket.StatusAbnormalClosure, "") // a peer that does not answer would not read a close frame either
		return
	}
	c.pinged(h.cfg.PingInterval)
}

// ServeHTTP routes a request to its endpoint.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case pathChat:
		h.serveChat(w, r)
	case pathBroadcast:
		h.serveBroadcast(w, r)
	case pathUpdateChat, pathUpdateOps, pathMessage, pathGlobal, pathOnlineUsers, pathNotifications:
		h.serveServer(w, r)
	default:
		writeHTTPError(w, fmt.Errorf("bezlimit: no endpoint %s: %w", r.URL.Path, chat.ErrNotFound))
	}
}

// Close closes every connection with 1001 (going away) and waits for the Handler's
// goroutines to end. The Handler refuses new connections afterwards.
func (h *Handler) Close() error {
	h.connsMu.Lock()
	h.closed = true
	conns := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.connsMu.Unlock()
	for _, c := range conns {
		c.close(closeGone, "server shutting down")
	}
	h.cancel()
	h.wg.Wait()
	return nil
}

// enter admits a request that may start goroutines: it holds one count of h.wg (so that
// Close waits for it) until leave. It reports false once Close has begun.
func (h *Handler) enter() bool {
	h.connsMu.Lock()
	defer h.connsMu.Unlock()
	if h.closed {
		return false
	}
	h.wg.Add(1)
	return true
}

func (h *Handler) leave() { h.wg.Done() }

func (h *Handler) track(c *conn) bool {
	h.connsMu.Lock()
	defer h.connsMu.Unlock()
	if h.closed {
		return false
	}
	h.conns[c] = struct{}{}
	return true
}

func (h *Handler) untrack(c *conn) {
	h.connsMu.Lock()
	delete(h.conns, c)
	h.connsMu.Unlock()
}

// authenticate resolves the client token of an upgrade request.
func (h *Handler) authenticate(r *http.Request) (Identity, error) {
	token := r.URL.Query().Get(paramToken)
	if t, ok := httpx.Bearer(r.Header.Get("Authorization")); ok {
		token = t
	}
	if token == "" || h.cfg.Authenticate == nil {
		return Identity{}, fmt.Errorf("bezlimit: no client token: %w", errUnauthorized)
	}
	id, err := h.cfg.Authenticate(r.Context(), token)
	if err != nil {
		return Identity{}, fmt.Errorf("bezlimit: client token refused: %w", errUnauthorized)
	}
	if id.User.ID == 0 {
		return Identity{}, fmt.Errorf("bezlimit: identity without a user id: %w", errUnauthorized)
	}
	if !id.Expires.IsZero() && !time.Now().Before(id.Expires) {
		return Identity{}, fmt.Errorf("bezlimit: client token expired: %w", errUnauthorized)
	}
	if id.User.Role == "" {
		id.User.Role = wireRoleClient
	}
	return id, nil
}

// allowWrite takes a write token of the connection's identity (see decisions.go).
func (h *Handler) allowWrite(c *conn) error {
	if h.limiter.Allow(limitKey(c.id.User.ID), limit.Write) {
		return nil
	}
	return fmt.Errorf("bezlimit: %w", errRateLimited)
}

// limitKey names an identity in the Limiter.
func limitKey(id int64) string { return userNamePrefix + strconv.FormatInt(id, 10) }

// lookupUser returns the engine user of a Bezlimit user without creating it: zero and
// chat.ErrNotFound for a user this package never made.
func (h *Handler) lookupUser(ctx context.Context, id int64) (chat.ID, error) {
	if v, ok := h.users.Load(id); ok {
		return v.(userEntry).id, nil
	}
	eu, err := h.e.UserByName(ctx, userNamePrefix+strconv.FormatInt(id, 10))
	if err != nil {
		return chat.ID{}, err
	}
	return eu.ID, nil
}

// ensureUser returns the engine user of a Bezlimit user, creating it (unique name
// "bezlimit:<id>") or bringing its wire fields up to date.
func (h *Handler) ensureUser(ctx context.Context, u User) (chat.ID, error) {
	if v, ok := h.users.Load(u.ID); ok && v.(userEntry).user == u {
		return v.(userEntry).id, nil
	}
	name := userNamePrefix + strconv.FormatInt(u.ID, 10)
	attrs := map[string]string{
		attrUserID: strconv.FormatInt(u.ID, 10), attrUserRole: u.Role, attrFirstName: u.FirstName,
		attrLastName: u.LastName, attrPatronymic: u.Patronymic, attrAvatar: u.Avatar,
	}
	display := strings.TrimSpace(u.FirstName + " " + u.LastName)
	eu, err := h.e.UserByName(ctx, name)
	switch {
	case errors.Is(err, chat.ErrNotFound):
		eu, err = h.e.CreateUser(ctx, chat.NewUser{Name: name, DisplayName: display, AvatarURL: u.Avatar, Attributes: attrs})
		if errors.Is(err, chat.ErrConflict) { // created concurrently
			eu, err = h.e.UserByName(ctx, name)
		}
	case err == nil && wireUserFrom(eu) != u:
		eu, err = h.e.UpdateUser(ctx, eu.ID, chat.UserUpdate{DisplayName: &display, AvatarURL: &u.Avatar, Attributes: attrs})
	}
	if err != nil {
		return chat.ID{}, err
	}
	h.users.Store(u.ID, userEntry{eu.ID, u})
	wu := wireUserFrom(eu)
	h.wireUsers.Store(eu.ID, &wu)
	return eu.ID, nil
}

// wireUserFrom renders an engine user on the wire.
func wireUserFrom(u chat.User) User {
	a := u.Attributes
	id, err := strconv.ParseInt(a[attrUserID], 10, 64)
	if err != nil {
		return User{FirstName: u.DisplayName, Avatar: u.AvatarURL}
	}
	return User{ID: id, Role: a[attrUserRole], Avatar: a[attrAvatar], FirstName: a[attrFirstName],
		LastName: a[attrLastName], Patronymic: a[attrPatronymic]}
}

// wireUser returns the wire form of an engine user, nil for System.
func (h *Handler) wireUser(ctx context.Context, id chat.ID) *User {
	if id == chat.System() {
		return nil
	}
	if v, ok := h.wireUsers.Load(id); ok {
		return v.(*User)
	}
	eu, err := h.e.User(ctx, id)
	if err != nil {
		return &User{} // deleted since: an anonymous user
	}
	wu := wireUserFrom(eu)
	h.wireUsers.Store(id, &wu)
	return &wu
}

// chatInfo returns (and caches) the wire chat of a room.
func (h *Handler) chatInfo(ctx context.Context, room chat.ID) (*chatInfo, error) {
	if v, ok := h.chats.Load(room); ok {
		return v.(*chatInfo), nil
	}
	r, err := h.e.Room(ctx, room)
	if err != nil {
		return nil, err
	}
	ci := newChatInfo(r)
	h.chats.Store(room, ci)
	return ci, nil
}

func newChatInfo(r chat.Room) *chatInfo {
	obj := wireChat{}
	if s := r.Attributes[attrChat]; s != "" {
		_ = json.Unmarshal([]byte(s), &obj) // written by this package: a JSON object
	}
	uuid, _ := json.Marshal(r.ID.UUID())
	obj["uuid"] = uuid
	wire, _ := json.Marshal(obj)
	ci := &chatInfo{room: r, wire: wire}
	ci.owner, _ = strconv.ParseInt(r.Attributes[attrOwnerID], 10, 64)
	ci.operator, _ = strconv.ParseInt(r.Attributes[attrOperatorID], 10, 64)
	return ci
}

// mayView applies Config.MayView.
func (h *Handler) mayView(u User, r chat.Room) bool {
	return h.cfg.MayView == nil || h.cfg.MayView(u, r)
}

// parseChat parses a chat uuid (or the ULID form of a room ID).
func parseChat(s string) (chat.ID, error) {
	if s == "" {
		return chat.ID{}, fmt.Errorf("bezlimit: no chat given: %w", chat.ErrInvalid)
	}
	return chat.ParseID(s)
}
