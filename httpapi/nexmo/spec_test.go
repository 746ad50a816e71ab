package nexmo

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// This file checks answers against the response schemas of the vendor's OpenAPI document
// itself (../shared/specs/nexmo-conversation.openapi.yaml): every required property present,
// every property the schema declares with a compatible JSON type, and no property the schema
// does not declare except the documented extras and deviations below.

const specPath = "../../../shared/specs/nexmo-conversation.openapi.yaml"

// yamlLine is one non-blank line of the document.
type yamlLine struct {
	indent int
	text   string
}

// parseYAML parses the block-style YAML subset the spec uses (maps, "- " lists, scalars,
// quoted keys, folded ">"/"|" strings, {} and []) into maps, slices and strings.
func parseYAML(src string) any {
	var lines []yamlLine
	for _, l := range strings.Split(src, "\n") {
		t := strings.TrimRight(l, " \r")
		if strings.TrimSpace(t) == "" {
			continue
		}
		lines = append(lines, yamlLine{len(t) - len(strings.TrimLeft(t, " ")), strings.TrimLeft(t, " ")})
	}
	p := &yamlParser{lines: lines}
	return p.block(0)
}

type yamlParser struct {
	lines []yamlLine
	i     int
}

func (p *yamlParser) block(indent int) any {
	if p.i >= len(p.lines) || p.lines[p.i].indent < indent {
		return nil
	}
	indent = p.lines[p.i].indent
	if strings.HasPrefix(p.lines[p.i].text, "- ") || p.lines[p.i].text == "-" {
		var list []any
		for p.i < len(p.lines) && p.lines[p.i].indent == indent && strings.HasPrefix(p.lines[p.i].text, "- ") {
			rest := p.lines[p.i].text[2:]
			if _, _, isMap := splitKey(rest); isMap {
				// A map whose first key is on the dash line: reparse it two columns in.
				p.lines[p.i] = yamlLine{indent + 2, rest}
				list = append(list, p.block(indent+2))
			} else {
				p.i++
				list = append(list, scalar(rest))
			}
		}
		return list
	}
	m := map[string]any{}
	for p.i < len(p.lines) && p.lines[p.i].indent == indent {
		key, val, ok := splitKey(p.lines[p.i].text)
		if !ok {
			panic(fmt.Sprintf("spec line %q: not a key", p.lines[p.i].text))
		}
		p.i++
		switch {
		case val == ">" || val == "|" || val == ">-" || val == "|-":
			var sb []string
			for p.i < len(p.lines) && p.lines[p.i].indent > indent {
				sb = append(sb, p.lines[p.i].text)
				p.i++
			}
			m[key] = strings.Join(sb, " ")
		case val == "":
			if p.i < len(p.lines) && (p.lines[p.i].indent > indent ||
				(p.lines[p.i].indent == indent && strings.HasPrefix(p.lines[p.i].text, "- "))) {
				m[key] = p.block(p.lines[p.i].indent)
			} else {
				m[key] = nil
			}
		default:
			m[key] = scalar(val)
		}
	}
	return m
}

// splitKey splits "key: value" or "key:"; quoted keys may contain ": ".
func splitKey(s string) (key, val string, ok bool) {
	if s != "" && (s[0] == '\'' || s[0] == '"') {
		end := strings.IndexByte(s[1:], s[0])
		if end < 0 {
			return "", "", false
		}
		key, rest := s[1:end+1], s[end+2:]
		if !strings.HasPrefix(rest, ":") {
			return "", "", false
		}
		return key, strings.TrimSpace(rest[1:]), true
	}
	if i := strings.Index(s, ": "); i > 0 {
		return s[:i], strings.TrimSpace(s[i+2:]), true
	}
	if strings.HasSuffix(s, ":") {
		return s[:len(s)-1], "", true
	}
	return "", "", false
}

func scalar(s string) any {
	switch {
	case s == "{}":
		return map[string]any{}
	case s == "[]":
		return []any{}
	case len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0]:
		return s[1 : len(s)-1]
	}
	return s
}

// spec is the parsed document, loaded once.
var spec = func() map[string]any {
	b, err := os.ReadFile(specPath)
	if err != nil {
		return nil
	}
	m, _ := parseYAML(string(b)).(map[string]any)
	return m
}()

