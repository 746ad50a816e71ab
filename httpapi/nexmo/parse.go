package nexmo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/httpx"
)

// Wire ids: a prefix and the UUID form of the engine ID (fact: CON-<uuid>, MEM-<uuid>,
// USR-<uuid>; the engine room ID is the identity shared by every surface).
const (
	prefixConversation = "CON-"
	prefixMember       = "MEM-"
	prefixUser         = "USR-"
)

func conversationID(id chat.ID) string { return prefixConversation + id.UUID() }
func memberID(id chat.ID) string       { return prefixMember + id.UUID() }
func userID(id chat.ID) string         { return prefixUser + id.UUID() }

// parseID parses a prefixed wire id back to the engine ID. The part after the prefix may be
// the UUID form (what we emit) or the ULID form.
func parseID(prefix, s string) (chat.ID, bool) {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return chat.ID{}, false
	}
	id, err := chat.ParseID(rest)
	if err != nil || id.IsZero() {
		return chat.ID{}, false
	}
	return id, true
}

// parseEventID parses an event id: a decimal position from 1.
func parseEventID(s string) (uint64, bool) {
	if s == "" || s[0] == '+' {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil && n > 0
}

// decodeObject decodes a JSON object body into dst. An empty body is the empty object when
// emptyOK. Type mismatches name the field; anything that is not one JSON object is refused, and
// so is anything that could not be stored as sent (httpx.DecodeJSON: invalid UTF-8, which Go's
// decoder would silently turn into U+FFFD, NULs, nesting past chat.MaxJSONDepth), naming the
// top-level field at fault (refusedField).
func decodeObject(b []byte, dst any, emptyOK bool) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		if emptyOK {
			return nil
		}
		return validation("body", "a JSON object is required")
	}
	// Checked whole first, as a raw value (no type can mismatch it), so that a type
	// mismatch below is the only failure left and names its field.
	var raw json.RawMessage
	if err := httpx.DecodeJSON(b, &raw); err != nil {
		if field, reason := refusedField(b); field != "" {
			return validation(field, reason)
		}
		return validation("body", err.Error())
	}
	if b[0] != '{' {
		return validation("body", "the body must be a JSON object")
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return validation(te.Field, "must be of type "+te.Type.String())
		}
		return validation("body", "malformed JSON")
	}
	return nil
}

// refusedField finds, in a JSON object, the first member whose value chat.CheckJSON refuses,
// and returns its key and the reason; "" when there is none to blame (not an object, broken
// JSON, or the fault is in a key). Only keys that look like the vendor's field names (lower
// case, digits, '_') are returned, so that the answer never echoes a mangled key.
func refusedField(b []byte) (field, reason string) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", ""
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return "", ""
		}
		key, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return "", ""
		}
		var inv *chat.InvalidError
		if err := chat.CheckJSON(key, v); errors.As(err, &inv) && isFieldName(key) {
			return key, inv.Reason
		}
	}
	return "", ""
}

// isFieldName reports whether s looks like one of the vendor's field names.
func isFieldName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// optObject checks that raw, if present and not null, is a JSON object; it returns it
// compacted, or nil.
func optObject(raw json.RawMessage, field string) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] != '{' {
		return nil, validation(field, "must be an object")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, validation(field, "malformed JSON")
	}
	return buf.Bytes(), nil
}

// conversationInput is the body of POST /conversations and PUT /conversations/{id}.
type conversationInput struct {
	Name        *string
	DisplayName *string
	ImageURL    *string
	Numbers     json.RawMessage // an object, or nil when absent
	Properties  json.RawMessage // the object minus ttl, or nil when absent
	HasProps    bool            // `properties` was given
	TTL         *time.Duration  // properties.ttl, when given
}

