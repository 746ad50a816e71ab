package nexmo

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/fakeclock"
	"github.com/parley-chat/chat/internal/testkit"
	"github.com/parley-chat/chat/limit"
)

const (
	testBase  = "https://api.example.com/beta"
	testApp   = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
	otherApp  = "11111111-2222-3333-4444-555555555555"
	startTime = "2026-03-01T10:00:00Z"
)

var (
	keysOnce          sync.Once
	testKey, wrongKey *rsa.PrivateKey
)

func keys(t testing.TB) (*rsa.PrivateKey, *rsa.PrivateKey) {
	keysOnce.Do(func() {
		var err error
		if testKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if wrongKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return testKey, wrongKey
}

// storeFactory makes a fresh chat.Store for one test.
type storeFactory = testkit.Store

// stores is every Store the handler tests run on: memory and bolt.
var stores = testkit.Stores

// env is one handler on one engine, with a fake clock shared by the engine and the token
// checks.
type env struct {
	t     testing.TB
	clock *fakeclock.Clock
	e     *chat.Engine
	h     *Handler
	admin string
}

func newEnv(t testing.TB, sf storeFactory, mod ...func(*Config)) *env {
	t.Helper()
	key, _ := keys(t)
	start, _ := time.Parse(time.RFC3339, startTime)
	clock := fakeclock.New(start)
	st := sf.Open(t)
	e, err := chat.Open(context.Background(), st, chat.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Close()
		st.Close()
	})
	// Tests make writes faster than any client should: no rate limit unless a test sets one.
	cfg := Config{BaseURL: testBase, Keys: map[string]*rsa.PublicKey{testApp: &key.PublicKey}, Now: clock.Now,
		Limiter: limit.New(limit.Rates{})}
	for _, m := range mod {
		m(&cfg)
	}
	h, err := New(e, cfg)
	if err != nil {
		t.Fatal(err)
	}
	v := &env{t: t, clock: clock, e: e, h: h}
	v.admin = v.token("")
	return v
}

// sign signs claims with key and method.
func sign(t testing.TB, method jwt.SigningMethod, key any, c jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// token is a valid RS256 token at the env's clock, for sub ("" = admin), living 24 hours.
func (v *env) token(sub string) string {
	key, _ := keys(v.t)
	now := v.clock.Now()
	return sign(v.t, jwt.SigningMethodRS256, key, Claims{ApplicationID: testApp, RegisteredClaims: jwt.RegisteredClaims{
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(24 * time.Hour)),
		ID: "jti-1", Subject: sub}})
}

// resp is an answer: its status and its JSON body decoded into generic values.
type resp struct {
	Status int
	Header http.Header
	Raw    []byte
	JSON   any
}

func (r resp) obj() map[string]any {
	m, _ := r.JSON.(map[string]any)
	return m
}

func (r resp) arr() []any {
	a, _ := r.JSON.([]any)
	return a
}

func (r resp) str(key string) string {
	s, _ := r.obj()[key].(string)
	return s
}

// do serves one request with token (none if "") and body (marshalled unless a string or
// []byte).
func (v *env) do(method, path, token string, body any) resp {
	v.t.Helper()
	return v.doRaw(method, "/beta"+path, token, body)
}

// doReader serves a request whose body has no known length (as a chunked upload).
func (v *env) doReader(method, path, token string, body io.Reader) resp {
	v.t.Helper()
	return v.doRaw(method, "/beta"+path, token, io.MultiReader(body))
}

// doRaw serves a request for the full path.
func (v *env) doRaw(method, path, token string, body any) resp {
	v.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
		rd = bytes.NewReader(nil)
	case string:
		rd = bytes.NewReader([]byte(b))
	case []byte:
		rd = bytes.NewReader(b)
	case io.Reader:
		rd = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			v.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	v.h.ServeHTTP(w, req)
	out := resp{Status: w.Code, Header: w.Header(), Raw: w.Body.Bytes()}
	if len(out.Raw) > 0 {
		if err := json.Unmarshal(out.Raw, &out.JSON); err != nil {
			v.t.Fatalf("%s %s: answer is not JSON: %q", method, path, out.Raw)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			v.t.Fatalf("%s %s: Content-Type %q", method, path, ct)
		}
	}
	return out
}

// must checks the status of an answer and returns it.
func (v *env) must(status int, r resp) resp {
	v.t.Helper()
	if r.Status != status {
		v.t.Fatalf("status %d, want %d: %s", r.Status, status, r.Raw)
	}
	return r
}

// wantError checks an error answer's status and code (and field, when not "").
func (v *env) wantError(r resp, status int, code, field string) {
	v.t.Helper()
	if r.Status != status || r.str("code") != code {
		v.t.Fatalf("got %d %s, want %d %s: %s", r.Status, r.str("code"), status, code, r.Raw)
	}
	if r.str("description") == "" {
		v.t.Fatalf("error without description: %s", r.Raw)
	}
	if field != "" {
		detail, _ := r.obj()["error"].(map[string]any)
		if _, ok := detail[field]; !ok {
			v.t.Fatalf("error does not name field %q: %s", field, r.Raw)
		}
	}
}

// user creates a user through the API and returns its wire id.
func (v *env) user(name string) string {
	v.t.Helper()
	return v.must(200, v.do("POST", "/users", v.admin, map[string]any{"name": name, "display_name": strings.ToUpper(name)})).str("id")
}

// conversation creates a conversation through the API and returns its wire id.
func (v *env) conversation(name string) string {
	v.t.Helper()
	return v.must(200, v.do("POST", "/conversations", v.admin, map[string]any{"name": name})).str("id")
}

// join joins a user to a conversation and returns the member id.
func (v *env) join(conv, user string) string {
	v.t.Helper()
	return v.must(201, v.do("POST", "/conversations/"+conv+"/members", v.admin,
		map[string]any{"action": "join", "user_id": user, "channel": map[string]any{"type": "app"}})).str("id")
}

func engineID(t testing.TB, prefix, s string) chat.ID {
	t.Helper()
	id, ok := parseID(prefix, s)
	if !ok {
		t.Fatalf("bad id %q", s)
	}
	return id
}

// jsonOf decodes a JSON literal into generic values, for go-cmp comparisons with answers.
func jsonOf(t testing.TB, format string, args ...any) any {
	t.Helper()
	var v any
	s := fmt.Sprintf(format, args...)
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad expected JSON %s: %v", s, err)
	}
	return v
}

