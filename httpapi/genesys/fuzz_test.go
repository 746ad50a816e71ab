package genesys_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/httpapi/genesys"
	"github.com/parley-chat/chat/storage/memory"
)

var fuzzOps = []string{"", "send", "startTyping", "stopTyping", "refresh", "disconnect", "pushUrl",
	"updateNickname", "readReceipt", "customNotice", "updateData"}

// FuzzParseParams checks the form parser: no panic, what it accepts has what the operation
// needs and can be stored as sent (every field name and value valid UTF-8 without NUL).
func FuzzParseParams(f *testing.F) {
	for i, s := range []string{
		"firstName=First&lastName=Last&subject=Subject+to", "nickname=JohnDoe&userData[TimeZone]=-480&emailAddress=jdoe@gmail.com",
		"message=hi&userId=007553863DC30029&secureKey=8b31761b2154884c&alias=117&messageType=text&transcriptPosition=8",
		"userId=a&secureKey=b&alias=c&transcriptPosition=0", "userId=a&secureKey=b&alias=c", "userId=a&secureKey=b&alias=c&pushUrl=http://x",
		"userId=a&secureKey=b&alias=c&nickname=%20", "userId=a&secureKey=b&alias=c&transcriptPosition=x",
		"userId=a&secureKey=b&alias=c&message=", "userId=a&secureKey=b&alias=c&userData[]=1", "userData[k=v", "%zz",
		"userId=a&secureKey=b&alias=c&message=a%00b", "nickname=%ff", "nickname=x&userData[%00]=1", "nickname=x&other=%c3",
	} {
		f.Add(uint8(i), s)
	}
	f.Fuzz(func(t *testing.T, op uint8, raw string) {
		form, _ := url.ParseQuery(raw)
		name := fuzzOps[int(op)%len(fuzzOps)]
		p, errs := genesys.ParseParams(name, form)
		for _, e := range errs {
			if e.Code < 100 || e.Code > 399 || e.Advice == "" {
				t.Fatalf("bad error %+v", e)
			}
		}
		if len(errs) > 0 {
			return
		}
		for k, vs := range form {
			for _, v := range append(vs, k) {
				if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
					t.Fatalf("%s accepted %q with %q", name, raw, v)
				}
			}
		}
		switch name {
		case "":
			if strings.TrimSpace(p.Nickname) == "" {
				t.Fatalf("requestChat accepted without a nickname: %q", raw)
			}
		default:
			if p.Alias == "" || p.UserID == "" || p.SecureKey == "" {
				t.Fatalf("%s accepted without credentials: %q", name, raw)
			}
		}
		switch name {
		case "send":
			if p.Message == "" {
				t.Fatalf("send accepted without a message: %q", raw)
			}
		case "readReceipt":
			if !p.HasPosition {
				t.Fatalf("readReceipt accepted without a position: %q", raw)
			}
		case "refresh":
			if !p.HasPosition && p.TranscriptPosition != 1 {
				t.Fatalf("refresh default position %d", p.TranscriptPosition)
			}
		}
		for k := range p.UserData {
			if k == "" {
				t.Fatalf("empty userData key from %q", raw)
			}
		}
	})
}

// FuzzHandler sends arbitrary bodies and content types to every operation of a live chat:
// the handler must not panic and must answer JSON with one of the statuses it documents.
func FuzzHandler(f *testing.F) {
	ctx := context.Background()
	store := memory.New()
	defer store.Close()
	e := must(chat.Open(ctx, store))
	defer e.Close()
	h := must(genesys.New(e, genesys.Config{ServiceNames: []string{service}, MaxBodyBytes: 1024, Logger: quiet, Limiter: unlimited}))
	defer h.Close()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/"+service, strings.NewReader("nickname=fuzz")).WithContext(ctx))
	var r genesys.Response
	if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil {
		f.Fatal(err)
	}
	creds := url.Values{"alias": {r.Alias}, "userId": {r.UserID}, "secureKey": {r.SecureKey}}.Encode()
	for i, s := range []string{"message=hi", "transcriptPosition=1", "pushUrl=http://a.b", "nickname=n", "userData[a]=b", "", "{}", "%"} {
		f.Add(uint8(i), "application/x-www-form-urlencoded", s+"&"+creds)
		f.Add(uint8(i), "application/json", s)
		f.Add(uint8(i), "multipart/form-data; boundary=x", "--x\r\n"+s)
	}
	f.Fuzz(func(t *testing.T, op uint8, ct, body string) {
		name := fuzzOps[int(op)%len(fuzzOps)]
		path := "/" + service
		if name != "" {
			path += "/" + r.ChatID + "/" + name
		}
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		req.Header.Set("Content-Type", ct)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch w.Code {
		case 200, 400, 413, 415, 503: // 503: statusCode 1 of a store that cannot serve
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		if !json.Valid(w.Body.Bytes()) {
			t.Fatalf("not JSON: %s", w.Body)
		}
	})
}
