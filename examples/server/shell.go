package main

import (
	"errors"
	"fmt"
	"strings"
)

// The demo file is read by two parsers: sh (". ./parley-demo.env") and readDemoLine. Values
// are written single-quoted, which sh takes literally but for the quote itself ('\''); the
// reader understands that much of sh's quoting and refuses the rest (expansions,
// metacharacters) rather than read a value other than the one sh sees.

// shellName reports whether name can be a shell variable's name.
func shellName(name string) bool {
	if name == "" || name[0] >= '0' && name[0] <= '9' {
		return false
	}
	for _, c := range []byte(name) {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// maxShellValue bounds a value in the demo file: a line of it, quoted, must fit the reader's
// buffer.
const maxShellValue = 16 << 10

// errShellValue is why a value cannot be kept in the demo file.
var errShellValue = errors.New("a line break or NUL cannot be kept in a shell line")

// shellQuote returns v as one single-quoted sh word that sh reads back as exactly v. A value
// with a line break (the file is read by lines) or a NUL (no shell variable holds one) is
// refused, as is one longer than maxShellValue.
func shellQuote(v string) (string, error) {
	if strings.ContainsAny(v, "\n\r\x00") {
		return "", errShellValue
	}
	if len(v) > maxShellValue {
		return "", fmt.Errorf("%d bytes: at most %d", len(v), maxShellValue)
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'", nil
}

// shellUnquote reads one sh word: single-quoted parts, double-quoted parts without
// expansions, backslash escapes and plain characters, as sh joins them. Anything sh would
// expand or split on (unquoted $, `, blanks, ;, |, &, <, >, (, ), globs, a leading ~ or #) is
// an error: the reader cannot tell what sh would make of it.
func shellUnquote(w string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(w); {
		switch c := w[i]; {
		case c == '\'':
			j := strings.IndexByte(w[i+1:], '\'')
			if j < 0 {
				return "", errors.New("unclosed '")
			}
			b.WriteString(w[i+1 : i+1+j])
			i += j + 2
		case c == '"':
			i++
			for {
				if i >= len(w) {
					return "", errors.New(`unclosed "`)
				}
				c := w[i]
				if c == '"' {
					i++
					break
				}
				switch c {
				case '$', '`':
					return "", fmt.Errorf("%q inside double quotes expands: quote the value with '…'", c)
				case '\\':
					// Inside double quotes a backslash escapes only $ ` " \ (and a newline).
					if i+1 < len(w) && strings.IndexByte("$`\"\\", w[i+1]) >= 0 {
						i++
						c = w[i]
					}
				}
				b.WriteByte(c)
				i++
			}
		case c == '\\':
			if i+1 >= len(w) {
				return "", errors.New("a backslash ends the line")
			}
			b.WriteByte(w[i+1])
			i += 2
		case plainShellByte(c):
			b.WriteByte(c)
			i++
		default:
			return "", fmt.Errorf("unquoted %q: quote the value with '…'", c)
		}
	}
	return b.String(), nil
}

// plainShellByte reports whether sh takes c unquoted, anywhere in a word, as itself. Bytes
// of multi-byte UTF-8 are plain; so is '=' (the word is an assignment's value already).
func plainShellByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("-_./:,+@%=", c) >= 0 || c >= 0x80
}

// readDemoLine reads one line of the demo file: [export ]NAME=WORD. ok is false for a blank
// line or a comment.
func readDemoLine(line string) (name, value string, ok bool, err error) {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return "", "", false, nil
	}
	if rest, found := strings.CutPrefix(line, "export"); found && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
		line = strings.TrimLeft(rest, " \t")
	}
	name, word, found := strings.Cut(line, "=")
	if !found || !shellName(name) {
		return "", "", false, errors.New("not NAME=VALUE")
	}
	value, err = shellUnquote(word)
	if err != nil {
		return "", "", false, fmt.Errorf("%s: %w", name, err)
	}
	return name, value, true, nil
}
