// Package chapi serves the 8x8 Work Chat API "Chapi" 0.1 (specs/8x8-chapi.openapi.json) on a
// chat.Engine: send a message to a room, list a room's messages, and health.
//
// The Handler is an http.Handler that the embedding program mounts anywhere:
//
//	mux.Handle("/chat/", http.StripPrefix("/chat", chapi.New(engine, cfg)))
//
// after which the Chapi paths are /chat/api/chat/v1/messages and /chat/api/chat/v1/health.
// It works on any chat.Store and holds no chat logic: it translates between Chapi's JSON and
// the engine's API.
//
// # Authentication
//
// Every request but health carries an API key in the x-api-key header. Config.Keys (a map of
// keys to engine user IDs, compared in constant time) and/or Config.Lookup (a function of the
// embedding program) turn the key into an engine user; an unknown or missing key gets HTTP 401
// with the Apigee body real Chapi answers. The users are the embedding program's: the
// handler never creates users.
//
// # Rooms
//
// The Chapi room parameter is the engine room's unique Name. When no room has that name and
// the value parses as a chat.ID (ULID or UUID form) of an existing room, that room is used, so
// that a Chapi client can address a chat of another surface by its identity: a Genesys chatId
// (the room ID in ULID form), a Nexmo conversation ID without its "CON-" prefix, a Bezlimit
// chat or Airy conversation UUID. Otherwise POST creates a public room with that name and
// GET answers 404. Without a room parameter the room is "CHAPI sandbox".
//
// A key's user reads public rooms and the private rooms it was invited to or joined, and posts
// only to public rooms (403 for a private one). Posting joins the user to the room first, with
// Config.Role, if it is not joined.
//
// # Messages
//
// GET lists message events newest first: id (the event's ULID), parsed (the current text),
// timestamp (the engine event time in microseconds since the epoch) and authorUser (the engine
// user's ID, display name, e-mail and avatar URL). Pass the last (oldest) timestamp of a page
// as ts to get the page before it. The choices no Chapi document settles are listed in
// decisions.go.
package chapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/chat"
)

// Config configures a Handler.
type Config struct {
	// Keys maps API keys to the engine users they act as. Keys are compared in constant time.
	Keys map[string]chat.ID
	// Lookup, when set, is asked about keys that are not in Keys. It returns the user the key
	// acts as, or an error wrapping chat.ErrNotFound for an unknown key (answered with 401);
	// any other error is answered with 500. It should compare secrets in constant time.
	Lookup func(ctx context.Context, key string) (chat.ID, error)
	// RateLimit, when set, is called for every authenticated request before any work; a
	// non-nil error refuses the request with 429. If the error has a method
	// RetryAfter() time.Duration, its value is sent in the Retry-After header.
	RateLimit func(r *http.Request, user chat.User) error
	// MaxBodyBytes is the largest request body (default DefaultMaxBodyBytes); larger
	// bodies get 413.
	MaxBodyBytes int64
	// DefaultRoom is the room of requests that name none (default DefaultRoom).
	DefaultRoom string
	// DefaultPageSize and MaxPageSize bound GET messages (defaults DefaultPageSize and
	// DefaultMaxPageSize; MaxPageSize at most 1000).
	DefaultPageSize, MaxPageSize int
	// Role is the role a key's user joins a room with (default DefaultRole).
	Role chat.Role
	// Logger receives internal errors (default slog.Default()).
	Logger *slog.Logger
}

// Handler serves Chapi. Create it with New.
type Handler struct {
	e    *chat.Engine
	cfg  Config
	keys []keyEntry
	log  *slog.Logger
}

type keyEntry struct {
	hash [sha256.Size]byte
	user chat.ID
}

