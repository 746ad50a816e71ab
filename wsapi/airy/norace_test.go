//go:build !race

package airy

const raceEnabled = false
