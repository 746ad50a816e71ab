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
// The Chapi room parameter is the engine room's unique Name; POST creates a missing one (a
// public room, marked as Chapi's) and GET answers 404. Without a room parameter the room is
// "CHAPI sandbox". Rooms of other surfaces are reached only as decisions.go describes: by
// their unique name, or, for a value that parses as a chat.ID (ULID or UUID form), by their ID
// when the key's user may use that room: a room Chapi created, a room the user is invited to
// or joined, or a room Config.MayUse allows (a Genesys chatId, a Nexmo conversation ID without
// its "CON-" prefix, a Bezlimit chat or Airy conversation UUID). Otherwise the value is a name
// like any other, and the answer is the one for a room that does not exist.
//
// A key's user reads public rooms and the private rooms it was invited to or joined, and posts
// only to public rooms (403 for a private one). Posting joins the user to the room first, with
// Config.Role, if it is not joined.
//
// # Limits
//
// Each POST costs a limit.Write token of the client's address in Config.Limiter; a refusal is
// HTTP 429 with Retry-After and Apigee's spike-arrest fault body. Bodies are JSON within
// Config.MaxBodyBytes; invalid UTF-8 and NUL characters are refused (400) rather than
// stored, and a store that cannot take writes now answers 503 with Retry-After.
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
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/httpx"
	"github.com/parley-chat/chat/limit"
)

// Config configures a Handler.
type Config struct {
	// Keys maps API keys to the engine users they act as. Keys are compared in constant time.
	Keys map[string]chat.ID
	// Lookup, when set, is asked about keys that are not in Keys. It returns the user the key
	// acts as, or an error wrapping chat.ErrNotFound for an unknown key (answered with 401);
	// any other error is answered with 500. It should compare secrets in constant time.
	Lookup func(ctx context.Context, key string) (chat.ID, error)
	// Limiter rate-limits writes: every POST costs a limit.Write token of the client's
	// address (limit.ClientKey), taken before the key is checked or the body read; a refusal
	// is HTTP 429 with Retry-After. Nil means limit.New(limit.DefaultRates), made by New; a
	// Limiter made from zero limit.Rates limits nothing. One Limiter may be shared by every
	// surface of a server.
	Limiter *limit.Limiter
	// MayUse, when set, lets the key's user reach, by its ID, a room that Chapi did not
	// create and that the user is neither invited to nor joined: it returns whether user may
	// read the room and, if the room is public, join it by posting. It is called only for a
	// room that exists, and must not modify it. When MayUse is nil or returns false, the room
	// is answered as a room that does not exist (see decisions.go). A program that lets
	// Chapi integrations take part in Genesys chats by chatId, for instance, allows rooms
	// whose "genesys.serviceName" attribute names one of its services.
	MayUse func(ctx context.Context, user chat.User, room chat.Room) bool
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
	keys *httpx.Secrets[chat.ID]
	lim  *limit.Limiter
	log  *slog.Logger
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
	if cfg.Limiter == nil {
		cfg.Limiter = limit.New(limit.DefaultRates)
	}
	if cfg.MaxBodyBytes < 0 || cfg.MaxPageSize < 1 || cfg.MaxPageSize > 1000 ||
		cfg.DefaultPageSize < 1 || cfg.DefaultPageSize > cfg.MaxPageSize {
		return nil, errors.New("chapi: configuration out of range")
	}
	for k := range cfg.Keys {
		if k == "" {
			return nil, errors.New("chapi: empty API key")
		}
	}
	return &Handler{e: engine, cfg: cfg, keys: httpx.NewSecrets(cfg.Keys), lim: cfg.Limiter, log: cfg.Logger}, nil
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
			// Before anything else: a flood costs one map lookup per request.
			if !h.lim.AllowRequest(r, limit.Write) {
				h.fail(w, r, errLimited)
				return
			}
			h.authed(w, r, h.send)
		default:
			h.fail(w, r, errMethod("GET, HEAD, POST"))
		}
	default:
		h.fail(w, r, &httpError{status: http.StatusNotFound, msg: "no such path"})
	}
}

func (h *Handler) health(w http.ResponseWriter, r *http.Request) {
	// DOWN once the engine is closed or its store failed its last write (a full disk).
	if err := h.e.Health(r.Context()); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, Health{Status: "DOWN"})
		return
	}
	writeJSON(w, http.StatusOK, Health{Status: "UP"})
}

