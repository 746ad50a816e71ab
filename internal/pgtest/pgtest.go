// Package pgtest gives tests a PostgreSQL database of their own. It is for tests only.
//
// If PARLEY_TEST_PG holds a DSN, tests use that server: each test gets a new database on it,
// dropped when the test ends. Otherwise, when the PostgreSQL server binaries are installed
// (initdb and pg_ctl on PATH, or in /usr/lib/postgresql/*/bin), the first test that asks
// starts one server for the whole test binary: initdb into a directory under os.TempDir,
// listening only on a Unix socket in that directory (no TCP), fsync on, started with pg_ctl
// (under runuser as the postgres user when the tests run as root, since PostgreSQL refuses
// to run as root). Main stops it and removes the directory when the tests end.
//
// A test binary that crashes cannot stop its server: the directory is named after the
// binary's process ID, and the next test binary that starts a server stops and removes every
// such directory whose process is gone.
//
// Without PostgreSQL, tests that ask for a database are skipped with a message saying so,
// except when CI=true, where they fail.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// EnvDSN names the environment variable that points the tests at an existing server.
const EnvDSN = "PARLEY_TEST_PG"

// dirPrefix starts the name of every server directory this package makes.
const dirPrefix = "parley-pgtest-"

// Option changes the database DB makes.
type Option func(*config)

type config struct {
	fast bool
}

// Fast makes the database commit without waiting for the WAL to reach the disk
// (synchronous_commit = off): a commit that returned can be lost if the server crashes, which
// tests of behaviour do not care about and which makes them much faster on a slow disk.
// Tests of durability and benchmarks must not use it.
func Fast() Option { return func(c *config) { c.fast = true } }

var (
	mu       sync.Mutex
	shared   *Server // the binary's server, started by the first DB call
	sharedOK bool    // shared was tried (it may have failed: sharedErr)
	sharedEr error
	dbSeq    atomic.Int64
	servers  []*Server // every server this binary started, for Main to stop
)

// Main runs the tests and then stops every server the package started, removes their
// directories and exits with the tests' status. Call it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	StopAll()
	os.Exit(code)
}

// StopAll stops every server this test binary started and removes their directories. Main
// calls it; a TestMain that cannot use Main calls it after m.Run.
func StopAll() {
	mu.Lock()
	all := servers
	servers = nil
	shared, sharedOK, sharedEr = nil, false, nil
	mu.Unlock()
	for _, s := range all {
		_ = s.remove()
	}
}

// unavailable skips t, or fails it under CI=true, saying why there is no database.
func unavailable(t testing.TB, why error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("pgtest: no PostgreSQL for this test (CI=true, so this fails instead of skipping): %v", why)
	}
	t.Skipf("pgtest: skipped, no PostgreSQL: %v (set %s to a DSN, or install the PostgreSQL server)", why, EnvDSN)
}

