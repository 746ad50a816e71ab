package main

import (
	"bufio"
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
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

// mountOptions is what mount needs besides the engine.
type mountOptions struct {
	base    string         // the server's public URL, for links
	creds   *credentials   // what the surfaces check clients against
	origins []string       // browser origins allowed besides the server's own (-origins)
	demo    *demo          // the demo's credentials; nil without -demo
	log     *slog.Logger   //
	lim     *limit.Limiter // the server's one rate limiter
	// stopping ends when the server begins to shut down: the demo's long polls answer then.
	stopping context.Context
}

// banner is one line of the start banner: a surface, where it is, and what a client needs.
type banner struct{ name, where, note string }

// mounted is the server's handler, what closes it, and what the banner says about it.
type mounted struct {
	handler http.Handler
	close   func()
	lines   []banner
}

// mount builds the mux with every surface whose credentials are given under its prefix,
// the demo page and its API with -demo, and /healthz. Its close function closes the
// surfaces which keep connections or goroutines.
func mount(e *chat.Engine, o mountOptions) (*mounted, error) {
	mux := http.NewServeMux()
	m := &mounted{handler: mux}
	var closers []func() error
	m.close = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			if err := closers[i](); err != nil {
				o.log.Warn("closing a surface", "err", err)
			}
		}
	}
	fail := func(err error) (*mounted, error) { m.close(); return nil, err }
	line := func(name, where, note string) { m.lines = append(m.lines, banner{name, where, note}) }
	off := func(name, why string) { line(name, "off", why) }
	ws := "ws" + strings.TrimPrefix(o.base, "http") // ws:// or wss://
	cr := o.creds
	show := func(secret string) string { // credentials are printed in demo mode only
		if o.demo == nil {
			return ""
		}
		return secret
	}

	if len(cr.chapiKeys) > 0 {
		cfg := chapi.Config{Keys: cr.chapiKeys, Logger: o.log, Limiter: o.lim}
		if o.demo != nil {
			// The demo's Chapi key is the program's own integration: it may read and answer
			// the demo's Genesys chats by their chatId (the README's walk-through does).
			// Without the demo, Chapi keys reach only the rooms Chapi's default allows.
			cfg.MayUse = func(_ context.Context, u chat.User, r chat.Room) bool {
				s, ok := genesys.Service(r)
				return ok && slices.Contains(cr.genesysServices, s) && u.ID == o.demo.chapiUser
			}
		}
		ch, err := chapi.New(e, cfg)
		if err != nil {
			return fail(err)
		}
		mux.Handle("/chapi/", http.StripPrefix("/chapi", ch))
		note := ""
		if o.demo != nil {
			note = "x-api-key: " + o.demo.get(varChapiKey)
		}
		line("8x8 Chapi", o.base+"/chapi/api/chat/v1/messages", note)
	} else {
		off("8x8 Chapi", "no -chapi-keys")
	}

	if len(cr.genesysServices) > 0 {
		gen, err := genesys.New(e, genesys.Config{ServiceNames: cr.genesysServices, Logger: o.log, Limiter: o.lim})
		if err != nil {
			return fail(err)
		}
		closers = append(closers, gen.Close)
		mux.Handle("/genesys/2/chat/", http.StripPrefix("/genesys/2/chat", gen))
		line("Genesys v2", o.base+"/genesys/2/chat/"+cr.genesysServices[0], "")
	} else {
		off("Genesys v2", "no -genesys-services")
	}

	if len(cr.nexmoKeys) > 0 {
		nx, err := nexmo.New(e, nexmo.Config{
			Limiter: o.lim,
			BaseURL: o.base + "/nexmo/beta",
			Keys:    cr.nexmoKeys,
			// The demo's agents work through the Nexmo API: Genesys clients see them as Agents.
			MemberRole: chat.RoleAgent,
			Logger:     o.log,
		})
		if err != nil {
			return fail(err)
		}
		mux.Handle("/nexmo/", nx)
		note := ""
		if o.demo != nil {
			note = "application " + o.demo.get(varNexmoApp) + ", key " + o.demo.get(varNexmoKeyFile)
		}
		line("Nexmo", o.base+"/nexmo/beta/conversations", note)
	} else {
		off("Nexmo", "no -nexmo-keys")
	}

	var airyREST *airy.Service
	if len(cr.airySecret) > 0 {
		tokens, err := airy.NewTokens(airy.TokenConfig{Secret: cr.airySecret})
		if err != nil {
			return fail(err)
		}
		airyREST, err = airy.New(airy.Config{
			Limiter: o.lim,
			Engine:  e, Tokens: tokens, Channels: airy.Channels(cr.airyChannels...),
			SystemToken: cr.airySystemToken, AllowedOrigins: corsOrigins(o.origins), Logger: o.log,
		})
		if err != nil {
			return fail(err)
		}
		mux.Handle("/airy/", http.StripPrefix("/airy", airyREST))
		airyWS, err := wsairy.New(wsairy.Config{Service: airyREST, OriginPatterns: originPatterns(o.origins), Logger: o.log})
		if err != nil {
			return fail(err)
		}
		closers = append(closers, airyWS.Close)
		// The widget opens its socket at the host's root whatever prefix its HTTP calls use.
		mux.Handle("/ws.chatplugin", airyWS)
		line("Airy (REST)", o.base+"/airy/chatplugin.authenticate", "channel_id "+strings.Join(cr.airyChannels, ", "))
		line("Airy (STOMP)", ws+"/ws.chatplugin", "")
	} else {
		off("Airy", "no -airy-jwt-secret and -airy-channels")
	}

	users := httpx.NewSecrets(cr.bezlimitUsers)
	bz := bezlimit.New(e, bezlimit.Config{
		Limiter: o.lim,
		Authenticate: func(_ context.Context, token string) (bezlimit.Identity, error) {
			if u, ok := users.Lookup(token); ok {
				return bezlimit.Identity{User: u}, nil
			}
			return bezlimit.Identity{}, errors.New("unknown token")
		},
		APIToken:       cr.bezlimitAPI,
		OriginPatterns: originPatterns(o.origins),
		Logger:         o.log,
	})
	closers = append(closers, bz.Close)
	mux.Handle("/bezlimit/", http.StripPrefix("/bezlimit", bz))
	if len(cr.bezlimitUsers) > 0 || cr.bezlimitAPI != "" {
		note := ""
		if t := show(cr.bezlimitAPI); t != "" {
			note = "Api-Token: " + t
		}
		line("Bezlimit", ws+"/bezlimit/chat   "+ws+"/bezlimit/broadcast", note)
	} else {
		off("Bezlimit", "no -bezlimit-tokens or -bezlimit-api-token")
	}

	mux.Handle("GET /healthz", healthz(e))
	web, _ := fs.Sub(webFiles, "web")
	if o.demo != nil && airyREST != nil {
		stopDispatch := dispatchOperator(e, bz, cr.bezlimitAPI, o.log)
		closers = append(closers, func() error { stopDispatch(); return nil })
		api := &demoAPI{e: e, demo: o.demo, creds: cr, airy: airyREST, lim: o.lim, log: o.log, stopping: o.stopping}
		api.register(mux)
		static := noCache(http.FileServerFS(web))
		mux.Handle("GET /{$}", static)
		mux.Handle("GET /demo/", http.StripPrefix("/demo", static))
		line("demo page", o.base+"/", "")
	} else {
		mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprint(w, "Parley chat server. The demo page is off (-demo=false).\n")
		})
	}
	return m, nil
}

// noCache makes browsers ask again for the demo's files (they are embedded: a new binary may
// serve new ones under the same names, without a modification time).
func noCache(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
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

// dispatchOperator is the demo's routing: it makes the demo operator the operator of every
// new Airy conversation, as a Bezlimit deployment does, through the server-to-server call
// /update/chat (which joins the operator and tells /broadcast, so that the operator's list
// shows the chat at once). A real program routes chats its own way.
func dispatchOperator(e *chat.Engine, bz http.Handler, apiToken string, log *slog.Logger) (stop func()) {
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
			// A new Airy conversation is its contact's join.
			if err != nil || room.Attributes[airy.AttrChannel] == "" || room.Attributes[airy.AttrContact] != ev.User.String() {
				continue
			}
			body, _ := json.Marshal(map[string]any{
				"uuid": room.ID.UUID(), "status": "open", "widget": map[string]string{"source": "airy"},
				"operator_user": demoOperator,
			})
			req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/update/chat", bytes.NewReader(body))
			req.Header.Set("Api-Token", apiToken)
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			bz.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				log.Warn("demo: assigning the operator", "room", room.ID, "status", rec.Code, "answer", rec.Body.String())
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
