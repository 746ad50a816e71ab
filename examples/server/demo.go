package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/httpapi/nexmo"
	"github.com/parley-chat/chat/limit"
)

// demo holds the credentials the server makes for trying it out. They are kept in the demo
// file as shell "export" lines, so that `. ./parley-demo.env` puts them in a shell for the
// README's curl examples, and they stay the same across restarts.
type demo struct {
	file string
	vars map[string]string

	chapiUser  chat.ID
	nexmoKey   *rsa.PrivateKey
	nexmoToken string // admin token, fresh at every start
}

// Names of the variables in the demo file.
const (
	varURL           = "PARLEY_URL"
	varChapiKey      = "CHAPI_KEY"
	varGenesys       = "GENESYS_SERVICE"
	varNexmoApp      = "NEXMO_APP_ID"
	varNexmoKeyFile  = "NEXMO_PRIVATE_KEY_FILE"
	varNexmoToken    = "NEXMO_TOKEN"
	varAiryChannel   = "AIRY_CHANNEL_ID"
	varAirySystem    = "AIRY_SYSTEM_TOKEN"
	varAirySecret    = "AIRY_JWT_SECRET"
	varBezAPI        = "BEZLIMIT_API_TOKEN"
	varBezOperator   = "BEZLIMIT_OPERATOR_TOKEN"
	varBezVisitor    = "BEZLIMIT_VISITOR_TOKEN"
	chapiDemoUser    = "chapi-demo"
	nexmoTokenLife   = 24 * time.Hour
	demoFileHeader   = "# Parley demo credentials, made by examples/server. Load them with: . ./parley-demo.env\n"
	nexmoKeyFileName = "parley-nexmo-private.pem"
)

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func randomUUID() string {
	var id chat.ID
	if _, err := rand.Read(id[:]); err != nil {
		panic(err)
	}
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80
	return id.UUID()
}

// loadDemo reads the demo file, makes what is missing, writes it back and makes sure the demo
// users exist in the engine.
func loadDemo(ctx context.Context, e *chat.Engine, file, baseURL string) (*demo, error) {
	d := &demo{file: file, vars: map[string]string{}}
	if err := d.read(); err != nil {
		return nil, err
	}
	defaults := []struct {
		name string
		make func() string
	}{
		{varChapiKey, func() string { return randomHex(16) }},
		{varGenesys, func() string { return "customer-support" }},
		{varNexmoApp, randomUUID},
		{varNexmoKeyFile, func() string { return filepath.Join(filepath.Dir(file), nexmoKeyFileName) }},
		{varAiryChannel, randomUUID},
		{varAirySystem, func() string { return randomHex(16) }},
		{varAirySecret, func() string { return randomHex(32) }},
		{varBezAPI, func() string { return randomHex(16) }},
		{varBezOperator, func() string { return randomHex(16) }},
		{varBezVisitor, func() string { return randomHex(16) }},
	}
	for _, v := range defaults {
		if d.vars[v.name] == "" {
			d.vars[v.name] = v.make()
		}
	}
	d.vars[varURL] = baseURL

	key, err := loadOrMakeKey(d.vars[varNexmoKeyFile])
	if err != nil {
		return nil, err
	}
	d.nexmoKey = key
	d.nexmoToken, err = nexmo.NewToken(key, d.vars[varNexmoApp], "", nexmoTokenLife)
	if err != nil {
		return nil, err
	}
	d.vars[varNexmoToken] = d.nexmoToken

	u, err := e.UserByName(ctx, chapiDemoUser)
	if errors.Is(err, chat.ErrNotFound) {
		u, err = e.CreateUser(ctx, chat.NewUser{Name: chapiDemoUser, DisplayName: "Chapi Demo", Email: "demo@example.com"})
	}
	if err != nil {
		return nil, err
	}
	d.chapiUser = u.ID
	return d, d.write()
}

func (d *demo) get(name string) string { return d.vars[name] }

