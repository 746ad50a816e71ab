// Package airy serves the REST half of the Airy Core chat plugin API on the chat engine:
// POST /chatplugin.authenticate, /chatplugin.resumeToken and /chatplugin.send, JSON in and
// out, errors as {"message": "..."}. Its WebSocket half, STOMP at /ws.chatplugin, is
// package wsapi/airy, which shares this package's Service: one token configuration and one
// way of rendering messages for both.
//
// An Airy conversation is an engine room whose attribute AttrChannel names its channel; its
// conversation_id is the room ID in UUID form. authenticate with a channel_id creates the
// room and an anonymous contact user, joined with chat.RoleClient; with a resume_token it
// returns a new auth token and the conversation's messages, ordered by position. Messages
// sent to the room from Go or any other surface are part of the conversation.
//
// Anyone who knows a configured channel id may start a conversation: that is the widget's
// design (the visitor is anonymous). Configuring channels is how the embedding program turns
// that on; no channel is open by default. The widget calls the API from the pages that embed
// it: list their origins in Config.AllowedOrigins (CORS), or wrap the handler in CORS
// middleware of your own.
//
// Every client (limit.ClientKey) is rate-limited by Config.Limiter: a new conversation costs a
// limit.Create token, a message or a resume token a limit.Write token; a refused request gets
// 429 with Retry-After. A store that cannot serve now (chat.ErrUnavailable) gets 503 with
// Retry-After: try again. Bodies must be declared as JSON and be valid UTF-8 without NULs.
//
// Every choice the Airy docs and code leave open is a named constant in decisions.go.
package airy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/httpx"
	"github.com/parley-chat/chat/limit"
)

// ChannelLookup reports whether a channel id is a configured chat plugin channel.
type ChannelLookup func(ctx context.Context, channelID string) (bool, error)

// Channels returns a ChannelLookup for a fixed set of channel ids.
func Channels(ids ...string) ChannelLookup {
	set := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		set[id] = struct{}{}
	}
	return func(_ context.Context, id string) (bool, error) {
		_, ok := set[id]
		return ok, nil
	}
}

// Config configures a Service.
type Config struct {
	// Engine is the chat engine. Required.
	Engine *chat.Engine
	// Tokens issues and checks the JWTs. Required; see NewTokens.
	Tokens *Tokens
	// Channels tells which channel ids exist. Required.
	Channels ChannelLookup
	// SystemToken is the system API token that may ask /chatplugin.resumeToken on behalf of
	// a conversation. Empty disables that use; compared in constant time.
	SystemToken string
	// MaxBodyBytes bounds request bodies (default DefaultMaxBodyBytes); longer ones get 413.
	MaxBodyBytes int64
	// Limiter rate-limits each client (limit.ClientKey): authenticate with a channel_id (a
	// new conversation) costs a limit.Create token; send, resumeToken and every STOMP SEND
	// on wsapi/airy, which shares the Service, cost a limit.Write token. A refused request
	// gets 429 with Retry-After. nil means limit.New(limit.DefaultRates), made by New; pass
	// limit.New(limit.Rates{}) to limit nothing, or one Limiter shared by every surface.
	Limiter *limit.Limiter
	// MaxHistory is the most messages authenticate returns (default DefaultMaxHistory).
	MaxHistory int
	// AllowedOrigins lists the origins (scheme://host[:port]) of the web pages that embed the
	// widget and may call the API from the browser (CORS); "*" allows any. Empty allows no
	// cross-origin call: the embedding program may then wrap the handler in its own CORS
	// middleware.
	AllowedOrigins []string
	// Logger logs internal errors (default slog.Default()).
	Logger *slog.Logger
}

// Service is the chat plugin on an engine. It serves the REST API as an http.Handler and
// gives wsapi/airy what it needs: Authorize and Render. Mount it at the root, or under a
// prefix: it answers on the last path element (".../chatplugin.send").
type Service struct {
	cfg Config
	log *slog.Logger
}