func get(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

// resolve follows $ref.
func resolve(v any) any {
	for i := 0; i < 20; i++ {
		ref, ok := get(v, "$ref").(string)
		if !ok {
			return v
		}
		parts := strings.Split(strings.TrimPrefix(ref, "#/"), "/")
		v = get(spec, parts...)
	}
	return v
}

// responseSchema is the JSON schema of an operation's answer.
func responseSchema(t *testing.T, path, method, status string) any {
	t.Helper()
	resp := resolve(get(spec, "paths", path, method, "responses", status))
	s := resolve(get(resp, "content", "application/json", "schema"))
	if s == nil {
		t.Fatalf("no schema for %s %s %s", method, path, status)
	}
	return s
}

// conform lists how v departs from schema s: missing required properties, undeclared
// properties (other than allowed extras), and JSON type mismatches (other than allowed
// ones). Paths are dotted, with [] for array items.
func conform(s any, v any, at string, allowed map[string]bool) []string {
	s = resolve(s)
	var out []string
	typ, _ := get(s, "type").(string)
	props, _ := get(s, "properties").(map[string]any)
	if typ == "" && props != nil {
		typ = "object"
	}
	if typ != "" && !jsonTypeOK(typ, v) && !allowed[at+":type"] {
		return []string{fmt.Sprintf("%s: %T is not %s", at, v, typ)}
	}
	switch typ {
	case "array":
		for _, it := range v.([]any) {
			out = append(out, conform(get(s, "items"), it, at+"[]", allowed)...)
		}
	case "object":
		obj := v.(map[string]any)
		req, _ := get(s, "required").([]any)
		for _, r := range req {
			if _, ok := obj[r.(string)]; !ok && !allowed[join(at, r.(string))+":missing"] {
				out = append(out, join(at, r.(string))+": required, missing")
			}
		}
		if len(props) == 0 {
			return out // a free-form object ("properties: {}" included)
		}
		for k, val := range obj {
			ps, declared := props[k]
			switch {
			case declared:
				out = append(out, conform(ps, val, join(at, k), allowed)...)
			case !allowed[join(at, k)+":extra"]:
				out = append(out, join(at, k)+": not in the schema")
			}
		}
	}
	sort.Strings(out)
	return out
}

func join(at, k string) string {
	if at == "" {
		return k
	}
	return at + "." + k
}

func jsonTypeOK(typ string, v any) bool {
	switch typ {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "number", "integer":
		_, ok := v.(float64)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	}
	return true
}

// Departures from the spec's schemas, each a decision documented in the package (README
// fact or ours) and in the report.
var deviations = map[string]map[string]bool{
	"listConversations": {"_links.next:extra": true, "_links.prev:extra": true}, // HAL paging links
	"retrieveConversation": {
		"image_url:extra":                   true, // the request takes image_url; the answer shows it back
		"sequence_number:type":              true, // fact: an event id, a number (the spec: string here, integer in getuserConversations)
		"members[].initiator.invited:extra": true, // the engine records the inviter, not who performed a join
		"properties.ttl:extra":              true, // conversation_properties declares ttl; this inline schema only video
	},
	"getEvent":     {"id:type": true}, // fact: event ids are integers (the spec's event_id is a string)
	"getEvents":    {"[].id:type": true},
	"createEvent":  {"id:type": true},
	"getMembers":   {"[].id:extra": true}, // README ours: member list items carry id
	"createMember": {"conversation_id:extra": true, "name:extra": true, "initiator.invited:extra": true},
	"getMember": {"conversation_id:extra": true, "user_id:extra": true, "name:extra": true, "state:extra": true,
		"timestamp:extra": true, "initiator:extra": true, "channel:extra": true}, // the spec lists only id and href
	"createUser": {"id:extra": true, "image_url:extra": true, "channels:extra": true}, // README ours: id
	"getUser":    {"display_name:extra": true, "image_url:extra": true},
	"listLegs":   {"_embedded.legs:extra": true}, // the schema's properties say conversations; its required list and example say legs
}

func TestAnswersMatchSpecSchemas(t *testing.T) {
	if spec == nil {
		t.Skip("spec not found at " + specPath)
	}
	if len(get(spec, "paths").(map[string]any)) != 11 {
		t.Fatalf("spec parse: %d paths", len(get(spec, "paths").(map[string]any)))
	}
	v := newEnv(t, stores[0])
	c := v.chatRoom("sp")
	inv := v.user("sp-inv")
	v.must(201, v.event(c, v.admin, fmt.Sprintf(`{"type":"text","from":%q,"body":{"text":"x"}}`, c.aliceM)))
	r := v.must(201, v.do("POST", "/conversations/"+c.cid+"/members", v.token("sp-alice"),
		map[string]any{"action": "invite", "user_id": inv, "channel": map[string]any{"type": "app"}}))
	v.must(200, v.do("PUT", "/conversations/"+c.cid, v.admin, `{"image_url":"https://example.com/x.png","properties":{"ttl":60,"video":false},"numbers":{"sms":"44"}}`))
	conv := "/conversations/{conversation_id}"

	for _, tc := range []struct {
		op, path, method, status string
		answer                   resp
	}{
		{"createConversation", "/conversations", "post", "200", v.do("POST", "/conversations", v.admin, `{"name":"sp2"}`)},
		{"listConversations", "/conversations", "get", "200", v.do("GET", "/conversations?page_size=1", v.admin, nil)},
		{"retrieveConversation", conv, "get", "200", v.do("GET", "/conversations/"+c.cid, v.admin, nil)},
		{"replaceConversation", conv, "put", "200", v.do("PUT", "/conversations/"+c.cid, v.admin, `{"display_name":"d"}`)},
		{"createEvent", conv + "/events", "post", "201", v.event(c, v.admin, `{"type":"text","body":{"text":"y"}}`)},
		{"getEvents", conv + "/events", "get", "200", v.do("GET", "/conversations/"+c.cid+"/events", v.admin, nil)},
		{"getEvent", conv + "/events/{event_id}", "get", "200", v.do("GET", "/conversations/"+c.cid+"/events/3", v.admin, nil)},
		{"getMembers", conv + "/members", "get", "200", v.do("GET", "/conversations/"+c.cid+"/members", v.admin, nil)},
		{"createMember", conv + "/members", "post", "201", r},
		{"getMember", conv + "/members/{member_id}", "get", "200", v.do("GET", "/conversations/"+c.cid+"/members/"+c.aliceM, v.admin, nil)},
		{"getUsers", "/users", "get", "200", v.do("GET", "/users", v.admin, nil)},
		{"createUser", "/users", "post", "200", v.do("POST", "/users", v.admin, `{"name":"sp-new","display_name":"N"}`)},
		{"getUser", "/users/{user_id}", "get", "200", v.do("GET", "/users/"+c.alice, v.admin, nil)},
		{"updateUser", "/users/{user_id}", "put", "200", v.do("PUT", "/users/"+c.alice, v.admin, `{"display_name":"A"}`)},
		{"getuserConversations", "/users/{user_id}/conversations", "get", "200", v.do("GET", "/users/"+c.alice+"/conversations", v.admin, nil)},
		{"listLegs", "/legs", "get", "200", v.do("GET", "/legs", v.admin, nil)},
		{"deleteEvent", conv + "/events/{event_id}", "delete", "200", v.do("DELETE", "/conversations/"+c.cid+"/events/3", v.admin, nil)},
		{"deleteMember", conv + "/members/{member_id}", "delete", "200", v.do("DELETE", "/conversations/"+c.cid+"/members/"+r.str("id"), v.admin, nil)},
		{"deleteUser", "/users/{user_id}", "delete", "200", v.do("DELETE", "/users/"+inv, v.admin, nil)},
		{"deleteConversation", conv, "delete", "200", v.do("DELETE", "/conversations/"+c.cid, v.admin, nil)},
	} {
		t.Run(tc.op, func(t *testing.T) {
			if id, _ := get(spec, "paths", tc.path, tc.method, "operationId").(string); id != tc.op {
				t.Fatalf("spec operation %q, want %q", id, tc.op)
			}
			st := fmt.Sprint(tc.answer.Status)
			if st != tc.status {
				t.Fatalf("status %s, spec %s: %s", st, tc.status, tc.answer.Raw)
			}
			got := conform(responseSchema(t, tc.path, tc.method, tc.status), tc.answer.JSON, "", deviations[tc.op])
			if d := cmp.Diff([]string(nil), got); d != "" {
				t.Errorf("answer departs from the spec schema (-want +got):\n%s\nanswer: %s", d, tc.answer.Raw)
			}
		})
	}
	// The spec's own examples of scalar formats: ids, hrefs, timestamps, member states.
	ex := get(spec, "components", "schemas")
	for _, k := range []string{"conversation_id", "member_id", "user_id"} {
		e := get(ex, k, "example").(string)
		if !strings.HasPrefix(e, map[string]string{"conversation_id": "CON-", "member_id": "MEM-", "user_id": "USR-"}[k]) || len(e) != 40 {
			t.Errorf("spec example %s %q: not prefix + 36-character UUID form", k, e)
		}
	}
	states := get(ex, "member_state", "enum").([]any)
	if !slices.Contains(states, any("invited")) {
		t.Errorf("member_state enum %v", states)
	}
}