// authed authenticates the request and calls next.
func (h *Handler) authed(w http.ResponseWriter, r *http.Request, next func(http.ResponseWriter, *http.Request, chat.User)) {
	user, err := h.authenticate(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	next(w, r, user)
}

// errUnauthorized is answered with the Apigee body.
var errUnauthorized = &httpError{status: http.StatusUnauthorized, msg: "invalid API key"}

// errLimited is answered with Apigee's spike-arrest body.
var errLimited = &httpError{status: http.StatusTooManyRequests, msg: "too many requests"}

func (h *Handler) authenticate(r *http.Request) (chat.User, error) {
	key := r.Header.Get("x-api-key")
	if key == "" {
		return chat.User{}, errUnauthorized
	}
	id, found := h.keys.Lookup(key)
	if !found {
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

// sendFields are the fields of SendMessage, for naming the one at fault.
var sendFields = []string{"messageRaw", "room"}

// ParseSendMessage decodes a POST messages body: one JSON object, unknown fields ignored,
// nothing after it. A body that is not valid UTF-8, holds a NUL character or nests deeper
// than chat.MaxJSONDepth is refused, naming the field at fault when it is messageRaw or room:
// Go's decoder would silently store U+FFFD for invalid UTF-8. Errors match
// httpx.ErrMalformed.
func ParseSendMessage(body []byte) (SendMessage, error) {
	var m SendMessage
	if err := httpx.DecodeJSON(body, &m); err != nil {
		return SendMessage{}, fieldAtFault(body, err)
	}
	return m, nil
}

// fieldAtFault returns err, or an error naming the field of body whose content is at fault.
// It runs only for refused bodies.
func fieldAtFault(body []byte, err error) error {
	var fields map[string]json.RawMessage
	// A raw NUL byte makes the JSON invalid; as an escape it keeps the field readable.
	if json.Unmarshal(bytes.ReplaceAll(body, []byte{0}, []byte(`\u0000`)), &fields) != nil {
		return err
	}
	for _, name := range sendFields {
		raw, ok := fields[name]
		if !ok {
			continue
		}
		var inv *chat.InvalidError
		if errors.As(chat.CheckJSON(name, raw), &inv) {
			return &httpx.Error{Kind: httpx.ErrMalformed, Msg: inv.Field + ": " + inv.Reason}
		}
	}
	return err
}

func (h *Handler) send(w http.ResponseWriter, r *http.Request, user chat.User) {
	body, err := httpx.ReadBody(w, r, h.cfg.MaxBodyBytes, httpx.JSON, true)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	in, err := ParseSendMessage(body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	parsed := strings.TrimSpace(in.MessageRaw)
	if parsed == "" {
		h.fail(w, r, &httpError{status: http.StatusBadRequest, msg: "messageRaw is empty"})
		return
	}
	ctx := r.Context()
	room, err := h.room(ctx, user, in.Room, true)
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
	m, err := h.e.MemberByUser(ctx, roomID, userID)
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

// attrCreated marks the rooms Chapi created (decisions.go).
const attrCreated = "chapi.created"

// room resolves the room parameter for user (see the package comment and decisions.go);
// create makes a missing room.
func (h *Handler) room(ctx context.Context, user chat.User, name string, create bool) (chat.Room, error) {
	if name == "" {
		name = h.cfg.DefaultRoom
	}
	if id, err := chat.ParseID(name); err == nil {
		r, ok, err := h.byID(ctx, user, id)
		if err != nil || ok {
			return r, err
		}
		// A room the user may not use is a name like any other, as if no room had the ID.
	}
	r, err := h.e.RoomByName(ctx, name)
	if err == nil || !errors.Is(err, chat.ErrNotFound) {
		return r, err
	}
	if !create {
		return chat.Room{}, errNoRoom
	}
	r, err = h.e.CreateRoom(ctx, chat.NewRoom{Name: name, DisplayName: name, Attributes: map[string]string{attrCreated: "1"}})
	if errors.Is(err, chat.ErrConflict) { // created meanwhile by a concurrent request
		return h.e.RoomByName(ctx, name)
	}
	return r, err
}

// errNoRoom answers GET for a room that does not exist, or that the user may not use.
var errNoRoom = &httpError{status: http.StatusNotFound, msg: "no such room"}

// byID returns the room with id if user may use it: Chapi made it, the user is invited to it
// or joined, or Config.MayUse allows it. It reads the room and the user's membership whether
// or not the room exists, so that the time taken tells little about which IDs exist.
func (h *Handler) byID(ctx context.Context, user chat.User, id chat.ID) (chat.Room, bool, error) {
	r, rerr := h.e.Room(ctx, id)
	m, merr := h.e.MemberByUser(ctx, id, user.ID)
	for _, err := range []error{rerr, merr} {
		if err != nil && !errors.Is(err, chat.ErrNotFound) {
			return chat.Room{}, false, err
		}
	}
	if rerr != nil {
		return chat.Room{}, false, nil
	}
	ok := r.Attributes[attrCreated] != "" ||
		(merr == nil && (m.State == chat.Invited || m.State == chat.Joined)) ||
		(h.cfg.MayUse != nil && h.cfg.MayUse(ctx, user, r))
	return r, ok, nil
}

// listQuery is the query of GET messages.
type listQuery struct {
	room     string
	pageSize int
	ts       int64
}

// parseListQuery parses GET messages' query; pageSize is clamped to max. A room that is not
// valid UTF-8 or holds a NUL is refused.
func parseListQuery(q string, def, max int) (listQuery, error) {
	v, err := url.ParseQuery(q)
	if err != nil {
		return listQuery{}, err
	}
	lq := listQuery{room: v.Get("room"), pageSize: def}
	if err := httpx.CheckText("room", lq.room); err != nil {
		return listQuery{}, err
	}
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
	room, err := h.room(ctx, user, q.room, false)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	viewer, err := h.e.MemberByUser(ctx, room.ID, user.ID)
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
		buf, err = h.e.ReadAppend(ctx, buf[:0], room.ID, chat.ReadOptions{From: from, Limit: batch, Backward: true})
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
	if id == chat.System() {
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

func errMethod(allow string) error {
	return &httpError{status: http.StatusMethodNotAllowed, msg: "method not allowed", allow: allow}
}

// httpError is an error answered with a status of its own.
type httpError struct {
	status int
	msg    string
	allow  string // Allow header for 405
}

func (e *httpError) Error() string { return e.msg }

// ErrorBody is the body of errors other than 401 (ours: Spring Boot's default error body).
type ErrorBody struct {
	// Timestamp is when the error happened, RFC 3339 with milliseconds.
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

// TooManyRequestsBody is the body of 429 answers: the fault Apigee's SpikeArrest policy
// answers with, in the shape of UnauthorizedBody (decisions.go).
const TooManyRequestsBody = `{"fault":{"faultstring":"Spike arrest violation: too many requests, retry later","detail":{"errorcode":"policies.ratelimit.SpikeArrestViolation"}}}`

// fail maps an error to an HTTP answer: the one place where engine errors meet the wire.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := http.StatusInternalServerError, "internal error"
	var he *httpError
	var inv *chat.InvalidError
	switch {
	case errors.As(err, &he):
		switch he {
		case errUnauthorized:
			writeRaw(w, http.StatusUnauthorized, UnauthorizedBody)
			return
		case errLimited:
			w.Header().Set("Retry-After", seconds(retryAfterLimited))
			writeRaw(w, http.StatusTooManyRequests, TooManyRequestsBody)
			return
		}
		status, msg = he.status, he.msg
		if he.allow != "" {
			w.Header().Set("Allow", he.allow)
		}
	case errors.Is(err, chat.ErrUnavailable):
		// Before the others: a store error may wrap more than one kind.
		status, msg = http.StatusServiceUnavailable, "the chat store is unavailable now: try again later"
		w.Header().Set("Retry-After", seconds(retryAfterUnavailable))
		h.log.Warn("chapi: store unavailable", "path", r.URL.Path, "err", err)
	case errors.Is(err, httpx.ErrTooLarge):
		status, msg = http.StatusRequestEntityTooLarge, err.Error()
	case errors.Is(err, httpx.ErrMediaType):
		status, msg = http.StatusUnsupportedMediaType, err.Error()
	case errors.As(err, &inv):
		status, msg = http.StatusBadRequest, inv.Field+": "+inv.Reason
	case errors.Is(err, chat.ErrInvalid): // httpx.ErrMalformed among them
		status, msg = http.StatusBadRequest, strings.TrimPrefix(err.Error(), "chat: ")
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
		Timestamp: time.Now().UTC().Format(springTime), Status: status,
		Error: http.StatusText(status), Message: msg, Path: r.URL.Path,
	})
}

// springTime is the layout of ErrorBody.Timestamp: Spring Boot's, milliseconds and offset
// always written, so that every error body of one kind has the same length.
const springTime = "2006-01-02T15:04:05.000-07:00"

// seconds formats d for Retry-After: whole seconds, rounded up, at least 1.
func seconds(d time.Duration) string {
	return strconv.FormatInt(int64(max(d+time.Second-1, time.Second)/time.Second), 10)
}

func writeRaw(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	io.WriteString(w, body)
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
