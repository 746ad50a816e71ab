package bezlimit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"strconv"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/internal/httpx"
)

// Errors of this package that are not engine errors.
var (
	errUnauthorized = errors.New("unauthorized")
	errMethod       = errors.New("method not allowed")
	errRateLimited  = errors.New("too many writes: slow down")
	// errNoChat answers both a chat that does not exist and one the identity may not open,
	// with the same words: it names no uuid, so that the answer tells nothing about which.
	errNoChat = fmt.Errorf("bezlimit: chat not found: %w", chat.ErrNotFound)
)

// wireErr maps an error to the wire: an HTTP-style status code, used both as the HTTP status
// of the server-to-server endpoints and as error.code in message_not_added and error frames,
// and a message. It is the one place where engine errors meet the Bezlimit wire.
func wireErr(err error) wireError {
	code := http.StatusInternalServerError
	msg := err.Error()
	switch {
	case errors.Is(err, httpx.ErrMalformed): // before ErrInvalid, which it also matches
		code = http.StatusBadRequest
	case errors.Is(err, httpx.ErrMediaType):
		code = http.StatusUnsupportedMediaType
	case errors.Is(err, httpx.ErrTooLarge):
		code = http.StatusRequestEntityTooLarge
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
	case errors.Is(err, errRateLimited):
		code = http.StatusTooManyRequests
	case errors.Is(err, chat.ErrConflict), errors.Is(err, chat.ErrEnded):
		code = http.StatusConflict
	case errors.Is(err, chat.ErrUnavailable):
		// The cause (a disk, a path) is the server's business, not the client's.
		code, msg = http.StatusServiceUnavailable, "the store is unavailable: try again later"
	case errors.Is(err, chat.ErrClosed), errors.Is(err, context.Canceled),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, chat.ErrLagged):
		code = http.StatusServiceUnavailable
	}
	if code == http.StatusInternalServerError {
		msg = "internal error"
	}
	return wireError{Code: code, Message: msg}
}

// writeHTTPError answers {"error":{"code","message"}} with the mapped status, and a
// Retry-After with a 503 (try again).
func writeHTTPError(w http.ResponseWriter, err error) {
	we := wireErr(err)
	if we.Code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter.Seconds())))
	}
	writeJSON(w, we.Code, map[string]wireError{"error": we})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	_ = httpx.WriteJSON(w, status, v)
}

// contain, deferred directly in a goroutine the Handler started (recover works only there),
// recovers a panic of that goroutine, logs it with its stack and runs cleanup, which closes
// what the goroutine belonged to. Everything else goes on serving.
func (h *Handler) contain(where string, cleanup func()) {
	v := recover()
	if v == nil {
		return
	}
	h.panics.Add(1)
	h.log.Error("bezlimit: panic recovered", "in", where, "panic", v, "stack", string(debug.Stack()))
	if cleanup == nil {
		return
	}
	defer func() {
		if v := recover(); v != nil {
			h.log.Error("bezlimit: panic while cleaning up after a panic", "in", where, "panic", v, "stack", string(debug.Stack()))
		}
	}()
	cleanup()
}
