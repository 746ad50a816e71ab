// Package genesys serves the Genesys GMS Chat API Version 2 (specs/genesys-chat-v2.openapi.yaml)
// on a chat.Engine: requestChat, send, startTyping, stopTyping, refresh, disconnect, pushUrl,
// updateNickname, readReceipt, and the customNotice and updateData operations that real
// clients call. Requests are form-encoded, answers JSON.
//
// The Handler is an http.Handler that the embedding program mounts anywhere; the Genesys base
// URL is where it is mounted:
//
//	mux.Handle("/genesys/2/chat/", http.StripPrefix("/genesys/2/chat", h))
//
// serves POST /genesys/2/chat/{serviceName} and /genesys/2/chat/{serviceName}/{chatId}/{op}
// for the service names in Config.ServiceNames. It works on any chat.Store and holds no chat
// logic: it translates between the Genesys wire and the engine's API.
//
// # Rooms and parties
//
// A chat is an engine room and chatId is the room's ID in ULID form (chat.ID.String()), the
// identity all of Parley's surfaces share: a Chapi client posts to the same chat by passing
// the chatId as its room (see httpapi/chapi), and a message sent there reaches the Genesys
// client's refresh as a Message from an External party (and the reverse). requestChat
// creates the room, an engine user for the customer, and joins it with chat.RoleClient. The
// customer's userId and (a hash of) its secureKey are kept in the room's attributes, so a
// session survives a restart on a durable store.
//
// Agents are not part of this API: they are engine users that join the room from Go (or from
// another surface) with chat.RoleAgent or chat.RoleOperator, and appear in the transcript with
// type Agent; every other role appears as External. Handler.Transcript renders a room as the
// client sees it, for agent-side tools and tests.
//
// # Security
//
// The API is anonymous until requestChat hands out a userId and a 128-bit secureKey, which
// every later request must present (compared in constant time; only a hash is stored). Listing
// a service in Config.ServiceNames opens it. Config.Limiter rate-limits each client address:
// a limit.Create token per requestChat, a limit.Write token per other write; a refusal is HTTP
// 429 with Retry-After and statusCode 1 ("try again"). Config.Gate can refuse requests before
// anything is read or stored. Bodies are limited (Config.MaxBodyBytes, HTTP 413), and so is
// what userData may add to a chat (the engine's chat.MaxAttributes and chat.MaxAttributesBytes,
// HTTP 400 with code 200). A wrong secureKey, another chat's userId and an unknown chatId get
// the same answer, and a store that cannot take writes now is statusCode 1 with HTTP 503.
//
// # Transcript
//
// A transcript event's index is its engine position. Events Genesys has no type for
// (receipts, invitations, edits...) are left out, so indexes have gaps; nextPosition steps
// over them. decisions.go lists this and the package's other choices that no Genesys document
// settles.
package genesys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/httpx"
	"github.com/parley-chat/chat/limit"
)

// Config configures a Handler.
type Config struct {
	// ServiceNames are the serviceName path segments served; others get HTTP 404, code 306.
	// At least one is required.
	ServiceNames []string
	// Alias is the alias in every answer (default DefaultAlias).
	Alias string
	// MaxBodyBytes is the largest request body (default DefaultMaxBodyBytes); larger ones get
	// HTTP 413.
	MaxBodyBytes int64
	// MaxEvents is the most transcript positions one answer covers (default
	// DefaultMaxEvents).
	MaxEvents int
	// PrivateRooms makes requestChat create private rooms, which Chapi clients cannot post to.
	PrivateRooms bool
	// SystemNickname is the nickname of program events (default DefaultSystemNickname).
	SystemNickname string
	// TenantName is refresh's tenantName (default DefaultTenantName).
	TenantName string
	// Idle configures idle control; it is off unless Warn and Close are both set.
	Idle IdleConfig
	// Now tells the time for idle control (default time.Now). Give it the engine's clock.
	Now func() time.Time
	// Logger receives internal errors (default slog.Default()).
	Logger *slog.Logger
	// Limiter rate-limits each client address (limit.ClientKey): requestChat costs a
	// limit.Create token; send, startTyping, stopTyping, updateNickname, pushUrl, readReceipt,
	// customNotice, updateData, disconnect, and refresh with a typing preview, a limit.Write
	// token. A refusal is HTTP 429 with Retry-After and statusCode 1, before anything is
	// stored. Nil means limit.New(limit.DefaultRates), made by New; a Limiter made from zero
	// limit.Rates limits nothing. One Limiter may be shared by every surface of a server.
	Limiter *limit.Limiter
	// Gate, when set, is called before every operation with its name ("requestChat", "send",
	// "refresh"...), after the service name and the Limiter are checked and before the body
	// is read. A non-nil error refuses the request: HTTP 429 with Retry-After (as for the
	// Limiter) if the error has a method RetryAfter() time.Duration, HTTP 403 otherwise. The
	// Genesys API is anonymous by design (requestChat is how a web visitor starts a chat), so
	// listing a service in ServiceNames is what opens it; Gate is where the program adds an
	// origin check, a captcha token or a rule of its own.
	Gate func(r *http.Request, op string) error
}

