package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/chat/httpapi/nexmo"
)

// TestHelpExitsZero: -h prints the usage on stdout, nothing on stderr, and exits 0; a bad
// flag exits 2 with one error line and a hint.
func TestHelpExitsZero(t *testing.T) {
	bin := buildServer(t)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "-h")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("-h: %v\n%s", err, stderr.String())
	}
	if !strings.HasPrefix(stdout.String(), "Usage: server [flags]") || !strings.Contains(stdout.String(), "-public-url") || stderr.Len() != 0 {
		t.Errorf("-h: stdout %q, stderr %q", stdout.String(), stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	cmd = exec.Command(bin, "-no-such-flag")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("a bad flag: %v, want exit status 2", err)
	}
	if want := "parley: flag provided but not defined: -no-such-flag\nRun with -h for the flags.\n"; stderr.String() != want || stdout.Len() != 0 {
		t.Errorf("a bad flag: stdout %q, stderr %q, want stderr %q", stdout.String(), stderr.String(), want)
	}
}

// TestListenOnEveryInterface: listening on ":port" prints a URL one can visit (localhost),
// never http://[::]:port, and the demo file and the Nexmo links use it.
func TestListenOnEveryInterface(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, buildServer(t), dir, "-addr", ":0")
	if strings.Contains(s.banner, "[::]") || !strings.Contains(s.banner, " (every interface) at http://localhost:") {
		t.Errorf("banner: %s", s.banner)
	}
	if !strings.HasPrefix(s.env["PARLEY_URL"], "http://localhost:") {
		t.Errorf("PARLEY_URL=%s", s.env["PARLEY_URL"])
	}
	s.stop(t)
}

// TestPublicURL: -public-url is what the banner, the demo file and the links say.
func TestPublicURL(t *testing.T) {
	dir := t.TempDir()
	const public = "https://chat.example.com:8443"
	s := startServer(t, buildServer(t), dir, "-public-url", public+"/")
	s.base = "http://" + s.addr
	if !strings.Contains(s.banner, " at "+public+" ") {
		t.Errorf("banner: %s", s.banner)
	}
	if s.env["PARLEY_URL"] != public {
		t.Errorf("PARLEY_URL=%s, want %s", s.env["PARLEY_URL"], public)
	}
	var users []struct {
		Href string `json:"href"`
	}
	s.nexmo(t, "GET", "/users", nil, &users)
	if len(users) == 0 || !strings.HasPrefix(users[0].Href, public+"/nexmo/beta/users/") {
		t.Errorf("Nexmo links: %+v", users)
	}
	s.stop(t)
}

// TestDataDirectory: the database, the demo credentials and the key pair are in -data, made
// private, and nothing is written to the working directory. Files of older versions there are
// named in a warning and left alone.
func TestDataDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "parley-demo.env"), []byte("export OLD='1'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(buildServer(t), "-addr", "127.0.0.1:0") // every default: ./parley-data
	s := startCommand(t, dir, cmd)
	s.env = readEnvFile(t, filepath.Join(dir, "parley-data", "demo.env"))
	s.stop(t)

	var names []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"parley-data", "parley-demo.env"}, names); diff != "" {
		t.Errorf("the working directory (-want +got):\n%s", diff)
	}
	names = nil
	entries, _ = os.ReadDir(filepath.Join(dir, "parley-data"))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"demo.env", "nexmo-private.pem", "nexmo-public.pem", "parley.db"}, names); diff != "" {
		t.Errorf("the data directory (-want +got):\n%s", diff)
	}
	if fi, err := os.Stat(filepath.Join(dir, "parley-data")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the data directory: %v %v", fi.Mode(), err)
	}
	if s.env["NEXMO_PRIVATE_KEY_FILE"] != filepath.Join("parley-data", "nexmo-private.pem") {
		t.Errorf("NEXMO_PRIVATE_KEY_FILE=%s", s.env["NEXMO_PRIVATE_KEY_FILE"])
	}
	if !strings.Contains(s.logs.String(), "file=parley-demo.env") {
		t.Errorf("no warning about the old demo file:\n%s", s.logs)
	}
}

