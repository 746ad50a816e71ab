package nexmo

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/parley-chat/chat"
)

func TestUsers(t *testing.T) {
	forEachStore(t, func(t *testing.T, sf storeFactory) {
		v := newEnv(t, sf)
		// create: the spec's {name, display_name, href} and, ours, id.
		r := v.must(200, v.do("POST", "/users", v.admin, `{"name":"ivy","display_name":"Ivy","image_url":"https://example.com/ivy.png","channels":{"type":"app"}}`))
		uid := r.str("id")
		uHref := testBase + "/users/" + uid
		diff(t, jsonOf(t, `{"id":%q,"name":"ivy","display_name":"Ivy","image_url":"https://example.com/ivy.png","channels":{"type":"app"},"href":%q}`, uid, uHref), r.JSON)
		// The engine user behind it.
		u, err := v.e.UserByName(context.Background(), "ivy")
		if err != nil || userID(u.ID) != uid || u.AvatarURL != "https://example.com/ivy.png" {
			t.Fatal(u, err)
		}
		diff(t, r.JSON, v.must(200, v.do("GET", "/users/"+uid, v.admin, nil)).JSON)
		diff(t, r.JSON, v.must(200, v.do("GET", "/users/"+uid, v.token("ivy"), nil)).JSON)

		// update: {id, href}; partial; other surfaces' attributes kept.
		if _, err := v.e.UpdateUser(context.Background(), u.ID, chat.UserUpdate{Attributes: map[string]string{"genesys.x": "1", attrChannels: `{"type":"app"}`}}); err != nil {
			t.Fatal(err)
		}
		r = v.must(200, v.do("PUT", "/users/"+uid, v.token("ivy"), `{"display_name":"Ivy B","channels":{"type":"websocket"}}`))
		diff(t, jsonOf(t, `{"id":%q,"href":%q}`, uid, uHref), r.JSON)
		got := v.must(200, v.do("GET", "/users/"+uid, v.admin, nil)).obj()
		if got["display_name"] != "Ivy B" || got["name"] != "ivy" {
			t.Fatalf("after update %v", got)
		}
		if u, _ := v.e.User(context.Background(), u.ID); u.Attributes["genesys.x"] != "1" {
			t.Fatalf("another surface's attribute lost: %v", u.Attributes)
		}

		// list: array of {id, name, href} in ID order; paging like the HAL lists. IDs made in
		// one millisecond are in no particular order: jay is made a millisecond later.
		v.clock.Advance(time.Millisecond)
		jay := v.user("jay")
		diff(t, jsonOf(t, `[{"id":%q,"name":"ivy","href":%q},{"id":%q,"name":"jay","href":%q}]`, uid, uHref, jay, testBase+"/users/"+jay),
			v.must(200, v.do("GET", "/users", v.admin, nil)).JSON)
		diff(t, jsonOf(t, `[{"id":%q,"name":"jay","href":%q}]`, jay, testBase+"/users/"+jay),
			v.must(200, v.do("GET", "/users?order=desc&page_size=1", v.admin, nil)).JSON)
		v.wantError(v.do("GET", "/users?page_size=101", v.admin, nil), 400, codeValidation, "page_size")

		// The user's conversations.
		c1 := v.conversation("u1")
		c2 := v.conversation("u2")
		m1 := v.join(c1, uid)
		m2 := v.join(c2, uid)
		v.must(201, v.do("POST", "/conversations/"+c1+"/events", v.token("ivy"), fmt.Sprintf(`{"type":"text","from":%q,"body":{"text":"x"}}`, m1)))
		want := jsonOf(t, `[
			{"id":%[1]q,"name":"u1","display_name":"","state":"JOINED","member_id":%[2]q,"sequence_number":2,"href":%[3]q,"timestamp":{"created":%[7]q}},
			{"id":%[4]q,"name":"u2","display_name":"","state":"JOINED","member_id":%[5]q,"sequence_number":1,"href":%[6]q,"timestamp":{"created":%[7]q}}]`,
			c1, m1, testBase+"/conversations/"+c1, c2, m2, testBase+"/conversations/"+c2, ts(v.clock.Now()))
		// Both conversations were made in one millisecond, so their order is not part of this.
		got2 := v.must(200, v.do("GET", "/users/"+uid+"/conversations", v.token("ivy"), nil)).arr()
		sort.Slice(got2, func(i, j int) bool {
			return got2[i].(map[string]any)["name"].(string) < got2[j].(map[string]any)["name"].(string)
		})
		diff(t, want, any(got2))
		v.wantError(v.do("GET", "/users/"+uid+"/conversations", v.token("jay"), nil), 403, codePermission, "")

		// delete: its joined memberships end (LEFT, member:left), then the user is gone.
		diff(t, map[string]any{}, v.must(200, v.do("DELETE", "/users/"+uid, v.admin, nil)).JSON)
		v.wantError(v.do("GET", "/users/"+uid, v.admin, nil), 404, codeUserNotFound, "")
		v.wantError(v.do("GET", "/users/"+uid+"/conversations", v.admin, nil), 404, codeUserNotFound, "")
		for _, c := range []struct{ cid, mid string }{{c1, m1}, {c2, m2}} {
			m := v.must(200, v.do("GET", "/conversations/"+c.cid+"/members/"+c.mid, v.admin, nil))
			if m.str("state") != "LEFT" {
				t.Fatalf("membership after user delete: %s", m.Raw)
			}
			evs := v.must(200, v.do("GET", "/conversations/"+c.cid+"/events?order=desc&page_size=1", v.admin, nil)).arr()
			if e := evs[0].(map[string]any); e["type"] != "member:left" || e["from"] != c.mid {
				t.Fatalf("last event %v", e)
			}
		}
		// A token for a deleted user is invalid.
		v.wantError(v.do("GET", "/users", v.token("ivy"), nil), 401, codeInvalidToken, "")
	})
}

