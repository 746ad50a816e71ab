package main

import (
	"bufio"
	"context"
	"crypto/rsa"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/httpapi/airy"
	"github.com/parley-chat/chat/httpapi/chapi"
	"github.com/parley-chat/chat/httpapi/genesys"
	"github.com/parley-chat/chat/httpapi/nexmo"
	"github.com/parley-chat/chat/internal/httpx"
	"github.com/parley-chat/chat/limit"
	wsairy "github.com/parley-chat/chat/wsapi/airy"
	"github.com/parley-chat/chat/wsapi/bezlimit"
)

//go:embed web
var webFiles embed.FS

// The demo Bezlimit users the demo tokens stand for.
var (
	demoOperator = bezlimit.User{ID: 1, Role: "operator", FirstName: "Olga", LastName: "Operator"}
	demoVisitor  = bezlimit.User{ID: 2, Role: "client", FirstName: "Victor", LastName: "Visitor"}
)

// mount builds the mux with every surface under its prefix, and returns a function that
// closes the surfaces which keep connections or goroutines. lim is the server's one rate
// limiter, for every surface's Config.Limiter.
func mount(e *chat.Engine, d *demo, base string, log *slog.Logger, lim *limit.Limiter) (http.Handler, func(), error) {
	mux := http.NewServeMux()
	var closers []func() error
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			if err := closers[i](); err != nil {
				log.Warn("closing a surface", "err", err)
			}
		}
	}
	fail := func(err error) (http.Handler, func(), error) { closeAll(); return nil, nil, err }

	genesysService := d.get(varGenesys)
	ch, err := chapi.New(e, chapi.Config{
		Keys: map[string]chat.ID{d.get(varChapiKey): d.chapiUser}, Logger: log, Limiter: lim,
		// The demo's Chapi key is the program's own integration: it may read and answer the
		// demo's Genesys chats by their chatId (the README's walk-through does).
		MayUse: func(_ context.Context, u chat.User, r chat.Room) bool {
			s, ok := genesys.Service(r)
			return ok && s == genesysService && u.ID == d.chapiUser
		},
	})
	if err != nil {
		return fail(err)
	}
	mux.Handle("/chapi/", http.StripPrefix("/chapi", ch))

	gen, err := genesys.New(e, genesys.Config{ServiceNames: []string{genesysService}, Logger: log, Limiter: lim})
	if err != nil {
		return fail(err)
	}
	closers = append(closers, gen.Close)
	mux.Handle("/genesys/2/chat/", http.StripPrefix("/genesys/2/chat", gen))

	nx, err := nexmo.New(e, nexmo.Config{
		Limiter: lim,
		BaseURL: base + "/nexmo/beta",
		Keys:    map[string]*rsa.PublicKey{d.get(varNexmoApp): &d.nexmoKey.PublicKey},
		// The demo's agents work through the Nexmo API: Genesys clients see them as Agents.
		MemberRole: chat.RoleAgent,
		Logger:     log,
	})
	if err != nil {
		return fail(err)
	}
	mux.Handle("/nexmo/", nx)

	tokens, err := airy.NewTokens(airy.TokenConfig{Secret: []byte(d.get(varAirySecret))})
	if err != nil {
		return fail(err)
	}
	airyREST, err := airy.New(airy.Config{
		Limiter: lim,
		Engine:  e, Tokens: tokens, Channels: airy.Channels(d.get(varAiryChannel)),
		SystemToken: d.get(varAirySystem), Logger: log,
	})
	if err != nil {
		return fail(err)
	}
	mux.Handle("/airy/", http.StripPrefix("/airy", airyREST))
	airyWS, err := wsairy.New(wsairy.Config{Service: airyREST, Logger: log})
	if err != nil {
		return fail(err)
	}
	closers = append(closers, airyWS.Close)
	// The widget opens its socket at the host's root whatever prefix its HTTP calls use.
	mux.Handle("/ws.chatplugin", airyWS)

	bz := bezlimit.New(e, bezlimit.Config{
		Limiter: lim,
		Authenticate: func(_ context.Context, token string) (bezlimit.Identity, error) {
			for _, c := range []struct {
				token string
				user  bezlimit.User
			}{{d.get(varBezOperator), demoOperator}, {d.get(varBezVisitor), demoVisitor}} {
				if subtle.ConstantTimeCompare([]byte(token), []byte(c.token)) == 1 {
					return bezlimit.Identity{User: c.user}, nil
				}
			}
			return bezlimit.Identity{}, errors.New("unknown token")
		},
		APIToken: d.get(varBezAPI),
		Logger:   log,
	})
	closers = append(closers, bz.Close)
	mux.Handle("/bezlimit/", http.StripPrefix("/bezlimit", bz))

	stopDispatch := dispatchOperator(e, log)
	closers = append(closers, func() error { stopDispatch(); return nil })

	mux.Handle("GET /healthz", healthz(e))
	web, _ := fs.Sub(webFiles, "web")
	mux.Handle("GET /{$}", http.FileServerFS(web))
	mux.Handle("GET /demo/", http.StripPrefix("/demo", http.FileServerFS(web)))
	return mux, closeAll, nil
}