// TestTLS: with -tls-cert and -tls-key the server speaks HTTPS, and says https.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	s := startServer(t, buildServer(t), dir, "-tls-cert", certFile, "-tls-key", keyFile)
	if !strings.HasPrefix(s.base, "https://") || !strings.HasPrefix(s.env["PARLEY_URL"], "https://127.0.0.1:") {
		t.Fatalf("banner %q, PARLEY_URL=%s", s.banner, s.env["PARLEY_URL"])
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Get(s.base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Errorf("GET /healthz over TLS: %s", resp.Status)
	}
	// A WebSocket over TLS: the demo operator on Bezlimit's /broadcast.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "wss://"+s.addr+"/bezlimit/broadcast?token="+s.env["BEZLIMIT_OPERATOR_TOKEN"],
		&websocket.DialOptions{HTTPClient: client})
	if err != nil {
		t.Fatalf("wss: %v", err)
	}
	c.Close(websocket.StatusNormalClosure, "")
	s.stop(t)
}

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "parley test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestOrigins: -origins lets pages of the listed origins call the Airy API (CORS) and open
// both WebSocket surfaces; pages of other origins may not.
func TestOrigins(t *testing.T) {
	dir := t.TempDir()
	const shop = "https://shop.example.com"
	s := startServer(t, buildServer(t), dir, "-origins", shop+",http://[::1]:3000")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	preflight := func(origin string) string {
		req, _ := http.NewRequestWithContext(ctx, http.MethodOptions, s.base+"/airy/chatplugin.authenticate", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("Access-Control-Allow-Origin")
	}
	if got := preflight(shop); got != shop {
		t.Errorf("CORS for %s: %q", shop, got)
	}
	if got := preflight("https://evil.example.com"); got != "" {
		t.Errorf("CORS for another origin: %q", got)
	}

	var auth struct {
		Token string `json:"token"`
	}
	s.airy(t, "authenticate", "", map[string]any{"channel_id": s.env["AIRY_CHANNEL_ID"]}, &auth)
	for _, tc := range []struct {
		origin string
		ok     bool
	}{{shop, true}, {"http://[::1]:3000", true}, {"https://evil.example.com", false}, {"http://shop.example.com", false}, {"", true}} {
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		for _, u := range []string{
			"ws://" + s.addr + "/bezlimit/broadcast?token=" + s.env["BEZLIMIT_OPERATOR_TOKEN"],
			"ws://" + s.addr + "/ws.chatplugin",
		} {
			opts := &websocket.DialOptions{HTTPHeader: h, Subprotocols: []string{"v12.stomp"}}
			c, resp, err := websocket.Dial(ctx, u, opts)
			if (err == nil) != tc.ok {
				status := 0
				if resp != nil {
					status = resp.StatusCode
				}
				t.Errorf("%s from origin %q: %v (%d), want allowed %v", path.Base(strings.Split(u, "?")[0]), tc.origin, err, status, tc.ok)
			}
			if c != nil {
				c.CloseNow()
			}
		}
	}
	s.stop(t)
}

// TestPprof: -pprof serves the profiles on its own listener, and only there.
func TestPprof(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := startServer(t, buildServer(t), dir, "-pprof", addr)
	get := func(u string) int {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get("http://" + addr + "/debug/pprof/"); got != http.StatusOK {
		t.Errorf("pprof listener: %d", got)
	}
	if got := get(s.base + "/debug/pprof/"); got != http.StatusNotFound {
		t.Errorf("pprof on the public listener: %d, want 404", got)
	}
	s.stop(t)
}

// TestWithoutDemo: with -demo=false there is no demo file, page or API, and every surface
// takes the credentials given in flags, the environment or files.
func TestWithoutDemo(t *testing.T) {
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pubFile := filepath.Join(dir, "app.pem")
	os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
	secretFile := filepath.Join(dir, "airy-secret")
	os.WriteFile(secretFile, []byte(strings.Repeat("s", 40)+"\n"), 0o600)
	tokensFile := filepath.Join(dir, "bezlimit-tokens")
	os.WriteFile(tokensFile, []byte("# operators\nop-token=operator:7:Olga:Operator\n\nvisitor-token=client:8\n"), 0o600)

	cmd := exec.Command(buildServer(t), serverArgs(dir, "-demo=false", "-chapi-keys", "chapi-key=ada",
		"-nexmo-keys", "app-1="+pubFile, "-airy-jwt-secret", "@"+secretFile, "-airy-channels", "chan-1,chan-2",
		"-bezlimit-tokens", "@"+tokensFile)...)
	cmd.Env = append(os.Environ(), "PARLEY_GENESYS_SERVICES=support", "PARLEY_BEZLIMIT_API_TOKEN=api-secret")
	s := startCommand(t, dir, cmd)
	if _, err := os.Stat(demoFile(dir)); err == nil {
		t.Error("a demo file was written")
	}
	status := func(method, p string, h map[string]string, body string) int {
		req, _ := http.NewRequest(method, s.base+p, strings.NewReader(body))
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	token, err := nexmo.NewToken(key, "app-1", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	jsonCT := map[string]string{"Content-Type": "application/json"}
	for _, tc := range []struct {
		name, method, path string
		header             map[string]string
		body               string
		want               int
	}{
		{"demo page", "GET", "/demo/api/config", nil, "", http.StatusNotFound},
		{"Chapi, its key", "POST", "/chapi/api/chat/v1/messages/", map[string]string{"x-api-key": "chapi-key", "Content-Type": "application/json"},
			`{"messageRaw":"Hello","room":"lobby"}`, http.StatusOK},
		{"Chapi, another key", "GET", "/chapi/api/chat/v1/messages?room=lobby", map[string]string{"x-api-key": "nope"}, "", http.StatusUnauthorized},
		{"Genesys, its service", "POST", "/genesys/2/chat/support", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, "nickname=Ann", http.StatusOK},
		{"Nexmo, its application", "GET", "/nexmo/beta/users", map[string]string{"Authorization": "Bearer " + token}, "", http.StatusOK},
		{"Airy, a channel", "POST", "/airy/chatplugin.authenticate", jsonCT, `{"channel_id":"chan-2"}`, http.StatusOK},
		{"Airy, another channel", "POST", "/airy/chatplugin.authenticate", jsonCT, `{"channel_id":"chan-3"}`, http.StatusNotFound},
		{"Bezlimit, its Api-Token", "GET", "/bezlimit/online-users", map[string]string{"Api-Token": "api-secret"}, "", http.StatusOK},
	} {
		if got := status(tc.method, tc.path, tc.header, tc.body); got != tc.want && !(tc.want == http.StatusOK && got/100 == 2) {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+s.addr+"/bezlimit/broadcast?token=op-token", nil)
	if err != nil {
		t.Errorf("Bezlimit, an operator's token from the file: %v", err)
	} else {
		c.CloseNow()
	}
	if _, _, err := websocket.Dial(ctx, "ws://"+s.addr+"/bezlimit/broadcast?token=wrong", nil); err == nil {
		t.Error("Bezlimit, an unknown token: connected")
	}
	for _, secret := range []string{"chapi-key", strings.Repeat("s", 40), "api-secret", "op-token"} {
		if strings.Contains(s.banner, secret) {
			t.Errorf("the banner shows a secret")
		}
	}
	s.stop(t)
}

// TestDemoAPIRefuses: the demo API's visitor calls need the visitor's Airy token, and its list
// of chats an operator's Bezlimit token.
func TestDemoAPIRefuses(t *testing.T) {
	s := startServer(t, buildServer(t), t.TempDir())
	for _, tc := range []struct {
		method, path, auth string
	}{
		{"GET", "/demo/api/chats", ""},
		{"GET", "/demo/api/chats", "Bearer " + s.env["BEZLIMIT_VISITOR_TOKEN"]}, // a client, not an operator
		{"GET", "/demo/api/visitor/state", ""},
		{"POST", "/demo/api/visitor/receipt", "Bearer " + s.env["BEZLIMIT_OPERATOR_TOKEN"]},
		{"POST", "/demo/api/visitor/typing", "Bearer x.y.z"},
	} {
		req, _ := http.NewRequest(tc.method, s.base+tc.path, strings.NewReader(`{"read":1}`))
		req.Header.Set("Content-Type", "application/json")
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Message string `json:"message"`
		}
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || body.Message == "" {
			t.Errorf("%s %s with %q: %d %+v, want 401 with a message", tc.method, tc.path, tc.auth, resp.StatusCode, body)
		}
	}
	s.stop(t)
}
