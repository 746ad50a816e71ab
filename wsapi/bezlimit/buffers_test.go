package bezlimit

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A client that sends its first frame together with the upgrade request (before the server
// answers) still has it read: the bytes net/http buffered reach the connection.
func TestFrameRightAfterUpgrade(t *testing.T) {
	v := newEnv(t, envOpt{})
	room := v.newChat(1, 2)
	op := v.chatConn("operator:2", room)

	nc, err := net.Dial("tcp", strings.TrimPrefix(v.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	req := "GET /chat?chat=" + room.UUID() + "&token=client:1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	payload, _ := json.Marshal(map[string]any{"type": evSendMessage, "data": map[string]string{"text": "eager"}})
	frame := []byte{0x81, 0x80 | byte(len(payload)), 1, 2, 3, 4} // FIN+text, masked, short length
	for i, b := range payload {
		frame = append(frame, b^[]byte{1, 2, 3, 4}[i%4])
	}
	if _, err := nc.Write(append([]byte(req), frame...)); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	op.untilText("eager")
}
