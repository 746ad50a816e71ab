package main

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/httpapi/airy"
	"github.com/parley-chat/chat/wsapi/bezlimit"
)

// credentials are what the surfaces check their clients against. With -demo they come from
// the demo file; with -demo=false from the credential flags (or their environment
// variables). A surface without what it needs is not mounted.
type credentials struct {
	chapiKeys       map[string]chat.ID        // Chapi x-api-key → the engine user it acts as
	genesysServices []string                  // Genesys serviceName path segments
	nexmoKeys       map[string]*rsa.PublicKey // Nexmo application id → the RS256 key of its JWTs
	airySecret      []byte                    // HS256 secret of the Airy tokens
	airyChannels    []string                  // Airy channel ids
	airySystemToken string                    // Airy system API token; "" for none
	bezlimitAPI     string                    // Bezlimit Api-Token; "" for none
	bezlimitUsers   map[string]bezlimit.User  // Bezlimit client token → user
}

// credentialFlags are the credential flags as given. Each value may be "@FILE": the value is
// then the file's content (a list: one item a line; a secret: its first line).
type credentialFlags struct {
	chapiKeys       string // KEY=USER,...: USER is an engine user's unique name, made if missing
	genesysServices string // NAME,...
	nexmoKeys       string // APP_ID=PUBLIC_KEY_FILE,...
	airySecret      string // at least 32 bytes
	airyChannels    string // ID,...
	airySystemToken string
	bezlimitAPI     string
	bezlimitTokens  string // TOKEN=ROLE:ID[:FIRSTNAME[:LASTNAME]],...
}

// define declares the credential flags on fs.
func (c *credentialFlags) define(fs *flag.FlagSet) {
	const without = " (with -demo=false)"
	fs.StringVar(&c.chapiKeys, "chapi-keys", "", "8x8 Chapi API keys and the engine user each acts as, `KEY=USER,...`"+without)
	fs.StringVar(&c.genesysServices, "genesys-services", "", "Genesys service names, `NAME,...`"+without)
	fs.StringVar(&c.nexmoKeys, "nexmo-keys", "", "Nexmo application ids and the file of each one's RSA public key (PEM), `APP_ID=FILE,...`"+without)
	fs.StringVar(&c.airySecret, "airy-jwt-secret", "", "HS256 `secret` of the Airy chat plugin's tokens, at least 32 bytes"+without)
	fs.StringVar(&c.airyChannels, "airy-channels", "", "Airy chat plugin channel ids, `ID,...`"+without)
	fs.StringVar(&c.airySystemToken, "airy-system-token", "", "Airy system API `token` (resume tokens on behalf of a conversation)"+without)
	fs.StringVar(&c.bezlimitAPI, "bezlimit-api-token", "", "Bezlimit server-to-server Api-Token `secret`"+without)
	fs.StringVar(&c.bezlimitTokens, "bezlimit-tokens", "", "Bezlimit client tokens and their users, `TOKEN=ROLE:ID[:FIRST[:LAST]],...`"+without)
}

// given returns the name of a credential flag that was set, or "".
func (c *credentialFlags) given() string {
	for _, f := range []struct{ name, v string }{
		{"chapi-keys", c.chapiKeys}, {"genesys-services", c.genesysServices}, {"nexmo-keys", c.nexmoKeys},
		{"airy-jwt-secret", c.airySecret}, {"airy-channels", c.airyChannels}, {"airy-system-token", c.airySystemToken},
		{"bezlimit-api-token", c.bezlimitAPI}, {"bezlimit-tokens", c.bezlimitTokens},
	} {
		if f.v != "" {
			return f.name
		}
	}
	return ""
}

// value reads a flag's value, from a file if it is "@FILE".
func value(name, v string) (string, error) {
	path, ok := strings.CutPrefix(v, "@")
	if !ok {
		return v, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("-%s: %w", name, err)
	}
	return string(b), nil
}

// secret reads a secret flag: its value, or the first line of its file.
func secret(name, v string) (string, error) {
	s, err := value(name, v)
	if err != nil {
		return "", err
	}
	s, _, _ = strings.Cut(s, "\n")
	return strings.TrimSpace(s), nil
}

// list reads a list flag.
func list(name, v string) ([]string, error) {
	s, err := value(name, v)
	if err != nil {
		return nil, err
	}
	return splitList(s), nil
}

// pairs reads a list of KEY=VALUE items.
func pairs(name, v string) ([][2]string, error) {
	items, err := list(name, v)
	if err != nil {
		return nil, err
	}
	var out [][2]string
	for _, it := range items {
		k, val, ok := strings.Cut(it, "=")
		if k, val = strings.TrimSpace(k), strings.TrimSpace(val); !ok || k == "" || val == "" {
			return nil, fmt.Errorf("-%s: an item is not KEY=VALUE (%d bytes)", name, len(it)) // it may be a secret
		}
		out = append(out, [2]string{k, val})
	}
	return out, nil
}

