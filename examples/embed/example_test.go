package main

import (
	"context"

	"github.com/parley-chat/chat/storage/memory"
)

// The program's whole run: two users talk, a follower sees it all, a backwards read gets the
// last two events.
func Example() {
	if err := run(context.Background(), memory.New()); err != nil {
		panic(err)
	}
	// Output:
	// followed 1 joined Ada
	// followed 2 joined Bob
	// followed 3 message Ada Hello, Bob.
	// followed 4 message Bob Hi, Ada!
	// followed 5 read Ada
	// read 5 read
	// read 4 message
}
