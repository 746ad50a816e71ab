package nexmo

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/chat"
)

func forEachStore(t *testing.T, f func(t *testing.T, sf storeFactory)) {
	for _, sf := range stores {
		t.Run(sf.Name, func(t *testing.T) { f(t, sf) })
	}
}

const t0 = "2026-03-01T10:00:00.000Z"

func TestConversationCRUD(t *testing.T) {
	forEachStore(t, func(t *testing.T, sf storeFactory) {
		v := newEnv(t, sf)
		// create: ConversationLite {id, href}, 200 as the spec says.
		r := v.must(200, v.do("POST", "/conversations", v.admin, `{"name":"support","display_name":"Support",
			"image_url":"https://example.com/s.png","numbers":{"sms":"447700900000"},
			"properties":{"ttl":60,"video":false}}`))
		cid := r.str("id")
		if !strings.HasPrefix(cid, "CON-") || len(cid) != 40 {
			t.Fatalf("conversation id %q", cid)
		}
		diff(t, jsonOf(t, `{"id":%q,"href":%q}`, cid, testBase+"/conversations/"+cid), r.JSON)

		// The engine room behind it: the shared identity, ttl → EmptyTTL.
		room, err := v.e.Room(context.Background(), engineID(t, "CON-", cid))
		if err != nil {
			t.Fatal(err)
		}
		if room.Name != "support" || room.EmptyTTL != time.Minute || room.ImageURL != "https://example.com/s.png" {
			t.Fatalf("engine room %+v", room)
		}
		if "CON-"+room.ID.UUID() != cid {
			t.Fatalf("id %s is not CON- + the room UUID %s", cid, room.ID.UUID())
		}

		uid := v.user("alice")
		mid := v.join(cid, uid)

		// retrieve: every field of the spec's Conversation Object.
		got := v.must(200, v.do("GET", "/conversations/"+cid, v.admin, nil)).JSON
		diff(t, jsonOf(t, `{
			"uuid": %[1]q, "name": "support", "display_name": "Support",
			"image_url": "https://example.com/s.png",
			"numbers": {"sms": "447700900000"}, "properties": {"ttl": 60, "video": false},
			"timestamp": {"created": %[2]q, "updated": %[2]q},
			"sequence_number": 1,
			"members": [{"member_id": %[3]q, "user_id": %[4]q, "name": "alice", "state": "JOINED",
				"timestamp": {"joined": %[2]q}, "channel": {"type": "app"}}],
			"_links": {"self": {"href": %[5]q}}
		}`, cid, t0, mid, uid, testBase+"/conversations/"+cid), got)

		// update: ConversationLite; partial: absent fields stay.
		v.clock.Advance(time.Second)
		r = v.must(200, v.do("PUT", "/conversations/"+cid, v.admin, `{"display_name":"Help","properties":{"ttl":0}}`))
		diff(t, jsonOf(t, `{"id":%q,"href":%q}`, cid, testBase+"/conversations/"+cid), r.JSON)
		c := v.must(200, v.do("GET", "/conversations/"+cid, v.admin, nil)).obj()
		diff(t, jsonOf(t, `{"display_name":"Help","name":"support","properties":{},"timestamp":{"created":%q,"updated":"2026-03-01T10:00:01.000Z"}}`, t0),
			map[string]any{"display_name": c["display_name"], "name": c["name"], "properties": c["properties"], "timestamp": c["timestamp"]})

		// delete: {} and gone.
		diff(t, map[string]any{}, v.must(200, v.do("DELETE", "/conversations/"+cid, v.admin, nil)).JSON)
		v.wantError(v.do("GET", "/conversations/"+cid, v.admin, nil), 404, codeConvNotFound, "")
		v.wantError(v.do("DELETE", "/conversations/"+cid, v.admin, nil), 404, codeConvNotFound, "")
		v.wantError(v.do("PUT", "/conversations/"+cid, v.admin, `{}`), 404, codeConvNotFound, "")
	})
}

