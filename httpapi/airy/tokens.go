package airy

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrUnauthorized: a token is missing, malformed, badly signed, expired, or of the wrong kind.
// Handlers answer it with 401 over HTTP and an ERROR frame whose message contains 401 over
// STOMP.
var ErrUnauthorized = errors.New("airy: unauthorized")

// Tokens issues and checks the chat plugin's HS256 JWTs: auth tokens (conversation_id,
// channel_id, sub = the conversation id) and resume tokens (resume_conversation_id,
// resume_channel_id). Every token carries ClaimTokenType, checked on parsing, and an exp.
// Tokens is safe for concurrent use; the REST and the WebSocket handler share one.
type Tokens struct {
	secret    []byte
	authTTL   time.Duration
	resumeTTL time.Duration
	now       func() time.Time
	parser    *jwt.Parser
}

// TokenConfig configures Tokens.
type TokenConfig struct {
	// Secret is the HS256 key; at least MinSecretLen bytes.
	Secret []byte
	// AuthTTL is an auth token's lifetime (default DefaultAuthTTL).
	AuthTTL time.Duration
	// ResumeTTL is a resume token's lifetime (default DefaultResumeTTL).
	ResumeTTL time.Duration
	// Now tells the time for issuing and checking (default time.Now).
	Now func() time.Time
}

// NewTokens returns Tokens for c. It refuses a secret shorter than MinSecretLen and
// negative lifetimes.
func NewTokens(c TokenConfig) (*Tokens, error) {
	if len(c.Secret) < MinSecretLen {
		return nil, fmt.Errorf("airy: token secret of %d bytes; at least %d are needed", len(c.Secret), MinSecretLen)
	}
	if c.AuthTTL < 0 || c.ResumeTTL < 0 {
		return nil, errors.New("airy: negative token lifetime")
	}
	t := &Tokens{secret: append([]byte(nil), c.Secret...), authTTL: c.AuthTTL, resumeTTL: c.ResumeTTL, now: c.Now}
	if t.authTTL == 0 {
		t.authTTL = DefaultAuthTTL
	}
	if t.resumeTTL == 0 {
		t.resumeTTL = DefaultResumeTTL
	}
	if t.now == nil {
		t.now = time.Now
	}
	t.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{"HS256"}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(t.now),
	)
	return t, nil
}

// claims is the JSON of both kinds of token.
type claims struct {
	Type                 string `json:"parley_token_type"` // ClaimTokenType
	ConversationID       string `json:"conversation_id,omitempty"`
	ChannelID            string `json:"channel_id,omitempty"`
	ResumeConversationID string `json:"resume_conversation_id,omitempty"`
	ResumeChannelID      string `json:"resume_channel_id,omitempty"`
	jwt.RegisteredClaims
}

func (t *Tokens) sign(c claims, ttl time.Duration) (string, error) {
	now := t.now()
	c.IssuedAt = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.secret)
}

func (t *Tokens) parse(s, typ string) (claims, error) {
	var c claims
	_, err := t.parser.ParseWithClaims(s, &c, func(*jwt.Token) (any, error) { return t.secret, nil })
	if err != nil {
		return claims{}, fmt.Errorf("%w: %v", ErrUnauthorized, err)
	}
	if c.Type != typ {
		return claims{}, fmt.Errorf("%w: a %q token where a %q token is needed", ErrUnauthorized, c.Type, typ)
	}
	return c, nil
}

// IssueAuth returns an auth token for a conversation (its id in UUID form) of a channel.
func (t *Tokens) IssueAuth(conversationID, channelID string) (string, error) {
	return t.sign(claims{
		Type: TokenTypeAuth, ConversationID: conversationID, ChannelID: channelID,
		RegisteredClaims: jwt.RegisteredClaims{Subject: conversationID},
	}, t.authTTL)
}

// ParseAuth checks an auth token and returns its conversation and channel ids. Every failure
// wraps ErrUnauthorized.
func (t *Tokens) ParseAuth(token string) (conversationID, channelID string, err error) {
	conversationID, channelID, _, err = t.parseAuth(token)
	return conversationID, channelID, err
}

// parseAuth is ParseAuth that also returns the token's expiry.
func (t *Tokens) parseAuth(token string) (conversationID, channelID string, exp time.Time, err error) {
	c, err := t.parse(token, TokenTypeAuth)
	if err != nil {
		return "", "", time.Time{}, err
	}
	if c.ConversationID == "" || c.ChannelID == "" || c.Subject != c.ConversationID {
		return "", "", time.Time{}, fmt.Errorf("%w: auth token without its conversation", ErrUnauthorized)
	}
	// WithExpirationRequired: a parsed token has an exp.
	return c.ConversationID, c.ChannelID, c.ExpiresAt.Time, nil
}

// Now returns the time by the Tokens' clock (TokenConfig.Now): the clock of
// Conversation.Expires.
func (t *Tokens) Now() time.Time { return t.now() }

// IssueResume returns a resume token for a conversation of a channel.
func (t *Tokens) IssueResume(conversationID, channelID string) (string, error) {
	return t.sign(claims{Type: TokenTypeResume, ResumeConversationID: conversationID, ResumeChannelID: channelID}, t.resumeTTL)
}

// ParseResume checks a resume token and returns its conversation and channel ids. Every
// failure wraps ErrUnauthorized.
func (t *Tokens) ParseResume(token string) (conversationID, channelID string, err error) {
	c, err := t.parse(token, TokenTypeResume)
	if err != nil {
		return "", "", err
	}
	if c.ResumeConversationID == "" || c.ResumeChannelID == "" {
		return "", "", fmt.Errorf("%w: resume token without its conversation", ErrUnauthorized)
	}
	return c.ResumeConversationID, c.ResumeChannelID, nil
}
