package fakeclock_test

import (
	"fmt"
	"time"

	"github.com/parley-chat/chat/internal/fakeclock"
)

func Example() {
	c := fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c.AfterFunc(time.Minute, func() { fmt.Println("fired at", c.Now().Format(time.TimeOnly)) })
	c.Advance(30 * time.Second)
	fmt.Println("nothing yet at", c.Now().Format(time.TimeOnly))
	c.Advance(30 * time.Second)
	// Output:
	// nothing yet at 00:00:30
	// fired at 00:01:00
}
