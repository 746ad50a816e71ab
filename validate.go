package chat

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits on what callers can store. They apply to what is stored, not only to one call: an
// update that merges attributes is checked on the merged result.
const (
	// MaxFieldBytes is the limit on names, nicknames, e-mail addresses, URLs, roles, custom
	// event names and attribute keys.
	MaxFieldBytes = 1024
	// MaxAttributes is the most attributes a room or user holds.
	MaxAttributes = 256
	// MaxAttributeValueBytes is the limit on one attribute value.
	MaxAttributeValueBytes = 8 << 10
	// MaxAttributesBytes is the limit on all the keys and values of a room's or user's
	// attributes together.
	MaxAttributesBytes = 64 << 10
	// MaxJSONDepth is the deepest nesting of arrays and objects a JSON body may have: deeper
	// documents break common parsers (recursive ones overflow their stacks).
	MaxJSONDepth = 64
)

// InvalidError reports input the engine refuses and says which field is at fault. It matches
// ErrInvalid with errors.Is.
type InvalidError struct {
	// Field names the input at fault ("text", "body", "nickname", "attributes"...).
	Field string
	// Reason says what is wrong with it.
	Reason string
}

// Error returns "chat: <field>: <reason>".
func (e *InvalidError) Error() string { return "chat: " + e.Field + ": " + e.Reason }

// Is reports whether target is ErrInvalid.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// invalidf reports bad input that is not one field (an option, a range).
func invalidf(format string, args ...any) error {
	return &InvalidError{Field: "input", Reason: fmt.Sprintf(format, args...)}
}

// checkString refuses what no stored string may hold: invalid UTF-8 (a surface would have to
// replace it, silently changing what was sent) and NUL bytes (which many clients and
// databases take as the end of a string).
func checkString(field, s string) error {
	if !utf8.ValidString(s) {
		return invalid(field, "not valid UTF-8")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return invalid(field, "contains a NUL byte")
	}
	return nil
}

// checkField checks a short field: a string of at most MaxFieldBytes.
func checkField(field, s string) error {
	if len(s) > MaxFieldBytes {
		return invalid(field, "longer than %d bytes", MaxFieldBytes)
	}
	return checkString(field, s)
}

func checkMember(nickname string, role Role) error {
	if err := checkField("nickname", nickname); err != nil {
		return err
	}
	return checkField("role", string(role))
}

// checkText validates message text: valid UTF-8 without NULs, within the size limit. Empty
// text is allowed only when allowEmpty is set (a message with a body).
func (e *Engine) checkText(field, text string, allowEmpty bool) error {
	if text == "" && !allowEmpty {
		return invalid(field, "empty")
	}
	if len(text) > e.opts.maxMessage {
		return invalid(field, "%d bytes exceeds the limit of %d", len(text), e.opts.maxMessage)
	}
	return checkString(field, text)
}

// checkBody validates an optional JSON body: within the size limit, and CheckJSON's rules.
func (e *Engine) checkBody(body json.RawMessage) error {
	if len(body) > e.opts.maxMessage {
		return invalid("body", "%d bytes exceeds the limit of %d", len(body), e.opts.maxMessage)
	}
	if len(body) == 0 {
		return nil
	}
	return CheckJSON("body", body)
}

// checkAttributes checks a whole attribute map, as it is to be stored.
func checkAttributes(a map[string]string) error {
	if len(a) > MaxAttributes {
		return invalid("attributes", "more than %d", MaxAttributes)
	}
	total := 0
	for k, v := range a {
		if k == "" {
			return invalid("attributes", "empty key")
		}
		if err := checkField("attribute key", k); err != nil {
			return err
		}
		if len(v) > MaxAttributeValueBytes {
			return invalid("attribute "+k, "longer than %d bytes", MaxAttributeValueBytes)
		}
		if err := checkString("attribute "+k, v); err != nil {
			return err
		}
		total += len(k) + len(v)
	}
	if total > MaxAttributesBytes {
		return invalid("attributes", "%d bytes in all exceeds the limit of %d", total, MaxAttributesBytes)
	}
	return nil
}

// CheckJSON reports, as an *InvalidError for field, a document that is not valid JSON, is not
// valid UTF-8, nests deeper than MaxJSONDepth, holds a NUL character (as the escape \u0000) or
// half a UTF-16 surrogate pair (an escape Go's decoder would silently turn into U+FFFD). Surfaces use it on JSON they store; the engine uses it on every body.
func CheckJSON(field string, doc []byte) error {
	if !utf8.Valid(doc) {
		return invalid(field, "not valid UTF-8")
	}
	depth, inString := 0, false
	for i := 0; i < len(doc); i++ {
		c := doc[i]
		if inString {
			switch c {
			case '\\':
				if i+1 < len(doc) && doc[i+1] == 'u' {
					r, ok := hex4(doc[i+2:])
					switch {
					case !ok:
						// json.Valid below refuses it
					case r == 0:
						return invalid(field, "contains a NUL character")
					case r >= 0xD800 && r <= 0xDBFF: // a high surrogate needs its low half next
						if lo, ok := hex4(doc[min(i+8, len(doc)):]); !ok || doc[i+6] != '\\' || doc[i+7] != 'u' || lo < 0xDC00 || lo > 0xDFFF {
							return invalid(field, "holds half a UTF-16 surrogate pair")
						}
						i += 6 // the low half is checked here, not as a lone one
					case r >= 0xDC00 && r <= 0xDFFF:
						return invalid(field, "holds half a UTF-16 surrogate pair")
					}
				}
				i++ // the escaped character
			case '"':
				inString = false
			case 0:
				return invalid(field, "contains a NUL byte")
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			if depth++; depth > MaxJSONDepth {
				return invalid(field, "nested deeper than %d", MaxJSONDepth)
			}
		case ']', '}':
			depth--
		}
	}
	if !json.Valid(doc) {
		return invalid(field, "not valid JSON")
	}
	return nil
}

// hex4 decodes the four hex digits b starts with.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