func TestConversationErrors(t *testing.T) {
	forEachStore(t, func(t *testing.T, sf storeFactory) {
		v := newEnv(t, sf)
		cid := v.conversation("taken")
		rooms := func() int {
			rs, err := v.e.Rooms(context.Background(), chat.ListFilter{})
			if err != nil {
				t.Fatal(err)
			}
			return len(rs)
		}
		for _, tc := range []struct {
			name, method, path, body string
			status                   int
			code, field              string
		}{
			{"duplicate name", "POST", "/conversations", `{"name":"taken"}`, 400, codeConvDuplicate, ""},
			{"name not a string", "POST", "/conversations", `{"name":5}`, 400, codeValidation, "name"},
			{"properties not an object", "POST", "/conversations", `{"properties":[]}`, 400, codeValidation, "properties"},
			{"ttl negative", "POST", "/conversations", `{"properties":{"ttl":-1}}`, 400, codeValidation, "properties.ttl"},
			{"ttl a string", "POST", "/conversations", `{"properties":{"ttl":"60"}}`, 400, codeValidation, "properties.ttl"},
			{"ttl huge", "POST", "/conversations", `{"properties":{"ttl":1e300}}`, 400, codeValidation, "properties.ttl"},
			{"numbers not an object", "POST", "/conversations", `{"numbers":"x"}`, 400, codeValidation, "numbers"},
			{"malformed", "POST", "/conversations", `{"name":`, 400, codeValidation, "body"},
			{"array body", "POST", "/conversations", `[]`, 400, codeValidation, "body"},
			{"trailing data", "POST", "/conversations", `{} {}`, 400, codeValidation, "body"},
			{"name too long", "POST", "/conversations", `{"name":"` + strings.Repeat("n", 2000) + `"}`, 400, codeValidation, "name"},
			{"rename to a taken name", "PUT", "/conversations/" + cid, `{"name":"taken2"}`, 200, "", ""},
			{"rename to a taken name 2", "POST", "/conversations", `{"name":"taken2"}`, 400, codeConvDuplicate, ""},
			{"unknown id", "GET", "/conversations/CON-00000000-0000-0000-0000-000000000001", "", 404, codeConvNotFound, ""},
			{"malformed id", "GET", "/conversations/CON-nope", "", 404, codeConvNotFound, ""},
			{"wrong prefix", "GET", "/conversations/" + strings.Replace(cid, "CON-", "USR-", 1), "", 404, codeConvNotFound, ""},
			{"method", "PATCH", "/conversations/" + cid, "", 405, codeMethod, ""},
			{"method on list", "DELETE", "/conversations", "", 405, codeMethod, ""},
			{"unknown path", "GET", "/conversation", "", 404, codeRouteNotFound, ""},
			{"too deep", "GET", "/conversations/" + cid + "/events/1/x", "", 404, codeRouteNotFound, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				n := rooms()
				var body any
				if tc.body != "" {
					body = tc.body
				}
				r := v.do(tc.method, tc.path, v.admin, body)
				if tc.code == "" {
					v.must(tc.status, r)
					return
				}
				v.wantError(r, tc.status, tc.code, tc.field)
				if rooms() != n {
					t.Fatal("a refused request stored a room")
				}
				if tc.status == 405 && r.Header.Get("Allow") == "" {
					t.Fatal("405 without Allow")
				}
			})
		}
	})
}

