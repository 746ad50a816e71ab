package bezlimit

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/chat"
)

// apiWith calls a server-to-server endpoint with a raw body and Content-Type ("" for none).
func (v *env) apiWith(method, path, contentType, body string) (int, http.Header, []byte) {
	v.t.Helper()
	req, _ := http.NewRequest(method, v.srv.URL+path, strings.NewReader(body))
	req.Header.Set(apiTokenHeader, testAPIToken)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, out
}

// roomState is a chat's stored fields a refused call must leave alone.
func roomState(t *testing.T, e *chat.Engine, room chat.ID) chat.Room {
	t.Helper()
	r, err := e.Room(context.Background(), room)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The server-to-server endpoints refuse a body declared as anything but JSON with 415, and
// bytes that cannot be stored as sent with 400, in the package's error format; nothing is
// stored or pushed.
func TestServerRefusesBadBytes(t *testing.T) {
	forEachStore(t, func(t *testing.T, o envOpt) {
		v := newEnv(t, o)
		room := v.newChat(1, 2)
		bc := v.mustDial("/broadcast", "operator:2", nil)
		u := room.UUID()
		before, beforeRoom := snapshot(t, v.e), roomState(t, v.e, room)
		deep := strings.Repeat(`{"a":`, 100) + `1` + strings.Repeat(`}`, 100)
		const json = "application/json"
		tests := []struct {
			name, path, ct, body string
			want                 int
		}{
			{"text/plain", "/message", "text/plain", `{"text":"x","chat":{"uuid":"` + u + `"}}`, 415},
			{"a form", "/message", "application/x-www-form-urlencoded", `{"text":"x","chat":{"uuid":"` + u + `"}}`, 415},
			{"multipart", "/update/chat", "multipart/form-data; boundary=x", `{"uuid":"` + u + `"}`, 415},
			{"garbage type", "/global", ";;", `{}`, 415},
			{"invalid UTF-8 text", "/message", json, "{\"text\":\"a\xffb\",\"chat\":{\"uuid\":\"" + u + "\"}}", 400},
			{"NUL escape in text", "/message", json, `{"text":"a\u0000b","chat":{"uuid":"` + u + `"}}`, 400},
			{"raw NUL byte", "/message", json, "{\"text\":\"a\x00b\",\"chat\":{\"uuid\":\"" + u + "\"}}", 400},
			{"NUL in a user's name", "/message", json, `{"text":"x","user":{"id":7,"firstname":"\u0000"},"chat":{"uuid":"` + u + `"}}`, 400},
			{"NUL in the chat object", "/update/chat", json, `{"uuid":"` + u + `","status":"a\u0000"}`, 400},
			{"invalid UTF-8 in the chat object", "/update/chat", json, "{\"uuid\":\"" + u + "\",\"status\":\"\xc3\"}", 400},
			{"too deep chat object", "/update/chat", json, `{"uuid":"` + u + `","widget":` + deep + `}`, 400},
			{"NUL in an operator", "/update/operators", json, `[{"id":2,"lastname":"\u0000"}]`, 400},
			{"invalid UTF-8 in global", "/global", json, "{\"x\":\"\xff\"}", 400},
			{"too deep global", "/global", json, deep, 400},
			{"NUL in a notification", "/notifications/chat", json, `{"chat":{"uuid":"` + u + `"},"text":"\u0000"}`, 400},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				code, _, out := v.apiWith("POST", tc.path, tc.ct, tc.body)
				var body struct {
					Error wireError `json:"error"`
				}
				if code != tc.want || jsonUnmarshal(out, &body) != nil || body.Error.Code != tc.want || body.Error.Message == "" {
					t.Errorf("%d %s, want %d in the package's error format", code, out, tc.want)
				}
			})
		}
		if diff := cmp.Diff(before, snapshot(t, v.e)); diff != "" {
			t.Errorf("refused calls changed the store (-before +after):\n%s", diff)
		}
		if diff := cmp.Diff(beforeRoom.Attributes, roomState(t, v.e, room).Attributes); diff != "" {
			t.Errorf("refused calls changed the chat (-before +after):\n%s", diff)
		}
		// Nothing was pushed: the next frame /broadcast gets is the marker.
		if code, _, out := v.apiWith("POST", "/global", json+"; charset=utf-8", `{"marker":1}`); code != 200 {
			t.Fatalf("/global with a charset: %d %s", code, out)
		}
		if f, skipped := bc.until(evGlobalUpdated, nil); len(skipped) != 0 || string(f.Data) != `{"marker":1}` {
			t.Errorf("pushed before the marker: %+v, then %s", skipped, f.Data)
		}
		// A back end that declares no Content-Type is taken (see decisions.go).
		if code, _, out := v.apiWith("POST", "/message", "", `{"text":"no type","chat":{"uuid":"`+u+`"}}`); code != 201 {
			t.Errorf("without a Content-Type: %d %s", code, out)
		}
	})
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// Client frames with bytes that cannot be stored as sent are refused: a send_message with
// message_not_added (422, echoing what it could read), another event with the error frame;
// nothing is stored and the connection goes on.
func TestClientRefusesBadBytes(t *testing.T) {
	forEachStore(t, func(t *testing.T, o envOpt) {
		v := newEnv(t, o)
		room := v.newChat(1, 2)
		vis := v.chatConn("client:1", room)
		op := v.chatConn("operator:2", room)
		op.send(evSendMessage, map[string]any{"text": "first"})
		first, _ := vis.untilText("first")
		op.untilText("first")
		before := roomState(t, v.e, room)
		deep := strings.Repeat(`[`, 100) + strings.Repeat(`]`, 100)
		tests := []struct {
			name, frame, wantType string
		}{
			{"invalid UTF-8 in a message", "{\"type\":\"send_message\",\"data\":{\"text\":\"a\xffb\"}}", evMessageNotAdded},
			{"overlong UTF-8 in a message", "{\"type\":\"send_message\",\"data\":{\"text\":\"\xc0\xaf\"}}", evMessageNotAdded},
			{"NUL escape in a message", `{"type":"send_message","data":{"text":"a\u0000b"}}`, evMessageNotAdded},
			{"too deep in a message", `{"type":"send_message","data":{"text":"deep","x":` + deep + `}}`, evMessageNotAdded},
			{"raw NUL byte in a message", "{\"type\":\"send_message\",\"data\":{\"text\":\"a\x00b\"}}", frameTypeError},
			{"invalid UTF-8 in typing", "{\"type\":\"update_typing\",\"data\":{\"text\":\"\xff\",\"stopped\":false}}", frameTypeError},
			{"NUL escape in typing", `{"type":"update_typing","data":{"text":"\u0000","stopped":false}}`, frameTypeError},
			{"invalid UTF-8 in a receipt", "{\"type\":\"mark_message_read\",\"data\":{\"message_id\":1,\"x\":\"\xff\"}}", frameTypeError},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				vis.sendRaw([]byte(tc.frame))
				f, skipped := vis.until(tc.wantType, nil)
				if !jsonHasCode(f.Data, 422) {
					t.Errorf("%s %s, want code 422", f.Type, f.Data)
				}
				if has(skipped, evMessageAdded, nil) {
					t.Errorf("a message was added: %+v", skipped)
				}
			})
		}
		if after := roomState(t, v.e, room); after.LastPos != before.LastPos {
			t.Errorf("refused frames stored events: last position %d → %d", before.LastPos, after.LastPos)
		}
		vis.send(evSendMessage, map[string]any{"text": "still here"})
		f, skipped := op.untilText("still here")
		if has(skipped, evMessageAdded, nil) || has(skipped, evTypingUpdated, nil) || f.Position <= first.Position {
			t.Errorf("the operator saw refused frames: %+v", skipped)
		}
	})
}
