package nexmo

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/chat"
)

func TestMemberStateMachine(t *testing.T) {
	forEachStore(t, func(t *testing.T, sf storeFactory) {
		v := newEnv(t, sf)
		cid := v.conversation("sm")
		uid := v.user("dan")
		base := "/conversations/" + cid + "/members"
		mHref := func(mid string) string { return testBase + base + "/" + mid }

		// invite → INVITED, by the program (admin token).
		r := v.must(201, v.do("POST", base, v.admin, map[string]any{"action": "invite", "user_id": uid, "channel": map[string]any{"type": "app"}}))
		mid := r.str("id")
		diff(t, jsonOf(t, `{"id":%[1]q,"conversation_id":%[2]q,"user_id":%[3]q,"name":"dan","state":"INVITED",
			"timestamp":{"invited":%[4]q},"initiator":{"invited":{"isSystem":true}},"channel":{"type":"app"},"href":%[5]q}`,
			mid, cid, uid, t0, mHref(mid)), r.JSON)
		// Inviting again while invited is an illegal transition; nothing is stored.
		v.wantError(v.do("POST", base, v.admin, map[string]any{"action": "invite", "user_id": uid, "channel": map[string]any{"type": "app"}}),
			400, codeMemberState, "")

		// PUT action join → JOINED, same member id.
		v.clock.Advance(time.Second)
		r = v.must(200, v.do("PUT", base+"/"+mid, v.admin, `{"action":"join","channel":{"type":"app"}}`))
		diff(t, jsonOf(t, `{"id":%[1]q,"conversation_id":%[2]q,"user_id":%[3]q,"name":"dan","state":"JOINED",
			"timestamp":{"invited":%[4]q,"joined":"2026-03-01T10:00:01.000Z"},"initiator":{"invited":{"isSystem":true}},
			"channel":{"type":"app"},"href":%[5]q}`, mid, cid, uid, t0, mHref(mid)), r.JSON)
		diff(t, r.JSON, v.must(200, v.do("GET", base+"/"+mid, v.admin, nil)).JSON)
		// Joining a joined member: illegal.
		v.wantError(v.do("PUT", base+"/"+mid, v.admin, `{"action":"join"}`), 400, codeMemberState, "")
		v.wantError(v.do("POST", base, v.admin, map[string]any{"action": "join", "user_id": uid, "channel": map[string]any{"type": "app"}}), 400, codeMemberState, "")

		// DELETE → LEFT and member:left.
		diff(t, map[string]any{}, v.must(200, v.do("DELETE", base+"/"+mid, v.admin, nil)).JSON)
		got := v.must(200, v.do("GET", base+"/"+mid, v.admin, nil)).obj()
		if got["state"] != "LEFT" || got["timestamp"].(map[string]any)["left"] == nil {
			t.Fatalf("after delete: %v", got)
		}
		evs := v.must(200, v.do("GET", "/conversations/"+cid+"/events", v.admin, nil)).arr()
		var types []string
		for _, e := range evs {
			types = append(types, e.(map[string]any)["type"].(string))
		}
		diff(t, []string{"member:invited", "member:joined", "member:left"}, types)
		diff(t, jsonOf(t, `{"user":{"id":%q,"name":"dan"}}`, uid), evs[0].(map[string]any)["body"])
		if evs[0].(map[string]any)["from"] != mid || evs[2].(map[string]any)["from"] != mid {
			t.Fatalf("member events not from the member: %v", evs)
		}
		// A left member cannot be left or joined again.
		v.wantError(v.do("DELETE", base+"/"+mid, v.admin, nil), 400, codeMemberState, "")
		v.wantError(v.do("PUT", base+"/"+mid, v.admin, `{"action":"join"}`), 400, codeMemberState, "")

		// Rejoin → a new member id; the old one stays listed as LEFT.
		mid2 := v.join(cid, uid)
		if mid2 == mid {
			t.Fatal("a rejoin kept the member id")
		}
		list := v.must(200, v.do("GET", base, v.admin, nil)).JSON
		diff(t, jsonOf(t, `[{"id":%q,"user_id":%q,"user_name":"dan","name":"dan","state":"LEFT"},
			{"id":%q,"user_id":%q,"user_name":"dan","name":"dan","state":"JOINED"}]`, mid, uid, mid2, uid), list)

		// An invitation declined: INVITED → LEFT.
		eve := v.user("eve")
		inv := v.must(201, v.do("POST", base, v.admin, map[string]any{"action": "invite", "user_name": "eve", "channel": map[string]any{"type": "app"}})).str("id")
		v.must(200, v.do("DELETE", base+"/"+inv, v.token("eve"), nil))
		if s := v.must(200, v.do("GET", base+"/"+inv, v.admin, nil)).str("state"); s != "LEFT" {
			t.Fatalf("declined invitation is %s", s)
		}
		_ = eve

		// Invitations by a member carry the inviter.
		fred := v.user("fred")
		r = v.must(201, v.do("POST", base, v.token("dan"), map[string]any{"action": "invite", "user_id": fred, "channel": map[string]any{"type": "app"}}))
		diff(t, jsonOf(t, `{"invited":{"isSystem":false,"user_id":%q}}`, uid), r.obj()["initiator"])
		ev := v.must(200, v.do("GET", "/conversations/"+cid+"/events?order=desc&page_size=1", v.admin, nil)).arr()[0].(map[string]any)
		diff(t, jsonOf(t, `{"user":{"id":%q,"name":"fred"},"invited_by":"dan"}`, fred), ev["body"])
		// The invitee joins itself with PUT.
		v.must(200, v.do("PUT", base+"/"+r.str("id"), v.token("fred"), `{"action":"join"}`))
	})
}

