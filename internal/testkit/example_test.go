package testkit_test

import (
	"fmt"

	"github.com/parley-chat/chat/internal/testkit"
)

// Every engine and surface test runs on each of these Stores, through ForEachStore.
func Example() {
	for _, s := range testkit.Stores {
		fmt.Println(s.Name)
	}
	// Output:
	// memory
	// bolt
}