// New returns a Handler serving Chapi on engine. It returns an error for a configuration out of
// range or without any way to authenticate.
func New(engine *chat.Engine, cfg Config) (*Handler, error) {
	if engine == nil {
		return nil, errors.New("chapi: nil engine")
	}
	if len(cfg.Keys) == 0 && cfg.Lookup == nil {
		return nil, errors.New("chapi: no API keys: set Config.Keys or Config.Lookup")
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.DefaultRoom == "" {
		cfg.DefaultRoom = DefaultRoom
	}
	if cfg.DefaultPageSize == 0 {
		cfg.DefaultPageSize = DefaultPageSize
	}
	if cfg.MaxPageSize == 0 {
		cfg.MaxPageSize = DefaultMaxPageSize
	}
	if cfg.Role == "" {
		cfg.Role = DefaultRole
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBodyBytes < 0 || cfg.MaxPageSize < 1 || cfg.MaxPageSize > 1000 ||
		cfg.DefaultPageSize < 1 || cfg.DefaultPageSize > cfg.MaxPageSize {
		return nil, errors.New("chapi: configuration out of range")
	}
	h := &Handler{e: engine, cfg: cfg, log: cfg.Logger}
	for k, u := range cfg.Keys {
		if k == "" {
			return nil, errors.New("chapi: empty API key")
		}
		h.keys = append(h.keys, keyEntry{sha256.Sum256([]byte(k)), u})
	}
	return h, nil
}

// The paths of the API. The spec has a trailing slash on POST messages and none on GET; both
// forms are accepted for both.
const (
	pathMessages = "/api/chat/v1/messages"
	pathHealth   = "/api/chat/v1/health"
)

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch strings.TrimSuffix(p, "/") {
	case pathHealth:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.fail(w, r, errMethod("GET, HEAD"))
			return
		}
		h.health(w, r)
	case pathMessages:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			h.authed(w, r, h.list)
		case http.MethodPost:
			h.authed(w, r, h.send)
		default:
			h.fail(w, r, errMethod("GET, HEAD, POST"))
		}
	default:
		h.fail(w, r, &httpError{status: http.StatusNotFound, msg: "no such path"})
	}
}

func (h *Handler) health(w http.ResponseWriter, r *http.Request) {
	// A read of a room that cannot exist tells whether the engine and its store answer.
	_, err := h.e.Room(r.Context(), chat.ID{})
	if err != nil && !errors.Is(err, chat.ErrNotFound) {
		writeJSON(w, http.StatusServiceUnavailable, Health{Status: "DOWN"})
		return
	}
	writeJSON(w, http.StatusOK, Health{Status: "UP"})
}

