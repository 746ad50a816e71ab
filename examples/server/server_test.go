package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The server binary, built once for every test that runs it.
var built struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// buildServer compiles this program once per test binary run.
func buildServer(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "parley-server-test"); built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "parley-server")
		if out, err := exec.Command("go", "build", "-o", built.bin, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

// server is a running server process.
type server struct {
	cmd    *exec.Cmd
	addr   string // where it listens
	base   string // http://addr, or https://
	banner string // the first line it printed
	env    map[string]string
	logs   *bytes.Buffer
}

// listening reads the first line of the banner: the address and the public URL.
var listening = regexp.MustCompile(`listening on (\S+)(?: \(every interface\))? at (https?)://(\S+)`)

// serverArgs are the arguments that run the server on a free port with its files in dir,
// followed by extra.
func serverArgs(dir string, extra ...string) []string {
	return append([]string{"-addr", "127.0.0.1:0", "-data", filepath.Join(dir, "parley-data")}, extra...)
}

// demoFile is where the server run with serverArgs(dir) keeps the demo credentials.
func demoFile(dir string) string { return filepath.Join(dir, "parley-data", "demo.env") }

// startServer runs the binary on a free port with its files in dir and the extra arguments,
// and waits until it prints its address.
func startServer(t *testing.T, bin, dir string, extra ...string) *server {
	t.Helper()
	return startCommand(t, dir, exec.Command(bin, serverArgs(dir, extra...)...))
}

// startCommand runs cmd, a command that runs the server with serverArgs(dir), and waits
// until the server prints its address.
func startCommand(t *testing.T, dir string, cmd *exec.Cmd) *server {
	t.Helper()
	cmd.Dir = dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, logs: &bytes.Buffer{}}
	cmd.Stderr = s.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				found <- append(m, sc.Text())
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case m := <-found:
		s.addr, s.base, s.banner = m[1], m[2]+"://"+m[1], m[4]
	case <-time.After(30 * time.Second):
		t.Fatalf("the server did not start; its log:\n%s", s.logs)
	}
	if _, err := os.Stat(demoFile(dir)); err == nil {
		s.env = readEnvFile(t, demoFile(dir))
	}
	return s
}

// stop sends SIGTERM and expects a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("server exit: %v; log:\n%s", err, s.logs)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the server did not stop on SIGTERM; log:\n%s", s.logs)
	}
}

func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		name, value, ok, err := readDemoLine(line)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if ok {
			env[name] = value
		}
	}
	return env
}

