package genesys

// SetSweepHook makes h's idle sweeper call f at the start of every sweep, for tests that
// inject a panic into it.
func SetSweepHook(h *Handler, f func()) { h.sweepHook.Store(&f) }