// authed authenticates the request, applies the rate limit and calls next.
func (h *Handler) authed(w http.ResponseWriter, r *http.Request, next func(http.ResponseWriter, *http.Request, chat.User)) {
	user, err := h.authenticate(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if h.cfg.RateLimit != nil {
		if err := h.cfg.RateLimit(r, user); err != nil {
			h.fail(w, r, &httpError{status: http.StatusTooManyRequests, msg: "rate limit exceeded", cause: err})
			return
		}
	}
	next(w, r, user)
}

// errUnauthorized is answered with the Apigee body.
var errUnauthorized = &httpError{status: http.StatusUnauthorized, msg: "invalid API key"}

func (h *Handler) authenticate(r *http.Request) (chat.User, error) {
	key := r.Header.Get("x-api-key")
	if key == "" {
		return chat.User{}, errUnauthorized
	}
	sum := sha256.Sum256([]byte(key))
	var id chat.ID
	found := 0
	// Every entry is compared, so the time taken tells nothing about which keys exist.
	for i := range h.keys {
		eq := subtle.ConstantTimeCompare(sum[:], h.keys[i].hash[:])
		subtle.ConstantTimeCopy(eq&(1-found), id[:], h.keys[i].user[:])
		found |= eq
	}
	if found == 0 {
		if h.cfg.Lookup == nil {
			return chat.User{}, errUnauthorized
		}
		var err error
		if id, err = h.cfg.Lookup(r.Context(), key); err != nil {
			if errors.Is(err, chat.ErrNotFound) {
				return chat.User{}, errUnauthorized
			}
			return chat.User{}, err
		}
	}
	u, err := h.e.User(r.Context(), id)
	if errors.Is(err, chat.ErrNotFound) {
		return chat.User{}, errUnauthorized // a key for a deleted user
	}
	return u, err
}

// SendMessage is the body of POST messages (the spec's SendMessageVO).
type SendMessage struct {
	// MessageRaw is the message as typed.
	MessageRaw string `json:"messageRaw"`
	// Room names the room; "" for the default room.
	Room string `json:"room"`
}

// SendMessageResponse answers POST messages (the spec's SendMessageResponseVO).
type SendMessageResponse struct {
	// Parsed is the message as stored.
	Parsed string `json:"parsed"`
}

// Message is one message of GET messages (the spec's MessageVO).
type Message struct {
	// ID is the engine event's ULID.
	ID string `json:"id"`
	// Parsed is the message text.
	Parsed string `json:"parsed"`
	// Timestamp is the event time in microseconds since the Unix epoch.
	Timestamp int64 `json:"timestamp"`
	// AuthorUser is the author.
	AuthorUser User `json:"authorUser"`
}

// User is a message's author (the spec's ChatUserVO).
type User struct {
	// ID is the engine user's ID in ULID form ("" for the embedding program).
	ID string `json:"id"`
	// Name is the user's display name (or its unique name if it has none).
	Name string `json:"name"`
	// Email is the user's e-mail address.
	Email string `json:"email"`
	// AvatarURL is the user's picture.
	AvatarURL string `json:"avatarUrl"`
}

// Health answers GET health (the spec's HealthVO).
type Health struct {
	// Status is "UP" or "DOWN".
	Status string `json:"status"`
}

// ParseSendMessage decodes a POST messages body: one JSON object, unknown fields ignored,
// nothing after it.
func ParseSendMessage(body []byte) (SendMessage, error) {
	var m SendMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&m); err != nil {
		return SendMessage{}, fmt.Errorf("body is not a JSON SendMessageVO: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return SendMessage{}, errors.New("body has data after the JSON object")
	}
	return m, nil
}

func (h *Handler) send(w http.ResponseWriter, r *http.Request, user chat.User) {
	if err := checkJSON(r); err != nil {
		h.fail(w, r, err)
		return
	}
	body, err := readBody(w, r, h.cfg.MaxBodyBytes)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	in, err := ParseSendMessage(body)
	if err != nil {
		h.fail(w, r, &httpError{status: http.StatusBadRequest, msg: err.Error()})
		return
	}
	parsed := strings.TrimSpace(in.MessageRaw)
	if parsed == "" {
		h.fail(w, r, &httpError{status: http.StatusBadRequest, msg: "messageRaw is empty"})
		return
	}
	ctx := r.Context()
	room, err := h.room(ctx, in.Room, true)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if room.Private {
		h.fail(w, r, &httpError{status: http.StatusForbidden, msg: "the room is private: Chapi cannot post to it"})
		return
	}
	if err := h.ensureJoined(ctx, room.ID, user.ID); err != nil {
		h.fail(w, r, err)
		return
	}
	if _, err := h.e.Send(ctx, room.ID, user.ID, chat.NewMessage{Text: parsed}); err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, SendMessageResponse{Parsed: parsed})
}

// ensureJoined joins the user to a public room unless it is joined already.
func (h *Handler) ensureJoined(ctx context.Context, roomID, userID chat.ID) error {
	m, err := h.e.Member(ctx, roomID, userID)
	if err == nil && m.State == chat.Joined {
		return nil
	}
	if err != nil && !errors.Is(err, chat.ErrNotFound) {
		return err
	}
	_, err = h.e.Join(ctx, roomID, userID, chat.JoinOptions{Role: h.cfg.Role})
	if errors.Is(err, chat.ErrConflict) { // joined meanwhile by a concurrent request
		return nil
	}
	return err
}

// room resolves the room parameter (see the package comment); create makes a missing room.
func (h *Handler) room(ctx context.Context, name string, create bool) (chat.Room, error) {
	if name == "" {
		name = h.cfg.DefaultRoom
	}
	r, err := h.e.RoomByName(ctx, name)
	if err == nil || !errors.Is(err, chat.ErrNotFound) {
		return r, err
	}
	if id, perr := chat.ParseID(name); perr == nil {
		if r, err := h.e.Room(ctx, id); err == nil || !errors.Is(err, chat.ErrNotFound) {
			return r, err
		}
	}
	if !create {
		return chat.Room{}, &httpError{status: http.StatusNotFound, msg: "no such room"}
	}
	r, err = h.e.CreateRoom(ctx, chat.NewRoom{Name: name, DisplayName: name})
	if errors.Is(err, chat.ErrConflict) { // created meanwhile by a concurrent request
		return h.e.RoomByName(ctx, name)
	}
	return r, err
}