// IdleConfig configures idle control: Notice warnings, then the end of the chat.
type IdleConfig struct {
	// Warn is how long a chat may go without an event before a warning Notice (Chat Server:
	// 255s). Zero turns idle control off.
	Warn time.Duration
	// Close is how long after an unanswered warning the chat ends, with a second Notice (Chat
	// Server: 45s). Zero turns idle control off.
	Close time.Duration
	// WarnText and CloseText are the notices (defaults DefaultIdleWarnText and
	// DefaultIdleCloseText).
	WarnText, CloseText string
	// Interval is how often a background sweeper checks every chat (default
	// DefaultIdleInterval); a negative Interval runs no sweeper, and chats are checked only
	// when a request names them or the program calls CheckIdle.
	Interval time.Duration
}

func (c IdleConfig) enabled() bool { return c.Warn > 0 && c.Close > 0 }

// Handler serves the Genesys Chat API v2. Create it with New and Close it when done.
type Handler struct {
	e        *chat.Engine
	cfg      Config
	services map[string]bool
	log      *slog.Logger

	lim       *limit.Limiter
	idleMu    sync.Mutex // serialises idle checks, so that a chat is warned once
	stop      chan struct{}
	done      sync.WaitGroup
	closeOnce sync.Once
	// sweepHook, when set (by tests), runs at the start of every sweep.
	sweepHook atomic.Pointer[func()]
}