func (d *demo) read() error {
	f, err := os.Open(d.file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 8*maxShellValue) // a quoted value is at most 4 times as long
	for n := 1; sc.Scan(); n++ {
		name, value, ok, err := readDemoLine(sc.Text())
		if err != nil {
			return fmt.Errorf("demo file %s, line %d: %w", d.file, n, err)
		}
		if ok {
			d.vars[name] = value
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("demo file %s: %w", d.file, err)
	}
	return nil
}

// write keeps the variables in the demo file, each quoted so that sh reads back exactly its
// value; a value that cannot be is refused, and the file is left as it was.
func (d *demo) write() error {
	var b strings.Builder
	b.WriteString(demoFileHeader)
	names := make([]string, 0, len(d.vars))
	for n := range d.vars {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !shellName(n) {
			return fmt.Errorf("demo file %s: %q is not a shell variable name", d.file, n)
		}
		q, err := shellQuote(d.vars[n])
		if err != nil {
			return fmt.Errorf("demo file %s: %s: %w", d.file, n, err)
		}
		fmt.Fprintf(&b, "export %s=%s\n", n, q)
	}
	return os.WriteFile(d.file, []byte(b.String()), 0o600)
}

// loadOrMakeKey reads an RSA private key in PEM, or makes one and writes it with its public
// half beside it (the public key is what a Nexmo application registers).
func loadOrMakeKey(path string) (*rsa.PrivateKey, error) {
	if b, err := os.ReadFile(path); err == nil {
		block, _ := pem.Decode(b)
		if block == nil {
			return nil, fmt.Errorf("%s: no PEM block", path)
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%s: not an RSA key", path)
		}
		return rk, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := writePEM(path, "PRIVATE KEY", der, 0o600); err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return nil, err
	}
	pubPath := strings.TrimSuffix(path, "-private.pem") + "-public.pem"
	if pubPath == path {
		pubPath = path + ".pub"
	}
	return k, writePEM(pubPath, "PUBLIC KEY", pub, 0o644)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

// printBanner tells the user where everything is.
func printBanner(w io.Writer, base string, cfg config, d *demo) {
	storeDesc := "bbolt file " + cfg.db
	if cfg.mem {
		storeDesc = "memory (nothing is kept after exit)"
	}
	fmt.Fprintf(w, `Parley is listening on %[1]s (store: %[2]s)

  demo page        %[1]s/#operator=%[3]s&channel=%[8]s
  8x8 Chapi        %[1]s/chapi/api/chat/v1/messages        x-api-key: %[4]s
  Genesys v2       %[1]s/genesys/2/chat/%[5]s
  Nexmo            %[1]s/nexmo/beta/conversations          application %[6]s, key %[7]s
  Airy (REST)      %[1]s/airy/chatplugin.authenticate      channel_id %[8]s
  Airy (STOMP)     ws%[9]s/ws.chatplugin
  Bezlimit         ws%[9]s/bezlimit/chat   ws%[9]s/bezlimit/broadcast   Api-Token: %[10]s
  health           %[1]s/healthz
  limits           %[13]s

Credentials (and a Nexmo admin token valid for 24h) are in %[11]s: . %[12]s
`, base, storeDesc, d.get(varBezOperator), d.get(varChapiKey), d.get(varGenesys), d.get(varNexmoApp),
		d.get(varNexmoKeyFile), d.get(varAiryChannel), strings.TrimPrefix(base, "http"), d.get(varBezAPI), d.file, sourcePath(d.file),
		describeLimits(cfg))
}

// describeLimits says in one line what the server lets a client do.
func describeLimits(c config) string {
	capped := func(n int) string {
		if n == 0 {
			return "no cap"
		}
		return fmt.Sprint(n)
	}
	rate := func(r limit.Rate) string {
		if r.PerSecond <= 0 {
			return "no limit"
		}
		return fmt.Sprintf("%s (burst %d)", formatRate(r.PerSecond), max(r.Burst, 1))
	}
	return fmt.Sprintf("connections %s per client, %s in all; per client, new chats %s, writes %s",
		capped(c.conns.PerClient), capped(c.conns.Total), rate(c.rates.Create), rate(c.rates.Write))
}

// sourcePath is how a shell sources file: "." needs a path with a slash to skip $PATH, and
// a path with blanks or quotes needs quoting.
func sourcePath(file string) string {
	if !strings.Contains(file, "/") {
		file = "./" + file
	}
	for i := range len(file) {
		if !plainShellByte(file[i]) {
			if q, err := shellQuote(file); err == nil {
				return q
			}
			break
		}
	}
	return file
}