// resolve reads the credential flags into credentials, making the Chapi keys' users in e if
// they do not exist yet.
func (c *credentialFlags) resolve(ctx context.Context, e *chat.Engine) (*credentials, error) {
	cr := &credentials{}
	keys, err := pairs("chapi-keys", c.chapiKeys)
	if err != nil {
		return nil, err
	}
	for _, kv := range keys {
		u, err := ensureUser(ctx, e, chat.NewUser{Name: kv[1], DisplayName: kv[1]})
		if err != nil {
			return nil, fmt.Errorf("-chapi-keys: user %q: %w", kv[1], err)
		}
		if cr.chapiKeys == nil {
			cr.chapiKeys = map[string]chat.ID{}
		}
		cr.chapiKeys[kv[0]] = u.ID
	}
	if cr.genesysServices, err = list("genesys-services", c.genesysServices); err != nil {
		return nil, err
	}
	apps, err := pairs("nexmo-keys", c.nexmoKeys)
	if err != nil {
		return nil, err
	}
	for _, kv := range apps {
		k, err := readPublicKey(kv[1])
		if err != nil {
			return nil, fmt.Errorf("-nexmo-keys: application %s: %w", kv[0], err)
		}
		if cr.nexmoKeys == nil {
			cr.nexmoKeys = map[string]*rsa.PublicKey{}
		}
		cr.nexmoKeys[kv[0]] = k
	}
	s, err := secret("airy-jwt-secret", c.airySecret)
	if err != nil {
		return nil, err
	}
	if s != "" && len(s) < airy.MinSecretLen {
		return nil, fmt.Errorf("-airy-jwt-secret: %d bytes, at least %d", len(s), airy.MinSecretLen)
	}
	cr.airySecret = []byte(s)
	if cr.airyChannels, err = list("airy-channels", c.airyChannels); err != nil {
		return nil, err
	}
	if (len(cr.airySecret) == 0) != (len(cr.airyChannels) == 0) {
		return nil, errors.New("-airy-jwt-secret and -airy-channels go together")
	}
	if cr.airySystemToken, err = secret("airy-system-token", c.airySystemToken); err != nil {
		return nil, err
	}
	if cr.bezlimitAPI, err = secret("bezlimit-api-token", c.bezlimitAPI); err != nil {
		return nil, err
	}
	tokens, err := pairs("bezlimit-tokens", c.bezlimitTokens)
	if err != nil {
		return nil, err
	}
	for _, kv := range tokens {
		u, err := parseBezlimitUser(kv[1])
		if err != nil {
			return nil, fmt.Errorf("-bezlimit-tokens: %w", err)
		}
		if cr.bezlimitUsers == nil {
			cr.bezlimitUsers = map[string]bezlimit.User{}
		}
		cr.bezlimitUsers[kv[0]] = u
	}
	return cr, nil
}

// parseBezlimitUser reads ROLE:ID[:FIRSTNAME[:LASTNAME]].
func parseBezlimitUser(s string) (bezlimit.User, error) {
	parts := strings.SplitN(s, ":", 4)
	if len(parts) < 2 {
		return bezlimit.User{}, fmt.Errorf("%q is not ROLE:ID[:FIRSTNAME[:LASTNAME]]", s)
	}
	id, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || id <= 0 || parts[0] == "" {
		return bezlimit.User{}, fmt.Errorf("%q: want a role and a positive user id", s)
	}
	u := bezlimit.User{ID: id, Role: parts[0]}
	if len(parts) > 2 {
		u.FirstName = parts[2]
	}
	if len(parts) > 3 {
		u.LastName = parts[3]
	}
	return u, nil
}

// readPublicKey reads an RSA public key in PEM: "PUBLIC KEY" (PKIX, what a Nexmo application
// registers) or "RSA PUBLIC KEY" (PKCS #1).
func readPublicKey(path string) (*rsa.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if rk, ok := k.(*rsa.PublicKey); ok {
			return rk, nil
		}
		return nil, fmt.Errorf("%s: not an RSA key", path)
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("%s: a %q PEM block, want PUBLIC KEY", path, block.Type)
}

// ensureUser returns the engine user with n's unique name, creating it from n if need be.
func ensureUser(ctx context.Context, e *chat.Engine, n chat.NewUser) (chat.User, error) {
	u, err := e.UserByName(ctx, n.Name)
	if errors.Is(err, chat.ErrNotFound) {
		u, err = e.CreateUser(ctx, n)
		if errors.Is(err, chat.ErrConflict) {
			u, err = e.UserByName(ctx, n.Name)
		}
	}
	return u, err
}