func TestUserErrors(t *testing.T) {
	forEachStore(t, func(t *testing.T, sf storeFactory) {
		v := newEnv(t, sf)
		kim := v.user("kim")
		v.user("lou")
		users := func() int {
			us, _ := v.e.Users(context.Background(), chat.ListFilter{})
			return len(us)
		}
		for _, tc := range []struct {
			name, token, method, path, body string
			status                          int
			code, field                     string
		}{
			{"duplicate name", "", "POST", "/users", `{"name":"kim"}`, 400, codeUserDuplicate, ""},
			{"rename to a taken name", "", "PUT", "/users/" + kim, `{"name":"lou"}`, 400, codeUserDuplicate, ""},
			{"no name", "", "POST", "/users", `{"display_name":"x"}`, 400, codeValidation, "name"},
			{"empty name", "", "POST", "/users", `{"name":""}`, 400, codeValidation, "name"},
			{"rename to empty", "", "PUT", "/users/" + kim, `{"name":""}`, 400, codeValidation, "name"},
			{"name a number", "", "POST", "/users", `{"name":1}`, 400, codeValidation, "name"},
			{"channels not an object", "", "POST", "/users", `{"name":"m","channels":"app"}`, 400, codeValidation, "channels"},
			{"empty body", "", "POST", "/users", ``, 400, codeValidation, "body"},
			{"user creates a user", "kim", "POST", "/users", `{"name":"m"}`, 403, codePermission, ""},
			{"user deletes a user", "kim", "DELETE", "/users/" + kim, ``, 403, codePermission, ""},
			{"user updates another", "lou", "PUT", "/users/" + kim, `{"display_name":"x"}`, 403, codePermission, ""},
			{"unknown user", "", "GET", "/users/USR-00000000-0000-0000-0000-000000000001", ``, 404, codeUserNotFound, ""},
			{"malformed user", "", "DELETE", "/users/kim", ``, 404, codeUserNotFound, ""},
			{"update unknown", "", "PUT", "/users/USR-00000000-0000-0000-0000-000000000001", `{}`, 404, codeUserNotFound, ""},
			{"method", "", "POST", "/users/" + kim, `{}`, 405, codeMethod, ""},
			{"method on conversations", "", "POST", "/users/" + kim + "/conversations", `{}`, 405, codeMethod, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tok := v.admin
				if tc.token != "" {
					tok = v.token(tc.token)
				}
				var body any
				if tc.body != "" || tc.method != "GET" {
					body = tc.body
				}
				n := users()
				before, _ := v.e.UserByName(context.Background(), "kim")
				v.wantError(v.do(tc.method, tc.path, tok, body), tc.status, tc.code, tc.field)
				after, _ := v.e.UserByName(context.Background(), "kim")
				if users() != n || !before.UpdatedAt.Equal(after.UpdatedAt) {
					t.Fatal("a refused request changed users")
				}
			})
		}
	})
}
