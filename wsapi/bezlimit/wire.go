package bezlimit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/parley-chat/chat"
)

// Client event types on /chat (fact).
const (
	evSendMessage   = "send_message"
	evMarkDelivered = "mark_message_delivered"
	evMarkRead      = "mark_message_read"
	evUpdateTyping  = "update_typing"
)

// Server event types.
const (
	evMessageAdded     = "message_added"
	evMessageNotAdded  = "message_not_added"
	evMessageUpdated   = "message_updated"
	evUserConnected    = "user_connected"
	evUserDisconnected = "user_disconnected"
	evTypingUpdated    = "typing_updated"
	evChatUpdated      = "chat_updated"
	evOperatorUpdated  = "operator_updated"
	evGlobalUpdated    = "global_updated"
	evChatNotification = "chat_notification"
)

// User is a Bezlimit user as it appears on the wire, and the identity Config.Authenticate
// resolves a client token to.
type User struct {
	// ID is the Bezlimit user id.
	ID int64 `json:"id"`
	// Role is "client" or "operator" (other roles are kept as they are).
	Role string `json:"role"`
	// Avatar is the URL of the user's picture.
	Avatar string `json:"avatar"`
	// FirstName, LastName and Patronymic are the user's names.
	FirstName  string `json:"firstname"`
	LastName   string `json:"lastname"`
	Patronymic string `json:"patronymic"`
}

// Identity is what Config.Authenticate returns for a client token: the user, and for an
// operator the widget and department sources that /online-users reports.
type Identity struct {
	// User is the authenticated user; User.ID must not be 0.
	User User
	// Sources is reported as is by /online-users for the operator's broadcast sessions.
	Sources json.RawMessage
	// Expires is when the token stops being valid; zero: never. A token already expired is
	// refused with 401; a socket open when it passes is closed with 4401 "token expired".
	Expires time.Time
}

// wireChat is a chat on the wire: the object pushed to /update/chat, with its uuid.
type wireChat map[string]json.RawMessage

// wireMessage is a message on the wire (fact: the field names of message_added).
type wireMessage struct {
	ID           uint64          `json:"id"`
	Type         string          `json:"type"`
	TypeRole     string          `json:"type_role"`
	Status       string          `json:"status"`
	Text         string          `json:"text"`
	SendTime     string          `json:"send_time"`
	MessageIndex uint64          `json:"message_index"`
	Chat         json.RawMessage `json:"chat"`
	User         *User           `json:"user"`
	Attachments  []string        `json:"attachments"`
	Deleted      bool            `json:"deleted,omitempty"`
}

// wireError is the error object of message_not_added, error frames and HTTP errors.
type wireError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// messageBody is what the package keeps in a message's engine Body under bodyKey.
type messageBody struct {
	Type        string   `json:"type"`
	TypeRole    string   `json:"type_role,omitempty"`
	Attachments []string `json:"attachments,omitempty"`
}

// clientEvent is a decoded client frame: one of the pointer fields is set.
type clientEvent struct {
	Type   string
	Send   *sendMessage
	Mark   *markMessage
	Typing *updateTyping
}

type sendMessage struct {
	Text        string   `json:"text"`
	Attachments []string `json:"attachments"`
}

type markMessage struct {
	MessageID uint64 `json:"message_id"`
}

type updateTyping struct {
	Text    string `json:"text"`
	Stopped bool   `json:"stopped"`
}

// errBadFrame is wrapped by every decoding error.
var errBadFrame = errors.New("bad frame")

func badFrame(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errBadFrame}, args...)...)
}

