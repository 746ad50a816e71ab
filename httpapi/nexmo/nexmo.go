// Package nexmo serves the Nexmo Conversation API 1.6.0 (the `/beta` REST API) on a Parley
// chat engine.
//
// New returns an http.Handler that translates the vendor's wire to engine calls and holds no
// chat logic of its own: a Nexmo conversation is an engine room (CON-<room UUID>), a member
// an engine membership record (MEM-<uuid>; a user who rejoins gets a new one), a user an
// engine user with a unique name (USR-<uuid>), and an event id the engine position of the
// event in its room. A text sent here is an engine message that every other surface shows,
// and what the others send shows up in the event list here.
//
// Every request carries a Bearer JWT signed RS256 with the private key of an application
// whose public key Config names (see Claims and NewToken). A token without `sub` is an admin
// token; with `sub` it acts as the user of that name and sees only its own conversations: any
// other conversation is answered exactly as one that does not exist, and it joins only
// conversations it was invited to or created here, or that Config.MayJoin lets it join.
//
// Writes are rate-limited per client (Config.Limiter); bodies must be declared and be JSON
// that is valid UTF-8, without NULs, nested at most chat.MaxJSONDepth deep; a store that
// cannot take writes is answered 503 with Retry-After.
//
// The handler answers paths relative to the path of Config.BaseURL, so it can be mounted
// with or without http.StripPrefix:
//
//	mux.Handle("/beta/", h) // with BaseURL "https://chat.example.com/beta"
//
// Every decision the vendor's documents leave open is in decisions.go.
package nexmo

import (
	"context"
	"crypto/rsa"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/httpx"
	"github.com/parley-chat/chat/limit"
)

// Config configures a Handler.
type Config struct {
	// BaseURL is the public address of the API, such as "https://chat.example.com/beta".
	// Every href is built from it, and its path is the prefix the handler strips from
	// request paths that carry it. Required.
	BaseURL string
	// Keys are the RS256 public keys by application_id.
	Keys map[string]*rsa.PublicKey
	// PublicKey, when set, looks up the key of an application not in Keys. Either Keys or
	// PublicKey is required.
	PublicKey func(ctx context.Context, applicationID string) (*rsa.PublicKey, error)
	// Now tells the time for token checks (default time.Now). Tests inject a clock.
	Now func() time.Time
	// Leeway is the clock skew allowed on iat and exp (default 0).
	Leeway time.Duration
	// MaxBodyBytes is the largest request body (default DefaultMaxBodyBytes); larger ones
	// are answered 413.
	MaxBodyBytes int64
	// MemberRole is the engine role of the members this API invites or joins (a Nexmo member
	// has none); the other surfaces show it, e.g. chat.RoleAgent appears to a Genesys client
	// as an Agent. Empty: no role.
	MemberRole chat.Role
	// Logger logs internal errors (default slog.Default()).
	Logger *slog.Logger
	// Limiter limits each client's writes (POST, PUT and DELETE, whoever makes them, before
	// the token is checked): each costs a limit.Write token of the client limit.ClientKey
	// names, and a refused one is answered 429 http:error:too-many-request with Retry-After.
	// nil means limit.New(limit.DefaultRates), made by New; limit.New(limit.Rates{}) limits
	// nothing. One Limiter may be shared by every surface of a server. Admin tokens count
	// too: an application backend that writes much from one address needs rates to match.
	Limiter *limit.Limiter
	// MayJoin, when set, is asked whether a user (a token with `sub`) may join a conversation
	// the default policy does not let it join: one it was not invited to and did not create
	// through this API, or left (decisions.go). It runs inside the request, so it should be
	// quick. nil: the default alone decides. Admin tokens join anyone anywhere without it.
	MayJoin func(ctx context.Context, user chat.User, room chat.Room) bool
}

// Handler is the Nexmo Conversation API as an http.Handler. It is safe for concurrent use.
type Handler struct {
	e      *chat.Engine
	cfg    Config
	base   string // BaseURL without a trailing slash
	prefix string // the path of BaseURL without a trailing slash
	log    *slog.Logger
}