func TestMemberEventsCreateMembers(t *testing.T) {
	forEachStore(t, func(t *testing.T, sf storeFactory) {
		v := newEnv(t, sf)
		c := v.chatRoom("me")
		gus := v.user("gus")
		// member:invited through the events API: from = the inviter; body.user = the invitee.
		r := v.must(201, v.event(c, v.token("me-alice"), fmt.Sprintf(`{"type":"member:invited","from":%q,"body":{"user":{"id":%q}}}`, c.aliceM, gus)))
		if r.obj()["id"] != 3.0 {
			t.Fatalf("invited event %s", r.Raw)
		}
		m, err := v.e.MemberByUser(context.Background(), c.room, engineID(t, "USR-", gus))
		if err != nil || m.State != chat.Invited {
			t.Fatal(m, err)
		}
		gm := memberID(m.ID)
		// member:joined from the invited member, then member:left.
		r = v.must(201, v.event(c, v.token("gus"), fmt.Sprintf(`{"type":"member:joined","from":%q}`, gm)))
		if r.obj()["id"] != 4.0 {
			t.Fatalf("joined event %s", r.Raw)
		}
		r = v.must(201, v.event(c, v.token("gus"), fmt.Sprintf(`{"type":"member:left","from":%q}`, gm)))
		if r.obj()["id"] != 5.0 {
			t.Fatalf("left event %s", r.Raw)
		}
		if m, _ := v.e.MemberByID(context.Background(), c.room, m.ID); m.State != chat.Left {
			t.Fatalf("state %v", m.State)
		}
		v.wantError(v.event(c, v.admin, fmt.Sprintf(`{"type":"member:left","from":%q}`, gm)), 400, codeMemberState, "")
		v.wantError(v.event(c, v.admin, `{"type":"member:invited","body":{"user":{"id":"USR-nope"}}}`), 404, codeUserNotFound, "")
		v.wantError(v.event(c, v.admin, `{"type":"member:invited","body":{}}`), 400, codeValidation, "body.user")
	})
}

