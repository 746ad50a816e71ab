// Package stomp is a STOMP 1.2 frame codec for STOMP over WebSocket, where every WebSocket
// message carries whole frames: one or several, separated and preceded by any number of
// end-of-lines (heart-beats).
//
// Decode parses what one WebSocket message holds under hard Limits: a frame's size, its number
// of headers and the length of each header line. It never allocates what a content-length
// header claims: the body must already be in the received bytes, or the frame is an error.
// Header names and values are unescaped (\\, \n, \r, \c) except in CONNECT and CONNECTED
// frames, which the specification leaves unescaped; a repeated header is kept, and Get
// returns its first occurrence, which is the one that counts. Header names and values must
// be valid UTF-8, as the specification says they are, and hold no NUL. AppendFrame encodes.
//
// The codec follows the STOMP 1.2 grammar
// (https://stomp.github.io/stomp-specification-1.2.html#Augmented_BNF) with one leniency,
// written down in decodeDecisions: a header value may contain ':' (only the first colon
// separates name from value), because CONNECT frames cannot escape one and real clients put
// colons in them (host:port, URLs).
package stomp

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Commands of STOMP 1.2.
const (
	// Client commands.
	CmdConnect     = "CONNECT"
	CmdStomp       = "STOMP"
	CmdSend        = "SEND"
	CmdSubscribe   = "SUBSCRIBE"
	CmdUnsubscribe = "UNSUBSCRIBE"
	CmdBegin       = "BEGIN"
	CmdCommit      = "COMMIT"
	CmdAbort       = "ABORT"
	CmdAck         = "ACK"
	CmdNack        = "NACK"
	CmdDisconnect  = "DISCONNECT"
	// Server commands.
	CmdConnected = "CONNECTED"
	CmdMessage   = "MESSAGE"
	CmdReceipt   = "RECEIPT"
	CmdError     = "ERROR"
)

// knownCommand reports whether cmd is one of the fifteen STOMP 1.2 commands.
func knownCommand(cmd string) bool {
	switch cmd {
	case CmdConnect, CmdStomp, CmdSend, CmdSubscribe, CmdUnsubscribe, CmdBegin, CmdCommit,
		CmdAbort, CmdAck, CmdNack, CmdDisconnect, CmdConnected, CmdMessage, CmdReceipt, CmdError:
		return true
	}
	return false
}

// escapes reports whether headers of a frame with this command are escaped: all but CONNECT
// and CONNECTED (and STOMP, the other name of CONNECT).
func escapes(cmd string) bool {
	return cmd != CmdConnect && cmd != CmdConnected && cmd != CmdStomp
}

// The default limits.
const (
	// DefaultMaxFrameSize is the largest frame, in bytes from the first byte of the command
	// to the NUL that ends it.
	DefaultMaxFrameSize = 64 << 10
	// DefaultMaxHeaders is the most headers a frame may carry, repeated ones included.
	DefaultMaxHeaders = 32
	// DefaultMaxHeaderLen is the longest header line, in bytes as received (escaped).
	DefaultMaxHeaderLen = 4 << 10
)

// Limits bound what Decode accepts. A zero field takes its default.
type Limits struct {
	// MaxFrameSize is the largest frame in bytes, command to NUL.
	MaxFrameSize int
	// MaxHeaders is the most header lines in a frame.
	MaxHeaders int
	// MaxHeaderLen is the longest header line in bytes, as received.
	MaxHeaderLen int
}

func (l Limits) withDefaults() Limits {
	if l.MaxFrameSize <= 0 {
		l.MaxFrameSize = DefaultMaxFrameSize
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = DefaultMaxHeaders
	}
	if l.MaxHeaderLen <= 0 {
		l.MaxHeaderLen = DefaultMaxHeaderLen
	}
	return l
}

// Errors returned by Decode and AppendFrame, wrapped with detail; match them with errors.Is.
var (
	// ErrMalformed: the bytes do not follow the frame grammar (a missing EOL or colon, an
	// empty header name, a body without its NUL, a bad content-length, an undefined escape).
	ErrMalformed = errors.New("stomp: malformed frame")
	// ErrUnknownCommand: the command is not a STOMP 1.2 command.
	ErrUnknownCommand = errors.New("stomp: unknown command")
	// ErrTooLarge: a frame is longer than Limits.MaxFrameSize.
	ErrTooLarge = errors.New("stomp: frame too large")
	// ErrTooManyHeaders: a frame has more than Limits.MaxHeaders headers.
	ErrTooManyHeaders = errors.New("stomp: too many headers")
	// ErrHeaderTooLong: a header line is longer than Limits.MaxHeaderLen.
	ErrHeaderTooLong = errors.New("stomp: header too long")
	// ErrTruncated: the data ends inside a frame, or a content-length claims more bytes than
	// were received.
	ErrTruncated = errors.New("stomp: truncated frame")
)