// healthTimeout bounds the store check of /healthz: a store that takes longer is down for
// whoever asks.
const healthTimeout = 5 * time.Second

// health is the answer of /healthz.
type health struct {
	Status string `json:"status"`          // UP or DOWN
	Store  string `json:"store,omitempty"` // why the store is down
}

// healthz answers 200 {"status":"UP"} while the engine can serve, and 503
// {"status":"DOWN","store":"<reason>"} while its store cannot: it failed its last write (a
// full disk), it cannot be read, or it is closed.
func healthz(e *chat.Engine) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		w.Header().Set("Cache-Control", "no-store")
		if err := e.Health(ctx); err != nil {
			if ctx.Err() != nil && r.Context().Err() == nil {
				err = fmt.Errorf("the store did not answer within %v", healthTimeout)
			}
			httpx.WriteJSON(w, http.StatusServiceUnavailable, health{Status: "DOWN", Store: err.Error()})
			return
		}
		httpx.WriteJSON(w, http.StatusOK, health{Status: "UP"})
	})
}

// dispatchOperator is the demo's routing: it joins the demo operator to every new Airy
// conversation, so that the operator view can answer it over Bezlimit. A real program routes
// chats its own way (Bezlimit's /update/chat names a chat's operator).
func dispatchOperator(e *chat.Engine, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	feed := e.Feed()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer feed.Close()
		for {
			ev, err := feed.Next(ctx)
			if errors.Is(err, chat.ErrLagged) {
				continue // a missed join only leaves a conversation unassigned in the demo
			}
			if err != nil {
				return
			}
			if ev.Type != chat.EventJoined {
				continue
			}
			room, err := e.Room(ctx, ev.RoomID)
			if err != nil || room.Attributes[airy.AttrChannel] == "" {
				continue
			}
			op, err := e.UserByName(ctx, "bezlimit:1")
			if err != nil || op.ID == ev.User {
				continue // the operator has not connected yet, or this is its own join
			}
			if _, err := e.Join(ctx, room.ID, op.ID, chat.JoinOptions{Role: chat.RoleOperator}); err != nil && !errors.Is(err, chat.ErrConflict) {
				log.Warn("demo: assigning the operator", "room", room.ID, "err", err)
			}
		}
	}()
	return func() { cancel(); <-done }
}

// logRequests logs one line per request.
func logRequests(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		log.Info("request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"bytes", rec.bytes, "duration", time.Since(start).Round(time.Microsecond), "remote", r.RemoteAddr)
	})
}

// statusRecorder remembers the status and size of an answer. It passes Hijack and Flush
// through, which the WebSocket surfaces need.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (s *statusRecorder) WriteHeader(code int) { s.status = code; s.ResponseWriter.WriteHeader(code) }

func (s *statusRecorder) Write(b []byte) (int, error) {
	n, err := s.ResponseWriter.Write(b)
	s.bytes += n
	return n, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := s.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("hijack not supported")
	}
	s.status = http.StatusSwitchingProtocols
	return h.Hijack()
}