// New returns a Service for cfg.
func New(cfg Config) (*Service, error) {
	if cfg.Engine == nil || cfg.Tokens == nil || cfg.Channels == nil {
		return nil, errors.New("airy: Config needs Engine, Tokens and Channels")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxHistory <= 0 {
		cfg.MaxHistory = DefaultMaxHistory
	}
	if cfg.Limiter == nil {
		cfg.Limiter = limit.New(limit.DefaultRates)
	}
	s := &Service{cfg: cfg, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s, nil
}

// Engine returns the Service's engine.
func (s *Service) Engine() *chat.Engine { return s.cfg.Engine }

// Tokens returns the Service's token configuration.
func (s *Service) Tokens() *Tokens { return s.cfg.Tokens }

// Allow takes a token of class c from the bucket of the client named by key (limit.ClientKey
// of its request), or returns an error wrapping ErrRateLimited when it has none left.
func (s *Service) Allow(key string, c limit.Class) error {
	if !s.cfg.Limiter.Allow(key, c) {
		return fmt.Errorf("%w: too many requests; try again later", ErrRateLimited)
	}
	return nil
}

func (s *Service) allow(r *http.Request, c limit.Class) error { return s.Allow(limit.ClientKey(r), c) }

// Conversation is an authorized conversation: what an auth token names, checked against the
// engine.
type Conversation struct {
	// ID is the conversation_id: the room ID in UUID form.
	ID string
	// ChannelID is the conversation's channel.
	ChannelID string
	// Room is the engine room.
	Room chat.ID
	// Contact is the contact's engine user.
	Contact chat.ID
	// ContactMember is the contact's current membership record in the room.
	ContactMember chat.ID
	// Expires is when the auth token that Authorize checked expires, by the Tokens' clock
	// (Tokens.Now); zero for a conversation found otherwise. A connection authorized by the
	// token ends then.
	Expires time.Time
}

// Authorize checks an auth token and returns its conversation. A bad token, or one whose
// conversation has gone or belongs to another channel, wraps ErrUnauthorized.
func (s *Service) Authorize(ctx context.Context, token string) (Conversation, error) {
	convID, channelID, exp, err := s.cfg.Tokens.parseAuth(token)
	if err != nil {
		return Conversation{}, err
	}
	conv, err := s.conversation(ctx, convID, channelID)
	conv.Expires = exp
	return conv, err
}

// errNoConversation is the one answer for a conversation that cannot be had: malformed id,
// no such room, a room of another channel or of no Airy channel at all, a room without its
// contact. One error, one message, so that no answer tells which it was.
var errNoConversation = fmt.Errorf("%w: no such conversation in this channel", ErrUnauthorized)

// conversation looks a conversation up; one that cannot be had is errNoConversation (the
// token that named it is worth nothing). Store errors are returned as they are.
func (s *Service) conversation(ctx context.Context, convID, channelID string) (Conversation, error) {
	id, err := chat.ParseID(convID)
	if err != nil {
		return Conversation{}, errNoConversation
	}
	room, err := s.cfg.Engine.Room(ctx, id)
	if errors.Is(err, chat.ErrNotFound) {
		return Conversation{}, errNoConversation
	}
	if err != nil {
		return Conversation{}, err
	}
	if room.Attributes[AttrChannel] == "" || room.Attributes[AttrChannel] != channelID {
		return Conversation{}, errNoConversation
	}
	contact, err := chat.ParseID(room.Attributes[AttrContact])
	if err != nil {
		return Conversation{}, errNoConversation
	}
	conv := Conversation{ID: room.ID.UUID(), ChannelID: channelID, Room: room.ID, Contact: contact}
	if m, err := s.cfg.Engine.MemberByUser(ctx, room.ID, contact); err == nil {
		conv.ContactMember = m.ID
	} else if !errors.Is(err, chat.ErrNotFound) {
		return Conversation{}, err
	}
	return conv, nil
}

// Message is a chat plugin message on the wire.
type Message struct {
	// ID is the event's ID in UUID form.
	ID string `json:"id"`
	// Content is the source message payload: {"text": ...} or an attachment.
	Content json.RawMessage `json:"content"`
	// DeliveryState is pending, failed or delivered (always DeliveryDelivered here).
	DeliveryState string `json:"delivery_state"`
	// FromContact tells whether the contact sent it.
	FromContact bool `json:"from_contact"`
	// SentAt is the time in UTC with milliseconds (SentAtLayout).
	SentAt string `json:"sent_at"`
	// Metadata is the message's metadata object (empty).
	Metadata json.RawMessage `json:"metadata"`
	// Sender identifies the sender.
	Sender Sender `json:"sender"`
}

// Sender is a message's sender.
type Sender struct {
	// ID is the sender's engine user ID in UUID form, or SystemSenderID.
	ID string `json:"id"`
}

// Visible reports whether the contact of conv may see ev: a message event that the engine
// lets the contact's membership (a chat.RoleClient) see.
func (conv *Conversation) Visible(ev *chat.Event) bool {
	contact := chat.Member{ID: conv.ContactMember, UserID: conv.Contact, Role: chat.RoleClient}
	return ev.Type == chat.EventMessage && ev.VisibleToMember(contact)
}

// Render turns a message event of conv's room into a Message. The caller checks Visible.
func (conv *Conversation) Render(ev *chat.Event) Message {
	m := Message{
		ID:            ev.ID.UUID(),
		Content:       content(ev.Text, ev.Body),
		DeliveryState: DeliveryDelivered,
		FromContact:   ev.User == conv.Contact,
		SentAt:        ev.Time.UTC().Format(SentAtLayout),
		Metadata:      json.RawMessage("{}"),
		Sender:        Sender{ID: SystemSenderID},
	}
	if !ev.User.IsZero() {
		m.Sender.ID = ev.User.UUID()
	}
	return m
}

func content(text string, body json.RawMessage) json.RawMessage {
	if b := strings.TrimSpace(string(body)); strings.HasPrefix(b, "{") {
		return body
	}
	out, _ := json.Marshal(struct {
		Text string `json:"text"`
	}{text})
	return out
}

// ServeHTTP serves POST .../chatplugin.authenticate, .../chatplugin.resumeToken and
// .../chatplugin.send.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var h func(http.ResponseWriter, *http.Request) error
	switch path.Base(r.URL.Path) {
	case "chatplugin.authenticate":
		h = s.authenticate
	case "chatplugin.resumeToken":
		h = s.resumeToken
	case "chatplugin.send":
		h = s.send
	default:
		writeError(w, s.log, errNotFoundPath)
		return
	}
	if s.cors(w, r) {
		return // a preflight request, answered
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, s.log, errMethod)
		return
	}
	if err := h(w, r); err != nil {
		writeError(w, s.log, err)
	}
}

