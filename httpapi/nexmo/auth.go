package nexmo

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/httpx"
)

// Claims are the claims of a Nexmo Conversation API token (fact): application_id, iat, jti,
// optional exp, optional sub (a user name) and optional acl. Tests and programs that need a
// token with other claims than NewToken makes sign a Claims value with jwt.NewWithClaims.
type Claims struct {
	// ApplicationID selects the public key that verifies the token.
	ApplicationID string `json:"application_id"`
	// ACL is the vendor's access control list ({"paths": {...}}); it is carried but not
	// enforced (see decisions.go).
	ACL json.RawMessage `json:"acl,omitempty"`
	jwt.RegisteredClaims
}

// principal is who a request acts for: an admin (no sub) or a user.
type principal struct {
	admin bool
	user  chat.User
}

// engineUser is the engine user a principal acts as: System for an admin.
func (p principal) engineUser() chat.ID {
	if p.admin {
		return chat.System()
	}
	return p.user.ID
}

var (
	errNoToken      = newAPIError(codeInvalidToken, "Invalid token: none given.")
	errInvalidToken = newAPIError(codeInvalidToken, "Invalid token.")
	errExpiredToken = newAPIError(codeExpiredToken, "The token has expired.")
)

// authenticate checks the request's Bearer JWT and returns its principal, or an *apiError.
func (h *Handler) authenticate(r *http.Request) (principal, error) {
	raw, ok := httpx.Bearer(r.Header.Get("Authorization"))
	if !ok {
		return principal{}, errNoToken
	}
	c, err := h.verify(r.Context(), raw)
	if err != nil {
		return principal{}, err
	}
	if c.Subject == "" {
		return principal{admin: true}, nil
	}
	u, err := h.e.UserByName(r.Context(), c.Subject)
	if errors.Is(err, chat.ErrNotFound) {
		return principal{}, errInvalidToken // a token for a user who does not exist (ours)
	}
	if err != nil {
		return principal{}, err
	}
	return principal{user: u}, nil
}

// verify checks a token's signature and the vendor's lifetime rules:
//
//   - the signature is RS256 (jwt.WithValidMethods: an HS256 token signed with the public key
//     as its secret, or "none", is refused) by the key of its application_id;
//   - iat is required;
//   - exp is optional: a token without one expires defaultTokenLifetime after its iat;
//   - exp - iat must not exceed maxTokenLifetime;
//   - an expired token is system:error:expired-token; anything else wrong is
//     system:error:invalid-token.
//
// jwt.WithExpirationRequired cannot be given to the parser: the vendor's tokens may lack exp
// (its own legacy SDK signs iat, jti and application_id only), and the parser would refuse
// them. So the signature is checked first with claim validation off, the claims are
// normalised (a missing exp becomes iat + 15 min), and then the normalised claims are
// validated with WithExpirationRequired and WithIssuedAt, so that from there on the library's
// own checks apply to every token alike.
func (h *Handler) verify(ctx context.Context, raw string) (*Claims, error) {
	c := new(Claims)
	p := jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithoutClaimsValidation())
	_, err := p.ParseWithClaims(raw, c, func(t *jwt.Token) (any, error) {
		if c.ApplicationID == "" {
			return nil, errors.New("no application_id")
		}
		return h.publicKey(ctx, c.ApplicationID)
	})
	if err != nil {
		return nil, errInvalidToken
	}
	if c.IssuedAt == nil {
		return nil, errInvalidToken
	}
	iat := c.IssuedAt.Time
	if c.ExpiresAt == nil {
		c.ExpiresAt = jwt.NewNumericDate(iat.Add(defaultTokenLifetime))
	}
	if life := c.ExpiresAt.Sub(iat); life <= 0 || life > maxTokenLifetime {
		return nil, errInvalidToken
	}
	v := jwt.NewValidator(jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithTimeFunc(h.now), jwt.WithLeeway(h.cfg.Leeway))
	if err := v.Validate(c); err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, errExpiredToken
		}
		return nil, errInvalidToken
	}
	return c, nil
}

// publicKey returns the key of an application, from Config.Keys or Config.PublicKey.
func (h *Handler) publicKey(ctx context.Context, appID string) (*rsa.PublicKey, error) {
	if k, ok := h.cfg.Keys[appID]; ok && k != nil {
		return k, nil
	}
	if h.cfg.PublicKey != nil {
		k, err := h.cfg.PublicKey(ctx, appID)
		if err == nil && k == nil {
			err = errors.New("no key")
		}
		return k, err
	}
	return nil, fmt.Errorf("unknown application %q", appID)
}

// NewToken mints an RS256 token for the application appID, signed with key: claims
// application_id, iat (now), jti (random), exp (now + ttl) and, when sub is not empty, sub (a
// user name; without it the token is an admin token). A ttl of 0 leaves exp out, so that the
// token lives the vendor's default 15 minutes; a ttl over 24 hours is refused, as the handler
// would refuse the token. It is meant for demo servers and tests; production tokens are
// minted by the application's own backend.
func NewToken(key *rsa.PrivateKey, appID, sub string, ttl time.Duration) (string, error) {
	if key == nil || appID == "" {
		return "", errors.New("nexmo: NewToken needs a key and an application id")
	}
	if ttl < 0 || ttl > maxTokenLifetime {
		return "", fmt.Errorf("nexmo: token lifetime %v outside 0..%v", ttl, maxTokenLifetime)
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	now := time.Now()
	c := Claims{ApplicationID: appID, RegisteredClaims: jwt.RegisteredClaims{
		IssuedAt: jwt.NewNumericDate(now), ID: hex.EncodeToString(jti[:]), Subject: sub,
	}}
	if ttl > 0 {
		c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	}
	return jwt.NewWithClaims(jwt.SigningMethodRS256, c).SignedString(key)
}
