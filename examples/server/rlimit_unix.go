//go:build unix

package main

import "syscall"

// openFileLimit returns the process's limit on open files (RLIMIT_NOFILE), which its
// connections count against. The Go runtime has already raised the soft limit to the hard one.
func openFileLimit() (n uint64, known bool) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, false
	}
	return uint64(rl.Cur), true
}