// cors adds the CORS headers for an allowed Origin and answers a preflight request (OPTIONS
// with Access-Control-Request-Method), reporting whether it did.
func (s *Service) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || !s.originAllowed(origin) {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return false
	}
	h.Set("Access-Control-Allow-Methods", http.MethodPost)
	h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return true
}

func (s *Service) originAllowed(origin string) bool {
	for _, o := range s.cfg.AllowedOrigins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// authRequest is the body of /chatplugin.authenticate.
type authRequest struct {
	ChannelID   string `json:"channel_id"`
	ResumeToken string `json:"resume_token"`
}

// authResponse is its answer.
type authResponse struct {
	Token    string    `json:"token"`
	Messages []Message `json:"messages"`
}

func (s *Service) authenticate(w http.ResponseWriter, r *http.Request) error {
	var req authRequest
	if err := s.decodeBody(w, r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	switch {
	case req.ResumeToken != "":
		convID, channelID, err := s.cfg.Tokens.ParseResume(req.ResumeToken)
		if err != nil {
			return err
		}
		conv, err := s.conversation(ctx, convID, channelID)
		if err != nil {
			return err
		}
		msgs, err := s.history(ctx, &conv)
		if err != nil {
			return err
		}
		token, err := s.cfg.Tokens.IssueAuth(conv.ID, conv.ChannelID)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, authResponse{Token: token, Messages: msgs})
	case req.ChannelID != "":
		// Charged before the channel is looked up: guessing channel ids costs as much.
		if err := s.allow(r, limit.Create); err != nil {
			return err
		}
		ok, err := s.cfg.Channels(ctx, req.ChannelID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("airy: channel %q: %w", req.ChannelID, errNoChannel)
		}
		conv, err := s.startConversation(ctx, req.ChannelID)
		if err != nil {
			return err
		}
		token, err := s.cfg.Tokens.IssueAuth(conv.ID, conv.ChannelID)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, authResponse{Token: token, Messages: []Message{}})
	default:
		return fmt.Errorf("%w: channel_id or resume_token is required", errBadRequest)
	}
}

