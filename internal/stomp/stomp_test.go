package stomp

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"pgregory.net/rapid"
)

func hs(kv ...string) []Header {
	var out []Header
	for i := 0; i < len(kv); i += 2 {
		out = append(out, Header{kv[i], kv[i+1]})
	}
	return out
}

var cmpFrames = cmp.Options{cmpopts.EquateEmpty()}

func TestDecode(t *testing.T) {
	small := Limits{MaxFrameSize: 64, MaxHeaders: 3, MaxHeaderLen: 16}
	tests := []struct {
		name string
		in   string
		lim  Limits
		want []Frame
		err  error
	}{
		{name: "empty message", in: "", want: nil},
		{name: "heart-beat LF", in: "\n", want: nil},
		{name: "heart-beat CRLF", in: "\r\n", want: nil},
		{name: "heart-beats mixed", in: "\n\r\n\n", want: nil},
		{name: "connect", in: "CONNECT\naccept-version:1.2\nhost:example.com\n\n\x00",
			want: []Frame{{Command: "CONNECT", Headers: hs("accept-version", "1.2", "host", "example.com")}}},
		{name: "stomp command", in: "STOMP\naccept-version:1.2\n\n\x00",
			want: []Frame{{Command: "STOMP", Headers: hs("accept-version", "1.2")}}},
		{name: "CRLF everywhere", in: "SEND\r\ndestination:/q\r\n\r\nhi\x00\r\n",
			want: []Frame{{Command: "SEND", Headers: hs("destination", "/q"), Body: []byte("hi")}}},
		{name: "no headers", in: "DISCONNECT\n\n\x00", want: []Frame{{Command: "DISCONNECT"}}},
		{name: "body without content-length", in: "SEND\ndestination:/q\n\nhello world\x00",
			want: []Frame{{Command: "SEND", Headers: hs("destination", "/q"), Body: []byte("hello world")}}},
		{name: "content-length body with NUL", in: "SEND\ncontent-length:3\n\na\x00b\x00",
			want: []Frame{{Command: "SEND", Headers: hs("content-length", "3"), Body: []byte("a\x00b")}}},
		{name: "content-length zero", in: "SEND\ncontent-length:0\n\n\x00",
			want: []Frame{{Command: "SEND", Headers: hs("content-length", "0")}}},
		{name: "several frames and heart-beats", in: "\nSEND\n\na\x00\n\r\nSEND\n\nb\x00\nDISCONNECT\nreceipt:7\n\n\x00\n",
			want: []Frame{
				{Command: "SEND", Body: []byte("a")},
				{Command: "SEND", Body: []byte("b")},
				{Command: "DISCONNECT", Headers: hs("receipt", "7")},
			}},
		{name: "escapes", in: "SEND\na\\cb:c\\\\d\\ne\\rf\n\n\x00",
			want: []Frame{{Command: "SEND", Headers: hs("a:b", "c\\d\ne\rf")}}},
		{name: "no escapes in CONNECT", in: "CONNECT\nlogin:a\\cb\n\n\x00",
			want: []Frame{{Command: "CONNECT", Headers: hs("login", "a\\cb")}}},
		{name: "no escapes in CONNECTED", in: "CONNECTED\nserver:x\\n\n\n\x00",
			want: []Frame{{Command: "CONNECTED", Headers: hs("server", "x\\n")}}},
		{name: "undefined escape", in: "SEND\na:\\t\n\n\x00", err: ErrMalformed},
		{name: "trailing backslash", in: "SEND\na:b\\\n\n\x00", err: ErrMalformed},
		{name: "repeated headers kept in order", in: "MESSAGE\nfoo:1\nfoo:2\n\n\x00",
			want: []Frame{{Command: "MESSAGE", Headers: hs("foo", "1", "foo", "2")}}},
		{name: "repeated content-length: first wins", in: "SEND\ncontent-length:1\ncontent-length:5\n\nx\x00",
			want: []Frame{{Command: "SEND", Headers: hs("content-length", "1", "content-length", "5"), Body: []byte("x")}}},
		{name: "colon in value", in: "CONNECT\nhost:localhost:8080\n\n\x00",
			want: []Frame{{Command: "CONNECT", Headers: hs("host", "localhost:8080")}}},
		{name: "empty value", in: "SEND\nk:\n\n\x00", want: []Frame{{Command: "SEND", Headers: hs("k", "")}}},
		{name: "empty header name", in: "SEND\n:v\n\n\x00", err: ErrMalformed},
		{name: "header without colon", in: "SEND\nnocolon\n\n\x00", err: ErrMalformed},
		{name: "lower-case command", in: "send\n\n\x00", err: ErrUnknownCommand},
		{name: "unknown command", in: "HELLO\n\n\x00", err: ErrUnknownCommand},
		{name: "long garbage command", in: strings.Repeat("A", 100) + "\n\n\x00", err: ErrUnknownCommand},
		{name: "missing NUL", in: "SEND\n\nbody", err: ErrTruncated},
		{name: "missing blank line", in: "SEND\nk:v\n", err: ErrTruncated},
		{name: "command only", in: "SEND", err: ErrTruncated},
		{name: "content-length beyond data", in: "SEND\ncontent-length:5\n\nab\x00", err: ErrTruncated},
		{name: "huge content-length is not allocated", in: "SEND\ncontent-length:9999999999\n\nab\x00", err: ErrTooLarge},
		{name: "content-length not followed by NUL", in: "SEND\ncontent-length:1\n\nab\x00", err: ErrMalformed},
		{name: "content-length negative", in: "SEND\ncontent-length:-1\n\n\x00", err: ErrMalformed},
		{name: "content-length with space", in: "SEND\ncontent-length: 1\n\nx\x00", err: ErrMalformed},
		{name: "content-length too many digits", in: "SEND\ncontent-length:00000000001\n\nx\x00", err: ErrMalformed},
		{name: "bare CR in header", in: "SEND\na:b\rc\n\n\x00", err: ErrMalformed},
		{name: "NUL in a header value (the grammar allows it; we do not)", in: "SEND\na:b\x00c\n\n\x00", err: ErrMalformed},
		{name: "NUL in a header name", in: "SEND\na\x00:b\n\n\x00", err: ErrMalformed},
		{name: "NUL in a CONNECT header", in: "CONNECT\nAuthorization:Bearer \x00\n\n\x00", err: ErrMalformed},
		{name: "invalid UTF-8 in a header value", in: "SUBSCRIBE\nid:\xff\n\n\x00", err: ErrMalformed},
		{name: "invalid UTF-8 in a header name", in: "SUBSCRIBE\n\xc3:1\n\n\x00", err: ErrMalformed},
		{name: "invalid UTF-8 in a CONNECT header", in: "CONNECT\nhost:\xed\xa0\x80\n\n\x00", err: ErrMalformed},
		{name: "UTF-8 in headers", in: "SEND\nnaïve:日本語\n\n\x00", want: []Frame{{Command: "SEND", Headers: hs("naïve", "日本語")}}},
		{name: "invalid UTF-8 and NUL in a body are octets", in: "SEND\ncontent-length:2\n\n\xff\x00\x00",
			want: []Frame{{Command: "SEND", Headers: hs("content-length", "2"), Body: []byte("\xff\x00")}}},
		{name: "stray CR between frames", in: "SEND\n\n\x00\rSEND\n\n\x00", err: ErrMalformed},
		{name: "junk after a frame", in: "SEND\n\n\x00junk", err: ErrTruncated},
		// limits
		{name: "header count at limit", lim: small, in: "SEND\na:1\nb:2\nc:3\n\n\x00",
			want: []Frame{{Command: "SEND", Headers: hs("a", "1", "b", "2", "c", "3")}}},
		{name: "header count over limit", lim: small, in: "SEND\na:1\nb:2\nc:3\nd:4\n\n\x00", err: ErrTooManyHeaders},
		{name: "header length at limit", lim: small, in: "SEND\n" + "k:" + strings.Repeat("v", 14) + "\n\n\x00",
			want: []Frame{{Command: "SEND", Headers: hs("k", strings.Repeat("v", 14))}}},
		{name: "header length at limit CRLF", lim: small, in: "SEND\r\n" + "k:" + strings.Repeat("v", 14) + "\r\n\r\n\x00",
			want: []Frame{{Command: "SEND", Headers: hs("k", strings.Repeat("v", 14))}}},
		{name: "header length over limit", lim: small, in: "SEND\n" + "k:" + strings.Repeat("v", 15) + "\n\n\x00", err: ErrHeaderTooLong},
		{name: "frame size at limit", lim: small, in: "SEND\n\n" + strings.Repeat("x", 64-7) + "\x00",
			want: []Frame{{Command: "SEND", Body: []byte(strings.Repeat("x", 64-7))}}},
		{name: "frame size over limit", lim: small, in: "SEND\n\n" + strings.Repeat("x", 64-6) + "\x00", err: ErrTooLarge},
		{name: "frame size over limit without NUL", lim: small, in: "SEND\n\n" + strings.Repeat("x", 100), err: ErrTooLarge},
		{name: "content-length at limit", lim: Limits{MaxFrameSize: 64, MaxHeaderLen: 20}, in: "SEND\ncontent-length:39\n\n" + strings.Repeat("x", 39) + "\x00",
			want: []Frame{{Command: "SEND", Headers: hs("content-length", "39"), Body: []byte(strings.Repeat("x", 39))}}},
		{name: "content-length over limit", lim: Limits{MaxFrameSize: 64, MaxHeaderLen: 20}, in: "SEND\ncontent-length:40\n\n" + strings.Repeat("x", 40) + "\x00", err: ErrTooLarge},
		{name: "headers over frame size", lim: Limits{MaxFrameSize: 20, MaxHeaderLen: 100}, in: "SEND\na:1234567890\nb:1234567890\n\n\x00", err: ErrTooLarge},
		{name: "frame limit applies per frame", lim: small, in: strings.Repeat("SEND\n\n"+strings.Repeat("x", 50)+"\x00", 3),
			want: []Frame{
				{Command: "SEND", Body: []byte(strings.Repeat("x", 50))},
				{Command: "SEND", Body: []byte(strings.Repeat("x", 50))},
				{Command: "SEND", Body: []byte(strings.Repeat("x", 50))},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(nil, []byte(tc.in), tc.lim)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Decode(%q) error = %v, want %v", tc.in, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got, cmpFrames); diff != "" {
				t.Errorf("Decode(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestDecodeKeepsFramesBeforeAnError(t *testing.T) {
	got, err := Decode(nil, []byte("SEND\n\na\x00BOGUS\n\n\x00"), Limits{})
	if !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("err = %v", err)
	}
	if len(got) != 1 || string(got[0].Body) != "a" {
		t.Fatalf("frames = %+v", got)
	}
}

func TestIsHeartBeat(t *testing.T) {
	for in, want := range map[string]bool{"\n": true, "\r\n": true, "\n\n": true, "": false, "\r": false, "SEND\n\n\x00": false} {
		if got := IsHeartBeat([]byte(in)); got != want {
			t.Errorf("IsHeartBeat(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestFrameGet(t *testing.T) {
	f := Frame{Command: CmdMessage, Headers: hs("a", "1", "a", "2")}
	if v, ok := f.Get("a"); !ok || v != "1" {
		t.Errorf("Get(a) = %q, %v; want the first, 1", v, ok)
	}
	if v, ok := f.Get("b"); ok || v != "" {
		t.Errorf("Get(b) = %q, %v", v, ok)
	}
	if f.Value("a") != "1" {
		t.Errorf("Value(a) = %q", f.Value("a"))
	}
}

func TestAppendFrame(t *testing.T) {
	tests := []struct {
		name string
		f    Frame
		want string
		err  error
	}{
		{name: "escaped", f: Frame{Command: CmdMessage, Headers: hs("a:b", "c\\d\ne\rf")},
			want: "MESSAGE\na\\cb:c\\\\d\\ne\\rf\n\n\x00"},
		{name: "connected unescaped", f: Frame{Command: CmdConnected, Headers: hs("version", "1.2", "server", "a\\b:c")},
			want: "CONNECTED\nversion:1.2\nserver:a\\b:c\n\n\x00"},
		{name: "body gets content-length", f: Frame{Command: CmdMessage, Body: []byte("a\x00b")},
			want: "MESSAGE\ncontent-length:3\n\na\x00b\x00"},
		{name: "matching content-length kept", f: Frame{Command: CmdError, Headers: hs("content-length", "2"), Body: []byte("hi")},
			want: "ERROR\ncontent-length:2\n\nhi\x00"},
		{name: "wrong content-length", f: Frame{Command: CmdError, Headers: hs("content-length", "3"), Body: []byte("hi")}, err: ErrMalformed},
		{name: "unknown command", f: Frame{Command: "HELLO"}, err: ErrUnknownCommand},
		{name: "empty key", f: Frame{Command: CmdMessage, Headers: hs("", "v")}, err: ErrMalformed},
		{name: "LF in CONNECTED", f: Frame{Command: CmdConnected, Headers: hs("k", "a\nb")}, err: ErrMalformed},
		{name: "colon in CONNECT key", f: Frame{Command: CmdConnect, Headers: hs("k:", "v")}, err: ErrMalformed},
		{name: "NUL in a value", f: Frame{Command: CmdReceipt, Headers: hs("receipt-id", "a\x00")}, err: ErrMalformed},
		{name: "invalid UTF-8 in a key", f: Frame{Command: CmdMessage, Headers: hs("\xff", "v")}, err: ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AppendFrame(nil, &tc.f)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("error = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, string(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestHeartBeat(t *testing.T) {
	cx, cy, err := ParseHeartBeat("4000,0")
	if err != nil || cx != 4*time.Second || cy != 0 {
		t.Fatalf("ParseHeartBeat = %v, %v, %v", cx, cy, err)
	}
	for _, bad := range []string{"4000", "a,b", "-1,0", "1,2,3", "99999999999,0"} {
		if _, _, err := ParseHeartBeat(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseHeartBeat(%q) error = %v", bad, err)
		}
	}
	if got := FormatHeartBeat(30*time.Second, 0); got != "30000,0" {
		t.Errorf("FormatHeartBeat = %q", got)
	}
	s := 30 * time.Second
	tests := []struct{ cx, cy, send, recv time.Duration }{
		{cx: 4 * time.Second, cy: 4 * time.Second, send: s, recv: s},
		{cx: 0, cy: 0, send: 0, recv: 0},
		{cx: 60 * time.Second, cy: 0, send: 0, recv: 60 * time.Second},
		{cx: 0, cy: 45 * time.Second, send: 45 * time.Second, recv: 0},
	}
	for _, tc := range tests {
		send, recv := NegotiateHeartBeat(tc.cx, tc.cy, s, s)
		if send != tc.send || recv != tc.recv {
			t.Errorf("NegotiateHeartBeat(%v, %v) = %v, %v; want %v, %v", tc.cx, tc.cy, send, recv, tc.send, tc.recv)
		}
	}
	if send, recv := NegotiateHeartBeat(time.Second, time.Second, 0, 0); send != 0 || recv != 0 {
		t.Errorf("server without heart-beats: %v, %v", send, recv)
	}
}

// genFrame draws a frame that AppendFrame can encode.
func genFrame(t *rapid.T) Frame {
	cmds := []string{CmdConnect, CmdStomp, CmdSend, CmdSubscribe, CmdUnsubscribe, CmdBegin, CmdCommit,
		CmdAbort, CmdAck, CmdNack, CmdDisconnect, CmdConnected, CmdMessage, CmdReceipt, CmdError}
	f := Frame{Command: rapid.SampledFrom(cmds).Draw(t, "command")}
	esc := escapes(f.Command)
	n := rapid.IntRange(0, 6).Draw(t, "headers")
	for i := 0; i < n; i++ {
		var key, value string
		if esc {
			key = rapid.StringN(1, 12, -1).Draw(t, "key")
			value = rapid.String().Draw(t, "value")
		} else {
			key = rapid.StringMatching(`[a-z\-]{1,12}`).Draw(t, "key")
			value = rapid.StringMatching(`[ -~]{0,20}`).Draw(t, "value") // printable, colons allowed
		}
		if key == "content-length" || strings.ContainsRune(key+value, 0) {
			continue // content-length is the encoder's; a NUL is refused both ways
		}
		f.Add(key, value)
	}
	f.Body = rapid.SliceOfN(rapid.Byte(), 0, 64).Draw(t, "body")
	return f
}

// TestRoundTrip: whatever AppendFrame encodes, Decode gives back, also several frames to a
// message with heart-beats between them.
func TestRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		frames := rapid.SliceOfN(rapid.Custom(genFrame), 1, 4).Draw(t, "frames")
		var data []byte
		for i := range frames {
			data = append(data, rapid.SampledFrom([]string{"", "\n", "\r\n", "\n\n"}).Draw(t, "eol")...)
			var err error
			if data, err = AppendFrame(data, &frames[i]); err != nil {
				t.Fatalf("AppendFrame(%+v): %v", frames[i], err)
			}
		}
		got, err := Decode(nil, data, Limits{MaxFrameSize: 1 << 20, MaxHeaders: 16, MaxHeaderLen: 1 << 10})
		if err != nil {
			t.Fatalf("Decode(%q): %v", data, err)
		}
		// The encoder adds content-length to frames with a body.
		want := make([]Frame, len(frames))
		for i, f := range frames {
			want[i] = Frame{Command: f.Command, Headers: append([]Header(nil), f.Headers...), Body: f.Body}
			if len(f.Body) > 0 {
				want[i].Add("content-length", fmt.Sprint(len(f.Body)))
			}
		}
		if diff := cmp.Diff(want, got, cmpFrames); diff != "" {
			t.Fatalf("round trip of %q (-want +got):\n%s", data, diff)
		}
	})
}

// FuzzDecode: Decode never panics, never returns a frame over the limits, and what it
// returns re-encodes to bytes that decode to the same frames.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"CONNECT\naccept-version:1.2\nheart-beat:4000,4000\nAuthorization:Bearer x.y.z\n\n\x00",
		"SUBSCRIBE\nid:sub-0\ndestination:/user/queue/message\nx-parley-after:12\n\n\x00",
		"SEND\ncontent-length:3\n\na\x00b\x00\n\nDISCONNECT\nreceipt:1\n\n\x00",
		"\r\n\n",
		"MESSAGE\na\\cb:c\\\\d\\n\n\nbody\x00",
		"SEND\ncontent-length:99999\n\nab\x00",
		"SUBSCRIBE\nid:\xff\nreceipt:a\x00b\n\n\x00",
		"CONNECT\nhost:caf\xc3\xa9\n\n\x00",
	} {
		f.Add([]byte(s))
	}
	lim := Limits{MaxFrameSize: 256, MaxHeaders: 8, MaxHeaderLen: 64}
	f.Fuzz(func(t *testing.T, data []byte) {
		frames, err := Decode(nil, data, lim)
		var enc []byte
		for i := range frames {
			fr := &frames[i]
			if len(fr.Headers) > lim.MaxHeaders || len(fr.Body) > lim.MaxFrameSize {
				t.Fatalf("frame over the limits: %+v", fr)
			}
			if !bytes.Contains(data, fr.Body) {
				t.Fatalf("body %q not from the input", fr.Body)
			}
			for _, h := range fr.Headers {
				if !utf8.ValidString(h.Key+h.Value) || strings.ContainsRune(h.Key+h.Value, 0) {
					t.Fatalf("header %q: %q passed: not UTF-8, or a NUL", h.Key, h.Value)
				}
			}
			var err error
			enc, err = AppendFrame(enc, fr)
			if err != nil {
				// Unescaped frames may hold what cannot be re-encoded only if the
				// decoder let a CR, LF or colon-in-key through; it must not.
				t.Fatalf("re-encoding decoded frame %+v: %v", fr, err)
			}
		}
		if err != nil {
			return
		}
		again, err := Decode(nil, enc, Limits{MaxFrameSize: 1 << 20, MaxHeaders: 64, MaxHeaderLen: 1 << 16})
		if err != nil {
			t.Fatalf("decoding re-encoded %q: %v", enc, err)
		}
		// Re-encoding may add a content-length header to frames that had a body without one.
		for i := range again {
			if len(again[i].Headers) > len(frames[i].Headers) {
				again[i].Headers = again[i].Headers[:len(frames[i].Headers)]
			}
		}
		if diff := cmp.Diff(frames, again, cmpFrames); diff != "" {
			t.Fatalf("re-encode round trip (-first +second):\n%s", diff)
		}
	})
}
