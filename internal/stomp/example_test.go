package stomp_test

import (
	"fmt"

	"github.com/parley-chat/chat/internal/stomp"
)

// One WebSocket message may hold heart-beats and several frames.
func Example() {
	msg := []byte("\nSUBSCRIBE\nid:sub-0\ndestination:/user/queue/message\n\n\x00\r\nDISCONNECT\nreceipt:77\n\n\x00")
	frames, err := stomp.Decode(nil, msg, stomp.Limits{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range frames {
		fmt.Printf("%s destination=%q receipt=%q\n", f.Command, f.Value("destination"), f.Value("receipt"))
	}
	out, _ := stomp.AppendFrame(nil, &stomp.Frame{
		Command: stomp.CmdReceipt,
		Headers: []stomp.Header{{Key: "receipt-id", Value: "77"}},
	})
	fmt.Printf("%q\n", out)
	// Output:
	// SUBSCRIBE destination="/user/queue/message" receipt=""
	// DISCONNECT destination="" receipt="77"
	// "RECEIPT\nreceipt-id:77\n\n\x00"
}
