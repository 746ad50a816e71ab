// Command server is Parley's ready-made chat server: one engine on a bbolt file (or in
// memory, or on PostgreSQL), with every vendor surface mounted on one mux, a demo page,
// /healthz and a request log. It listens on 127.0.0.1:8080 unless told otherwise.
//
//	go run ./examples/server                 # bbolt file parley.db in -data (./parley-data/)
//	go run ./examples/server -mem            # in memory
//	go run ./examples/server -addr :9000 -db /var/lib/parley/chat.db
//	go run ./examples/server -addr :8081 -pg 'host=/run/postgresql dbname=parley'
//
// With -pg (or PARLEY_PG), any number of servers on one database serve the same rooms: a
// message sent to one reaches the clients of every other, and a client may reconnect to any
// of them and resume where it was.
//
// Every flag can also be set with an environment variable: PARLEY_ and the flag's name in
// capitals with "_" for "-" (PARLEY_ADDR, PARLEY_IDLE_TIMEOUT, ...); a flag on the command
// line wins. At start it prints the URL of each surface and the demo credentials it made
// (kept in the demo file, parley-demo.env by default, as shell "export" lines, so that they
// survive restarts), and stops gracefully on SIGINT or SIGTERM: it stops accepting, lets
// requests finish, closes the WebSocket surfaces, the engine and the store.
//
// It is meant to face the internet as it is, so its defaults hold against a hostile network:
//
//   - Timeouts on every connection: a request's headers must arrive within
//     -read-header-timeout (10s) and the whole request, body included, within -read-timeout
//     (30s); its answer must be written within -write-timeout (30s) of the request; a
//     keep-alive connection waits at most -idle-timeout (60s) for its next request; headers
//     are at most -max-header-bytes (64 KiB). A WebSocket, once upgraded, is out of their
//     reach: its surface keeps it alive or closes it by its own rules.
//   - Caps on open connections: -max-conns-per-client (64, plenty for a browser with many
//     tabs) from one client address (an IPv6 client is its /64), and -max-conns in all, by
//     default the process's open file limit (RLIMIT_NOFILE) less 64 descriptors kept for the
//     store, the logs and the runtime. A connection over a cap is closed as soon as it is
//     accepted. Behind a reverse proxy every client has the proxy's address: raise or turn
//     off (0) the per-client cap there.
//   - Rate limits per client, shared by every surface: anonymous creation (a new Genesys
//     chat, an Airy authenticate) at -create-rate (1/3s: one every 3 seconds) with bursts of
//     -create-burst (20), and other writes at -write-rate (20/s) with bursts of -write-burst
//     (50). A rate is N/DURATION (20/s, 1/3s, 100/1m); 0 turns the limit off. A refused
//     request gets HTTP 429 in its vendor's format.
//
// GET /healthz answers 200 {"status":"UP"}, or 503 {"status":"DOWN","store":"<reason>"} when
// the store failed its last write (a full disk) or cannot be read.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/limit"
	"github.com/parley-chat/chat/storage/bolt"
	"github.com/parley-chat/chat/storage/memory"
	"github.com/parley-chat/chat/storage/postgres"
)

// config is what the flags and environment say.
type config struct {
	addr      string   // listen address
	publicURL string   // the server's address for people and links; "" for one made from addr
	data      string   // data directory: the database, the demo credentials, key files
	db        string   // bbolt file; "" for parley.db in data
	pg        string   // PostgreSQL DSN; "" for bbolt
	mem       bool     // in-memory store instead of db
	demo      bool     // make and keep demo credentials, serve the demo page
	logJSON   bool     // JSON logs instead of text
	tlsCert   string   // TLS certificate chain (PEM); serve HTTPS when set, with tlsKey
	tlsKey    string   // TLS private key (PEM)
	origins   []string // browser origins allowed besides the server's own (CORS, WebSockets)
	pprof     string   // address of the pprof listener; "" for none

	creds credentialFlags // the surfaces' credentials without -demo

	// The http.Server's limits (see newHTTPServer).
	readHeaderTimeout time.Duration
	readTimeout       time.Duration
	writeTimeout      time.Duration
	idleTimeout       time.Duration
	maxHeaderBytes    int

	conns limit.Conns // caps on open connections
	rates limit.Rates // rate limits per client, one Limiter for every surface
}

// Files in the data directory.
const (
	defaultDataDir = "parley-data"
	dbFileName     = "parley.db"
)

// dbPath is the bbolt file the configuration names.
func (c config) dbPath() string {
	if c.db != "" {
		return c.db
	}
	return filepath.Join(c.data, dbFileName)
}