func TestMemberErrors(t *testing.T) {
	forEachStore(t, func(t *testing.T, sf storeFactory) {
		v := newEnv(t, sf)
		c := v.chatRoom("mx")
		priv, err := v.e.CreateRoom(context.Background(), chat.NewRoom{Name: "private", Private: true})
		if err != nil {
			t.Fatal(err)
		}
		hank := v.user("hank")
		base := "/conversations/" + c.cid + "/members"
		app := `"channel":{"type":"app"}`
		members := func() int {
			ms, _ := v.e.Members(context.Background(), c.room)
			return len(ms)
		}
		for _, tc := range []struct {
			name, token, method, path, body string
			status                          int
			code, field                     string
		}{
			{"no user", "", "POST", base, `{"action":"join",` + app + `}`, 400, codeValidation, "user_id"},
			{"no channel", "", "POST", base, fmt.Sprintf(`{"action":"join","user_id":%q}`, hank), 400, codeValidation, "channel"},
			{"phone channel", "", "POST", base, fmt.Sprintf(`{"action":"join","user_id":%q,"channel":{"type":"phone"}}`, hank), 400, codeValidation, "channel.type"},
			{"channel without type", "", "POST", base, fmt.Sprintf(`{"action":"join","user_id":%q,"channel":{}}`, hank), 400, codeValidation, "channel.type"},
			{"bad action", "", "POST", base, fmt.Sprintf(`{"action":"kick","user_id":%q,`+app+`}`, hank), 400, codeValidation, "action"},
			{"media not an object", "", "POST", base, fmt.Sprintf(`{"user_id":%q,"media":1,`+app+`}`, hank), 400, codeValidation, "media"},
			{"unknown user", "", "POST", base, `{"user_id":"USR-00000000-0000-0000-0000-000000000001",` + app + `}`, 404, codeUserNotFound, ""},
			{"unknown user name", "", "POST", base, `{"user_name":"nobody",` + app + `}`, 404, codeUserNotFound, ""},
			{"unknown conversation", "", "POST", "/conversations/CON-00000000-0000-0000-0000-000000000001/members", fmt.Sprintf(`{"user_id":%q,`+app+`}`, hank), 404, codeConvNotFound, ""},
			{"unknown inviting member", "", "POST", base, fmt.Sprintf(`{"action":"invite","user_id":%q,"member_id_inviting":"MEM-x",`+app+`}`, hank), 404, codeMemberNotFound, ""},
			{"user joins another", "mx-alice", "POST", base, fmt.Sprintf(`{"action":"join","user_id":%q,`+app+`}`, hank), 403, codePermission, ""},
			{"user invites as another", "mx-alice", "POST", base, fmt.Sprintf(`{"action":"invite","user_id":%q,"member_id_inviting":%q,`+app+`}`, hank, c.bobM), 403, codePermission, ""},
			{"uninvited join of a private room", "hank", "POST", "/conversations/" + conversationID(priv.ID) + "/members", fmt.Sprintf(`{"action":"join","user_id":%q,`+app+`}`, hank), 404, codeConvNotFound, ""},
			{"non-member invites", "hank", "POST", base, fmt.Sprintf(`{"action":"invite","user_id":%q,`+app+`}`, hank), 404, codeConvNotFound, ""},
			{"unknown member", "", "GET", base + "/MEM-00000000-0000-0000-0000-000000000001", "", 404, codeMemberNotFound, ""},
			{"malformed member", "", "GET", base + "/nope", "", 404, codeMemberNotFound, ""},
			{"update without action", "", "PUT", base + "/" + c.aliceM, `{}`, 400, codeValidation, "action"},
			{"update invite", "", "PUT", base + "/" + c.aliceM, `{"action":"invite"}`, 400, codeValidation, "action"},
			{"update another's member", "mx-bob", "PUT", base + "/" + c.aliceM, `{"action":"join"}`, 403, codePermission, ""},
			{"delete another's member", "mx-bob", "DELETE", base + "/" + c.aliceM, "", 403, codePermission, ""},
			{"list as a stranger", "hank", "GET", base, "", 404, codeConvNotFound, ""},
			{"retrieve as a stranger", "hank", "GET", base + "/" + c.aliceM, "", 404, codeConvNotFound, ""},
			{"method", "", "PATCH", base, "", 405, codeMethod, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tok := v.admin
				if tc.token != "" {
					tok = v.token(tc.token)
				}
				var body any
				if tc.body != "" {
					body = tc.body
				}
				n := members()
				v.wantError(v.do(tc.method, tc.path, tok, body), tc.status, tc.code, tc.field)
				if members() != n {
					t.Fatal("a refused request stored a member")
				}
			})
		}
		// An invited user may join itself and leave its own member; having left, it knows the
		// conversation but may not read it.
		invited := v.must(201, v.do("POST", base, v.admin, `{"action":"invite","user_name":"hank",`+app+`}`)).str("id")
		mid := v.must(201, v.do("POST", base, v.token("hank"), `{"action":"join","user_name":"hank",`+app+`}`)).str("id")
		if mid != invited {
			t.Fatalf("joining an invitation made member %s, not %s", mid, invited)
		}
		v.must(200, v.do("GET", base, v.token("hank"), nil))
		v.must(200, v.do("DELETE", base+"/"+mid, v.token("hank"), nil))
		v.wantError(v.do("GET", base, v.token("hank"), nil), 403, codePermission, "")
	})
}
