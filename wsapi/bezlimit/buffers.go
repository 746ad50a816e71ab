package bezlimit

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// smallBuffers hands websocket.Accept a hijacked connection with connBufferSize buffers
// instead of net/http's 4 KiB reader and 4 KiB writer, which the connection would keep for
// its whole life: most of an idle connection's memory. Larger frames bypass the buffers.
type smallBuffers struct{ http.ResponseWriter }

// Unwrap gives http.ResponseController the underlying ResponseWriter.
func (s smallBuffers) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Hijack takes over the connection, keeping whatever the client sent after its upgrade
// request and flushing whatever the server had not sent yet.
func (s smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	var src io.Reader = conn
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		src = io.MultiReader(bytes.NewReader(bytes.Clone(b)), conn)
	}
	return conn, bufio.NewReadWriter(bufio.NewReaderSize(src, connBufferSize), bufio.NewWriterSize(conn, connBufferSize)), nil
}
