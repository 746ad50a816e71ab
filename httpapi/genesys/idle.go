package genesys

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/parley-chat/chat"
)

// sweeper checks every chat for idleness each Idle.Interval until Close.
func (h *Handler) sweeper() {
	defer h.done.Done()
	t := time.NewTicker(h.cfg.Idle.Interval)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.done.Add(1)
	go func() { defer h.done.Done(); <-h.stop; cancel() }()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			h.sweep(ctx)
		}
	}
}

// sweep runs one CheckIdle. A panic in it is logged with its stack and ends only this sweep:
// the goroutine is not a request's, so nothing else would catch it, and it would end the
// process.
func (h *Handler) sweep(ctx context.Context) {
	defer func() {
		if v := recover(); v != nil {
			h.log.Error("genesys: idle sweep panicked", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	if f := h.sweepHook.Load(); f != nil {
		(*f)()
	}
	if err := h.CheckIdle(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, chat.ErrClosed) {
		h.log.Warn("genesys: idle sweep", "err", err)
	}
}

// CheckIdle applies idle control to every open chat of this Handler's services: a warning
// Notice after Idle.Warn without events, then a closing Notice and the end of the chat after
// Idle.Close more. The sweeper calls it; a program that runs no sweeper (Idle.Interval < 0)
// may call it itself. It does nothing when idle control is off. A chat it cannot check does
// not stop it: it checks the others and returns the first such error, with how many chats
// failed.
func (h *Handler) CheckIdle(ctx context.Context) error {
	if !h.cfg.Idle.enabled() {
		return nil
	}
	const page = 256
	var first error
	failed := 0
	for off := 0; ; off += page {
		rooms, err := h.e.Rooms(ctx, chat.ListFilter{Offset: off, Limit: page})
		if err != nil {
			return err
		}
		for _, r := range rooms {
			if r.Ended() || !h.services[r.Attributes[attrService]] {
				continue
			}
			err := h.checkIdle(ctx, r.ID)
			switch {
			case err == nil, errors.Is(err, chat.ErrNotFound), errors.Is(err, chat.ErrEnded):
			case ctx.Err() != nil, errors.Is(err, chat.ErrClosed):
				return err
			default:
				if failed++; first == nil {
					first = fmt.Errorf("genesys: idle control of chat %s: %w", r.ID, err)
				}
			}
		}
		if len(rooms) < page {
			if failed > 1 {
				return fmt.Errorf("%w (and %d more chats)", first, failed-1)
			}
			return first
		}
	}
}

// idleWarnValue is the attribute value of the last warning's position: 20 digits, the width
// of any uint64, so that writing it never changes the room's size (see requestChat).
func idleWarnValue(pos uint64) string { return fmt.Sprintf("%020d", pos) }

// checkIdle applies idle control to one chat.
func (h *Handler) checkIdle(ctx context.Context, id chat.ID) error {
	h.idleMu.Lock()
	defer h.idleMu.Unlock()
	r, err := h.e.Room(ctx, id)
	if err != nil {
		return err
	}
	if r.Ended() || !h.services[r.Attributes[attrService]] || r.LastPos == 0 {
		return nil
	}
	idle := h.cfg.Now().Sub(r.LastTime)
	warned, _ := strconv.ParseUint(r.Attributes[attrIdleWarn], 10, 64)
	switch {
	case warned != 0 && warned == r.LastPos: // nothing happened since the warning
		if idle < h.cfg.Idle.Close {
			return nil
		}
		if _, err := h.e.Notice(ctx, id, h.cfg.Idle.CloseText); err != nil {
			return err
		}
		_, err = h.e.EndRoom(ctx, id)
		return err
	case idle >= h.cfg.Idle.Warn:
		ev, err := h.e.Notice(ctx, id, h.cfg.Idle.WarnText)
		if err != nil {
			return err
		}
		_, err = h.e.UpdateRoom(ctx, id, chat.RoomUpdate{Attributes: map[string]string{attrIdleWarn: idleWarnValue(ev.Pos)}})
		return err
	}
	return nil
}