// Defaults of the flags that hold the server against a hostile network.
const (
	defaultReadHeaderTimeout = 10 * time.Second
	// Bodies are at most 1 MiB (the surfaces' limit): sending one in 30 s takes 35 KB/s.
	defaultReadTimeout  = 30 * time.Second
	defaultWriteTimeout = 30 * time.Second // no surface answers with a long poll or a stream
	// Browsers keep idle connections 60 s (Firefox) to 300 s (Chrome) and open a new one when
	// the server has closed theirs.
	defaultIdleTimeout    = 60 * time.Second
	defaultMaxHeaderBytes = 64 << 10 // the APIs' headers are a token and a few short fields
	// A browser keeps at most 6 HTTP/1.1 connections to a host, plus the WebSockets of its
	// tabs: 64 is ten tabs with room to spare, and a few people behind one NAT.
	defaultConnsPerClient = 64
	// fdHeadroom is the file descriptors kept out of -max-conns's default for everything
	// else the process opens: the store, the logs, the listener, the runtime's poller, the
	// demo files, and descriptors of connections refused over a cap, until they are closed.
	fdHeadroom = 64
	// maxDefaultConns bounds the default of -max-conns when the file limit is huge or none.
	maxDefaultConns = 1 << 20
	// unlimitedDefaultConns is the default of -max-conns on a system without a file limit.
	unlimitedDefaultConns = 10_000
	// sweepEvery is how often the rate limiter forgets clients that went away.
	sweepEvery = time.Minute
)

// defaultMaxConns is the default cap on open connections for a process that may have nofile
// files open (known is false on a system without such a limit): nofile less fdHeadroom, so
// that the server can always accept (and refuse) a connection, read its store and write its
// log.
func defaultMaxConns(nofile uint64, known bool) int {
	switch {
	case !known:
		return unlimitedDefaultConns
	case nofile <= 2*fdHeadroom:
		return int(max(nofile/2, 1))
	}
	return int(min(nofile-fdHeadroom, maxDefaultConns))
}

func main() {
	cfg, err := parseFlagsTo(os.Args[1:], os.Getenv, os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0) // -h: usage on stdout, as asked for
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "parley:", err)
		fmt.Fprintln(os.Stderr, "Run with -h for the flags.")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "parley:", err)
		os.Exit(1)
	}
}

// envName is the environment variable that sets the flag called name.
func envName(name string) string {
	return "PARLEY_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// parseFlags reads the flags in args over the environment (getenv) over the defaults.
func parseFlags(args []string, getenv func(string) string) (config, error) {
	return parseFlagsTo(args, getenv, os.Stdout)
}

// parseFlagsTo is parseFlags writing the usage asked for with -h to stdout. It prints nothing
// else: the caller reports an error.
func parseFlagsTo(args []string, getenv func(string) string, stdout io.Writer) (config, error) {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	// The flag package prints errors and the usage itself; this function does, so that -h
	// goes to stdout and an error is one line on stderr.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	usage := func(w io.Writer) {
		fs.SetOutput(w)
		defer fs.SetOutput(io.Discard)
		fmt.Fprint(w, "Usage: server [flags]\n\n"+
			"Parley's chat server: every vendor surface on one listener. Each flag can also be set\n"+
			"with the environment variable named after it; the command line wins. A credential flag's\n"+
			"value may be @FILE, to read it from that file (one list item a line). docs/server.md\n"+
			"says more.\n\n")
		fs.PrintDefaults()
	}
	cfg := config{rates: limit.DefaultRates}
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "listen address (\":8080\" for every interface)")
	fs.StringVar(&cfg.publicURL, "public-url", "",
		"the server's URL as clients reach it, for links and printed URLs (default: from -addr, \"localhost\" for every interface)")
	fs.StringVar(&cfg.data, "data", defaultDataDir,
		"data directory: the database, the demo credentials and key files (made with mode 0700)")
	fs.StringVar(&cfg.db, "db", "", "bbolt database file (default parley.db in -data)")
	fs.BoolVar(&cfg.mem, "mem", false, "keep chats in memory instead of the database file")
	fs.StringVar(&cfg.pg, "pg", "", "keep chats in PostgreSQL at this `DSN` instead of the bbolt file: several servers on one database serve the same rooms")
	fs.BoolVar(&cfg.demo, "demo", true,
		"make demo credentials (kept in demo.env in -data) and serve the demo page; -demo=false takes credentials from the flags below")
	fs.BoolVar(&cfg.logJSON, "log-json", false, "log in JSON")
	fs.StringVar(&cfg.tlsCert, "tls-cert", "", "serve HTTPS with this certificate chain (PEM `file`), with -tls-key")
	fs.StringVar(&cfg.tlsKey, "tls-key", "", "the private key (PEM `file`) of -tls-cert")
	fs.Var((*listValue)(&cfg.origins), "origins",
		"browser origins (`scheme://host[:port]`, comma-separated, or *) whose pages may call the APIs (CORS) and open WebSockets, besides the server's own")
	fs.StringVar(&cfg.pprof, "pprof", "", "serve net/http/pprof on this separate `address` (such as 127.0.0.1:6060); off by default")

	cfg.creds.define(fs)

	fs.DurationVar(&cfg.readHeaderTimeout, "read-header-timeout", defaultReadHeaderTimeout,
		"most time to read a request's headers (0: the read timeout)")
	fs.DurationVar(&cfg.readTimeout, "read-timeout", defaultReadTimeout,
		"most time to read a whole request, body included (0: none)")
	fs.DurationVar(&cfg.writeTimeout, "write-timeout", defaultWriteTimeout,
		"most time from the end of a request's headers to the end of its answer (0: none)")
	fs.DurationVar(&cfg.idleTimeout, "idle-timeout", defaultIdleTimeout,
		"most time a keep-alive connection waits for its next request (0: the read timeout)")
	fs.IntVar(&cfg.maxHeaderBytes, "max-header-bytes", defaultMaxHeaderBytes, "most bytes of a request's headers")

	nofile, known := openFileLimit()
	fs.IntVar(&cfg.conns.Total, "max-conns", defaultMaxConns(nofile, known),
		"most connections open at once, WebSockets included (0: no cap; default: the open file limit less 64)")
	fs.IntVar(&cfg.conns.PerClient, "max-conns-per-client", defaultConnsPerClient,
		"most connections open at once from one client address, an IPv6 /64 (0: no cap)")

	fs.Var(rateValue{&cfg.rates.Create.PerSecond}, "create-rate",
		"rate of anonymous creation per client (new Genesys chats, Airy authenticate), as `N/DURATION` (0: no limit)")
	fs.IntVar(&cfg.rates.Create.Burst, "create-burst", cfg.rates.Create.Burst, "anonymous creations a client may make at once")
	fs.Var(rateValue{&cfg.rates.Write.PerSecond}, "write-rate", "rate of other writes per client, as `N/DURATION` (0: no limit)")
	fs.IntVar(&cfg.rates.Write.Burst, "write-burst", cfg.rates.Write.Burst, "writes a client may make at once")

	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		f.Usage += " (env " + name + ")"
		if v := getenv(name); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%s=%q: %v", name, v, err)
			}
		}
	})
	if envErr != nil {
		return config{}, envErr
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return config{}, err
		}
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return cfg, cfg.check()
}

