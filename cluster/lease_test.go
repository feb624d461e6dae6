package cluster

import (
	"context"
	"testing"
	"time"
)

// TestLease: of two nodes one holds the lease, never both; when the
// holder stops (Run ended: it gives the lease up) the other takes it; when
// the holder vanishes without a word (its connection gone) the other
// takes it over once it has not been renewed for the TTL.
func TestLease(t *testing.T) {
	ns := startNATS(t, nil)
	ctx := context.Background()
	const ttl = 400 * time.Millisecond
	la, lb := openNode(t, ns.url(), "a"), openNode(t, ns.url(), "b")
	a, err := la.OpenLease(ctx, "timers", ttl)
	if err != nil {
		t.Fatal(err)
	}
	b, err := lb.OpenLease(ctx, "timers", ttl)
	if err != nil {
		t.Fatal(err)
	}
	stopA := run(t, a.Run)
	stopB := run(t, b.Run)
	waitFor(t, "a holder", func() bool { return a.Held() || b.Held() })
	// Watch for a while (a few TTLs): never both.
	for end := time.Now().Add(3 * ttl); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if a.Held() && b.Held() {
			t.Fatal("both nodes hold the lease")
		}
	}
	holder, other, stopHolder, lOther := a, b, stopA, lb
	if b.Held() {
		holder, other, stopHolder, lOther = b, a, stopB, la
	}
	stopHolder()
	if holder.Held() {
		t.Fatal("held after Run ended")
	}
	waitFor(t, "the other node to take the lease given up", other.Held)

	// Now the other holds it; it vanishes without giving it up.
	c, err := openNode(t, ns.url(), "c").OpenLease(ctx, "timers", ttl)
	if err != nil {
		t.Fatal(err)
	}
	run(t, c.Run)
	lOther.Close()
	waitFor(t, "the lease taken over", c.Held)
	// It stopped counting itself the holder TTL/2 after its last
	// renewal, before anyone could take over.
	if other.Held() {
		t.Fatal("the vanished holder still counts itself holder after the take-over")
	}
}