// Header is one header line.
type Header struct {
	// Key is the header name, unescaped.
	Key string
	// Value is the header value, unescaped.
	Value string
}

// Frame is one STOMP frame.
type Frame struct {
	// Command is the frame's command, e.g. CmdSend.
	Command string
	// Headers are the frame's headers in the order they came; a key may repeat.
	Headers []Header
	// Body is the frame's body. After Decode it aliases the decoded data.
	Body []byte
}

// Get returns the value of the first header named key: the one that counts when a header
// repeats.
func (f *Frame) Get(key string) (string, bool) {
	for _, h := range f.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return "", false
}

// Value returns the value of the first header named key, or "".
func (f *Frame) Value(key string) string {
	v, _ := f.Get(key)
	return v
}

// Add appends a header.
func (f *Frame) Add(key, value string) { f.Headers = append(f.Headers, Header{key, value}) }

// IsHeartBeat reports whether data, a whole WebSocket message, is only end-of-lines: a
// heart-beat.
func IsHeartBeat(data []byte) bool {
	rest := skipEOLs(data)
	return len(rest) == 0 && len(data) > 0
}

// skipEOLs drops leading EOLs: LF or CR LF. A CR not followed by LF stays.
func skipEOLs(b []byte) []byte {
	for len(b) > 0 {
		switch {
		case b[0] == '\n':
			b = b[1:]
		case b[0] == '\r' && len(b) > 1 && b[1] == '\n':
			b = b[2:]
		default:
			return b
		}
	}
	return b
}

// Decode parses every frame in data, the payload of one WebSocket message, appending them to
// dst. EOLs before, between and after frames are heart-beats and are skipped; data holding
// only EOLs yields no frame. Frames' bodies alias data. On error, dst holds the frames before
// the bad one.
func Decode(dst []Frame, data []byte, lim Limits) ([]Frame, error) {
	lim = lim.withDefaults()
	for {
		data = skipEOLs(data)
		if len(data) == 0 {
			return dst, nil
		}
		f, rest, err := decodeFrame(data, lim)
		if err != nil {
			return dst, err
		}
		dst = append(dst, f)
		data = rest
	}
}

// decodeDecisions: where the grammar is stricter than real clients, or silent.
//   - A header value may contain ':'; the first colon ends the name.
//   - Header names and values must be valid UTF-8 ("commands and headers are encoded in
//     UTF-8") and must not hold a NUL, raw or unescaped, although the grammar's octets allow
//     one: nothing downstream can store or echo it safely (a NUL ends a frame for clients
//     that read without content-length). Either is ErrMalformed. Bodies are not checked:
//     they are octets, and what they must be is for the frame's receiver to say.
//   - The command is case-sensitive and must be one of the fifteen STOMP 1.2 commands.
//   - An EOL is LF or CR LF everywhere (command, headers, the blank line, between frames).
//   - content-length must be decimal digits only (no sign, no spaces), at most 10 digits.
//   - Escapes follow 1.2 (\r allowed) whatever version was negotiated.
const maxContentLengthDigits = 10

// maxCommandLen is the length of the longest command, UNSUBSCRIBE.
const maxCommandLen = len(CmdUnsubscribe)

