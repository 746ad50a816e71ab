// Package httpx holds the HTTP mechanics every surface shares: reading a request body within
// a limit and checking what it declares and holds, decoding JSON strictly, bearer tokens,
// secret tables compared in constant time, and JSON answers. A surface maps the errors here to
// its vendor's error format; nothing here writes an error answer of its own.
package httpx

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/parley-chat/chat"
)

// Error kinds that ReadBody and DecodeJSON return; each *Error wraps one of them, so a
// surface picks its vendor's answer with errors.Is.
var (
	// ErrTooLarge: the body is longer than the limit (HTTP 413).
	ErrTooLarge = errors.New("body too large")
	// ErrMediaType: the body is declared as something the operation does not take (HTTP 415).
	ErrMediaType = errors.New("unsupported media type")
	// ErrMalformed: the body is not what it claims to be: broken JSON, invalid UTF-8, a NUL,
	// nesting past chat.MaxJSONDepth (HTTP 400). It also matches chat.ErrInvalid.
	ErrMalformed = errors.New("malformed body")
)

// Error is a refused body: its kind (one of the errors above) and what to tell the client.
type Error struct {
	// Kind is ErrTooLarge, ErrMediaType or ErrMalformed.
	Kind error
	// Msg is what to tell the client.
	Msg string
	// Field, when not empty, names the JSON field at fault (a type mismatch).
	Field string
}

// Error returns the message for the client.
func (e *Error) Error() string { return e.Msg }

// Unwrap returns the kind, and chat.ErrInvalid for a malformed body.
func (e *Error) Unwrap() []error {
	if e.Kind == ErrMalformed {
		return []error{e.Kind, chat.ErrInvalid}
	}
	return []error{e.Kind}
}

func malformed(format string, args ...any) error {
	return &Error{Kind: ErrMalformed, Msg: fmt.Sprintf(format, args...)}
}

// JSON is the media type a JSON body may declare: application/json or any "+json" type.
var JSON = []string{"application/json", "+json"}

// ReadBody reads r's body, at most limit bytes, after checking its Content-Type against
// accept: a media type ("application/json"), or a suffix starting with "+" ("+json"). A request
// without a Content-Type is taken when allowMissing is set (some vendors' clients send none);
// nil accept takes any type. It returns *Error values wrapping ErrTooLarge, ErrMediaType or
// ErrMalformed (the body cannot be read).
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64, accept []string, allowMissing bool) ([]byte, error) {
	if err := CheckMediaType(r, accept, allowMissing); err != nil {
		return nil, err
	}
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, tooLarge(limit)
	}
	if err != nil {
		return nil, malformed("cannot read the body: %v", err)
	}
	return b, nil
}

func tooLarge(limit int64) error {
	return &Error{Kind: ErrTooLarge, Msg: fmt.Sprintf("body larger than %d bytes", limit)}
}

// CheckMediaType checks r's Content-Type as ReadBody does.
func CheckMediaType(r *http.Request, accept []string, allowMissing bool) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		if allowMissing || accept == nil {
			return nil
		}
		return &Error{Kind: ErrMediaType, Msg: "Content-Type is missing: send " + accept[0]}
	}
	if accept == nil {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil {
		for _, a := range accept {
			if mt == a || (strings.HasPrefix(a, "+") && strings.HasSuffix(mt, a)) {
				return nil
			}
		}
	}
	return &Error{Kind: ErrMediaType, Msg: fmt.Sprintf("Content-Type %q is not supported: send %s", ct, accept[0])}
}

// DecodeJSON decodes one JSON value from b into dst after chat.CheckJSON's checks (valid
// UTF-8, no NUL, bounded depth), so that nothing is silently replaced on the way: Go's decoder
// turns invalid UTF-8 into U+FFFD. Data after the value is refused. A type mismatch names
// its field. Errors are *Error values wrapping ErrMalformed.
func DecodeJSON(b []byte, dst any) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return malformed("the body is empty: a JSON value is required")
	}
	if err := chat.CheckJSON("body", b); err != nil {
		var inv *chat.InvalidError
		if errors.As(err, &inv) {
			return malformed("body: %s", inv.Reason)
		}
		return malformed("%v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(dst); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return &Error{Kind: ErrMalformed, Msg: fmt.Sprintf("%s must be of type %s", te.Field, te.Type), Field: te.Field}
		}
		return malformed("malformed JSON: %v", err)
	}
	if dec.InputOffset() != int64(len(b)) {
		return malformed("data after the JSON value")
	}
	return nil
}

// CheckText refuses a string a client sent that cannot be stored as sent: invalid UTF-8 or a
// NUL byte. Use it on form fields and query parameters, which no JSON decoder has checked.
func CheckText(field, s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return &Error{Kind: ErrMalformed, Msg: field + " contains a NUL byte"}
		}
	}
	if !utf8.ValidString(s) {
		return &Error{Kind: ErrMalformed, Msg: field + " is not valid UTF-8"}
	}
	return nil
}

// Bearer returns the token of an "Authorization: Bearer <token>" value (the scheme in any
// case), and whether there was one.
func Bearer(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

// WriteJSON answers with status and v as JSON, ended by a newline.
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err = w.Write(append(b, '\n'))
	return err
}

// Secrets maps secrets (API keys, tokens) to values. Lookup compares the SHA-256 digest of
// the secret it is given with every entry's in constant time, so that neither the time it
// takes nor the entry it stops at tells anything about a secret.
type Secrets[V any] struct {
	entries []secretEntry[V]
}

type secretEntry[V any] struct {
	digest [sha256.Size]byte
	value  V
}

// NewSecrets returns a table of the given secrets. Empty secrets are left out: they would
// match a missing header.
func NewSecrets[V any](m map[string]V) *Secrets[V] {
	s := &Secrets[V]{}
	for k, v := range m {
		if k != "" {
			s.entries = append(s.entries, secretEntry[V]{sha256.Sum256([]byte(k)), v})
		}
	}
	return s
}

// Lookup returns the value of secret, and whether it is in the table.
func (s *Secrets[V]) Lookup(secret string) (V, bool) {
	var zero, found V
	if s == nil || secret == "" {
		return zero, false
	}
	sum := sha256.Sum256([]byte(secret))
	ok := 0
	for i := range s.entries {
		eq := subtle.ConstantTimeCompare(sum[:], s.entries[i].digest[:])
		if eq == 1 && ok == 0 {
			found = s.entries[i].value
		}
		ok |= eq
	}
	if ok == 0 {
		return zero, false
	}
	return found, true
}

// Equal reports, in constant time, whether a secret given by a client equals the expected
// one; an empty expected secret matches nothing.
func Equal(given, expected string) bool {
	if expected == "" {
		return false
	}
	g, e := sha256.Sum256([]byte(given)), sha256.Sum256([]byte(expected))
	return subtle.ConstantTimeCompare(g[:], e[:]) == 1
}