// New returns a Handler serving engine. If idle control is on with a sweeper, New starts one
// goroutine, which Close stops.
func New(engine *chat.Engine, cfg Config) (*Handler, error) {
	if engine == nil {
		return nil, errors.New("genesys: nil engine")
	}
	if len(cfg.ServiceNames) == 0 {
		return nil, errors.New("genesys: no ServiceNames")
	}
	h := &Handler{e: engine, services: map[string]bool{}, stop: make(chan struct{})}
	for _, s := range cfg.ServiceNames {
		if s == "" || strings.Contains(s, "/") {
			return nil, fmt.Errorf("genesys: bad service name %q", s)
		}
		h.services[s] = true
	}
	if cfg.Alias == "" {
		cfg.Alias = DefaultAlias
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxEvents == 0 {
		cfg.MaxEvents = DefaultMaxEvents
	}
	if cfg.SystemNickname == "" {
		cfg.SystemNickname = DefaultSystemNickname
	}
	if cfg.TenantName == "" {
		cfg.TenantName = DefaultTenantName
	}
	if cfg.Idle.WarnText == "" {
		cfg.Idle.WarnText = DefaultIdleWarnText
	}
	if cfg.Idle.CloseText == "" {
		cfg.Idle.CloseText = DefaultIdleCloseText
	}
	if cfg.Idle.Interval == 0 {
		cfg.Idle.Interval = DefaultIdleInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Limiter == nil {
		cfg.Limiter = limit.New(limit.DefaultRates)
	}
	if cfg.MaxBodyBytes < 0 || cfg.MaxEvents < 1 || cfg.Idle.Warn < 0 || cfg.Idle.Close < 0 {
		return nil, errors.New("genesys: configuration out of range")
	}
	h.cfg, h.log, h.lim = cfg, cfg.Logger, cfg.Limiter
	if cfg.Idle.enabled() && cfg.Idle.Interval > 0 {
		h.done.Add(1)
		go h.sweeper()
	}
	return h, nil
}

// Close stops the idle sweeper, if any, and waits for it. The Handler still serves requests.
func (h *Handler) Close() error {
	h.closeOnce.Do(func() { close(h.stop) })
	h.done.Wait()
	return nil
}

// ChatID returns the chatId of a room.
func ChatID(room chat.ID) string { return room.String() }

// Service returns the serviceName of a chat that requestChat created, and whether room is
// one. A program uses it to tell Genesys chats apart, for instance in the hook that lets
// another surface reach them (chapi.Config.MayUse).
func Service(room chat.Room) (string, bool) {
	s, ok := room.Attributes[attrService]
	return s, ok && s != ""
}

// Operation names: the last path segment of each session operation.
const (
	opSend           = "send"
	opStartTyping    = "startTyping"
	opStopTyping     = "stopTyping"
	opRefresh        = "refresh"
	opDisconnect     = "disconnect"
	opPushURL        = "pushUrl"
	opUpdateNickname = "updateNickname"
	opReadReceipt    = "readReceipt"
	opCustomNotice   = "customNotice"
	opUpdateData     = "updateData"
	opRequestChat    = "" // POST /{serviceName}
)

// sessionOps are the operations on a chat, each with whether it writes (refresh writes only
// with a typing preview, which is charged once the form is read).
var sessionOps = map[string]bool{
	opSend: true, opStartTyping: true, opStopTyping: true, opRefresh: false, opDisconnect: true,
	opPushURL: true, opUpdateNickname: true, opReadReceipt: true, opCustomNotice: true, opUpdateData: true,
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if len(parts) == 2 && parts[1] == "" { // POST /{serviceName}/
		parts = parts[:1]
	}
	if !h.services[parts[0]] {
		h.fail(w, r, nil, &wireError{http: http.StatusNotFound, errs: []APIError{{codeServiceName, "serviceName is not configured"}}})
		return
	}
	var chatID, op string
	switch len(parts) {
	case 1:
		op = opRequestChat
	case 3:
		chatID, op = parts[1], parts[2]
		if _, ok := sessionOps[op]; !ok {
			h.fail(w, r, nil, &wireError{http: http.StatusNotFound, errs: []APIError{{codeInvalid, "unknown operation " + strconv.Quote(op)}}})
			return
		}
	default:
		h.fail(w, r, nil, &wireError{http: http.StatusNotFound, errs: []APIError{{codeInvalid, "no such path"}}})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, r, nil, &wireError{http: http.StatusMethodNotAllowed, errs: []APIError{{codeInvalid, "use POST"}}})
		return
	}
	// The Limiter before the Gate: a flood costs one map lookup per request.
	switch {
	case op == opRequestChat && !h.lim.AllowRequest(r, limit.Create),
		sessionOps[op] && !h.lim.AllowRequest(r, limit.Write):
		h.fail(w, r, nil, errLimited(retryAfterLimited))
		return
	}
	if h.cfg.Gate != nil {
		name := op
		if name == opRequestChat {
			name = "requestChat"
		}
		if err := h.cfg.Gate(r, name); err != nil {
			h.fail(w, r, nil, gateError(err))
			return
		}
	}
	form, err := readForm(w, r, h.cfg.MaxBodyBytes)
	if err != nil {
		h.fail(w, r, nil, err)
		return
	}
	p, errs := ParseParams(op, form)
	if op != opRequestChat && chatID == "" {
		errs = append([]APIError{{codeChatID, "chatId is missing"}}, errs...)
	}
	if len(errs) > 0 {
		h.fail(w, r, nil, &wireError{http: http.StatusBadRequest, errs: errs})
		return
	}
	if op == opRefresh && p.Message != "" && !h.lim.AllowRequest(r, limit.Write) {
		h.fail(w, r, nil, errLimited(retryAfterLimited))
		return
	}
	if op == opRequestChat {
		h.requestChat(w, r, parts[0], p)
		return
	}
	s, err := h.session(r.Context(), parts[0], chatID, p)
	if err != nil {
		h.fail(w, r, nil, err)
		return
	}
	h.operate(w, r, op, s, p)
}

// readForm reads a form-encoded (or multipart) body and the query string.
func readForm(w http.ResponseWriter, r *http.Request, limit int64) (url.Values, error) {
	if r.ContentLength > limit {
		return nil, errTooLarge(limit)
	}
	// A request without a body may say nothing of its type; one with a body must be a form.
	if err := httpx.CheckMediaType(r, formTypes, r.ContentLength == 0); err != nil {
		return nil, &wireError{http: http.StatusUnsupportedMediaType, errs: []APIError{{codeInvalid, err.Error()}}}
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var err error
	switch mt {
	case "multipart/form-data":
		err = r.ParseMultipartForm(limit)
		if r.MultipartForm != nil {
			defer r.MultipartForm.RemoveAll()
			if len(r.MultipartForm.File) > 0 {
				return nil, &wireError{http: http.StatusBadRequest, errs: []APIError{{codeInvalid, "file uploads are not supported"}}}
			}
		}
	default: // application/x-www-form-urlencoded, or no body
		err = r.ParseForm()
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) || strings.Contains(err.Error(), "too large") {
			return nil, errTooLarge(limit)
		}
		return nil, &wireError{http: http.StatusBadRequest, errs: []APIError{{codeInvalid, "malformed form: " + err.Error()}}}
	}
	return r.Form, nil
}

// formTypes are the media types of request bodies: forms only.
var formTypes = []string{"application/x-www-form-urlencoded", "multipart/form-data"}

// gateError turns a Gate refusal into 429 (with Retry-After) or 403.
func gateError(err error) error {
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		return errLimited(ra.RetryAfter())
	}
	return &wireError{http: http.StatusForbidden, errs: []APIError{{codeInvalid, "refused: " + err.Error()}}}
}