// decodeClientFrame parses one client text frame: {"type": "<event>", "data": {...}}. It
// rejects what cannot be stored as sent (invalid UTF-8, a NUL, nesting deeper than
// chat.MaxJSONDepth), malformed JSON, a missing or unknown type, data that is not an object
// of the event's shape, a message_id that is not a positive integer and attachments that are
// not UUIDs (at most maxAttachments). A send_message refused for its bytes still comes back
// with its Type and Send (decoded leniently, for message_not_added to echo), with the error.
func decodeClientFrame(b []byte) (clientEvent, error) {
	var raw struct {
		Type *string         `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := chat.CheckJSON("frame", b); err != nil {
		return refusedFrame(b), badFrame("%v", err)
	}
	if err := strictUnmarshal(b, &raw); err != nil {
		return clientEvent{}, badFrame("%v", err)
	}
	if raw.Type == nil {
		return clientEvent{}, badFrame("no type")
	}
	ev := clientEvent{Type: *raw.Type}
	data := bytes.TrimSpace(raw.Data)
	if len(data) == 0 || data[0] != '{' {
		return clientEvent{}, badFrame("%s: data must be an object", ev.Type)
	}
	switch ev.Type {
	case evSendMessage:
		var m sendMessage
		if err := strictUnmarshal(data, &m); err != nil {
			return clientEvent{}, badFrame("%s: %v", ev.Type, err)
		}
		if len(m.Attachments) > maxAttachments {
			return clientEvent{}, badFrame("%s: more than %d attachments", ev.Type, maxAttachments)
		}
		for _, a := range m.Attachments {
			if !isUUID(a) {
				return clientEvent{}, badFrame("%s: attachment %q is not a uuid", ev.Type, a)
			}
		}
		ev.Send = &m
	case evMarkDelivered, evMarkRead:
		var m struct {
			MessageID json.RawMessage `json:"message_id"`
		}
		if err := strictUnmarshal(data, &m); err != nil {
			return clientEvent{}, badFrame("%s: %v", ev.Type, err)
		}
		id, err := strconv.ParseUint(string(m.MessageID), 10, 64)
		if err != nil || id == 0 {
			return clientEvent{}, badFrame("%s: message_id must be a positive integer", ev.Type)
		}
		ev.Mark = &markMessage{MessageID: id}
	case evUpdateTyping:
		var m updateTyping
		if err := strictUnmarshal(data, &m); err != nil {
			return clientEvent{}, badFrame("%s: %v", ev.Type, err)
		}
		ev.Typing = &m
	default:
		return clientEvent{}, badFrame("unknown event type %q", ev.Type)
	}
	return ev, nil
}

// refusedFrame decodes what it can of a frame refused for its bytes: the event type, and
// for send_message its text and attachments (Go's decoder turns invalid UTF-8 into U+FFFD).
func refusedFrame(b []byte) clientEvent {
	var raw struct {
		Type string      `json:"type"`
		Data sendMessage `json:"data"`
	}
	if json.Unmarshal(b, &raw) != nil {
		var typ struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(b, &typ) != nil {
			return clientEvent{}
		}
		return clientEvent{Type: typ.Type}
	}
	ev := clientEvent{Type: raw.Type}
	if ev.Type == evSendMessage {
		ev.Send = &raw.Data
	}
	return ev
}

// strictUnmarshal decodes exactly one JSON value and nothing after it. Unknown fields are
// ignored: vendor clients may send more than the document names.
func strictUnmarshal(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(v); err != nil {
		return err
	}
	if len(bytes.TrimSpace(b[d.InputOffset():])) != 0 {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// isUUID reports whether s is in the 8-4-4-4-12 hexadecimal form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// encodeFrame renders a server frame {"type":..., "data":..., "position":pos}; position is
// left out when pos is 0.
func encodeFrame(typ string, data any, pos uint64) []byte {
	b, err := json.Marshal(struct {
		Type string `json:"type"`
		Data any    `json:"data"`
		Pos  uint64 `json:"position,omitempty"`
	}{typ, data, pos})
	if err != nil {
		// Every value passed here is built by this package from marshalable types.
		panic("bezlimit: encoding a frame: " + err.Error())
	}
	return b
}