// startConversation creates the contact, then the room with the contact joined in the same
// commit. If the room cannot be made, the contact is deleted again.
func (s *Service) startConversation(ctx context.Context, channelID string) (Conversation, error) {
	e := s.cfg.Engine
	u, err := e.CreateUser(ctx, chat.NewUser{DisplayName: ContactName, Attributes: map[string]string{AttrChannel: channelID}})
	if err != nil {
		return Conversation{}, err
	}
	room, err := e.CreateRoom(ctx, chat.NewRoom{
		Attributes: map[string]string{AttrChannel: channelID, AttrContact: u.ID.String()},
		Members:    []chat.NewMember{{User: u.ID, Role: chat.RoleClient}},
	})
	if err != nil {
		_ = e.DeleteUser(context.WithoutCancel(ctx), u.ID)
		return Conversation{}, err
	}
	m, err := e.MemberByUser(ctx, room.ID, u.ID)
	if err != nil {
		return Conversation{}, err
	}
	return Conversation{ID: room.ID.UUID(), ChannelID: channelID, Room: room.ID, Contact: u.ID, ContactMember: m.ID}, nil
}

// history returns the latest MaxHistory messages the contact may see, oldest first, each in
// its current state (edits applied, deleted ones left out) as the engine derives it.
func (s *Service) history(ctx context.Context, conv *Conversation) ([]Message, error) {
	e := s.cfg.Engine
	var out []Message
	var buf []chat.Event
	from := uint64(0) // 0 = the last event, reading backwards
	for len(out) < s.cfg.MaxHistory {
		var err error
		buf, err = e.ReadAppend(ctx, buf[:0], conv.Room, chat.ReadOptions{From: from, Limit: 1000, Backward: true})
		if err != nil {
			return nil, err
		}
		for i := range buf {
			if !conv.Visible(&buf[i]) {
				continue
			}
			msg, err := e.Message(ctx, conv.Room, buf[i].Pos)
			if err != nil {
				return nil, err
			}
			if !msg.Deleted.IsZero() {
				continue
			}
			ev := msg.Event
			ev.Text, ev.Body = msg.Text, msg.Body
			out = append(out, conv.Render(&ev))
			if len(out) == s.cfg.MaxHistory {
				break
			}
		}
		if len(buf) == 0 || buf[len(buf)-1].Pos <= 1 {
			break
		}
		from = buf[len(buf)-1].Pos - 1
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	if out == nil {
		out = []Message{}
	}
	return out, nil
}

// resumeRequest is the body of /chatplugin.resumeToken when the system token asks.
type resumeRequest struct {
	ChannelID      string `json:"channel_id"`
	ConversationID string `json:"conversation_id"`
}

func (s *Service) resumeToken(w http.ResponseWriter, r *http.Request) error {
	if err := s.allow(r, limit.Write); err != nil {
		return err
	}
	token := bearer(r.Header.Get("Authorization"))
	if token == "" {
		return fmt.Errorf("%w: no bearer token", ErrUnauthorized)
	}
	ctx := r.Context()
	var conv Conversation
	if httpx.Equal(token, s.cfg.SystemToken) {
		var req resumeRequest
		if err := s.decodeBody(w, r, &req); err != nil {
			return err
		}
		if req.ChannelID == "" || req.ConversationID == "" {
			return fmt.Errorf("%w: channel_id and conversation_id are required", errBadRequest)
		}
		c, err := s.conversation(ctx, req.ConversationID, req.ChannelID)
		if errors.Is(err, ErrUnauthorized) {
			// The caller is authorized; what it names does not exist for it. The message
			// does not repeat the request, so that every such answer is the same.
			return errNoSuchConversation
		}
		if err != nil {
			return err
		}
		conv = c
	} else {
		var err error
		if conv, err = s.Authorize(ctx, token); err != nil {
			return err
		}
		// The contact's request has no body to speak of (the widget sends {}); read what
		// there is within the limit and check it. A request that declares an empty body
		// needs no Content-Type (see the note on media types in decisions.go).
		b, err := httpx.ReadBody(w, r, s.cfg.MaxBodyBytes, httpx.JSON, r.ContentLength == 0)
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(b)) > 0 {
			if err := httpx.DecodeJSON(b, &struct{}{}); err != nil {
				return err
			}
		}
	}
	resume, err := s.cfg.Tokens.IssueResume(conv.ID, conv.ChannelID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, struct {
		ResumeToken string `json:"resume_token"`
	}{resume})
}

