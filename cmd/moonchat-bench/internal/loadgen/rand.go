package loadgen

import "math/rand/v2"

// fastRand returns a pseudo-random uint32 from the runtime's per-thread
// generator (no lock, no allocation).
func fastRand() uint32 { return rand.Uint32() }