// New returns a Handler serving engine. It returns an error if the engine, the base URL or
// the keys are missing.
func New(engine *chat.Engine, cfg Config) (*Handler, error) {
	if engine == nil {
		return nil, errors.New("nexmo: no engine")
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, errors.New("nexmo: Config.BaseURL must be an absolute URL")
	}
	if len(cfg.Keys) == 0 && cfg.PublicKey == nil {
		return nil, errors.New("nexmo: Config needs Keys or PublicKey")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Limiter == nil {
		cfg.Limiter = limit.New(limit.DefaultRates)
	}
	h := &Handler{e: engine, cfg: cfg, log: cfg.Logger,
		base: strings.TrimRight(cfg.BaseURL, "/"), prefix: strings.TrimRight(u.Path, "/")}
	if h.log == nil {
		h.log = slog.Default()
	}
	return h, nil
}

func (h *Handler) now() time.Time { return h.cfg.Now() }

// request is one call being served.
type request struct {
	w      http.ResponseWriter
	r      *http.Request
	ctx    context.Context
	p      principal
	params []string // the path's id segments, in order
	body   []byte   // the body of a POST or PUT, read and bounded before the operation runs
}

type op func(h *Handler, q *request) error

// route is a path pattern ("*" matches one id segment) and its operations by method.
type route struct {
	pattern []string
	ops     map[string]op
	allow   string
}

var routes = func() []route {
	rs := []route{
		{pattern: []string{"conversations"}, ops: map[string]op{
			http.MethodGet: (*Handler).listConversations, http.MethodPost: (*Handler).createConversation}},
		{pattern: []string{"conversations", "*"}, ops: map[string]op{
			http.MethodGet: (*Handler).getConversation, http.MethodPut: (*Handler).updateConversation,
			http.MethodDelete: (*Handler).deleteConversation}},
		{pattern: []string{"conversations", "*", "events"}, ops: map[string]op{
			http.MethodGet: (*Handler).listEvents, http.MethodPost: (*Handler).createEvent}},
		{pattern: []string{"conversations", "*", "events", "*"}, ops: map[string]op{
			http.MethodGet: (*Handler).getEvent, http.MethodDelete: (*Handler).deleteEvent}},
		{pattern: []string{"conversations", "*", "members"}, ops: map[string]op{
			http.MethodGet: (*Handler).listMembers, http.MethodPost: (*Handler).createMember}},
		{pattern: []string{"conversations", "*", "members", "*"}, ops: map[string]op{
			http.MethodGet: (*Handler).getMember, http.MethodPut: (*Handler).updateMember,
			http.MethodDelete: (*Handler).deleteMember}},
		{pattern: []string{"users"}, ops: map[string]op{
			http.MethodGet: (*Handler).listUsers, http.MethodPost: (*Handler).createUser}},
		{pattern: []string{"users", "*"}, ops: map[string]op{
			http.MethodGet: (*Handler).getUser, http.MethodPut: (*Handler).updateUser,
			http.MethodDelete: (*Handler).deleteUser}},
		{pattern: []string{"users", "*", "conversations"}, ops: map[string]op{
			http.MethodGet: (*Handler).userConversations}},
		{pattern: []string{"legs"}, ops: map[string]op{http.MethodGet: (*Handler).listLegs}},
		{pattern: []string{"legs", "*"}, ops: map[string]op{http.MethodDelete: (*Handler).deleteLeg}},
	}
	for i := range rs {
		var ms []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
			if rs[i].ops[m] != nil {
				ms = append(ms, m)
			}
		}
		rs[i].allow = strings.Join(ms, ", ")
	}
	return rs
}()

// match finds the route of a path (relative to the API root) and its id segments.
func match(path string) (*route, []string) {
	path = strings.Trim(path, "/")
	if path == "" {
		return nil, nil
	}
	segs := strings.Split(path, "/")
next:
	for i := range routes {
		rt := &routes[i]
		if len(rt.pattern) != len(segs) {
			continue
		}
		var params []string
		for j, p := range rt.pattern {
			switch {
			case p == "*":
				if segs[j] == "" {
					continue next
				}
				params = append(params, segs[j])
			case p != segs[j]:
				continue next
			}
		}
		return rt, params
	}
	return nil, nil
}

// ServeHTTP serves one request: route, method, rate limit, token, body, then the operation.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if h.prefix != "" {
		if rest, ok := strings.CutPrefix(path, h.prefix); ok && (rest == "" || rest[0] == '/') {
			path = rest
		}
	}
	rt, params := match(path)
	if rt == nil {
		writeError(w, newAPIError(codeRouteNotFound, "No such resource."))
		return
	}
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	fn := rt.ops[method]
	if fn == nil {
		w.Header().Set("Allow", rt.allow)
		writeError(w, newAPIError(codeMethod, "Method "+r.Method+" is not allowed here."))
		return
	}
	// Writes are counted before the token is checked: checking an RS256 signature is the
	// dearest thing an anonymous client can make us do.
	if method != http.MethodGet && !h.cfg.Limiter.AllowRequest(r, limit.Write) {
		writeError(w, errTooManyRequests)
		return
	}
	p, err := h.authenticate(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	q := &request{w: w, r: r, ctx: r.Context(), p: p, params: params}
	if method == http.MethodPost || method == http.MethodPut {
		// A body must say it is JSON; a request with no body at all declares nothing
		// (decisions.go). Read here, before any lookup, so that what a body is answered
		// never depends on what the path names.
		q.body, err = httpx.ReadBody(w, r, h.cfg.MaxBodyBytes, httpx.JSON, r.ContentLength == 0)
		if err != nil {
			h.fail(w, r, err)
			return
		}
	}
	if err := fn(h, q); err != nil {
		h.fail(w, r, err)
	}
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	if ae := writeError(w, err); ae.status >= 500 {
		h.log.Error("nexmo: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
}

// href builds an absolute link from path segments under the base URL.
func (h *Handler) href(parts ...string) string {
	var b strings.Builder
	b.WriteString(h.base)
	for _, p := range parts {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(p))
	}
	return b.String()
}

func (h *Handler) conversationHref(id chat.ID) string {
	return h.href("conversations", conversationID(id))
}

func (h *Handler) memberHref(room, member chat.ID) string {
	return h.href("conversations", conversationID(room), "members", memberID(member))
}

func (h *Handler) userHref(id chat.ID) string { return h.href("users", userID(id)) }