// sendRequest is the body of /chatplugin.send.
type sendRequest struct {
	Message json.RawMessage `json:"message"`
}

func (s *Service) send(w http.ResponseWriter, r *http.Request) error {
	if err := s.allow(r, limit.Write); err != nil {
		return err
	}
	conv, err := s.Authorize(r.Context(), bearer(r.Header.Get("Authorization")))
	if err != nil {
		return err
	}
	var req sendRequest
	if err := s.decodeBody(w, r, &req); err != nil {
		return err
	}
	nm, err := newMessage(req.Message)
	if err != nil {
		return err
	}
	ev, err := s.cfg.Engine.Send(r.Context(), conv.Room, conv.Contact, nm)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, conv.Render(&ev))
}

// newMessage validates a message object and makes the engine's message of it (see the note
// on message content in decisions.go).
func newMessage(raw json.RawMessage) (chat.NewMessage, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return chat.NewMessage{}, fmt.Errorf("%w: message must be an object", errBadRequest)
	}
	var text string
	if t, ok := fields["text"]; ok {
		if err := json.Unmarshal(t, &text); err != nil {
			return chat.NewMessage{}, fmt.Errorf("%w: message.text must be a string", errBadRequest)
		}
	}
	var attachment map[string]json.RawMessage
	if a, ok := fields["attachment"]; ok {
		if err := json.Unmarshal(a, &attachment); err != nil || attachment == nil {
			return chat.NewMessage{}, fmt.Errorf("%w: message.attachment must be an object", errBadRequest)
		}
	}
	if text == "" && attachment == nil {
		return chat.NewMessage{}, fmt.Errorf("%w: message needs text or an attachment", errBadRequest)
	}
	if len(fields) == 1 && text != "" {
		return chat.NewMessage{Text: text}, nil
	}
	return chat.NewMessage{Text: text, Body: raw}, nil
}

// bearer returns the token of an "Authorization: Bearer <token>" value, or "".
func bearer(v string) string {
	token, _ := httpx.Bearer(v)
	return token
}

// Bearer returns the token of an "Authorization: Bearer <token>" value (an HTTP header or a
// STOMP CONNECT header), or "".
func Bearer(v string) string { return bearer(v) }

