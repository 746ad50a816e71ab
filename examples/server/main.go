// Command server is Parley's ready-made chat server: one engine on a bbolt file (or in
// memory), with every vendor surface mounted on one mux, a demo page, /healthz and a request
// log. It listens on 127.0.0.1:8080 unless told otherwise.
//
//	go run ./examples/server                 # bbolt file parley.db in the working directory
//	go run ./examples/server -mem            # in memory
//	go run ./examples/server -addr :9000 -db /var/lib/parley/chat.db
//
// Flags can also be set with the environment variables PARLEY_ADDR, PARLEY_DB, PARLEY_MEM and
// PARLEY_DEMO. At start it prints the URL of each surface and the demo credentials it made
// (kept in the demo file, parley-demo.env by default, so that they survive restarts), and
// stops gracefully on SIGINT or SIGTERM: it stops accepting, lets requests finish, closes the
// WebSocket surfaces, the engine and the store.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/storage/bolt"
	"github.com/parley-chat/chat/storage/memory"
)

// config is what the flags and environment say.
type config struct {
	addr     string // listen address
	db       string // bbolt file
	mem      bool   // in-memory store instead of db
	demoFile string // where demo credentials are kept
	logJSON  bool   // JSON logs instead of text
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "parley:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, getenv func(string) string) (config, error) {
	envOr := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	var cfg config
	fs.StringVar(&cfg.addr, "addr", envOr("PARLEY_ADDR", "127.0.0.1:8080"), "listen address (env PARLEY_ADDR)")
	fs.StringVar(&cfg.db, "db", envOr("PARLEY_DB", "parley.db"), "bbolt database file (env PARLEY_DB)")
	memDefault, _ := strconv.ParseBool(getenv("PARLEY_MEM"))
	fs.BoolVar(&cfg.mem, "mem", memDefault, "keep chats in memory instead of the database file (env PARLEY_MEM)")
	fs.StringVar(&cfg.demoFile, "demo", envOr("PARLEY_DEMO", "parley-demo.env"), "file keeping the demo credentials (env PARLEY_DEMO)")
	fs.BoolVar(&cfg.logJSON, "log-json", false, "log in JSON")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return cfg, nil
}

// run serves until ctx ends, then shuts down gracefully.
func run(ctx context.Context, cfg config, stdout, logw io.Writer) error {
	var handler slog.Handler = slog.NewTextHandler(logw, nil)
	if cfg.logJSON {
		handler = slog.NewJSONHandler(logw, nil)
	}
	log := slog.New(handler)

	var store chat.Store
	if cfg.mem {
		store = memory.New()
	} else {
		s, err := bolt.Open(cfg.db, nil)
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

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()

	demo, err := loadDemo(ctx, engine, cfg.demoFile, base)
	if err != nil {
		ln.Close()
		return err
	}
	mux, closeSurfaces, err := mount(engine, demo, base, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer closeSurfaces()

	srv := &http.Server{
		Handler:           logRequests(log, mux),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(handler, slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	printBanner(stdout, base, cfg, demo)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
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
