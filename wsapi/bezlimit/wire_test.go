package bezlimit

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/parley-chat/chat"
)

func TestDecodeClientFrame(t *testing.T) {
	tests := []struct {
		in   string
		want clientEvent
		err  bool
	}{
		{in: `{"type":"send_message","data":{"text":"hi","attachments":["0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"]}}`,
			want: clientEvent{Type: evSendMessage, Send: &sendMessage{Text: "hi", Attachments: []string{"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"}}}},
		{in: `{"type":"send_message","data":{"text":"hi","extra":1},"id":5}`, // unknown fields are ignored
			want: clientEvent{Type: evSendMessage, Send: &sendMessage{Text: "hi"}}},
		{in: `{"type":"mark_message_delivered","data":{"message_id":12}}`, want: clientEvent{Type: evMarkDelivered, Mark: &markMessage{12}}},
		{in: `{"type":"mark_message_read","data":{"message_id":3}}`, want: clientEvent{Type: evMarkRead, Mark: &markMessage{3}}},
		{in: `{"type":"update_typing","data":{"text":"dr","stopped":false}}`, want: clientEvent{Type: evUpdateTyping, Typing: &updateTyping{"dr", false}}},
		{in: ` {"type":"update_typing","data":{"stopped":true}} `, want: clientEvent{Type: evUpdateTyping, Typing: &updateTyping{"", true}}},
		{in: ``, err: true},
		{in: `null`, err: true},
		{in: `{"type":"send_message"}`, err: true},
		{in: `{"type":"send_message","data":null}`, err: true},
		{in: `{"type":5,"data":{}}`, err: true},
		{in: `{"type":"mark_message_read","data":{"message_id":1.5}}`, err: true},
		{in: `{"type":"mark_message_read","data":{"message_id":-1}}`, err: true},
		{in: `{"type":"mark_message_read","data":{}}`, err: true},
		{in: `{"type":"update_typing","data":{"stopped":"yes"}}`, err: true},
		{in: `{"type":"send_message","data":{"attachments":"x"}}`, err: true},
		{in: `{"type":"send_message","data":{}}{}`, err: true},
		{in: "{\"type\":\"send_message\",\"data\":{\"text\":\"\xff\"}}", err: true},
	}
	for _, tc := range tests {
		got, err := decodeClientFrame([]byte(tc.in))
		if tc.err {
			if err == nil || !errors.Is(err, errBadFrame) {
				t.Errorf("%q: err = %v, want a bad frame", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(clientEvent{})); diff != "" {
			t.Errorf("%q (-want +got):\n%s", tc.in, diff)
		}
	}
}

// FuzzDecodeClientFrame: the decoder never panics; what it accepts is one known event of a
// valid shape, and encoding that event again decodes to the same event.
func FuzzDecodeClientFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"send_message","data":{"text":"hi","attachments":["0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"]}}`,
		`{"type":"mark_message_delivered","data":{"message_id":12}}`,
		`{"type":"mark_message_read","data":{"message_id":18446744073709551615}}`,
		`{"type":"update_typing","data":{"text":"dr","stopped":false}}`,
		`{"type":"send_message","data":{}}{}`,
		`{"type":"x","data":{}}`, `[]`, `{`, `"`, `{"type":"mark_message_read","data":{"message_id":1e3}}`,
		"{\"type\":\"send_message\",\"data\":{\"text\":\"\xff\"}}", `{"type":"send_message","data":{"text":"\u0000"}}`,
		`{"type":"update_typing","data":{"text":"\u0000"}}`, `{"type":"send_message","data":{"x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := decodeClientFrame(b)
		if err != nil {
			if !errors.Is(err, errBadFrame) {
				t.Fatalf("error %v does not wrap errBadFrame", err)
			}
			if ev.Send != nil && ev.Type != evSendMessage || ev.Mark != nil || ev.Typing != nil {
				t.Fatalf("refused frame comes back with %+v", ev)
			}
			return
		}
		// What is accepted can be stored as sent.
		if err := chat.CheckJSON("frame", b); err != nil {
			t.Fatalf("accepted %q: %v", b, err)
		}
		var data any
		set := 0
		if ev.Send != nil {
			set++
			data = ev.Send
			if len(ev.Send.Attachments) > maxAttachments {
				t.Fatal("too many attachments accepted")
			}
			for _, a := range ev.Send.Attachments {
				if !isUUID(a) {
					t.Fatalf("attachment %q accepted", a)
				}
			}
		}
		if ev.Mark != nil {
			set++
			data = ev.Mark
			if ev.Mark.MessageID == 0 {
				t.Fatal("message_id 0 accepted")
			}
		}
		if ev.Typing != nil {
			set++
			data = ev.Typing
		}
		if set != 1 {
			t.Fatalf("%d payloads set for %q", set, ev.Type)
		}
		again, _ := json.Marshal(map[string]any{"type": ev.Type, "data": data})
		ev2, err := decodeClientFrame(again)
		if err != nil {
			t.Fatalf("re-encoded %s: %v", again, err)
		}
		if diff := cmp.Diff(ev, ev2, cmp.AllowUnexported(clientEvent{}), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}