// decodeFrame parses the frame at the start of data (which does not start with an EOL) and
// returns it with the bytes after its NUL.
func decodeFrame(data []byte, lim Limits) (Frame, []byte, error) {
	start := len(data)
	// used is how many bytes of the frame have been consumed so far.
	used := func(rest []byte) int { return start - len(rest) }

	line, rest, err := readLine(data, maxCommandLen)
	if errors.Is(err, ErrHeaderTooLong) {
		return Frame{}, nil, fmt.Errorf("%w: %.16q...", ErrUnknownCommand, data)
	}
	if err != nil {
		return Frame{}, nil, fmt.Errorf("command line: %w", err)
	}
	f := Frame{Command: string(line)}
	if !knownCommand(f.Command) {
		return Frame{}, nil, fmt.Errorf("%w: %.32q", ErrUnknownCommand, line)
	}
	esc := escapes(f.Command)
	contentLength := -1
	for {
		if used(rest) > lim.MaxFrameSize {
			return Frame{}, nil, ErrTooLarge
		}
		line, rest, err = readLine(rest, lim.MaxHeaderLen)
		if err != nil {
			return Frame{}, nil, fmt.Errorf("header line: %w", err)
		}
		if len(line) == 0 {
			break // the blank line before the body
		}
		if len(f.Headers) == lim.MaxHeaders {
			return Frame{}, nil, fmt.Errorf("%w: more than %d", ErrTooManyHeaders, lim.MaxHeaders)
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return Frame{}, nil, fmt.Errorf("%w: header line without a colon", ErrMalformed)
		}
		if colon == 0 {
			return Frame{}, nil, fmt.Errorf("%w: empty header name", ErrMalformed)
		}
		h := Header{}
		if h.Key, err = unescape(line[:colon], esc); err != nil {
			return Frame{}, nil, err
		}
		if h.Value, err = unescape(line[colon+1:], esc); err != nil {
			return Frame{}, nil, err
		}
		if err := checkText(h.Key); err != nil {
			return Frame{}, nil, fmt.Errorf("header name: %w", err)
		}
		if err := checkText(h.Value); err != nil {
			return Frame{}, nil, fmt.Errorf("header %.32q: %w", h.Key, err)
		}
		if h.Key == "content-length" && contentLength < 0 { // the first one counts
			if contentLength, err = parseContentLength(h.Value); err != nil {
				return Frame{}, nil, err
			}
		}
		f.Headers = append(f.Headers, h)
	}
	head := used(rest)
	if head >= lim.MaxFrameSize {
		return Frame{}, nil, ErrTooLarge
	}
	if contentLength >= 0 {
		// The body and its NUL must be in the received bytes; nothing is allocated for them.
		if contentLength > lim.MaxFrameSize-head-1 {
			return Frame{}, nil, fmt.Errorf("%w: content-length %d", ErrTooLarge, contentLength)
		}
		if contentLength >= len(rest) {
			return Frame{}, nil, fmt.Errorf("%w: content-length %d, %d bytes left", ErrTruncated, contentLength, len(rest))
		}
		if rest[contentLength] != 0 {
			return Frame{}, nil, fmt.Errorf("%w: no NUL after content-length bytes", ErrMalformed)
		}
		f.Body = rest[:contentLength:contentLength]
		return f, rest[contentLength+1:], nil
	}
	window := rest
	if max := lim.MaxFrameSize - head; len(window) > max {
		window = window[:max]
	}
	nul := bytes.IndexByte(window, 0)
	if nul < 0 {
		if len(window) < len(rest) {
			return Frame{}, nil, ErrTooLarge
		}
		return Frame{}, nil, fmt.Errorf("%w: no NUL ends the body", ErrTruncated)
	}
	if nul > 0 {
		f.Body = rest[:nul:nul]
	}
	return f, rest[nul+1:], nil
}

func hasKey(hs []Header, key string) bool {
	for _, h := range hs {
		if h.Key == key {
			return true
		}
	}
	return false
}

// checkText refuses a header name or value that is not valid UTF-8 or holds a NUL.
func checkText(s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%w: a NUL in a header", ErrMalformed)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: a header that is not valid UTF-8", ErrMalformed)
	}
	return nil
}

// readLine returns the bytes before the next EOL (LF or CR LF) and what follows it. A line
// longer than max (without its EOL) is ErrHeaderTooLong; data without an EOL is ErrTruncated;
// a CR not before LF is ErrMalformed. (A NUL in a header line is refused by the caller.)
func readLine(data []byte, max int) (line, rest []byte, err error) {
	window := data
	if len(window) > max+2 {
		window = window[:max+2]
	}
	i := bytes.IndexByte(window, '\n')
	if i < 0 {
		if len(window) < len(data) {
			return nil, nil, ErrHeaderTooLong
		}
		return nil, nil, fmt.Errorf("%w: no end of line", ErrTruncated)
	}
	line, rest = data[:i], data[i+1:]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	if len(line) > max {
		return nil, nil, ErrHeaderTooLong
	}
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil, fmt.Errorf("%w: CR inside a line", ErrMalformed)
	}
	return line, rest, nil
}

func parseContentLength(v string) (int, error) {
	if v == "" || len(v) > maxContentLengthDigits {
		return 0, fmt.Errorf("%w: content-length %q", ErrMalformed, v)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, fmt.Errorf("%w: content-length %q", ErrMalformed, v)
		}
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%w: content-length %q", ErrMalformed, v)
	}
	return n, nil
}

