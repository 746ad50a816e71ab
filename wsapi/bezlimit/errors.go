package bezlimit

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/parley-chat/chat"
)

// Errors of this package that are not engine errors.
var (
	errUnauthorized = errors.New("unauthorized")
	errMethod       = errors.New("method not allowed")
	errTooLarge     = errors.New("request body too large")
)

// wireErr maps an error to the wire: an HTTP-style status code, used both as the HTTP status
// of the server-to-server endpoints and as error.code in message_not_added and error frames,
// and a message. It is the one place where engine errors meet the Bezlimit wire.
func wireErr(err error) wireError {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, errBadFrame), errors.Is(err, chat.ErrInvalid):
		code = http.StatusUnprocessableEntity
	case errors.Is(err, errUnauthorized):
		code = http.StatusUnauthorized
	case errors.Is(err, chat.ErrForbidden), errors.Is(err, chat.ErrNotMember):
		code = http.StatusForbidden
	case errors.Is(err, chat.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, errMethod):
		code = http.StatusMethodNotAllowed
	case errors.Is(err, chat.ErrConflict), errors.Is(err, chat.ErrEnded):
		code = http.StatusConflict
	case errors.Is(err, errTooLarge):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, chat.ErrClosed), errors.Is(err, context.Canceled),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, chat.ErrLagged):
		code = http.StatusServiceUnavailable
	}
	msg := err.Error()
	if code == http.StatusInternalServerError {
		msg = "internal error"
	}
	return wireError{Code: code, Message: msg}
}

// writeHTTPError answers {"error":{"code","message"}} with the mapped status.
func writeHTTPError(w http.ResponseWriter, err error) {
	we := wireErr(err)
	writeJSON(w, we.Code, map[string]wireError{"error": we})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
