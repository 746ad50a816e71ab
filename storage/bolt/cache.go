package bolt

import (
	"encoding/binary"
	"sync"

	"github.com/parley-chat/chat"
	bbolt "go.etcd.io/bbolt"
)

// Reads keep decoded transcript blocks in memory: blockSize consecutive events of a room,
// only complete blocks (a committed event never changes, so a complete block is final), only
// from read-only transactions (which see committed data). A block is keyed by its room, the
// room's incarnation (a number given to the room's transcript bucket when it is created, so
// that a room deleted and created again under the same ID never meets its old blocks) and
// its index. The events' strings are shared by every reader, as the memory store does;
// bodies are copied for each caller, who owns what it gets.

const blockSize = 64

// DefaultCacheEvents is how many decoded events reads keep when Options.CacheEvents is 0.
const DefaultCacheEvents = 16384

type blockKey struct {
	room     chat.ID
	inc, blk uint64
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

// decodeBlock reads block blk of a transcript, or returns nil if it is not complete.
func decodeBlock(b *bbolt.Bucket, roomID chat.ID, blk uint64) ([]chat.Event, error) {
	first := blk*blockSize + 1
	var key [8]byte
	binary.BigEndian.PutUint64(key[:], first+blockSize-1)
	c := b.Cursor()
	if k, _ := c.Seek(key[:]); k == nil || binary.BigEndian.Uint64(k) != first+blockSize-1 {
		return nil, nil // the block's last event is not there yet
	}
	binary.BigEndian.PutUint64(key[:], first)
	evs := make([]chat.Event, blockSize)
	var chunk []byte
	i := 0
	for k, v := c.Seek(key[:]); k != nil && i < blockSize; k, v = c.Next() {
		if binary.BigEndian.Uint64(k) != first+uint64(i) {
			return nil, nil
		}
		if cap(chunk)-len(chunk) < len(v) {
			chunk = make([]byte, 0, max(len(v), 16<<10))
		}
		n := len(chunk)
		chunk = append(chunk, v...)
		if err := decodeEvent(&evs[i], roomID, first+uint64(i), chunk[n:len(chunk):len(chunk)], true); err != nil {
			return nil, err
		}
		i++
	}
	if i < blockSize {
		return nil, nil
	}
	return evs, nil
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

// cachedEvents is Events through the block cache.
func (t *readTx) cachedEvents(b *bbolt.Bucket, roomID chat.ID, from uint64, limit int, backward bool, dst []chat.Event) ([]chat.Event, error) {
	inc := b.Sequence()
	// The cache may hold blocks past this transaction's last event (committed since it
	// began): clip the range to what this transaction sees.
	k, _ := b.Cursor().Last()
	if k == nil {
		return dst, nil
	}
	last := binary.BigEndian.Uint64(k)
	if backward {
		from = min(from, last)
	} else {
		if from > last {
			return dst, nil
		}
		limit = int(min(uint64(limit), last-from+1))
	}
	for limit > 0 && from > 0 {
		blk := (from - 1) / blockSize
		i := int((from - 1) % blockSize)
		key := blockKey{roomID, inc, blk}
		evs := t.cache.get(key)
		if evs == nil {
			var err error
			if evs, err = decodeBlock(b, roomID, blk); err != nil {
				return dst, err
			}
			if evs == nil {
				// The last, incomplete block: read it directly.
				n := limit
				if backward {
					n = min(limit, i+1)
				}
				before := len(dst)
				dst, err = t.decodeEvents(b, roomID, from, n, backward, dst)
				if err != nil || !backward || len(dst)-before < n {
					return dst, err
				}
				limit -= n
				from -= uint64(n)
				continue
			}
			t.cache.put(key, evs)
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