// check refuses settings that make no sense.
func (c config) check() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"read-header-timeout", c.readHeaderTimeout}, {"read-timeout", c.readTimeout},
		{"write-timeout", c.writeTimeout}, {"idle-timeout", c.idleTimeout},
	} {
		if d.v < 0 {
			return fmt.Errorf("-%s %v: a timeout cannot be negative", d.name, d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int
		min  int
	}{
		{"max-header-bytes", c.maxHeaderBytes, 1}, {"max-conns", c.conns.Total, 0},
		{"max-conns-per-client", c.conns.PerClient, 0},
		{"create-burst", c.rates.Create.Burst, 0}, {"write-burst", c.rates.Write.Burst, 0},
	} {
		if n.v < n.min {
			return fmt.Errorf("-%s %d: at least %d", n.name, n.v, n.min)
		}
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return errors.New("-tls-cert and -tls-key go together")
	}
	if c.publicURL != "" {
		if _, err := parsePublicURL(c.publicURL); err != nil {
			return err
		}
	}
	for _, o := range c.origins {
		if err := checkOrigin(o); err != nil {
			return err
		}
	}
	if c.mem && c.pg != "" {
		return errors.New("-mem and -pg: choose one store")
	}
	if c.data == "" {
		return errors.New("-data: a directory is needed (\".\" for the working directory)")
	}
	if c.demo {
		if name := c.creds.given(); name != "" {
			return fmt.Errorf("-%s: with -demo (the default) the server makes its own credentials; add -demo=false to give them", name)
		}
	}
	return nil
}

// newHTTPServer is the http.Server for h with the limits in c. net/http gives a hijacked
// (WebSocket) connection back without its deadlines, and internal/wsconn makes sure of it.
func newHTTPServer(c config, h http.Handler, errorLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: c.readHeaderTimeout,
		ReadTimeout:       c.readTimeout,
		WriteTimeout:      c.writeTimeout,
		IdleTimeout:       c.idleTimeout,
		MaxHeaderBytes:    c.maxHeaderBytes,
		ErrorLog:          errorLog,
	}
}