// errLimited is the answer to a request over a rate limit: HTTP 429 with Retry-After, and
// statusCode 1, the spec's "keep trying".
func errLimited(retryAfter time.Duration) error {
	return &wireError{http: http.StatusTooManyRequests, statusCode: 1, retryAfter: max(retryAfter, time.Second),
		errs: []APIError{{codeLimit, "too many requests: try again in " + seconds(retryAfter) + " s"}}}
}

// seconds formats d for Retry-After: whole seconds, rounded up, at least 1.
func seconds(d time.Duration) string {
	return strconv.FormatInt(int64(max(d+time.Second-1, time.Second)/time.Second), 10)
}

func errTooLarge(limit int64) error {
	return &wireError{http: http.StatusRequestEntityTooLarge, errs: []APIError{{codeInvalid, fmt.Sprintf("body larger than %d bytes", limit)}}}
}

// Params are the parameters of a request, parsed and checked by ParseParams.
type Params struct {
	// Alias, UserID and SecureKey are the session credentials of every operation but
	// requestChat.
	Alias, UserID, SecureKey string
	// Message is the message, typing preview or notice text; HasMessage tells whether the
	// field was sent.
	Message    string
	HasMessage bool
	// MessageType is send's messageType.
	MessageType string
	// TranscriptPosition is the position parameter; HasPosition tells whether it was sent.
	TranscriptPosition uint64
	HasPosition        bool
	// Nickname is requestChat's or updateNickname's nickname (for requestChat, "First Last"
	// when only the first and last names were given).
	Nickname string
	// Subject and Email are requestChat's subject and emailAddress.
	Subject, Email string
	// PushURL is pushUrl's URL.
	PushURL string
	// UserData holds the userData[key]=value fields.
	UserData map[string]string
}