func TestConversationList(t *testing.T) {
	forEachStore(t, func(t *testing.T, sf storeFactory) {
		v := newEnv(t, sf)
		var ids []string
		for i := range 25 {
			ids = append(ids, v.conversation(fmt.Sprintf("c%02d", i)))
			v.clock.Advance(time.Minute) // c00 at 10:00, c01 at 10:01, ...
		}
		list := func(query string) resp {
			return v.do("GET", "/conversations"+query, v.admin, nil)
		}
		uuids := func(r resp) []string {
			var out []string
			emb := r.obj()["_embedded"].(map[string]any)
			for _, c := range emb["conversations"].([]any) {
				out = append(out, c.(map[string]any)["uuid"].(string))
			}
			return out
		}
		rev := func(s []string) []string {
			o := make([]string, len(s))
			for i := range s {
				o[len(s)-1-i] = s[i]
			}
			return o
		}

		// Default page: the spec's full HAL shape.
		r := v.must(200, list(""))
		items := []any{}
		for _, id := range ids[:10] {
			items = append(items, map[string]any{"uuid": id, "name": fmt.Sprintf("c%02d", len(items)), "href": testBase + "/conversations/" + id})
		}
		diff(t, map[string]any{
			"count": 25.0, "page_size": 10.0, "record_index": 0.0,
			"_links": map[string]any{
				"self": map[string]any{"href": testBase + "/conversations?order=asc&page_size=10&record_index=0"},
				"next": map[string]any{"href": testBase + "/conversations?order=asc&page_size=10&record_index=10"},
			},
			"_embedded": map[string]any{"conversations": items},
		}, r.JSON)

		for _, tc := range []struct {
			name, query string
			want        []string
		}{
			{"second page", "?page_size=10&record_index=10", ids[10:20]},
			{"last partial page", "?page_size=10&record_index=20", ids[20:]},
			{"record_index past the end", "?record_index=25", nil},
			{"record_index far past the end", "?record_index=1000", nil},
			{"page_size 1", "?page_size=1", ids[:1]},
			{"page_size 100", "?page_size=100", ids},
			{"desc", "?order=desc&page_size=3", rev(ids)[:3]},
			{"DESC upper", "?order=DESC&page_size=3&record_index=1", rev(ids)[1:4]},
			{"Asc mixed", "?order=Asc&page_size=2", ids[:2]},
			{"date range", "?date_start=2026-03-01+10:05:00&date_end=2026-03-01+10:08:00", ids[5:8]},
			{"date range RFC 3339", "?date_start=2026-03-01T10:05:00Z&date_end=2026-03-01T10:08:00Z&order=desc", rev(ids[5:8])},
			{"date_start only", "?date_start=2026-03-01T10:20:00Z", ids[20:]},
			{"date_end only", "?date_end=2026-03-01T10:02:00Z", ids[:2]},
			{"date range with paging", "?date_start=2026-03-01T10:05:00Z&page_size=2&record_index=2", ids[7:9]},
			{"empty range", "?date_start=2027-01-01", nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := v.must(200, list(tc.query))
				diff(t, tc.want, uuids(r))
			})
		}
		// count is the total matching, whatever the page.
		r = v.must(200, list("?date_start=2026-03-01T10:05:00Z&page_size=2&record_index=2"))
		if r.obj()["count"] != 20.0 {
			t.Fatalf("count %v, want 20", r.obj()["count"])
		}
		links := r.obj()["_links"].(map[string]any)
		diff(t, testBase+"/conversations?date_start=2026-03-01T10%3A05%3A00Z&order=asc&page_size=2&record_index=0",
			links["prev"].(map[string]any)["href"])
		if _, ok := list("?record_index=25").obj()["_links"].(map[string]any)["next"]; ok {
			t.Fatal("next link past the end")
		}

		for _, tc := range []struct{ name, query, field string }{
			{"page_size 0", "?page_size=0", "page_size"},
			{"page_size 101", "?page_size=101", "page_size"},
			{"page_size word", "?page_size=ten", "page_size"},
			{"record_index negative", "?record_index=-1", "record_index"},
			{"order bad", "?order=up", "order"},
			{"date_start bad", "?date_start=yesterday", "date_start"},
			{"date_end bad", "?date_end=2026-13-01", "date_end"},
			{"range reversed", "?date_start=2026-03-02&date_end=2026-03-01", "date_end"},
			{"range empty", "?date_start=2026-03-01&date_end=2026-03-01", "date_end"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				v.wantError(list(tc.query), 400, codeValidation, tc.field)
			})
		}
	})
}

