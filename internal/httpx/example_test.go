package httpx_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/parley-chat/chat/internal/httpx"
)

// A surface reads a JSON body and maps the refusals to its own error format.
func Example() {
	handler := func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Text string `json:"text"`
		}
		b, err := httpx.ReadBody(w, r, 1<<10, httpx.JSON, false)
		if err == nil {
			err = httpx.DecodeJSON(b, &in)
		}
		switch {
		case errors.Is(err, httpx.ErrMediaType):
			httpx.WriteJSON(w, http.StatusUnsupportedMediaType, map[string]string{"message": err.Error()})
		case err != nil:
			httpx.WriteJSON(w, http.StatusBadRequest, map[string]string{"message": err.Error()})
		default:
			httpx.WriteJSON(w, http.StatusOK, map[string]string{"echo": in.Text})
		}
	}
	for _, body := range []string{`{"text":"hi"}`, "{\"text\":\"\xff\"}"} {
		r := httptest.NewRequest("POST", "/", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		handler(w, r)
		fmt.Print(w.Code, " ", w.Body.String())
	}
	// Output:
	// 200 {"echo":"hi"}
	// 400 {"message":"body: not valid UTF-8"}
}