// run serves until ctx ends, then shuts down gracefully.
func run(ctx context.Context, cfg config, stdout, logw io.Writer) error {
	var handler slog.Handler = slog.NewTextHandler(logw, nil)
	if cfg.logJSON {
		handler = slog.NewJSONHandler(logw, nil)
	}
	log := slog.New(handler)

	var tlsConfig *tls.Config
	if cfg.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey)
		if err != nil {
			return fmt.Errorf("-tls-cert/-tls-key: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if cfg.demo || !cfg.mem && cfg.pg == "" && cfg.db == "" {
		if err := os.MkdirAll(cfg.data, 0o700); err != nil {
			return fmt.Errorf("-data: %w", err)
		}
		warnOldFiles(log, cfg)
	}

	var store chat.Store
	switch {
	case cfg.mem:
		store = memory.New()
	case cfg.pg != "":
		s, err := postgres.Open(ctx, cfg.pg, nil)
		if err != nil {
			return err
		}
		store = s
	default:
		s, err := bolt.Open(cfg.dbPath(), nil)
		if err != nil {
			return err
		}
		store = s
	}
	defer store.Close()
	engine, err := chat.Open(ctx, store, chat.WithLogger(log))
	if err != nil {
		return err
	}
	defer engine.Close()

	inner, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	ln := limit.Listener(inner, cfg.conns)
	base := baseURL(cfg.publicURL, ln.Addr(), tlsConfig != nil)
	closeLn := func() { ln.Close() }

	var d *demo
	var creds *credentials
	if cfg.demo {
		if d, err = loadDemo(ctx, engine, cfg.data, base); err != nil {
			closeLn()
			return err
		}
		creds = d.credentials()
	} else if creds, err = cfg.creds.resolve(ctx, engine); err != nil {
		closeLn()
		return err
	}

	pprofAddr := ""
	if cfg.pprof != "" {
		var pprofSrv *http.Server
		if pprofSrv, pprofAddr, err = startPprof(cfg.pprof, log); err != nil {
			closeLn()
			return err
		}
		defer pprofSrv.Close()
	}

	// One Limiter for every surface, so that a client's writes count once whichever API it
	// uses; a Limiter of zero rates limits nothing (a nil one would be each surface's default).
	lim := limit.New(cfg.rates)
	stopSweep := sweep(lim, ln, log, sweepEvery)
	defer stopSweep()
	stopping, stopped := context.WithCancel(context.Background())
	defer stopped()
	m, err := mount(engine, mountOptions{base: base, creds: creds, origins: cfg.origins, demo: d, log: log, lim: lim, stopping: stopping})
	if err != nil {
		closeLn()
		return err
	}
	defer m.close()

	srv := newHTTPServer(cfg, logRequests(log, m.handler), slog.NewLogLogger(handler, slog.LevelWarn))
	srv.BaseContext = func(net.Listener) context.Context { return context.WithoutCancel(ctx) }
	srv.TLSConfig = tlsConfig
	srv.RegisterOnShutdown(stopped)
	printBanner(stdout, cfg, ln.Addr(), base, m.lines, d, pprofAddr)

	serveErr := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			serveErr <- srv.ServeTLS(ln, "", "")
		} else {
			serveErr <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Stop accepting and let plain requests finish; WebSocket connections are hijacked and
	// end when their surfaces close (deferred above, before the engine and the store).
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("shutdown", "err", err)
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// warnOldFiles tells about files that versions before -data kept in the working directory.
// They are not read any more, nor moved: moving a database is the operator's call.
func warnOldFiles(log *slog.Logger, cfg config) {
	if _, err := os.Stat(cfg.dbPath()); err == nil {
		return // the data directory is in use already
	}
	for _, f := range oldFiles {
		if _, err := os.Stat(f); err == nil && filepath.Clean(cfg.data) != "." {
			log.Warn("a file of an earlier version is in the working directory and is not read: "+
				"the server keeps its files in -data now (docs/server.md says how to move them)", "file", f, "data", cfg.data)
		}
	}
}

// startPprof serves net/http/pprof on its own listener at addr, apart from the public one.
func startPprof(addr string, log *slog.Logger) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("-pprof: %w", err)
	}
	if !isLoopback(ln.Addr().String()) {
		log.Warn("pprof listens on an address other machines may reach: it shows the program's memory and code", "addr", ln.Addr())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: defaultReadHeaderTimeout}
	go srv.Serve(ln)
	return srv, ln.Addr().String(), nil
}

// sweep makes lim forget, every interval, the clients that went away (it keeps a bucket per
// client address), and logs what the limits refused since the last time. stop ends it.
func sweep(lim *limit.Limiter, ln *limit.CappedListener, log *slog.Logger, every time.Duration) (stop func()) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		var conns, creates, writes uint64
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			lim.Sweep()
			c, cr, w := ln.Refused(), lim.Refused(limit.Create), lim.Refused(limit.Write)
			if c != conns || cr != creates || w != writes {
				log.Warn("limits refused", "connections", c-conns, "creations", cr-creates, "writes", w-writes,
					"open_connections", ln.Open(), "since", every)
				conns, creates, writes = c, cr, w
			}
		}
	}()
	return func() { close(done); <-stopped }
}