// call makes one HTTP request and decodes a JSON answer into out (if not nil).
func (s *server) call(t *testing.T, method, path string, header map[string]string, body io.Reader, out any) {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s\n%s", method, path, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

func (s *server) genesys(t *testing.T, op string, form url.Values, out any) {
	t.Helper()
	s.call(t, "POST", "/genesys/2/chat/"+s.env["GENESYS_SERVICE"]+op,
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, strings.NewReader(form.Encode()), out)
}

func (s *server) nexmo(t *testing.T, method, path string, body any, out any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	s.call(t, method, "/nexmo/beta"+path, map[string]string{
		"Authorization": "Bearer " + s.env["NEXMO_TOKEN"], "Content-Type": "application/json"}, r, out)
}

func (s *server) airy(t *testing.T, op, token string, body any, out any) {
	t.Helper()
	b, _ := json.Marshal(body)
	h := map[string]string{"Content-Type": "application/json"}
	if token != "" {
		h["Authorization"] = "Bearer " + token
	}
	s.call(t, "POST", "/airy/chatplugin."+op, h, bytes.NewReader(b), out)
}

type genesysAnswer struct {
	ChatID    string `json:"chatId"`
	UserID    string `json:"userId"`
	SecureKey string `json:"secureKey"`
	Alias     string `json:"alias"`
	Messages  []struct {
		Index int    `json:"index"`
		Type  string `json:"type"`
		Text  string `json:"text"`
		From  struct {
			Nickname string `json:"nickname"`
			Type     string `json:"type"`
		} `json:"from"`
	} `json:"messages"`
	NextPosition int `json:"nextPosition"`
}

type nexmoEvent struct {
	ID   int    `json:"id"`
	Type string `json:"type"`
	From string `json:"from"`
	Body struct {
		Text string `json:"text"`
	} `json:"body"`
}

// nexmoConversation turns an engine room id in ULID form (a Genesys chatId) or UUID form (an
// Airy conversation_id) into a Nexmo conversation id.
func nexmoConversation(t *testing.T, s *server, id string) string {
	t.Helper()
	if len(id) == 36 {
		return "CON-" + id
	}
	var convs struct {
		Embedded struct {
			Conversations []struct {
				UUID string `json:"uuid"`
			} `json:"conversations"`
		} `json:"_embedded"`
	}
	s.nexmo(t, "GET", "/conversations?page_size=100", nil, &convs)
	for _, c := range convs.Embedded.Conversations {
		if ulidOfUUID(strings.TrimPrefix(c.UUID, "CON-")) == id {
			return c.UUID
		}
	}
	t.Fatalf("no Nexmo conversation for %s", id)
	return ""
}

// TestConversationAcrossSurfacesSurvivesRestart drives one afternoon of support across three
// surfaces: a Genesys web client and an Airy widget contact, both answered by an agent
// working through the Nexmo API. Then the server is stopped with SIGTERM, started again on
// the same bolt file, and every transcript is still there.
func TestConversationAcrossSurfacesSurvivesRestart(t *testing.T) {
	bin := buildServer(t)
	dir := t.TempDir()
	s := startServer(t, bin, dir)

	// A Genesys client asks for a chat and says hello.
	var g genesysAnswer
	s.genesys(t, "", url.Values{"nickname": {"Ann"}, "subject": {"billing"}}, &g)
	creds := url.Values{"userId": {g.UserID}, "secureKey": {g.SecureKey}, "alias": {g.Alias}}
	with := func(kv ...string) url.Values {
		v := url.Values{}
		for k, vs := range creds {
			v[k] = vs
		}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	s.genesys(t, "/"+g.ChatID+"/send", with("message", "Hello, my invoice is wrong"), nil)

	// An agent on the Nexmo API joins that chat and answers.
	s.nexmo(t, "POST", "/users", map[string]any{"name": "agent-7", "display_name": "Agent Seven"}, nil)
	gcon := nexmoConversation(t, s, g.ChatID)
	var member struct {
		ID string `json:"id"`
	}
	s.nexmo(t, "POST", "/conversations/"+gcon+"/members", map[string]any{"action": "join", "user_name": "agent-7", "channel": map[string]any{"type": "app"}}, &member)
	s.nexmo(t, "POST", "/conversations/"+gcon+"/events", map[string]any{"type": "text", "from": member.ID, "body": map[string]any{"text": "Let me look at it, Ann."}}, nil)

	// The Genesys client polls and sees the agent join and answer.
	var r genesysAnswer
	s.genesys(t, "/"+g.ChatID+"/refresh", with("transcriptPosition", "1"), &r)
	var texts []string
	for _, m := range r.Messages {
		if m.Type == "Message" {
			texts = append(texts, m.From.Type+" "+m.From.Nickname+": "+m.Text)
		}
	}
	wantGenesys := []string{"Client Ann: Hello, my invoice is wrong", "Agent Agent Seven: Let me look at it, Ann."}
	if fmt.Sprint(texts) != fmt.Sprint(wantGenesys) {
		t.Fatalf("Genesys transcript %q, want %q", texts, wantGenesys)
	}

	// An Airy widget contact opens a conversation; the same agent answers it through Nexmo.
	var auth struct {
		Token string `json:"token"`
	}
	s.airy(t, "authenticate", "", map[string]any{"channel_id": s.env["AIRY_CHANNEL_ID"]}, &auth)
	var sent struct {
		ID string `json:"id"`
	}
	s.airy(t, "send", auth.Token, map[string]any{"message": map[string]any{"text": "Is anyone there?"}}, &sent)
	var resume struct {
		ResumeToken string `json:"resume_token"`
	}
	s.airy(t, "resumeToken", auth.Token, map[string]any{}, &resume)
	conv := airyConversation(t, auth.Token)
	acon := nexmoConversation(t, s, conv)
	s.nexmo(t, "POST", "/conversations/"+acon+"/members", map[string]any{"action": "join", "user_name": "agent-7", "channel": map[string]any{"type": "app"}}, &member)
	s.nexmo(t, "POST", "/conversations/"+acon+"/events", map[string]any{"type": "text", "from": member.ID, "body": map[string]any{"text": "Yes, how can I help?"}}, nil)

	transcripts := func() (map[string][]string, map[string][]string) {
		nexmoTexts := map[string][]string{}
		for _, con := range []string{gcon, acon} {
			var evs []nexmoEvent
			s.nexmo(t, "GET", "/conversations/"+con+"/events", nil, &evs)
			for _, ev := range evs {
				if ev.Type == "text" {
					nexmoTexts[con] = append(nexmoTexts[con], ev.Body.Text)
				}
			}
		}
		var back struct {
			Messages []struct {
				Content struct {
					Text string `json:"text"`
				} `json:"content"`
				FromContact bool `json:"from_contact"`
			} `json:"messages"`
		}
		s.airy(t, "authenticate", "", map[string]any{"resume_token": resume.ResumeToken}, &back)
		airyTexts := map[string][]string{}
		for _, m := range back.Messages {
			airyTexts[fmt.Sprint(m.FromContact)] = append(airyTexts[fmt.Sprint(m.FromContact)], m.Content.Text)
		}
		return nexmoTexts, airyTexts
	}
	wantNexmo := map[string][]string{
		gcon: {"Hello, my invoice is wrong", "Let me look at it, Ann."},
		acon: {"Is anyone there?", "Yes, how can I help?"},
	}
	wantAiry := map[string][]string{"true": {"Is anyone there?"}, "false": {"Yes, how can I help?"}}
	check := func(when string) {
		n, a := transcripts()
		if fmt.Sprint(n) != fmt.Sprint(wantNexmo) {
			t.Fatalf("%s: Nexmo transcripts %q, want %q", when, n, wantNexmo)
		}
		if fmt.Sprint(a) != fmt.Sprint(wantAiry) {
			t.Fatalf("%s: Airy history %q, want %q", when, a, wantAiry)
		}
	}
	check("before the restart")

	s.stop(t)
	s = startServer(t, bin, dir)
	check("after the restart")

	// The Genesys session goes on after the restart.
	s.genesys(t, "/"+g.ChatID+"/refresh", with("transcriptPosition", "1"), &r)
	if len(r.Messages) == 0 || r.NextPosition < 5 {
		t.Fatalf("Genesys refresh after the restart: %+v", r)
	}
	s.stop(t)
}

// airyConversation reads the conversation id out of an Airy auth token (a JWT whose claims
// carry conversation_id).
func airyConversation(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	b, err := decodeSegment(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		ConversationID string `json:"conversation_id"`
	}
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	return claims.ConversationID
}
