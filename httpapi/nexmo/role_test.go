package nexmo

import (
	"context"
	"testing"

	"github.com/parley-chat/chat"
)

// TestMemberRole: members this API joins or invites get Config.MemberRole, which the other
// surfaces show (a Genesys client sees an Agent).
func TestMemberRole(t *testing.T) {
	for _, role := range []chat.Role{"", chat.RoleAgent} {
		v := newEnv(t, stores[0], func(c *Config) { c.MemberRole = role })
		conv := v.conversation("support")
		joined := engineID(t, "MEM-", v.join(conv, v.user("agent")))
		invited := engineID(t, "MEM-", v.must(201, v.do("POST", "/conversations/"+conv+"/members", v.admin,
			map[string]any{"action": "invite", "user_id": v.user("guest"), "channel": map[string]any{"type": "app"}})).str("id"))
		room := engineID(t, "CON-", conv)
		for _, id := range []chat.ID{joined, invited} {
			m, err := v.e.MemberByID(context.Background(), room, id)
			if err != nil {
				t.Fatal(err)
			}
			if m.Role != role {
				t.Errorf("member %s has role %q, want %q", id, m.Role, role)
			}
		}
	}
}
