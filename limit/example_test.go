package limit_test

import (
	"fmt"
	"net"
	"net/http"

	"github.com/parley-chat/chat/limit"
)

// A server caps connections per client on its listener and shares one Limiter between its
// surfaces (each surface's Config takes it).
func Example() {
	l := limit.New(limit.Rates{Create: limit.Rate{PerSecond: 1, Burst: 2}})
	for i := 0; i < 3; i++ {
		fmt.Println(l.Allow("192.0.2.1", limit.Create))
	}

	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	ln := limit.Listener(inner, limit.Conns{PerClient: 64, Total: 4096})
	srv := &http.Server{Handler: http.NotFoundHandler()}
	go srv.Serve(ln)
	srv.Close()
	// Output:
	// true
	// true
	// false
}
