package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/chat/limit"
)

// defaults is the configuration with no flags and no environment.
func defaults() config {
	nofile, known := openFileLimit()
	return config{
		addr: "127.0.0.1:8080", data: "parley-data", demo: true,
		readHeaderTimeout: 10 * time.Second, readTimeout: 30 * time.Second,
		writeTimeout: 30 * time.Second, idleTimeout: time.Minute, maxHeaderBytes: 64 << 10,
		conns: limit.Conns{PerClient: 64, Total: defaultMaxConns(nofile, known)},
		rates: limit.DefaultRates,
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(*config)
	}{
		{name: "defaults", want: func(*config) {}},
		{name: "flags", args: []string{
			"-read-header-timeout", "1s", "-read-timeout", "2s", "-write-timeout", "3s", "-idle-timeout", "4s",
			"-max-header-bytes", "4096", "-max-conns", "100", "-max-conns-per-client", "10",
			"-create-rate", "2/1m", "-create-burst", "5", "-write-rate", "0", "-write-burst", "7",
		}, want: func(c *config) {
			c.readHeaderTimeout, c.readTimeout, c.writeTimeout, c.idleTimeout = time.Second, 2*time.Second, 3*time.Second, 4*time.Second
			c.maxHeaderBytes = 4096
			c.conns = limit.Conns{PerClient: 10, Total: 100}
			c.rates = limit.Rates{Create: limit.Rate{PerSecond: 2.0 / 60, Burst: 5}, Write: limit.Rate{Burst: 7}}
		}},
		{name: "environment", env: map[string]string{
			"PARLEY_ADDR": ":9000", "PARLEY_MEM": "true", "PARLEY_IDLE_TIMEOUT": "5s",
			"PARLEY_MAX_CONNS_PER_CLIENT": "0", "PARLEY_WRITE_RATE": "100/s", "PARLEY_LOG_JSON": "1",
		}, want: func(c *config) {
			c.addr, c.mem, c.idleTimeout, c.conns.PerClient, c.logJSON = ":9000", true, 5*time.Second, 0, true
			c.rates.Write.PerSecond = 100
		}},
		{name: "flags win over the environment",
			args: []string{"-idle-timeout", "7s", "-addr", ":1"},
			env:  map[string]string{"PARLEY_IDLE_TIMEOUT": "5s", "PARLEY_ADDR": ":9000"},
			want: func(c *config) { c.idleTimeout, c.addr = 7*time.Second, ":1" }},
		{name: "timeouts off", args: []string{"-read-timeout", "0", "-write-timeout", "0"},
			want: func(c *config) { c.readTimeout, c.writeTimeout = 0, 0 }},
		{name: "operating", args: []string{
			"-addr", ":8443", "-public-url", "https://chat.example.com/", "-data", "/var/lib/parley", "-db", "/srv/chat.db",
			"-tls-cert", "cert.pem", "-tls-key", "key.pem", "-origins", "https://shop.example.com, http://[::1]:3000",
			"-pprof", "127.0.0.1:6060",
		}, want: func(c *config) {
			c.addr, c.publicURL, c.data, c.db = ":8443", "https://chat.example.com/", "/var/lib/parley", "/srv/chat.db"
			c.tlsCert, c.tlsKey, c.pprof = "cert.pem", "key.pem", "127.0.0.1:6060"
			c.origins = []string{"https://shop.example.com", "http://[::1]:3000"}
		}},
		{name: "credentials without the demo", env: map[string]string{
			"PARLEY_DEMO": "false", "PARLEY_CHAPI_KEYS": "k1=ada,k2=bob", "PARLEY_GENESYS_SERVICES": "support",
			"PARLEY_NEXMO_KEYS": "app=/etc/app.pem", "PARLEY_AIRY_JWT_SECRET": "@/run/secrets/airy",
			"PARLEY_AIRY_CHANNELS": "c1", "PARLEY_AIRY_SYSTEM_TOKEN": "sys", "PARLEY_BEZLIMIT_API_TOKEN": "api",
			"PARLEY_BEZLIMIT_TOKENS": "@tokens",
		}, want: func(c *config) {
			c.demo = false
			c.creds = credentialFlags{chapiKeys: "k1=ada,k2=bob", genesysServices: "support", nexmoKeys: "app=/etc/app.pem",
				airySecret: "@/run/secrets/airy", airyChannels: "c1", airySystemToken: "sys", bezlimitAPI: "api",
				bezlimitTokens: "@tokens"}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseFlagsTo(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			want := defaults()
			tc.want(&want)
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(config{}, credentialFlags{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseFlagsRefuses(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // in the error
	}{
		{name: "negative timeout", args: []string{"-idle-timeout", "-1s"}, want: "negative"},
		{name: "no header bytes", args: []string{"-max-header-bytes", "0"}, want: "max-header-bytes"},
		{name: "negative cap", args: []string{"-max-conns-per-client", "-1"}, want: "max-conns-per-client"},
		{name: "negative burst", args: []string{"-write-burst", "-3"}, want: "write-burst"},
		{name: "bad rate", args: []string{"-create-rate", "fast"}, want: "N/DURATION"},
		{name: "bad environment", env: map[string]string{"PARLEY_READ_TIMEOUT": "soon"}, want: "PARLEY_READ_TIMEOUT"},
		{name: "bad boolean in the environment", env: map[string]string{"PARLEY_MEM": "maybe"}, want: "PARLEY_MEM"},
		{name: "arguments", args: []string{"serve"}, want: "unexpected arguments"},
		{name: "a certificate without its key", args: []string{"-tls-cert", "c.pem"}, want: "go together"},
		{name: "a public URL without a scheme", args: []string{"-public-url", "chat.example.com"}, want: "-public-url"},
		{name: "a public URL with a query", args: []string{"-public-url", "https://x.example/?a=1"}, want: "-public-url"},
		{name: "a public URL with a path", args: []string{"-public-url", "https://x.example/chat"}, want: "root of its host"},
		{name: "an origin with a path", args: []string{"-origins", "https://x.example/app"}, want: "-origins"},
		{name: "an origin without a scheme", args: []string{"-origins", "x.example"}, want: "-origins"},
		{name: "a wildcard origin", args: []string{"-origins", "https://*.example.com"}, want: "-origins"},
		{name: "no data directory", args: []string{"-data", ""}, want: "-data"},
		{name: "credentials with the demo", args: []string{"-chapi-keys", "k=ada"}, want: "-demo=false"},
		{name: "the demo flag as a file name (older versions)", env: map[string]string{"PARLEY_DEMO": "parley-demo.env"}, want: "PARLEY_DEMO"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlagsTo(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// -h lists every flag with its environment variable.
func TestUsage(t *testing.T) {
	var out bytes.Buffer
	if _, err := parseFlagsTo([]string{"-h"}, func(string) string { return "" }, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, name := range []string{"addr", "public-url", "data", "db", "mem", "demo", "log-json", "tls-cert", "tls-key",
		"origins", "pprof", "chapi-keys", "genesys-services", "nexmo-keys", "airy-jwt-secret", "airy-channels",
		"airy-system-token", "bezlimit-api-token", "bezlimit-tokens", "read-header-timeout", "read-timeout",
		"write-timeout", "idle-timeout", "max-header-bytes", "max-conns", "max-conns-per-client",
		"create-rate", "create-burst", "write-rate", "write-burst"} {
		if !regexp.MustCompile(`(?m)^  -`+name+`( |$)`).MatchString(out.String()) || !strings.Contains(out.String(), "(env "+envName(name)+")") {
			t.Errorf("-h does not show -%s with %s:\n%s", name, envName(name), out.String())
		}
	}
	for _, want := range []string{"-create-rate N/DURATION", "(default 1/3s)", "(default 20/s)", "(default 1m0s)", "(default 65536)",
		"-data string", `(default "parley-data")`, "-demo\n", "(default true)", "@FILE"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-h does not say %q:\n%s", want, out.String())
		}
	}
}

// The http.Server has every limit of the configuration.
func TestNewHTTPServer(t *testing.T) {
	c := defaults()
	c.readHeaderTimeout, c.readTimeout, c.writeTimeout, c.idleTimeout, c.maxHeaderBytes = 1, 2, 3, 4, 5
	srv := newHTTPServer(c, nil, nil)
	got := []any{srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout, srv.MaxHeaderBytes}
	want := []any{time.Duration(1), time.Duration(2), time.Duration(3), time.Duration(4), 5}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout, MaxHeaderBytes (-want +got):\n%s", diff)
	}
}

func TestDefaultMaxConns(t *testing.T) {
	tests := []struct {
		nofile uint64
		known  bool
		want   int
	}{
		{1024, true, 960},
		{256, true, 192},
		{129, true, 65},
		{128, true, 64},
		{10, true, 5},
		{1, true, 1},
		{0, true, 1},
		{1 << 40, true, maxDefaultConns},
		{math.MaxUint64, true, maxDefaultConns}, // RLIM_INFINITY
		{0, false, unlimitedDefaultConns},
	}
	for _, tc := range tests {
		if got := defaultMaxConns(tc.nofile, tc.known); got != tc.want {
			t.Errorf("defaultMaxConns(%d, %v) = %d, want %d", tc.nofile, tc.known, got, tc.want)
		}
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		text string // formatRate(want)
	}{
		{"0", 0, "0"},
		{"0/s", 0, "0"},
		{"20/s", 20, "20/s"},
		{"20/1s", 20, "20/s"},
		{"1/3s", 1.0 / 3, "1/3s"},
		{"100/1m", 100.0 / 60, "1.6666666666666667/s"},
		{"0.5/s", 0.5, "1/2s"},
		{"1/h", 1.0 / 3600, "1/1h0m0s"},
		{"5/500ms", 10, "10/s"},
		{" 2/s ", 2, "2/s"},
		{"1/.5s", 2, "2/s"},
	}
	for _, tc := range tests {
		got, err := parseRate(tc.in)
		if err != nil || math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("parseRate(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			continue
		}
		if text := formatRate(got); text != tc.text {
			t.Errorf("formatRate(%v) = %q, want %q", got, text, tc.text)
		}
	}
	for _, bad := range []string{"", "20", "fast", "20/", "/s", "-1/s", "1/-1s", "1/0s", "NaN/s", "Inf/s",
		"0x10/s", "1/2d", "1/48h", "2000000/s", "20/s/s", "1 /s"} {
		if got, err := parseRate(bad); err == nil {
			t.Errorf("parseRate(%q) = %v, want an error", bad, got)
		}
	}
}

// FuzzParseRate: parseRate never panics, and reads back what formatRate writes of any rate
// it accepts.
func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"0", "20/s", "1/3s", "100/1m", "0.5/s", "1/h", "7/1h2m3.5s", "1e3/s", "x/y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseRate(s)
		if err != nil {
			return
		}
		if r != 0 && (r < minRate || r > maxRate) {
			t.Fatalf("parseRate(%q) = %v: out of bounds", s, r)
		}
		back, err := parseRate(formatRate(r))
		if err != nil || math.Abs(back-r) > 1e-6*r {
			t.Fatalf("parseRate(%q) = %v, written %q, read back %v, %v", s, r, formatRate(r), back, err)
		}
	})
}