// unescape decodes a header name or value: \\ \n \r \c when esc, else the bytes as they are.
func unescape(b []byte, esc bool) (string, error) {
	if !esc || bytes.IndexByte(b, '\\') < 0 {
		return string(b), nil
	}
	var sb strings.Builder
	sb.Grow(len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\\' {
			sb.WriteByte(c)
			continue
		}
		if i+1 == len(b) {
			return "", fmt.Errorf("%w: a header ends with a backslash", ErrMalformed)
		}
		i++
		switch b[i] {
		case '\\':
			sb.WriteByte('\\')
		case 'n':
			sb.WriteByte('\n')
		case 'r':
			sb.WriteByte('\r')
		case 'c':
			sb.WriteByte(':')
		default:
			return "", fmt.Errorf("%w: undefined escape \\%c", ErrMalformed, b[i])
		}
	}
	return sb.String(), nil
}

// AppendFrame appends the encoding of f to dst, ended by its NUL. Headers are escaped except
// in CONNECT, CONNECTED and STOMP frames, where a header that would need escaping (CR, LF, or
// ':' in a name) is an error. A header that Decode would refuse (not valid UTF-8, or holding a
// NUL) is an error. A frame with a body and no content-length header gets one; a
// content-length header that does not match the body is an error.
func AppendFrame(dst []byte, f *Frame) ([]byte, error) {
	if !knownCommand(f.Command) {
		return dst, fmt.Errorf("%w: %q", ErrUnknownCommand, f.Command)
	}
	esc := escapes(f.Command)
	hasLength := false
	for i, h := range f.Headers {
		if h.Key == "" {
			return dst, fmt.Errorf("%w: empty header name", ErrMalformed)
		}
		if err := checkText(h.Key); err != nil {
			return dst, err
		}
		if err := checkText(h.Value); err != nil {
			return dst, fmt.Errorf("header %q: %w", h.Key, err)
		}
		if !esc && (strings.ContainsAny(h.Key, "\r\n:") || strings.ContainsAny(h.Value, "\r\n")) {
			return dst, fmt.Errorf("%w: header %q cannot be sent unescaped in %s", ErrMalformed, h.Key, f.Command)
		}
		if h.Key == "content-length" && !hasKey(f.Headers[:i], "content-length") {
			hasLength = true
			if n, err := parseContentLength(h.Value); err != nil || n != len(f.Body) {
				return dst, fmt.Errorf("%w: content-length %q for a body of %d bytes", ErrMalformed, h.Value, len(f.Body))
			}
		}
	}
	dst = append(dst, f.Command...)
	dst = append(dst, '\n')
	for _, h := range f.Headers {
		dst = appendEscaped(dst, h.Key, esc)
		dst = append(dst, ':')
		dst = appendEscaped(dst, h.Value, esc)
		dst = append(dst, '\n')
	}
	if !hasLength && len(f.Body) > 0 {
		dst = append(dst, "content-length:"...)
		dst = strconv.AppendInt(dst, int64(len(f.Body)), 10)
		dst = append(dst, '\n')
	}
	dst = append(dst, '\n')
	dst = append(dst, f.Body...)
	return append(dst, 0), nil
}

func appendEscaped(dst []byte, s string, esc bool) []byte {
	if !esc {
		return append(dst, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case ':':
			dst = append(dst, '\\', 'c')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// ParseHeartBeat parses a heart-beat header "cx,cy" (milliseconds). An empty value is 0,0.
func ParseHeartBeat(v string) (cx, cy time.Duration, err error) {
	if v == "" {
		return 0, 0, nil
	}
	a, b, ok := strings.Cut(v, ",")
	if !ok {
		return 0, 0, fmt.Errorf("%w: heart-beat %q", ErrMalformed, v)
	}
	x, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 31)
	y, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 31)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("%w: heart-beat %q", ErrMalformed, v)
	}
	return time.Duration(x) * time.Millisecond, time.Duration(y) * time.Millisecond, nil
}

// FormatHeartBeat formats a heart-beat header value from two durations, in milliseconds.
func FormatHeartBeat(cx, cy time.Duration) string {
	return strconv.FormatInt(cx.Milliseconds(), 10) + "," + strconv.FormatInt(cy.Milliseconds(), 10)
}

// NegotiateHeartBeat returns the heart-beat intervals of a connection, given the client's
// CONNECT offer (cx: the client can send every cx; cy: it wants to receive every cy) and the
// server's (sx, sy, in the same sense): the server sends every send and expects something from
// the client every recv. 0 means none in that direction. Each is the larger of the two sides'
// wishes, as the specification says.
func NegotiateHeartBeat(cx, cy, sx, sy time.Duration) (send, recv time.Duration) {
	if sx > 0 && cy > 0 {
		send = max(sx, cy)
	}
	if cx > 0 && sy > 0 {
		recv = max(cx, sy)
	}
	return send, recv
}
