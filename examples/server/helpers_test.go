package main

import (
	"encoding/base64"

	"github.com/parley-chat/chat"
)

func decodeSegment(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// ulidOfUUID converts an ID in UUID form to its ULID form, or "" if it is not one.
func ulidOfUUID(u string) string {
	id, err := chat.ParseID(u)
	if err != nil {
		return ""
	}
	return id.String()
}
