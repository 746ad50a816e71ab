//go:build race

package airy

// raceEnabled: the race detector doubles goroutine stacks, so memory ceilings do not apply.
const raceEnabled = true