// DB creates a new, empty database for t and returns a DSN that connects to it. The
// database is dropped when t ends (connections still open then are closed by the server), so
// close what uses it in a cleanup registered after DB.
func DB(t testing.TB, opts ...Option) string {
	t.Helper()
	var c config
	for _, o := range opts {
		o(&c)
	}
	admin, err := adminDSN()
	if err != nil {
		unavailable(t, err)
		return ""
	}
	name := fmt.Sprintf("parley_test_%d_%d", os.Getpid(), dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := exec1(ctx, admin, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := exec1(ctx, admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	if c.fast {
		if err := exec1(ctx, admin, "ALTER DATABASE "+name+" SET synchronous_commit = off"); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	dsn, err := WithDatabase(admin, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return dsn
}

// AdminDSN returns a DSN for the server's maintenance database (postgres), for tests that
// act on the server itself (cut a database's connections, say), or skips t as DB does.
func AdminDSN(t testing.TB) string {
	t.Helper()
	admin, err := adminDSN()
	if err != nil {
		unavailable(t, err)
	}
	return admin
}

// exec1 runs one statement on a connection of its own.
func exec1(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", dsn, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// adminDSN returns the DSN of the maintenance database of PARLEY_TEST_PG's server, or of the
// binary's own server, started on first use.
func adminDSN() (string, error) {
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		return dsn, nil
	}
	mu.Lock()
	defer mu.Unlock()
	if !sharedOK {
		sharedOK = true
		shared, sharedEr = startServer()
		if sharedEr == nil {
			servers = append(servers, shared)
		}
	}
	if sharedEr != nil {
		return "", sharedEr
	}
	return shared.DSN("postgres"), nil
}

// Server is a PostgreSQL server that this package started, in a directory of its own.
type Server struct {
	dir   string // holds data/, the socket and the log
	bin   string // the directory of initdb, pg_ctl and postgres
	owner *user.User
}

// Start starts a server of t's own, stopped and removed when t ends, or skips t as DB does.
// It is for tests that stop and start the server; others share the binary's server through
// DB.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := startServer()
	if err != nil {
		unavailable(t, err)
		return nil
	}
	mu.Lock()
	servers = append(servers, s) // for StopAll, should the cleanup not run
	mu.Unlock()
	t.Cleanup(func() { _ = s.remove() })
	return s
}

// DSN returns a DSN that connects to database db on s through its Unix socket.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("host=%s port=5432 user=postgres dbname=%s sslmode=disable", s.dir, db)
}

// Stop stops the server as a crash would (pg_ctl stop -m immediate: no shutdown checkpoint,
// connections cut).
func (s *Server) Stop() error { return s.pgCtl("stop", "-m", "immediate", "-w") }

// Start starts the server again after Stop.
func (s *Server) Start() error {
	return s.pgCtl("start", "-w", "-t", "120", "-l", filepath.Join(s.dir, "server.log"))
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

func (s *Server) pgCtl(args ...string) error {
	return s.run(filepath.Join(s.bin, "pg_ctl"), append([]string{"-D", s.data()}, args...)...)
}

// run runs a server program, as the postgres user when this process is root.
func (s *Server) run(prog string, args ...string) error {
	var cmd *exec.Cmd
	if s.owner != nil {
		cmd = exec.Command("runuser", append([]string{"-u", s.owner.Username, "--", prog}, args...)...)
	} else {
		cmd = exec.Command(prog, args...)
	}
	cmd.Dir = s.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// pg_ctl start leaves the server running with our stdout: give it none, or a test binary
	// that waits for its output would wait for the server.
	if err := cmd.Run(); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
		return fmt.Errorf("%s %s: %w\n%s\nserver log:\n%s", filepath.Base(prog), strings.Join(args, " "), err, out.Bytes(), tail(log, 2000))
	}
	return nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// remove stops the server if it runs and removes its directory.
func (s *Server) remove() error {
	var err error
	if _, statErr := os.Stat(filepath.Join(s.data(), "postmaster.pid")); statErr == nil {
		err = s.pgCtl("stop", "-m", "fast", "-w")
		if err != nil {
			err = s.pgCtl("stop", "-m", "immediate", "-w")
		}
	}
	if rmErr := os.RemoveAll(s.dir); err == nil {
		err = rmErr
	}
	return err
}

// findBin returns the directory that holds initdb and pg_ctl.
func findBin() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if q, err := exec.LookPath("initdb"); err == nil && filepath.Dir(p) == filepath.Dir(q) {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// The newest major version first.
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
				return d, nil
			}
		}
	}
	return "", errors.New("initdb and pg_ctl are not on PATH nor in /usr/lib/postgresql/*/bin")
}

var serverSeq atomic.Int64

// baseDir is where server directories go: os.TempDir, unless its path is too long for a
// Unix socket path (about 100 bytes), then /tmp.
func baseDir() string {
	d := os.TempDir()
	if len(d) > 60 {
		d = "/tmp"
	}
	return d
}

// startServer makes and starts a new server.
func startServer() (*Server, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	reapStale()
	s := &Server{bin: bin}
	if os.Geteuid() == 0 {
		if s.owner, err = user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("running as root, and there is no postgres user to run the server as: %w", err)
		}
	}
	s.dir = filepath.Join(baseDir(), fmt.Sprintf("%s%d-%d", dirPrefix, os.Getpid(), serverSeq.Add(1)))
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = s.remove()
		}
	}()
	if s.owner != nil {
		uid, _ := strconv.Atoi(s.owner.Uid)
		gid, _ := strconv.Atoi(s.owner.Gid)
		if err := os.Chown(s.dir, uid, gid); err != nil {
			return nil, err
		}
	}
	// --no-sync: the files initdb writes are not flushed at its end (they are of no value
	// after a crash); the server itself runs with fsync on.
	if err := s.run(filepath.Join(bin, "initdb"), "-D", s.data(), "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`
# pgtest: a Unix socket only, in the server's directory
listen_addresses = ''
unix_socket_directories = '%s'
port = 5432
fsync = on
synchronous_commit = on
max_connections = 400
shared_buffers = 128MB
logging_collector = off
`, s.dir)
	f, err := os.OpenFile(filepath.Join(s.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := s.Start(); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// reapStale stops and removes the servers of test binaries that ended without Main (a crash,
// a timeout): their directories are named after process IDs that no longer run.
func reapStale() {
	dirs, _ := filepath.Glob(filepath.Join(baseDir(), dirPrefix+"*"))
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(filepath.Base(d), dirPrefix), "-", 2)[0])
		if err != nil || pid == os.Getpid() || alive(pid) {
			continue
		}
		s := &Server{dir: d}
		if bin, err := findBin(); err == nil {
			s.bin = bin
		}
		if os.Geteuid() == 0 {
			s.owner, _ = user.Lookup("postgres")
		}
		_ = s.remove()
	}
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// WithDatabase returns dsn (a URL or keyword/value connection string) changed to connect to
// database db instead.
func WithDatabase(dsn, db string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("pgtest: DSN: %w", err)
		}
		u.Path, u.RawPath = "/"+db, ""
		return u.String(), nil
	}
	// In a keyword/value string a later keyword wins. A trailing backslash escapes the end of
	// the string (libpq drops it): drop it, or it would escape the space added.
	if n := len(dsn) - len(strings.TrimRight(dsn, `\`)); n%2 == 1 {
		dsn = dsn[:len(dsn)-1]
	}
	out := dsn + " dbname='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(db) + "'"
	// Check the result rather than trust the rule with someone's database: a last keyword
	// with an empty value, for one, would take "dbname=..." as its value.
	before, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "", fmt.Errorf("pgtest: DSN: %w", err)
	}
	after, err := pgconn.ParseConfig(out)
	if err != nil || after.Database != db || after.Host != before.Host || after.Port != before.Port ||
		after.User != before.User || after.Password != before.Password || len(after.RuntimeParams) != len(before.RuntimeParams) {
		return "", fmt.Errorf("pgtest: cannot point DSN %q at database %q: end it with a complete keyword=value", dsn, db)
	}
	return out, nil
}