// listQuery is the query of GET messages.
type listQuery struct {
	room     string
	pageSize int
	ts       int64
}

// parseListQuery parses GET messages' query; pageSize is clamped to max.
func parseListQuery(q string, def, max int) (listQuery, error) {
	v, err := url.ParseQuery(q)
	if err != nil {
		return listQuery{}, err
	}
	lq := listQuery{room: v.Get("room"), pageSize: def}
	if s := v.Get("pageSize"); s != "" {
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil || n < 1 {
			return listQuery{}, fmt.Errorf("pageSize %q is not a positive integer", s)
		}
		lq.pageSize = int(min(n, int64(max)))
	}
	if s := v.Get("ts"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return listQuery{}, fmt.Errorf("ts %q is not a non-negative integer of microseconds", s)
		}
		lq.ts = n
	}
	return lq, nil
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request, user chat.User) {
	q, err := parseListQuery(r.URL.RawQuery, h.cfg.DefaultPageSize, h.cfg.MaxPageSize)
	if err != nil {
		h.fail(w, r, &httpError{status: http.StatusBadRequest, msg: err.Error()})
		return
	}
	ctx := r.Context()
	room, err := h.room(ctx, q.room, false)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	viewer, err := h.e.Member(ctx, room.ID, user.ID)
	switch {
	case err == nil:
	case errors.Is(err, chat.ErrNotFound):
		viewer = chat.Member{}
	default:
		h.fail(w, r, err)
		return
	}
	if room.Private && viewer.State != chat.Invited && viewer.State != chat.Joined {
		h.fail(w, r, &httpError{status: http.StatusForbidden, msg: "the room is private and you are not invited"})
		return
	}
	msgs, err := h.page(ctx, room, viewer, q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, msgs)
}

// page returns up to q.pageSize messages older than q.ts, newest first.
func (h *Handler) page(ctx context.Context, room chat.Room, viewer chat.Member, q listQuery) ([]Message, error) {
	from := room.LastPos
	if q.ts > 0 {
		var err error
		if from, err = h.lastBefore(ctx, room, q.ts); err != nil {
			return nil, err
		}
	}
	out := make([]Message, 0, min(q.pageSize, 64))
	users := map[chat.ID]User{}
	batch := min(max(2*q.pageSize, 64), 1000)
	var buf []chat.Event
	for from >= 1 && len(out) < q.pageSize {
		var err error
		buf, err = h.e.ReadAppend(ctx, buf[:0], room.ID, from, batch, true)
		if err != nil {
			return nil, err
		}
		if len(buf) == 0 {
			break
		}
		for i := range buf {
			ev := &buf[i]
			if len(out) == q.pageSize {
				break
			}
			if ev.Type != chat.EventMessage || !visible(ev, viewer) {
				continue
			}
			m, err := h.e.Message(ctx, room.ID, ev.Pos)
			if err != nil {
				return nil, err
			}
			if !m.Deleted.IsZero() {
				continue
			}
			author, err := h.author(ctx, users, ev.User)
			if err != nil {
				return nil, err
			}
			out = append(out, Message{ID: ev.ID.String(), Parsed: m.Text, Timestamp: ev.Time.UnixMicro(), AuthorUser: author})
		}
		from = buf[len(buf)-1].Pos - 1
	}
	return out, nil
}

// visible reports whether the viewer's membership may see ev (the engine's rule).
func visible(ev *chat.Event, viewer chat.Member) bool { return ev.VisibleToMember(viewer) }

// lastBefore returns the position of the last event older than ts (µs), or 0: the engine
// finds it in one read, since event times strictly increase with positions.
func (h *Handler) lastBefore(ctx context.Context, room chat.Room, ts int64) (uint64, error) {
	return h.e.PosBefore(ctx, room.ID, time.UnixMicro(ts))
}