// ParseParams checks the form fields of operation op ("" for requestChat) and returns every
// problem as a Genesys error code: missing fields with the spec's 1xx codes, malformed ones
// with 300 (or 364 for a bad e-mail address). A field, known or not, whose name or value is
// not valid UTF-8 or holds a NUL byte is malformed (300, the advice names it): nothing could
// store it as sent.
func ParseParams(op string, f url.Values) (Params, []APIError) {
	var p Params
	if errs := checkText(f); len(errs) > 0 {
		return p, errs // nothing else of such a form is worth checking
	}
	var errs []APIError
	missing := func(code int, name string) { errs = append(errs, APIError{code, name + " is missing"}) }
	get := func(name string) (string, bool) {
		v, ok := f[name]
		if !ok || len(v) == 0 {
			return "", false
		}
		return v[0], true
	}
	p.UserData = map[string]string{}
	for k, v := range f {
		if key, ok := strings.CutPrefix(k, "userData["); ok && strings.HasSuffix(key, "]") && len(v) > 0 {
			key = strings.TrimSuffix(key, "]")
			if key == "" {
				errs = append(errs, APIError{codeInvalid, "userData with an empty key"})
				continue
			}
			p.UserData[key] = v[0]
		}
	}
	if op == opRequestChat {
		p.Nickname, _ = get("nickname")
		first, _ := get("firstName")
		last, _ := get("lastName")
		first, last, p.Nickname = strings.TrimSpace(first), strings.TrimSpace(last), strings.TrimSpace(p.Nickname)
		if p.Nickname == "" {
			if first == "" || last == "" {
				missing(codeNickname, "nickname")
				if first == "" {
					missing(codeFirstName, "firstName")
				}
				if last == "" {
					missing(codeLastName, "lastName")
				}
			} else {
				p.Nickname = first + " " + last
			}
		}
		p.Subject, _ = get("subject")
		p.Email, _ = get("emailAddress")
		if p.Email != "" {
			if a, err := mail.ParseAddress(p.Email); err != nil || a.Address != p.Email {
				errs = append(errs, APIError{codeEmail, "emailAddress contains an invalid email address"})
			}
		}
		return p, errs
	}
	var ok bool
	if p.Alias, ok = get("alias"); !ok || p.Alias == "" {
		missing(codeAlias, "alias")
	}
	if p.UserID, ok = get("userId"); !ok || p.UserID == "" {
		missing(codeUserID, "userId")
	}
	if p.SecureKey, ok = get("secureKey"); !ok || p.SecureKey == "" {
		missing(codeSecureKey, "secureKey")
	}
	p.Message, p.HasMessage = get("message")
	p.MessageType, _ = get("messageType")
	if s, ok := get("transcriptPosition"); ok && s != "" {
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 63)
		if err != nil {
			errs = append(errs, APIError{codeInvalid, "transcriptPosition is not a non-negative integer"})
		}
		p.TranscriptPosition, p.HasPosition = n, err == nil
	}
	switch op {
	case opSend:
		if p.Message == "" {
			missing(codeMessage, "message")
		}
	case opRefresh:
		if !p.HasPosition {
			p.TranscriptPosition = 1 // the spec's default
		}
	case opPushURL:
		p.PushURL, _ = get("pushUrl")
		if p.PushURL == "" {
			missing(codePushURL, "pushUrl")
		} else if u, err := url.Parse(p.PushURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, APIError{codeInvalid, "pushUrl is not an absolute http or https URL"})
		}
	case opUpdateNickname:
		p.Nickname, _ = get("nickname")
		if p.Nickname = strings.TrimSpace(p.Nickname); p.Nickname == "" {
			missing(codeNickname, "nickname")
		}
	case opReadReceipt:
		if !p.HasPosition {
			errs = append(errs, APIError{codeInvalid, "transcriptPosition is missing"})
		}
	case opUpdateData:
		if len(p.UserData) == 0 {
			missing(codeUserData, "userData")
		}
	}
	return p, errs
}

// checkText returns a 300 error for each field of f, in name order, whose name or a value
// cannot be stored as sent.
func checkText(f url.Values) []APIError {
	var errs []APIError
	for _, k := range slices.Sorted(maps.Keys(f)) {
		err := httpx.CheckText("a field name", k)
		for _, v := range f[k] {
			if err != nil {
				break
			}
			err = httpx.CheckText(k, v)
		}
		if err != nil {
			errs = append(errs, APIError{codeInvalid, err.Error()})
		}
	}
	return errs
}

// Attribute keys of the rooms this package creates.
const (
	attrService  = "genesys.serviceName"
	attrSubject  = "genesys.subject"
	attrUserData = "genesys.userData."
	attrParty    = "genesys.party."
	attrIdleWarn = "genesys.idleWarnPos"
)

func randomHex(n int, upper bool) string {
	b := make([]byte, n)
	rand.Read(b)
	s := hex.EncodeToString(b)
	if upper {
		s = strings.ToUpper(s)
	}
	return s
}

func keyHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

func (h *Handler) requestChat(w http.ResponseWriter, r *http.Request, service string, p Params) {
	ctx := r.Context()
	userID, key := randomHex(8, true), randomHex(16, false)
	nu := chat.NewUser{DisplayName: p.Nickname, Email: p.Email}
	attrs := map[string]string{attrService: service}
	if p.Subject != "" {
		attrs[attrSubject] = p.Subject
	}
	for k, v := range p.UserData {
		if v != "" {
			attrs[attrUserData+k] = v
		}
	}
	// The user's ID is not known yet: validate with a placeholder of the same length.
	attrs[attrParty+userID] = chat.ID{}.String() + " " + keyHash(key)
	// Idle control's attribute is there from the start, in a fixed width, so that updating
	// it never grows the room: userData filling the room to the engine's limits cannot stop
	// idle control.
	attrs[attrIdleWarn] = idleWarnValue(0)
	display := p.Subject
	if display == "" {
		display = p.Nickname
	}
	nr := chat.NewRoom{DisplayName: display, Attributes: attrs}
	if err := errors.Join(nu.Validate(), nr.Validate(), checkNickname(p.Nickname)); err != nil {
		h.fail(w, r, nil, err) // nothing stored
		return
	}
	user, err := h.e.CreateUser(ctx, nu)
	if err != nil {
		h.fail(w, r, nil, err)
		return
	}
	attrs[attrParty+userID] = user.ID.String() + " " + keyHash(key)
	// The room and the client's join are one commit: the join is index 1, and a private
	// room admits its first member uninvited.
	nr.Private = h.cfg.PrivateRooms
	nr.Members = []chat.NewMember{{User: user.ID, Nickname: p.Nickname, Role: chat.RoleClient}}
	room, err := h.e.CreateRoom(ctx, nr)
	if err != nil {
		h.undo(user.ID, chat.ID{})
		h.fail(w, r, nil, err)
		return
	}
	m, err := h.e.MemberByUser(ctx, room.ID, user.ID)
	if err != nil {
		h.fail(w, r, nil, err)
		return
	}
	s := &session{room: room, user: user, member: m, userID: userID, key: key}
	resp, err := h.answer(ctx, s, 1, false)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	resp.ChatID = ChatID(room.ID)
	resp.ChatEnded = nil
	writeJSON(w, http.StatusOK, resp)
}

