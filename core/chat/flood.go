package chat

import "time"

// bucket is a token bucket: rate tokens per second, at most burst banked.
// It belongs to one connection and is only touched from that connection's
// OnMessage calls, which never overlap, so it needs no lock.
type bucket struct {
	rate   float64 // tokens per second; <= 0 means unlimited
	burst  float64
	tokens float64
	last   time.Time
	// noticed is when the flooder was last told; notices are sent at most
	// once per second so a flood does not turn into a flood of notices.
	noticed time.Time
}

func newBucket(rate float64, burst int) bucket {
	return bucket{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

// take spends one token at now and reports whether there was one.
func (b *bucket) take(now time.Time) bool {
	if b.rate <= 0 {
		return true
	}
	if !b.last.IsZero() {
		b.tokens += now.Sub(b.last).Seconds() * b.rate
		if b.tokens > b.burst {
			b.tokens = b.burst
		}
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	return false
}

// shouldNotify reports whether a refused message should be answered with
// a notice (at most once per second).
func (b *bucket) shouldNotify(now time.Time) bool {
	if !b.noticed.IsZero() && now.Sub(b.noticed) < time.Second {
		return false
	}
	b.noticed = now
	return true
}