func parseConversation(b []byte) (conversationInput, error) {
	var raw struct {
		Name        *string         `json:"name"`
		DisplayName *string         `json:"display_name"`
		ImageURL    *string         `json:"image_url"`
		Numbers     json.RawMessage `json:"numbers"`
		Properties  json.RawMessage `json:"properties"`
	}
	if err := decodeObject(b, &raw, true); err != nil {
		return conversationInput{}, err
	}
	in := conversationInput{Name: raw.Name, DisplayName: raw.DisplayName, ImageURL: raw.ImageURL}
	var err error
	if in.Numbers, err = optObject(raw.Numbers, "numbers"); err != nil {
		return conversationInput{}, err
	}
	props, err := optObject(raw.Properties, "properties")
	if err != nil || props == nil {
		return in, err
	}
	in.HasProps = true
	var m map[string]json.RawMessage
	if err := json.Unmarshal(props, &m); err != nil {
		return conversationInput{}, validation("properties", "malformed JSON")
	}
	if t, ok := m["ttl"]; ok {
		delete(m, "ttl")
		if string(t) != "null" {
			var secs float64
			if err := json.Unmarshal(t, &secs); err != nil {
				return conversationInput{}, validation("properties.ttl", "must be a number of seconds")
			}
			if math.IsNaN(secs) || secs < 0 || secs > maxTTLSeconds {
				return conversationInput{}, validation("properties.ttl", fmt.Sprintf("must be between 0 and %d seconds", maxTTLSeconds))
			}
			d := time.Duration(secs * float64(time.Second)).Round(time.Millisecond)
			in.TTL = &d
		}
	}
	if in.Properties, err = json.Marshal(m); err != nil {
		return conversationInput{}, validation("properties", "malformed JSON")
	}
	return in, nil
}

// eventInput is the body of POST .../events.
type eventInput struct {
	Type string
	From string          // a member id, "" if absent
	To   string          // a member id, "" if absent
	Body json.RawMessage // an object, or nil
}

func parseEvent(b []byte) (eventInput, error) {
	var raw struct {
		Type *string         `json:"type"`
		From *string         `json:"from"`
		To   *string         `json:"to"`
		Body json.RawMessage `json:"body"`
	}
	if err := decodeObject(b, &raw, false); err != nil {
		return eventInput{}, err
	}
	if raw.Type == nil || *raw.Type == "" {
		return eventInput{}, validation("type", "is required")
	}
	in := eventInput{Type: *raw.Type, From: deref(raw.From), To: deref(raw.To)}
	var err error
	if in.Body, err = optObject(raw.Body, "body"); err != nil {
		return eventInput{}, err
	}
	return in, nil
}

// textBody is the body of a text event: {"text": "..."}, text required.
func textBody(body json.RawMessage) (string, error) {
	var b struct {
		Text *string `json:"text"`
	}
	if len(body) == 0 {
		return "", validation("body.text", "is required")
	}
	if err := decodeObject(body, &b, false); err != nil {
		return "", retarget(err, "body")
	}
	if b.Text == nil {
		return "", validation("body.text", "is required")
	}
	return *b.Text, nil
}

// eventIDBody is the body of text:seen, text:delivered and event:delete: {"event_id": n},
// where n is an integer or a decimal string (the spec types event ids as strings; the
// vendor's events carry numbers).
func eventIDBody(body json.RawMessage) (uint64, error) {
	var b struct {
		EventID json.RawMessage `json:"event_id"`
	}
	if len(body) == 0 {
		return 0, validation("body.event_id", "is required")
	}
	if err := decodeObject(body, &b, false); err != nil {
		return 0, retarget(err, "body")
	}
	raw := bytes.TrimSpace(b.EventID)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, validation("body.event_id", "is required")
	}
	s := string(raw)
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, validation("body.event_id", "must be an event id")
		}
	}
	n, ok := parseEventID(s)
	if !ok {
		return 0, validation("body.event_id", "must be an event id")
	}
	return n, nil
}

// typingBody reads the optional preview of text:typing:on: {"text": "..."}.
func typingBody(body json.RawMessage) (string, error) {
	if len(body) == 0 {
		return "", nil
	}
	var b struct {
		Text *string `json:"text"`
	}
	if err := decodeObject(body, &b, true); err != nil {
		return "", retarget(err, "body")
	}
	return deref(b.Text), nil
}

// imageURL finds the picture's address in an image body, for the engine message text that
// other surfaces show: body.representations.original.url (the vendor's image events) or
// body.image.url.
func imageURL(body json.RawMessage) string {
	var b struct {
		Representations struct {
			Original struct {
				URL string `json:"url"`
			} `json:"original"`
		} `json:"representations"`
		Image struct {
			URL string `json:"url"`
		} `json:"image"`
	}
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	if b.Representations.Original.URL != "" {
		return b.Representations.Original.URL
	}
	return b.Image.URL
}

