package nexmo

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/parley-chat/chat"
)

func TestAuth(t *testing.T) {
	v := newEnv(t, stores[0])
	key, wrong := keys(t)
	v.user("mia")
	now := v.clock.Now()
	at := func(d time.Duration) *jwt.NumericDate { return jwt.NewNumericDate(now.Add(d)) }
	claims := func(sub string, iat, exp *jwt.NumericDate) Claims {
		return Claims{ApplicationID: testApp, RegisteredClaims: jwt.RegisteredClaims{IssuedAt: iat, ExpiresAt: exp, ID: "j", Subject: sub}}
	}
	rs := func(c jwt.Claims) string { return sign(t, jwt.SigningMethodRS256, key, c) }
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&key.PublicKey))})

	noApp := claims("", at(0), at(time.Minute))
	noApp.ApplicationID = ""
	otherAppClaims := claims("", at(0), at(time.Minute))
	otherAppClaims.ApplicationID = otherApp
	unsigned, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims("", at(0), at(time.Minute))).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		header string
		path   string
		status int
		code   string
	}{
		{"admin", "Bearer " + rs(claims("", at(0), at(time.Hour))), "/conversations", 200, ""},
		{"admin without exp", "Bearer " + rs(claims("", at(0), nil)), "/conversations", 200, ""},
		{"scheme any case", "bearer " + rs(claims("", at(0), nil)), "/conversations", 200, ""},
		{"user on an admin list", "Bearer " + rs(claims("mia", at(0), at(time.Hour))), "/conversations", 403, codePermission},
		{"user on users", "Bearer " + rs(claims("mia", at(0), at(time.Hour))), "/users", 200, ""},
		{"unknown sub", "Bearer " + rs(claims("nobody", at(0), at(time.Hour))), "/users", 401, codeInvalidToken},
		{"wrong key", "Bearer " + sign(t, jwt.SigningMethodRS256, wrong, claims("", at(0), at(time.Hour))), "/users", 401, codeInvalidToken},
		{"HS256 with the public key as secret", "Bearer " + sign(t, jwt.SigningMethodHS256, pubPEM, claims("", at(0), at(time.Hour))), "/users", 401, codeInvalidToken},
		{"HS256 with the DER key as secret", "Bearer " + sign(t, jwt.SigningMethodHS256, must(x509.MarshalPKIXPublicKey(&key.PublicKey)), claims("", at(0), at(time.Hour))), "/users", 401, codeInvalidToken},
		{"RS512", "Bearer " + sign(t, jwt.SigningMethodRS512, key, claims("", at(0), at(time.Hour))), "/users", 401, codeInvalidToken},
		{"alg none", "Bearer " + unsigned, "/users", 401, codeInvalidToken},
		{"expired", "Bearer " + rs(claims("", at(-2*time.Hour), at(-time.Hour))), "/users", 401, codeExpiredToken},
		{"expires now", "Bearer " + rs(claims("", at(-time.Hour), at(0))), "/users", 401, codeExpiredToken},
		{"no exp, 14 min after iat", "Bearer " + rs(claims("", at(-14*time.Minute), nil)), "/users", 200, ""},
		{"no exp, 16 min after iat", "Bearer " + rs(claims("", at(-16*time.Minute), nil)), "/users", 401, codeExpiredToken},
		{"no exp, 15 min after iat", "Bearer " + rs(claims("", at(-15*time.Minute), nil)), "/users", 401, codeExpiredToken},
		{"no iat", "Bearer " + rs(claims("", nil, at(time.Hour))), "/users", 401, codeInvalidToken},
		{"no iat, no exp", "Bearer " + rs(claims("", nil, nil)), "/users", 401, codeInvalidToken},
		{"lifetime 24 h", "Bearer " + rs(claims("", at(0), at(24*time.Hour))), "/users", 200, ""},
		{"lifetime over 24 h", "Bearer " + rs(claims("", at(0), at(24*time.Hour+time.Second))), "/users", 401, codeInvalidToken},
		{"exp before iat", "Bearer " + rs(claims("", at(0), at(-time.Second))), "/users", 401, codeInvalidToken},
		{"iat in the future", "Bearer " + rs(claims("", at(time.Minute), at(time.Hour))), "/users", 401, codeInvalidToken},
		{"no application_id", "Bearer " + rs(noApp), "/users", 401, codeInvalidToken},
		{"unknown application", "Bearer " + rs(otherAppClaims), "/users", 401, codeInvalidToken},
		{"no header", "", "/users", 401, codeInvalidToken},
		{"basic auth", "Basic YWxhZGRpbjpvcGVuc2VzYW1l", "/users", 401, codeInvalidToken},
		{"empty bearer", "Bearer ", "/users", 401, codeInvalidToken},
		{"garbage", "Bearer not.a.jwt", "/users", 401, codeInvalidToken},
		{"unauthenticated write", "", "/conversations", 401, codeInvalidToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := "GET"
			var body any
			if tc.name == "unauthenticated write" {
				method, body = "POST", `{"name":"x"}`
			}
			r := v.doWithHeader(method, tc.path, tc.header, body)
			if tc.code == "" {
				v.must(tc.status, r)
				return
			}
			v.wantError(r, tc.status, tc.code, "")
			if tc.status == 401 && r.Header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
	if rooms, _ := v.e.RoomByName(context.Background(), "x"); !rooms.ID.IsZero() {
		t.Fatal("an unauthenticated write stored a room")
	}
}

func TestAuthKeyLookupAndLeeway(t *testing.T) {
	key, _ := keys(t)
	calls := 0
	v := newEnv(t, stores[0], func(c *Config) {
		c.Keys = nil
		c.Leeway = 30 * time.Second
		c.PublicKey = func(_ context.Context, app string) (*rsa.PublicKey, error) {
			calls++
			if app == otherApp {
				return &key.PublicKey, nil
			}
			return nil, errors.New("unknown")
		}
	})
	now := v.clock.Now()
	c := Claims{ApplicationID: otherApp, RegisteredClaims: jwt.RegisteredClaims{IssuedAt: jwt.NewNumericDate(now.Add(20 * time.Second))}}
	v.must(200, v.doWithHeader("GET", "/users", "Bearer "+sign(t, jwt.SigningMethodRS256, key, c), nil))
	c.ApplicationID = testApp
	v.wantError(v.doWithHeader("GET", "/users", "Bearer "+sign(t, jwt.SigningMethodRS256, key, c), nil), 401, codeInvalidToken, "")
	if calls != 2 {
		t.Fatalf("lookup called %d times", calls)
	}
}

func TestNewToken(t *testing.T) {
	key, _ := keys(t)
	v := newEnv(t, stores[0], func(c *Config) { c.Now = time.Now })
	if _, err := v.e.CreateUser(context.Background(), chat.NewUser{Name: "ned"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sub    string
		ttl    time.Duration
		status int
	}{
		{"", time.Hour, 200}, {"", 0, 200}, {"ned", 24 * time.Hour, 200}, {"nobody", time.Minute, 401},
	} {
		tok, err := NewToken(key, testApp, tc.sub, tc.ttl)
		if err != nil {
			t.Fatal(err)
		}
		v.must(tc.status, v.doWithHeader("GET", "/users", "Bearer "+tok, nil))
		var c Claims
		if _, _, err := jwt.NewParser().ParseUnverified(tok, &c); err != nil {
			t.Fatal(err)
		}
		if c.ApplicationID != testApp || c.IssuedAt == nil || c.ID == "" || c.Subject != tc.sub || (tc.ttl == 0) != (c.ExpiresAt == nil) {
			t.Fatalf("claims %+v", c)
		}
	}
	for _, ttl := range []time.Duration{-time.Second, 24*time.Hour + time.Second} {
		if _, err := NewToken(key, testApp, "", ttl); err == nil {
			t.Fatalf("ttl %v accepted", ttl)
		}
	}
	if _, err := NewToken(nil, testApp, "", time.Minute); err == nil {
		t.Fatal("nil key accepted")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
