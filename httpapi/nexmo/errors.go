package nexmo

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/httpx"
)

// apiError is an error answer in the vendor's format:
// {"code": "conversation:error:not-found", "description": "...", "error": {...}}.
type apiError struct {
	status      int
	Code        string            `json:"code"`
	Description string            `json:"description"`
	Detail      map[string]string `json:"error,omitempty"` // for validation: field → reason
}

func (e *apiError) Error() string { return e.Code + ": " + e.Description }

func newAPIError(code, description string) *apiError {
	return &apiError{status: statusFor[code], Code: code, Description: description}
}

// validation is a 400 http:error:validation-fail naming the offending field.
func validation(field, reason string) *apiError {
	e := newAPIError(codeValidation, "Input validation failure.")
	e.Detail = map[string]string{field: reason}
	return e
}

func forbidden(what string) *apiError { return newAPIError(codePermission, what) }

// errTooManyRequests refuses a write past the client's rate (Config.Limiter).
var errTooManyRequests = newAPIError(codeTooManyRequests, "Too many requests: try again shortly.")

// resource says which kind of thing an engine call was about, so that one engine error maps
// to the vendor code of that resource.
type resource uint8

const (
	resNone resource = iota
	resConversation
	resUser
	resMember
	resEvent
	resLeg
)

// engineError wraps an engine error with the resource the call was about and the request
// field that fed it (for ErrInvalid).
type engineError struct {
	err   error
	res   resource
	field string
}

func (e *engineError) Error() string { return e.err.Error() }
func (e *engineError) Unwrap() error { return e.err }

// fail wraps an engine error for errorFor; nil stays nil.
func fail(err error, res resource, field string) error {
	if err == nil {
		return nil
	}
	return &engineError{err: err, res: res, field: field}
}

// errorFor maps any error a handler returns to the vendor's error answer. It is the one place
// where engine errors become wire errors.
func errorFor(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var he *httpx.Error // a body refused as it was read
	if errors.As(err, &he) {
		switch {
		case errors.Is(he, httpx.ErrTooLarge):
			return newAPIError(codeTooLarge, "The request body is larger than the limit.")
		case errors.Is(he, httpx.ErrMediaType):
			return newAPIError(codeMediaType, he.Msg)
		}
		return validation("body", he.Msg)
	}
	ee := &engineError{err: err}
	errors.As(err, &ee)
	desc := err.Error()
	switch {
	case errors.Is(err, chat.ErrNotFound):
		switch ee.res {
		case resUser:
			return newAPIError(codeUserNotFound, "User does not exist, or you do not have access.")
		case resMember:
			return newAPIError(codeMemberNotFound, "Member does not exist, or you do not have access.")
		case resEvent:
			return newAPIError(codeEventNotFound, "Event does not exist, or you do not have access.")
		case resLeg:
			return newAPIError(codeLegNotFound, "Leg does not exist.")
		default:
			return newAPIError(codeConvNotFound, "Conversation does not exist, or you do not have access.")
		}
	case errors.Is(err, chat.ErrConflict):
		switch ee.res {
		case resConversation:
			return newAPIError(codeConvDuplicate, "The conversation name already exists.")
		case resUser:
			return newAPIError(codeUserDuplicate, "The user name already exists.")
		case resEvent:
			return newAPIError(codeEventConflict, "The event was deleted already.")
		default:
			return newAPIError(codeMemberState, "The member is not in a state that allows this: "+desc)
		}
	case errors.Is(err, chat.ErrForbidden):
		return forbidden("You do not have permission for this: " + desc)
	case errors.Is(err, chat.ErrNotMember):
		return forbidden("You are not a joined member of this conversation.")
	case errors.Is(err, chat.ErrInvalid):
		field := ee.field
		var inv *chat.InvalidError
		if errors.As(err, &inv) && wireFields[inv.Field] != "" {
			field = wireFields[inv.Field]
		}
		if field == "" {
			field = "body"
		}
		return validation(field, desc)
	case errors.Is(err, chat.ErrEnded):
		return newAPIError(codeEnded, "The conversation has ended.")
	case errors.Is(err, chat.ErrUnavailable):
		return newAPIError(codeUnavailable, "The service cannot store this now: try again later.")
	case errors.Is(err, chat.ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return newAPIError(codeUnavailable, "The service is not available.")
	}
	return newAPIError(codeInternal, "Internal error.")
}

// wireFields names the request field behind an engine field that *chat.InvalidError reports,
// where the engine's name alone says which one it is. Others (text, attributes, nickname)
// keep the field the handler named, which knows the request.
var wireFields = map[string]string{
	"name": "name", "display name": "display_name", "image URL": "image_url", "avatar URL": "image_url",
	"body": "body", "custom event name": "type", "TTL": "properties.ttl",
	"attribute " + attrNumbers: "numbers", "attribute " + attrProperties: "properties",
	"attribute " + attrChannels: "channels",
}

// writeError writes err as the vendor's error answer.
func writeError(w http.ResponseWriter, err error) *apiError {
	ae := errorFor(err)
	switch ae.status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="nexmo"`)
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterLimited))
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterUnavailable))
	}
	writeJSON(w, ae.status, ae)
	return ae
}

// writeJSON writes v as a JSON answer with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"code":"` + codeInternal + `","description":"Internal error."}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
