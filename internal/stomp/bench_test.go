package stomp

import "testing"

func BenchmarkDecode(b *testing.B) {
	data := []byte("SUBSCRIBE\nid:sub-0\ndestination:/user/queue/message\nx-parley-after:42\nreceipt:r1\n\n\x00")
	frames := make([]Frame, 0, 1)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		var err error
		if frames, err = Decode(frames[:0], data, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendFrame(b *testing.B) {
	f := &Frame{Command: CmdMessage, Headers: []Header{
		{"destination", "/user/queue/message"}, {"subscription", "sub-0"},
		{"message-id", "01a20200-5441-e21d-b496-ab1f82a3145d"}, {"x-parley-position", "42"},
		{"content-type", "application/json"},
	}, Body: []byte(`{"conversation_id":"01a20200-542e-ac72-f6aa-b060d42e3cf8","channel_id":"web","message":{"id":"01a20200-5441-e21d-b496-ab1f82a3145d","content":{"text":"hello"}}}`)}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendFrame(buf[:0], f); err != nil {
			b.Fatal(err)
		}
	}
}
