package addrlimit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Sampler rate-limits log lines about refused clients, so that an attacker
// who is refused a million times does not write a million lines: a burst
// of lines, then a few per second, each allowed line saying how many were
// left out since the last one. Counting every refusal is the metrics' job.
// Safe for concurrent use.
type Sampler struct {
	lim *rate.Limiter

	mu         sync.Mutex
	suppressed uint64
}

// NewSampler lets perSecond lines through on average, burst at once.
func NewSampler(perSecond float64, burst int) *Sampler {
	return &Sampler{lim: rate.NewLimiter(rate.Limit(perSecond), burst)}
}

// Allow reports whether a line may be logged at now; when it may, it also
// returns how many lines were suppressed since the last one allowed (to be
// logged with it), and the count starts again.
func (s *Sampler) Allow(now time.Time) (ok bool, suppressed uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.lim.AllowN(now, 1) {
		s.suppressed++
		return false, 0
	}
	n := s.suppressed
	s.suppressed = 0
	return true, n
}