func TestConversationTTL(t *testing.T) {
	forEachStore(t, func(t *testing.T, sf storeFactory) {
		v := newEnv(t, sf)
		cid := v.must(200, v.do("POST", "/conversations", v.admin, `{"name":"brief","properties":{"ttl":30}}`)).str("id")
		keep := v.conversation("keep")
		uid := v.user("bob")
		mid := v.join(cid, uid)
		v.clock.Advance(time.Minute) // a joined member: stays
		v.must(200, v.do("GET", "/conversations/"+cid, v.admin, nil))
		v.must(200, v.do("DELETE", "/conversations/"+cid+"/members/"+mid, v.admin, nil))
		v.clock.Advance(29 * time.Second)
		v.must(200, v.do("GET", "/conversations/"+cid, v.admin, nil))
		v.clock.Advance(2 * time.Second)
		v.wantError(v.do("GET", "/conversations/"+cid, v.admin, nil), 404, codeConvNotFound, "")
		v.must(200, v.do("GET", "/conversations/"+keep, v.admin, nil))
	})
}

func TestLegs(t *testing.T) {
	forEachStore(t, func(t *testing.T, sf storeFactory) {
		v := newEnv(t, sf)
		r := v.must(200, v.do("GET", "/legs", v.admin, nil))
		diff(t, jsonOf(t, `{"count":0,"page_size":10,"record_index":0,
			"_links":{"self":{"href":%q}},"_embedded":{"legs":[]}}`, testBase+"/legs?order=asc&page_size=10&record_index=0"), r.JSON)
		v.wantError(v.do("GET", "/legs?page_size=101", v.admin, nil), 400, codeValidation, "page_size")
		v.wantError(v.do("DELETE", "/legs/2a71f8a1-b6f1-42b3-9eef-c69729e17513", v.admin, nil), 404, codeLegNotFound, "")
		v.wantError(v.do("GET", "/legs/x", v.admin, nil), 405, codeMethod, "")
		v.user("carol")
		v.wantError(v.do("GET", "/legs", v.token("carol"), nil), 403, codePermission, "")
	})
}

func TestBodyLimit(t *testing.T) {
	forEachStore(t, func(t *testing.T, sf storeFactory) {
		v := newEnv(t, sf, func(c *Config) { c.MaxBodyBytes = 256 })
		big := `{"name":"` + strings.Repeat("x", 300) + `"}`
		v.wantError(v.do("POST", "/conversations", v.admin, big), 413, codeTooLarge, "")
		// Without Content-Length (chunked): the limit still holds while reading.
		req := strings.NewReader(big)
		r := v.doReader("POST", "/conversations", v.admin, req)
		v.wantError(r, 413, codeTooLarge, "")
		rs, _ := v.e.Rooms(context.Background(), chat.ListFilter{})
		if len(rs) != 0 {
			t.Fatal("a refused body stored a room")
		}
		v.must(200, v.do("POST", "/conversations", v.admin, `{"name":"`+strings.Repeat("x", 200)+`"}`))

		// The default limit is 1 MiB.
		d := newEnv(t, sf)
		if d.h.cfg.MaxBodyBytes != 1<<20 {
			t.Fatalf("default limit %d", d.h.cfg.MaxBodyBytes)
		}
		huge := `{"name":"x","numbers":{"a":"` + strings.Repeat("y", 1<<20) + `"}}`
		d.wantError(d.do("POST", "/conversations", d.admin, huge), 413, codeTooLarge, "")
	})
}

func TestMountAndLinks(t *testing.T) {
	v := newEnv(t, stores[0])
	// Mounted under the base path, or behind StripPrefix: both route.
	for _, p := range []string{"/beta/conversations", "/conversations"} {
		r := v.doRaw("POST", p, v.admin, `{"name":"`+url.PathEscape(p)+`"}`)
		v.must(200, r)
		if !strings.HasPrefix(r.str("href"), testBase+"/conversations/CON-") {
			t.Fatalf("href %q", r.str("href"))
		}
	}
	if _, err := New(v.e, Config{BaseURL: "/relative", Keys: v.h.cfg.Keys}); err == nil {
		t.Fatal("a relative BaseURL was accepted")
	}
	if _, err := New(v.e, Config{BaseURL: testBase}); err == nil {
		t.Fatal("a Config without keys was accepted")
	}
	if _, err := New(nil, Config{BaseURL: testBase, Keys: v.h.cfg.Keys}); err == nil {
		t.Fatal("a nil engine was accepted")
	}
}