// checkNickname applies the engine's nickname limit before anything is stored.
func checkNickname(n string) error {
	return chat.NewUser{DisplayName: n}.Validate()
}

// undo removes what a failed requestChat created.
func (h *Handler) undo(user, room chat.ID) {
	ctx := context.WithoutCancel(context.Background())
	if room != (chat.ID{}) {
		if err := h.e.DeleteRoom(ctx, room); err != nil {
			h.log.Warn("genesys: undo requestChat", "room", room, "err", err)
		}
	}
	if err := h.e.DeleteUser(ctx, user); err != nil {
		h.log.Warn("genesys: undo requestChat", "user", user, "err", err)
	}
}

// session is an authenticated party of a chat.
type session struct {
	room   chat.Room
	user   chat.User
	member chat.Member
	userID string
	key    string
}

// errSession is the one answer for an unknown chat or party or a wrong key.
var errSession = &wireError{http: http.StatusOK, statusCode: 2, chatEnded: true,
	errs: []APIError{{codeNotFound, "the chat session was not found or the credentials are wrong"}}}

// session authenticates a request for a chat. An unknown chatId, a chat of another service,
// an unknown userId, another chat's userId, a wrong secureKey and a party that has left all
// get errSession, after the same reads and the same hashing: nothing about a chat is read
// or changed (idle control included) before its party is authenticated.
func (h *Handler) session(ctx context.Context, service, chatID string, p Params) (*session, error) {
	given := keyHash(p.SecureKey)
	id, err := chat.ParseID(chatID)
	if err != nil || len(chatID) != 26 {
		return nil, errSession
	}
	room, err := h.e.Room(ctx, id)
	if errors.Is(err, chat.ErrNotFound) {
		return nil, errSession
	}
	if err != nil {
		return nil, err
	}
	userID := strings.ToUpper(p.UserID)
	party, ok := room.Attributes[attrParty+userID]
	uid, hash, _ := strings.Cut(party, " ")
	keyOK := subtle.ConstantTimeCompare([]byte(given), []byte(hash)) == 1
	if room.Attributes[attrService] != service || !ok || len(userID) != 16 || !keyOK {
		return nil, errSession
	}
	user, err := h.e.User(ctx, must(chat.ParseID(uid)))
	if err != nil {
		if errors.Is(err, chat.ErrNotFound) || errors.Is(err, chat.ErrInvalid) {
			return nil, errSession
		}
		return nil, err
	}
	m, err := h.e.MemberByUser(ctx, room.ID, user.ID)
	if err != nil || m.State != chat.Joined {
		if err == nil || errors.Is(err, chat.ErrNotFound) {
			return nil, errSession
		}
		return nil, err
	}
	if h.cfg.Idle.enabled() {
		// Idle control that cannot write now (a full disk) does not stop the party's request:
		// the sweeper tries again.
		if err := h.checkIdle(ctx, id); err != nil && !errors.Is(err, chat.ErrNotFound) && !errors.Is(err, chat.ErrEnded) {
			h.log.Warn("genesys: idle control", "chat", id, "err", err)
		}
		if room, err = h.e.Room(ctx, id); err != nil { // idle control may have ended it
			return nil, err
		}
	}
	return &session{room: room, user: user, member: m, userID: userID, key: p.SecureKey}, nil
}