// decodeBody reads r's body within MaxBodyBytes and decodes it into v: it must be declared
// as JSON (a missing Content-Type is refused: the widget always sends application/json) and
// hold one JSON value that is valid UTF-8, without NUL characters, nested at most
// chat.MaxJSONDepth deep (httpx.DecodeJSON: Go's decoder would silently replace invalid
// UTF-8 with U+FFFD).
func (s *Service) decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := httpx.ReadBody(w, r, s.cfg.MaxBodyBytes, httpx.JSON, false)
	if err != nil {
		return err
	}
	return httpx.DecodeJSON(b, v)
}

// writeJSON answers with v. It returns an error only when v does not encode (an internal
// error, answered by the caller); one in writing to a client that has gone cannot be
// answered anyway.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_ = httpx.WriteJSON(w, status, json.RawMessage(b))
	return nil
}

// ErrRateLimited: the client has made too many requests of a kind; HTTP 429 with
// Retry-After, an ERROR frame saying 429 on the socket.
var ErrRateLimited = errors.New("airy: rate limited")

// Errors of this surface that are not the engine's.
var (
	errBadRequest   = errors.New("bad request")
	errNoChannel    = errors.New("unknown channel")
	errMethod       = errors.New("method not allowed: use POST")
	errNotFoundPath = errors.New("no such endpoint")
	// errNoSuchConversation answers the system token for a conversation it cannot have.
	errNoSuchConversation = fmt.Errorf("airy: no such conversation in this channel: %w", chat.ErrNotFound)
)

// Status maps an error to its HTTP status: the one place where engine and surface errors
// meet the wire. wsapi/airy uses it for the status it puts in ERROR frames.
func Status(err error) int {
	switch {
	case errors.Is(err, chat.ErrUnavailable):
		return http.StatusServiceUnavailable // whatever else it wraps: try again
	case errors.Is(err, ErrRateLimited):
		return http.StatusTooManyRequests
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, httpx.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, httpx.ErrMediaType):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, errBadRequest), errors.Is(err, chat.ErrInvalid), errors.Is(err, httpx.ErrMalformed):
		return http.StatusBadRequest
	case errors.Is(err, errMethod):
		return http.StatusMethodNotAllowed
	case errors.Is(err, errNoChannel), errors.Is(err, errNotFoundPath), errors.Is(err, chat.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, chat.ErrForbidden), errors.Is(err, chat.ErrNotMember):
		return http.StatusForbidden
	case errors.Is(err, chat.ErrEnded), errors.Is(err, chat.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, chat.ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// RetryAfter returns how long a client refused with err should wait before it tries again
// (the Retry-After of a 429 or 503), or 0 when trying again will not help.
func RetryAfter(err error) time.Duration {
	switch Status(err) {
	case http.StatusTooManyRequests:
		return RetryAfterRateLimited
	case http.StatusServiceUnavailable:
		return RetryAfterUnavailable
	}
	return 0
}

// ErrorMessage returns what a client is told about err: its text, except for internal errors and
// a store that cannot serve, whose causes are the server's business (log them).
func ErrorMessage(err error) string {
	switch Status(err) {
	case http.StatusInternalServerError:
		return http.StatusText(http.StatusInternalServerError)
	case http.StatusServiceUnavailable:
		return MessageUnavailable
	}
	return err.Error()
}

// writeError answers err as {"message": "..."} with its Status, and Retry-After for a 429 or
// 503. Internal errors and store trouble are logged and not shown.
func writeError(w http.ResponseWriter, log *slog.Logger, err error) {
	status := Status(err)
	switch {
	case status == http.StatusInternalServerError:
		log.Error("airy: internal error", "err", err)
	case errors.Is(err, chat.ErrUnavailable):
		log.Warn("airy: store unavailable", "err", err)
	}
	if d := RetryAfter(err); d > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((d+time.Second-1)/time.Second)))
	}
	_ = writeJSON(w, status, struct {
		Message string `json:"message"`
	}{ErrorMessage(err)})
}
