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
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/httpapi/nexmo"
	"github.com/parley-chat/chat/limit"
	"github.com/parley-chat/chat/wsapi/bezlimit"
)

// demo holds the credentials the server makes for trying it out. They are kept in the demo
// file as shell "export" lines, so that `. ./parley-data/demo.env` puts them in a shell for
// the README's curl examples, and they stay the same across restarts.
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
	demoFileHeader   = "# Parley demo credentials, made by examples/server. Load them in a shell with \". FILE\".\n"
	demoFileName     = "demo.env"
	nexmoKeyFileName = "nexmo-private.pem" // and nexmo-public.pem beside it
)

// oldFiles are the files earlier versions kept in the working directory, before -data.
var oldFiles = []string{"parley.db", "parley-demo.env", "parley-nexmo-private.pem", "parley-nexmo-public.pem"}

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

// loadDemo reads the demo file in the data directory dir, makes what is missing, writes it
// back and makes sure the demo users exist in the engine. The Nexmo key pair is kept in dir
// too.
func loadDemo(ctx context.Context, e *chat.Engine, dir, baseURL string) (*demo, error) {
	d := &demo{file: filepath.Join(dir, demoFileName), vars: map[string]string{}}
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
	// The key pair lives in the data directory, wherever an older file said.
	d.vars[varNexmoKeyFile] = filepath.Join(dir, nexmoKeyFileName)

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

	u, err := ensureUser(ctx, e, chat.NewUser{Name: chapiDemoUser, DisplayName: "Chapi Demo", Email: "demo@example.com"})
	if err != nil {
		return nil, err
	}
	d.chapiUser = u.ID
	return d, d.write()
}

func (d *demo) get(name string) string { return d.vars[name] }

// credentials are the surfaces' credentials from the demo file: one of each kind, and two
// Bezlimit client tokens, the demo operator's and a visitor's.
func (d *demo) credentials() *credentials {
	return &credentials{
		chapiKeys:       map[string]chat.ID{d.get(varChapiKey): d.chapiUser},
		genesysServices: []string{d.get(varGenesys)},
		nexmoKeys:       map[string]*rsa.PublicKey{d.get(varNexmoApp): &d.nexmoKey.PublicKey},
		airySecret:      []byte(d.get(varAirySecret)),
		airyChannels:    []string{d.get(varAiryChannel)},
		airySystemToken: d.get(varAirySystem),
		bezlimitAPI:     d.get(varBezAPI),
		bezlimitUsers:   map[string]bezlimit.User{d.get(varBezOperator): demoOperator, d.get(varBezVisitor): demoVisitor},
	}
}

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

// printBanner tells the user where everything is. The first line is what tests and scripts
// read: "Parley is listening on ADDR at URL".
func printBanner(w io.Writer, cfg config, addr net.Addr, base string, lines []banner, d *demo, pprofAddr string) {
	storeDesc := "bbolt file " + cfg.dbPath()
	if cfg.mem {
		storeDesc = "memory (nothing is kept after exit)"
	}
	fmt.Fprintf(w, "Parley is listening on %s at %s (store: %s)\n\n", describeAddr(addr), base, storeDesc)
	lines = append(lines, banner{"health", base + "/healthz", ""})
	if pprofAddr != "" {
		lines = append(lines, banner{"pprof", "http://" + pprofAddr + "/debug/pprof/", ""})
	}
	lines = append(lines, banner{"limits", describeLimits(cfg), ""})
	width := 0
	for _, l := range lines {
		if l.note != "" {
			width = max(width, len(l.where))
		}
	}
	for _, l := range lines {
		if l.note == "" {
			fmt.Fprintf(w, "  %-14s %s\n", l.name, l.where)
		} else {
			fmt.Fprintf(w, "  %-14s %-*s   %s\n", l.name, width, l.where, l.note)
		}
	}
	if d != nil {
		fmt.Fprintf(w, "\nDemo credentials (and a Nexmo admin token valid for 24h) are in %s: . %s\n"+
			"The demo page makes whoever opens it the demo operator: use -demo=false where others can reach the server.\n",
			d.file, sourcePath(d.file))
	}
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