func must(id chat.ID, err error) chat.ID {
	if err != nil {
		return chat.ID{} // an ID no user has
	}
	return id
}

// errEnded answers operations on an ended chat other than refresh, disconnect and readReceipt.
var errEnded = &wireError{http: http.StatusOK, statusCode: 2, chatEnded: true,
	errs: []APIError{{codeCannot, "the chat has ended"}}}

// operate runs a session operation and answers it.
func (h *Handler) operate(w http.ResponseWriter, r *http.Request, op string, s *session, p Params) {
	ctx := r.Context()
	e, room, uid := h.e, s.room.ID, s.user.ID
	if s.room.Ended() && op != opRefresh && op != opDisconnect && op != opReadReceipt {
		h.fail(w, r, s, errEnded)
		return
	}
	var err error
	from, ended := uint64(0), false
	if p.HasPosition {
		from = p.TranscriptPosition
	}
	switch op {
	case opSend:
		msg := chat.NewMessage{Text: p.Message}
		if p.MessageType != "" {
			msg.Body, _ = json.Marshal(messageBody{MessageType: p.MessageType})
		}
		_, err = e.Send(ctx, room, uid, msg)
	case opStartTyping:
		_, err = e.StartTyping(ctx, room, uid, p.Message)
	case opStopTyping:
		_, err = e.StopTyping(ctx, room, uid)
	case opRefresh:
		if p.Message != "" && !s.room.Ended() {
			_, err = e.StartTyping(ctx, room, uid, p.Message)
		}
		from = p.TranscriptPosition
	case opDisconnect:
		_, err = e.Leave(ctx, room, uid)
		ended = true
	case opPushURL:
		b, _ := json.Marshal(pushURLBody{URL: p.PushURL})
		_, err = e.Custom(ctx, room, uid, customPushURL, b)
	case opCustomNotice:
		b, _ := json.Marshal(noticeBody{Text: p.Message})
		_, err = e.Custom(ctx, room, uid, customNotice, b)
	case opUpdateNickname:
		_, err = e.UpdateMember(ctx, room, uid, chat.MemberUpdate{Nickname: &p.Nickname})
	case opReadReceipt:
		_, err = e.MarkRead(ctx, room, uid, p.TranscriptPosition)
		from = 0 // its transcriptPosition is the receipt's, not a transcript request
	case opUpdateData:
		attrs := make(map[string]string, len(p.UserData))
		for k, v := range p.UserData {
			attrs[attrUserData+k] = v
		}
		_, err = e.UpdateRoom(ctx, room, chat.RoomUpdate{Attributes: attrs})
	}
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	resp, err := h.answer(ctx, s, from, ended)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	if op == opRefresh {
		resp.TenantName = h.cfg.TenantName
	}
	writeJSON(w, http.StatusOK, resp)
}

// answer builds a statusCode 0 answer with the transcript from position from (none if 0).
func (h *Handler) answer(ctx context.Context, s *session, from uint64, ended bool) (*Response, error) {
	msgs, next, room, err := h.transcript(ctx, s.room.ID, s.member, from)
	if err != nil {
		return nil, err
	}
	ended = ended || room.Ended()
	return &Response{
		Alias: h.cfg.Alias, UserID: s.userID, SecureKey: s.key, ChatEnded: &ended,
		Messages: msgs, NextPosition: next,
	}, nil
}

// Response is the JSON answer of every operation (the spec's BaseResponse and its
// extensions).
type Response struct {
	// StatusCode is 0 (done), 1 (retry) or 2 (failed).
	StatusCode int `json:"statusCode"`
	// Alias, UserID and SecureKey identify the serving instance and the party.
	Alias     string `json:"alias,omitempty"`
	UserID    string `json:"userId,omitempty"`
	SecureKey string `json:"secureKey,omitempty"`
	// ChatID is requestChat's new chat.
	ChatID string `json:"chatId,omitempty"`
	// ChatEnded tells whether the chat has ended for the party.
	ChatEnded *bool `json:"chatEnded,omitempty"`
	// Messages is the transcript asked for.
	Messages []Message `json:"messages"`
	// NextPosition is the transcriptPosition of the next refresh.
	NextPosition uint64 `json:"nextPosition,omitempty"`
	// TenantName is refresh's tenant.
	TenantName string `json:"tenantName,omitempty"`
	// Errors says what went wrong when StatusCode is not 0.
	Errors []APIError `json:"errors,omitempty"`
}

