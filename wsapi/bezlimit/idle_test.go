package bezlimit

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"
)

// expiringAuth is testAuth whose tokens "<role>:<id>@<ms>" expire <ms> milliseconds after now
// (negative: already expired); it records the expiry it gave.
func expiringAuth(expiries chan<- time.Time) func(context.Context, string) (Identity, error) {
	return func(ctx context.Context, token string) (Identity, error) {
		tok, ms, ok := strings.Cut(token, "@")
		id, err := testAuth(ctx, tok)
		if err != nil || !ok {
			return id, err
		}
		d, err := time.ParseDuration(ms + "ms")
		if err != nil {
			return Identity{}, err
		}
		id.Expires = time.Now().Add(d)
		expiries <- id.Expires
		return id, nil
	}
}

// A socket whose token expires is closed with 4401 "token expired" when it does, not
// before; a token expired already is refused at the upgrade; other sockets go on.
func TestTokenExpiry(t *testing.T) {
	expiries := make(chan time.Time, 10)
	v := newEnv(t, envOpt{cfg: func(c *Config) { c.Authenticate = expiringAuth(expiries) }})
	room := v.newChat(1, 2)
	if _, err := v.dial("/chat", "client:1@-1", url.Values{"chat": {room.UUID()}}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("expired token: %v, want 401", err)
	}
	<-expiries
	const life = 600 * time.Millisecond
	vis := v.chatConn("client:1@600", room)
	visExp := <-expiries
	bc := v.mustDial("/broadcast", "operator:2@600", nil)
	bcExp := <-expiries
	op := v.chatConn("operator:2", room) // no expiry
	// Before the expiry, the socket works.
	vis.send(evSendMessage, map[string]any{"text": "in time"})
	op.untilText("in time")
	for name, c := range map[string]struct {
		c   *client
		exp time.Time
	}{"chat": {vis, visExp}, "broadcast": {bc, bcExp}} {
		code, reason := c.c.closeStatus()
		at := time.Now()
		if code != closeTokenExpired || reason != "token expired" {
			t.Errorf("%s: closed with %v %q, want 4401 token expired", name, code, reason)
		}
		if at.Before(c.exp) {
			t.Errorf("%s: closed %v before the expiry", name, c.exp.Sub(at))
		}
		if late := at.Sub(c.exp); late > life {
			t.Errorf("%s: closed %v after the expiry", name, late)
		}
	}
	v.api("POST", "/message", map[string]any{"text": "after", "chat": map[string]string{"uuid": room.UUID()}})
	op.untilText("after")
}

// A client that stops answering pings is dropped within PingInterval + PingTimeout (and a
// tick); a healthy idle one stays, ping after ping.
func TestIdlePings(t *testing.T) {
	const every, timeout = 100 * time.Millisecond, 100 * time.Millisecond
	v := newEnv(t, envOpt{cfg: func(c *Config) { c.PingInterval, c.PingTimeout = every, timeout }})
	room := v.newChat(1, 2)
	healthy := v.chatConn("operator:2", room) // its reader answers pings
	healthyBc := v.mustDial("/broadcast", "operator:2", nil)
	addr := strings.TrimPrefix(v.srv.URL, "http://")
	for _, path := range []string{"/chat?chat=" + room.UUID() + "&token=client:1", "/broadcast?token=operator:3"} {
		// A raw client that reads (so that nothing else holds the connection up) but never
		// answers a ping.
		start := time.Now()
		mute, err := rawDial(addr, path)
		if err != nil {
			t.Fatal(err)
		}
		mute.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			if _, err := mute.Read(nil); err != nil { // skips the pings
				break
			}
		}
		mute.nc.Close()
		took := time.Since(start)
		if limit := every + timeout + every; took > limit+300*time.Millisecond {
			t.Errorf("%s: the mute client was dropped after %v (limit about %v)", path, took, limit)
		}
		if took < every+timeout {
			t.Errorf("%s: the mute client was dropped after %v, before its ping timed out", path, took)
		}
	}
	// The healthy ones stayed through a dozen pings and still work.
	time.Sleep(12 * every)
	v.api("POST", "/message", map[string]any{"text": "still there", "chat": map[string]string{"uuid": room.UUID()}})
	healthy.untilText("still there")
	healthyBc.untilText("still there")
}
