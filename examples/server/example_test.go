package main

import (
	"fmt"
)

// The server's settings come from flags, then the environment, then defaults.
func Example() {
	env := map[string]string{"PARLEY_ADDR": "127.0.0.1:9000"}
	cfg, err := parseFlags([]string{"-mem"}, func(k string) string { return env[k] })
	if err != nil {
		panic(err)
	}
	fmt.Println(cfg.addr, cfg.mem, cfg.dbPath())
	// Output: 127.0.0.1:9000 true parley-data/parley.db
}