func diff(t testing.TB, want, got any) {
	t.Helper()
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("answer mismatch (-want +got):\n%s", d)
	}
}

// TestMain checks that the package's tests leave no goroutine of the engine or the handler
// behind (goroutines of the runtime and the testing package, such as the fuzzer's signal
// handler, are not ours and are ignored).
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		var leaked []string
		for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			leaked = ourGoroutines()
			if len(leaked) == 0 || time.Now().After(deadline) {
				break
			}
		}
		if len(leaked) > 0 {
			fmt.Fprintf(os.Stderr, "goroutine leak:\n%s\n", strings.Join(leaked, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// ourGoroutines returns the stacks of goroutines running code of this module, other than
// TestMain's.
func ourGoroutines() []string {
	buf := make([]byte, 1<<20)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "github.com/parley-chat/chat") && !strings.Contains(g, "nexmo.TestMain") {
			out = append(out, g)
		}
	}
	return out
}

// doWithHeader serves a request with a raw Authorization header ("" for none).
func (v *env) doWithHeader(method, path, authorization string, body any) resp {
	v.t.Helper()
	var rd io.Reader = bytes.NewReader(nil)
	if s, ok := body.(string); ok {
		rd = bytes.NewReader([]byte(s))
	}
	req := httptest.NewRequest(method, "/beta"+path, rd)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	w := httptest.NewRecorder()
	v.h.ServeHTTP(w, req)
	out := resp{Status: w.Code, Header: w.Header(), Raw: w.Body.Bytes()}
	if err := json.Unmarshal(out.Raw, &out.JSON); err != nil {
		v.t.Fatalf("answer is not JSON: %q", out.Raw)
	}
	return out
}