// APIError is one error of an answer (the spec's ErrorCode).
type APIError struct {
	// Code is the spec's error code.
	Code int `json:"code"`
	// Advice says what went wrong.
	Advice string `json:"advice"`
}

// wireError is an answer that is not statusCode 0: an HTTP 4xx with the spec's ApiError body
// when statusCode is 0, a BaseResponse with statusCode 1 or 2 otherwise.
type wireError struct {
	http       int
	retryAfter time.Duration // sent as Retry-After when not zero
	statusCode int
	chatEnded  bool
	errs       []APIError
}

// errUnavailable answers a request the store cannot serve now: the spec's "keep trying".
var errUnavailable = &wireError{http: http.StatusServiceUnavailable, statusCode: 1, retryAfter: retryAfterUnavailable,
	errs: []APIError{{codeUnexpected, "the chat store is unavailable now: try again"}}}

// isAttributeField reports whether an engine refusal is about the limits on what userData
// adds to a chat: all the room's attributes, or one userData entry.
func isAttributeField(field string) bool {
	return field == "attributes" || strings.HasPrefix(field, "attribute "+attrUserData)
}

// attributeAdvice says which limit userData would exceed, in the client's terms.
func attributeAdvice(inv *chat.InvalidError) string {
	if k, ok := strings.CutPrefix(inv.Field, "attribute "+attrUserData); ok {
		return fmt.Sprintf("userData[%s]: %s", k, inv.Reason)
	}
	return fmt.Sprintf("userData would take the chat past its limits (%d entries, %d bytes in all, %d bytes a value): %s",
		chat.MaxAttributes, chat.MaxAttributesBytes, chat.MaxAttributeValueBytes, inv.Reason)
}

func (e *wireError) Error() string { return fmt.Sprintf("genesys: HTTP %d: %v", e.http, e.errs) }

// fail maps an error to the wire: the one place where engine errors meet Genesys' rules.
// s is the authenticated session, if the request got that far.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	var we *wireError
	var inv *chat.InvalidError
	switch {
	case errors.As(err, &we):
	case errors.Is(err, chat.ErrUnavailable):
		// Before the others: a store error may wrap more than one kind.
		h.log.Warn("genesys: store unavailable", "path", r.URL.Path, "err", err)
		we = errUnavailable
		s = nil
	case errors.As(err, &inv) && isAttributeField(inv.Field):
		we = &wireError{http: http.StatusBadRequest, errs: []APIError{{codeLimit, attributeAdvice(inv)}}}
	case errors.Is(err, chat.ErrEnded):
		we = errEnded
	case errors.Is(err, chat.ErrNotFound), errors.Is(err, chat.ErrNotMember), errors.Is(err, chat.ErrForbidden):
		we = errSession
		s = nil
	case errors.Is(err, chat.ErrInvalid):
		we = &wireError{http: http.StatusBadRequest, errs: []APIError{{codeInvalid, strings.TrimPrefix(err.Error(), "chat: ")}}}
	case errors.Is(err, chat.ErrConflict):
		we = &wireError{http: http.StatusOK, statusCode: 1, errs: []APIError{{codeUnexpected, "conflicting request: try again"}}}
	case errors.Is(err, chat.ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		we = &wireError{http: http.StatusServiceUnavailable, statusCode: 1, errs: []APIError{{codeUnexpected, "service unavailable: try again"}}}
	default:
		ref := randomHex(8, false)
		h.log.Error("genesys: internal error", "reference", ref, "path", r.URL.Path, "err", err)
		we = &wireError{http: http.StatusInternalServerError, statusCode: 1, errs: []APIError{{codeUnexpected, "unexpected error, reference " + ref}}}
	}
	if we.retryAfter > 0 {
		w.Header().Set("Retry-After", seconds(we.retryAfter))
	}
	if we.statusCode == 0 { // HTTP 4xx: the spec's ApiError
		writeJSON(w, we.http, struct {
			Errors []APIError `json:"errors"`
		}{we.errs})
		return
	}
	resp := Response{StatusCode: we.statusCode, Alias: h.cfg.Alias, Messages: []Message{}, Errors: we.errs}
	if we.chatEnded {
		t := true
		resp.ChatEnded = &t
	}
	if s != nil && we.statusCode == 2 {
		// An authenticated party of an ended chat learns where the transcript ends.
		if room, err := h.e.Room(r.Context(), s.room.ID); err == nil {
			resp.NextPosition = room.LastPos + 1
		}
	}
	writeJSON(w, we.http, resp)
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
