package postgres

import (
	"sync"

	"github.com/parley-chat/chat"
)

// Reads keep complete blocks of blockSize events in memory: a committed event never changes,
// so a block whose last position is committed is final. A block is keyed by its room, the
// room's incarnation (a number every room row gets when it is created, so that a room deleted
// and created again under the same ID never meets its old blocks) and its index. The events'
// strings are shared by every reader; bodies are copied for each caller, who owns what it
// gets.

const blockSize = 64

// DefaultCacheEvents is how many events reads keep when Options.CacheEvents is 0.
const DefaultCacheEvents = 16384

type blockKey struct {
	room     chat.ID
	inc, blk int64
}

type blockCache struct {
	mu  sync.RWMutex
	m   map[blockKey][]chat.Event
	max int // blocks
}

func newBlockCache(events int) *blockCache {
	if events < 0 {
		return nil
	}
	if events == 0 {
		events = DefaultCacheEvents
	}
	return &blockCache{m: make(map[blockKey][]chat.Event), max: max(1, events/blockSize)}
}

func (c *blockCache) get(k blockKey) []chat.Event {
	c.mu.RLock()
	v := c.m[k]
	c.mu.RUnlock()
	return v
}

func (c *blockCache) put(k blockKey, v []chat.Event) {
	c.mu.Lock()
	if len(c.m) >= c.max {
		for old := range c.m { // an arbitrary victim: O(1), no bookkeeping on hits
			delete(c.m, old)
			break
		}
	}
	c.m[k] = v
	c.mu.Unlock()
}

// appendOwned appends events from the cache, giving the caller its own bodies.
func appendOwned(dst []chat.Event, evs ...chat.Event) []chat.Event {
	n := len(dst)
	dst = append(dst, evs...)
	for i := n; i < len(dst); i++ {
		if len(dst[i].Body) > 0 {
			dst[i].Body = append([]byte(nil), dst[i].Body...)
		}
	}
	return dst
}

// events appends up to limit committed events of a room with positions in [lo, hi] (hi at
// most last, the room's last committed position as the reader sees it), from lo up or from
// hi down, through the cache.
func (c *blockCache) events(rd *reader, room chat.ID, inc int64, last, lo, hi uint64, limit int, backward bool, dst []chat.Event) ([]chat.Event, error) {
	hi = min(hi, last)
	if lo > hi || limit <= 0 {
		return dst, nil
	}
	limit = int(min(uint64(limit), hi-lo+1))
	from := lo
	if backward {
		from = hi
	}
	for limit > 0 {
		blk := (from - 1) / blockSize
		i := int((from - 1) % blockSize)
		first := blk*blockSize + 1
		key := blockKey{room, inc, int64(blk)}
		evs := c.get(key)
		if evs == nil && first+blockSize-1 <= last {
			var err error
			evs, err = rd.queryEvents(room, first, first+blockSize-1, blockSize, false, make([]chat.Event, 0, blockSize))
			if err != nil {
				return dst, err
			}
			if len(evs) != blockSize {
				return dst, notFound("events of block", blk) // cannot happen below a committed last position
			}
			c.put(key, evs)
		}
		if evs == nil {
			// The last, incomplete block: read the rest directly.
			if backward {
				return rd.queryEvents(room, lo, from, limit, true, dst)
			}
			return rd.queryEvents(room, from, hi, limit, false, dst)
		}
		if backward {
			n := min(limit, i+1)
			for j := i; j > i-n; j-- {
				dst = appendOwned(dst, evs[j])
			}
			limit -= n
			from -= uint64(n)
		} else {
			n := min(limit, blockSize-i)
			dst = appendOwned(dst, evs[i:i+n]...)
			limit -= n
			from += uint64(n)
		}
	}
	return dst, nil
}