// isImageBody reports whether an engine message body is an image body.
func isImageBody(body json.RawMessage) bool {
	if len(body) == 0 || bytes.TrimSpace(body)[0] != '{' {
		return false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return false
	}
	_, r := m["representations"]
	_, i := m["image"]
	return r || i
}

// retarget prefixes a validation error's field with parent.
func retarget(err error, parent string) error {
	var ae *apiError
	if errors.As(err, &ae) && ae.Code == codeValidation {
		d := make(map[string]string, len(ae.Detail))
		for k, v := range ae.Detail {
			if k == "body" {
				d[parent] = v
			} else {
				d[parent+"."+k] = v
			}
		}
		c := *ae
		c.Detail = d
		return &c
	}
	return err
}

// channelInput validates a `channel` object: chat members have the app channel only.
func channelInput(raw json.RawMessage, required bool) error {
	obj, err := optObject(raw, "channel")
	if err != nil {
		return err
	}
	if obj == nil {
		if required {
			return validation("channel", "is required")
		}
		return nil
	}
	var c struct {
		Type *string `json:"type"`
	}
	if err := decodeObject(obj, &c, false); err != nil {
		return retarget(err, "channel")
	}
	if c.Type == nil {
		return validation("channel.type", "is required")
	}
	if *c.Type != channelApp {
		return validation("channel.type", "only the app channel is supported for chat members")
	}
	return nil
}

// memberInput is the body of POST .../members.
type memberInput struct {
	Action           string
	UserID           string
	UserName         string
	MemberIDInviting string
}

func parseMember(b []byte) (memberInput, error) {
	var raw struct {
		Action           *string         `json:"action"`
		UserID           *string         `json:"user_id"`
		UserName         *string         `json:"user_name"`
		MemberID         *string         `json:"member_id"`
		Channel          json.RawMessage `json:"channel"`
		Media            json.RawMessage `json:"media"`
		KnockingID       *string         `json:"knocking_id"`
		MemberIDInviting *string         `json:"member_id_inviting"`
	}
	if err := decodeObject(b, &raw, false); err != nil {
		return memberInput{}, err
	}
	in := memberInput{Action: defaultMemberAction, UserID: deref(raw.UserID), UserName: deref(raw.UserName),
		MemberIDInviting: deref(raw.MemberIDInviting)}
	if raw.Action != nil {
		in.Action = *raw.Action
	}
	if in.Action != "invite" && in.Action != "join" {
		return memberInput{}, validation("action", "must be invite or join")
	}
	if in.UserID == "" && in.UserName == "" {
		return memberInput{}, validation("user_id", "is required")
	}
	if _, err := optObject(raw.Media, "media"); err != nil {
		return memberInput{}, err
	}
	if err := channelInput(raw.Channel, true); err != nil {
		return memberInput{}, err
	}
	return in, nil
}

// parseMemberUpdate reads the body of PUT .../members/{id}: {"action": "join", "channel"}.
func parseMemberUpdate(b []byte) error {
	var raw struct {
		Action  *string         `json:"action"`
		Channel json.RawMessage `json:"channel"`
	}
	if err := decodeObject(b, &raw, false); err != nil {
		return err
	}
	if raw.Action == nil {
		return validation("action", "is required")
	}
	if *raw.Action != "join" {
		return validation("action", "must be join")
	}
	return channelInput(raw.Channel, false)
}

// userInput is the body of POST /users and PUT /users/{id}.
type userInput struct {
	Name        *string
	DisplayName *string
	ImageURL    *string
	Channels    json.RawMessage // an object, or nil
}

func parseUser(b []byte, create bool) (userInput, error) {
	var raw struct {
		Name        *string         `json:"name"`
		DisplayName *string         `json:"display_name"`
		ImageURL    *string         `json:"image_url"`
		Channels    json.RawMessage `json:"channels"`
	}
	if err := decodeObject(b, &raw, !create); err != nil {
		return userInput{}, err
	}
	in := userInput{Name: raw.Name, DisplayName: raw.DisplayName, ImageURL: raw.ImageURL}
	if create && (in.Name == nil || *in.Name == "") {
		// Users are addressed by name in tokens (`sub`): a user here always has one.
		return userInput{}, validation("name", "is required")
	}
	if !create && in.Name != nil && *in.Name == "" {
		return userInput{}, validation("name", "must not be empty")
	}
	var err error
	if in.Channels, err = optObject(raw.Channels, "channels"); err != nil {
		return userInput{}, err
	}
	return in, nil
}