func (h *Handler) author(ctx context.Context, cache map[chat.ID]User, id chat.ID) (User, error) {
	if u, ok := cache[id]; ok {
		return u, nil
	}
	var a User
	if id == chat.System {
		a = User{Name: "system"}
	} else {
		u, err := h.e.User(ctx, id)
		switch {
		case err == nil:
			a = User{ID: u.ID.String(), Name: u.DisplayName, Email: u.Email, AvatarURL: u.AvatarURL}
			if a.Name == "" {
				a.Name = u.Name
			}
		case errors.Is(err, chat.ErrNotFound): // a deleted user keeps its ID
			a = User{ID: id.String()}
		default:
			return User{}, err
		}
	}
	cache[id] = a
	return a, nil
}

// checkJSON refuses a body that is not declared as JSON.
func checkJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		return nil
	}
	return &httpError{status: http.StatusUnsupportedMediaType, msg: fmt.Sprintf("Content-Type %q is not supported: send application/json", ct)}
}

func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, errTooLarge(limit)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, errTooLarge(limit)
	}
	if err != nil {
		return nil, &httpError{status: http.StatusBadRequest, msg: "cannot read the body", cause: err}
	}
	return b, nil
}

func errTooLarge(limit int64) error {
	return &httpError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("body larger than %d bytes", limit)}
}

func errMethod(allow string) error {
	return &httpError{status: http.StatusMethodNotAllowed, msg: "method not allowed", allow: allow}
}

// httpError is an error answered with a status of its own.
type httpError struct {
	status int
	msg    string
	allow  string // Allow header for 405
	cause  error
}

func (e *httpError) Error() string { return e.msg }
func (e *httpError) Unwrap() error { return e.cause }

// ErrorBody is the body of errors other than 401 (ours: Spring Boot's default error body).
type ErrorBody struct {
	// Timestamp is when the error happened, RFC 3339.
	Timestamp string `json:"timestamp"`
	// Status is the HTTP status code.
	Status int `json:"status"`
	// Error is the status text.
	Error string `json:"error"`
	// Message says what went wrong.
	Message string `json:"message"`
	// Path is the request path.
	Path string `json:"path"`
}

// UnauthorizedBody is the Apigee body of 401 answers, byte for byte what real Chapi sends.
const UnauthorizedBody = `{"fault":{"faultstring":"Invalid access token","detail":{"errorcode":"oauth.v2.InvalidAccessToken"}}}`

// fail maps an error to an HTTP answer: the one place where engine errors meet the wire.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := http.StatusInternalServerError, "internal error"
	var he *httpError
	switch {
	case errors.As(err, &he):
		if he == errUnauthorized {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, UnauthorizedBody)
			return
		}
		status, msg = he.status, he.msg
		if he.allow != "" {
			w.Header().Set("Allow", he.allow)
		}
		if status == http.StatusTooManyRequests {
			ra := retryAfterDefault
			var d interface{ RetryAfter() time.Duration }
			if errors.As(he.cause, &d) && d.RetryAfter() > 0 {
				ra = d.RetryAfter()
			}
			w.Header().Set("Retry-After", strconv.FormatInt(int64((ra+time.Second-1)/time.Second), 10))
		}
	case errors.Is(err, chat.ErrInvalid):
		status, msg = http.StatusBadRequest, err.Error()
	case errors.Is(err, chat.ErrForbidden):
		status, msg = http.StatusForbidden, "forbidden"
	case errors.Is(err, chat.ErrNotFound), errors.Is(err, chat.ErrNotMember):
		status, msg = http.StatusNotFound, "not found"
	case errors.Is(err, chat.ErrEnded):
		status, msg = http.StatusConflict, "the room has ended and takes no new messages"
	case errors.Is(err, chat.ErrConflict):
		status, msg = http.StatusConflict, "conflict"
	case errors.Is(err, chat.ErrClosed):
		status, msg = http.StatusServiceUnavailable, "service unavailable"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		status, msg = http.StatusServiceUnavailable, "request cancelled"
	default:
		h.log.Error("chapi: internal error", "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, ErrorBody{
		Timestamp: time.Now().UTC().Format(time.RFC3339Nano), Status: status,
		Error: http.StatusText(status), Message: msg, Path: r.URL.Path,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}
