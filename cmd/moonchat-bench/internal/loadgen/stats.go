package loadgen

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram records durations with bounded relative error (log-linear
// buckets: 64 per power of two, so a reported percentile is within about
// 1% of the true value) in constant memory. Record is safe for concurrent
// use (atomic adds); reads are meant for after the writers stopped or for
// progress lines, where a slightly torn view is acceptable.
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64
	max    atomic.Uint64
}

const (
	histSubBits = 6                // 64 sub-buckets per power of two
	histSub     = 1 << histSubBits // 64
	histLinear  = 2 * histSub      // values below 128 ns get a bucket each
	histBuckets = histLinear + (64-histSubBits-1)*histSub
)

// bucketOf maps a value to its bucket index.
func bucketOf(v uint64) int {
	if v < histLinear {
		return int(v)
	}
	e := bits.Len64(v)           // 8..64
	shift := e - histSubBits - 1 // keeps the top 7 bits
	top := v >> uint(shift)      // in [64, 127]
	return histLinear + (e-histSubBits-2)*histSub + int(top-histSub)
}

// bucketMid returns the middle of bucket i's range.
func bucketMid(i int) uint64 {
	if i < histLinear {
		return uint64(i)
	}
	j := i - histLinear
	e := j/histSub + histSubBits + 2
	top := uint64(j%histSub + histSub)
	shift := uint(e - histSubBits - 1)
	return top<<shift + (1<<shift)/2
}

// Record adds one duration; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[bucketOf(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n.Load() }

// Max returns the largest recorded value (exact).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Mean returns the average recorded value.
func (h *Histogram) Mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Percentile returns the value below which a fraction q (0..1) of the
// recorded values lie: the middle of the bucket holding the rank
// ceil(q*n), never more than Max. It is 0 when nothing was recorded.
func (h *Histogram) Percentile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.999999)
	rank = min(max(rank, 1), n)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return time.Duration(min(bucketMid(i), h.max.Load()))
		}
	}
	return h.Max()
}

// Merge adds o's values to h.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c > 0 {
			h.counts[i].Add(c)
		}
	}
	h.n.Add(o.n.Load())
	h.sum.Add(o.sum.Load())
	if m := o.max.Load(); m > h.max.Load() {
		h.max.Store(m)
	}
}

// seqState follows the sequence numbers one receiver got from each
// sender: a number lower than one already seen is a reordered delivery;
// duplicates are counted apart when they repeat the last number.
type seqState struct {
	next []uint64 // per sender: the highest sequence seen + 1
}

func newSeqState(senders int) seqState { return seqState{next: make([]uint64, senders)} }

// observe records seq from sender and reports whether it arrived out of
// order (after a higher number from the same sender).
func (s *seqState) observe(sender int, seq uint64) (reordered bool) {
	if seq < s.next[sender] {
		return true
	}
	s.next[sender] = seq + 1
	return false
}

// Lost computes deliveries that never arrived: every receiver should have
// got every message sent, so lost = sent × receivers − delivered (never
// negative: duplicates cannot hide a loss of another receiver's copy, but
// they are rare enough to ignore for a load tool).
func Lost(sent uint64, receivers int, delivered uint64) uint64 {
	want := sent * uint64(receivers)
	if delivered >= want {
		return 0
	}
	return want - delivered
}