// listQuery is the query of a HAL list (and of GET /users).
type listQuery struct {
	PageSize    int
	RecordIndex int
	Desc        bool
	Start, End  time.Time
	order       string // as given, for the self link
	start, end  string // as given
}

func parseListQuery(q url.Values) (listQuery, error) {
	l := listQuery{PageSize: defaultPageSize, order: "asc"}
	if s := q.Get("page_size"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPageSize {
			return listQuery{}, validation("page_size", fmt.Sprintf("must be an integer from 1 to %d", maxPageSize))
		}
		l.PageSize = n
	}
	if s := q.Get("record_index"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return listQuery{}, validation("record_index", "must be an integer from 0")
		}
		l.RecordIndex = n
	}
	if s := q.Get("order"); s != "" {
		switch strings.ToLower(s) {
		case "asc":
		case "desc":
			l.Desc = true
		default:
			return listQuery{}, validation("order", "must be asc or desc")
		}
		l.order = strings.ToLower(s)
	}
	var err error
	if l.start = q.Get("date_start"); l.start != "" {
		if l.Start, err = parseDate(l.start); err != nil {
			return listQuery{}, validation("date_start", err.Error())
		}
	}
	if l.end = q.Get("date_end"); l.end != "" {
		if l.End, err = parseDate(l.end); err != nil {
			return listQuery{}, validation("date_end", err.Error())
		}
	}
	if !l.Start.IsZero() && !l.End.IsZero() && !l.Start.Before(l.End) {
		return listQuery{}, validation("date_end", "must be after date_start")
	}
	return l, nil
}

// dateLayouts are the accepted forms of date_start and date_end: the spec's example
// ("2018-01-01 10:00:00", UTC), RFC 3339, and a bare date.
var dateLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02"}

func parseDate(s string) (time.Time, error) {
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errors.New("must be a date and time such as 2018-01-01 10:00:00 or RFC 3339")
}

// filter is the engine list filter of the query: [date_start, date_end) by creation time.
func (l listQuery) filter() chat.ListFilter {
	return chat.ListFilter{Since: l.Start, Until: l.End, Offset: l.RecordIndex, Limit: l.PageSize, Desc: l.Desc}
}

// query renders the list query for links.
func (l listQuery) query(recordIndex int) string {
	v := url.Values{}
	v.Set("page_size", strconv.Itoa(l.PageSize))
	v.Set("record_index", strconv.Itoa(recordIndex))
	v.Set("order", l.order)
	if l.start != "" {
		v.Set("date_start", l.start)
	}
	if l.end != "" {
		v.Set("date_end", l.end)
	}
	return v.Encode()
}

// eventsQuery is the query of GET .../events: start_id and end_id (inclusive positions),
// event_type, order, page_size (ours: 1..1000, default 1000). The spec lists none; the
// vendor's clients send start_id/end_id.
type eventsQuery struct {
	StartID, EndID uint64
	Type           string
	Desc           bool
	PageSize       int
}

func parseEventsQuery(q url.Values) (eventsQuery, error) {
	e := eventsQuery{PageSize: maxEventsPage}
	var ok bool
	if s := q.Get("start_id"); s != "" {
		if e.StartID, ok = parseEventID(s); !ok {
			return eventsQuery{}, validation("start_id", "must be an event id")
		}
	}
	if s := q.Get("end_id"); s != "" {
		if e.EndID, ok = parseEventID(s); !ok {
			return eventsQuery{}, validation("end_id", "must be an event id")
		}
	}
	if e.StartID != 0 && e.EndID != 0 && e.EndID < e.StartID {
		return eventsQuery{}, validation("end_id", "must not be before start_id")
	}
	e.Type = q.Get("event_type")
	if s := q.Get("order"); s != "" {
		switch strings.ToLower(s) {
		case "asc":
		case "desc":
			e.Desc = true
		default:
			return eventsQuery{}, validation("order", "must be asc or desc")
		}
	}
	if s := q.Get("page_size"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxEventsPage {
			return eventsQuery{}, validation("page_size", fmt.Sprintf("must be an integer from 1 to %d", maxEventsPage))
		}
		e.PageSize = n
	}
	return e, nil
}

func deref[T any](p *T) T {
	var zero T
	if p != nil {
		return *p
	}
	return zero
}
