package epoll

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestWakeDrain checks the contract both event loops rely on: nothing is
// reported before a Wake, a Wake is reported as an event on EvFD until
// Drain, and Close releases both descriptors.
func TestWakeDrain(t *testing.T) {
	in, err := New()
	if err != nil {
		t.Fatal(err)
	}
	events := make([]unix.EpollEvent, 4)
	wait := func() int {
		n, err := unix.EpollWait(in.EpFD, events, 0)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := wait(); n != 0 {
		t.Fatalf("%d events before Wake", n)
	}
	in.Wake()
	in.Wake()
	for range 2 { // level-triggered: reported until drained
		if n := wait(); n != 1 || events[0].Fd != int32(in.EvFD) {
			t.Fatalf("after Wake: %d events (%+v), want one on the eventfd", n, events[:n])
		}
	}
	in.Drain()
	if n := wait(); n != 0 {
		t.Fatalf("%d events after Drain", n)
	}
	in.Close(false)
	if _, err := unix.EpollWait(in.EpFD, events, 0); err == nil {
		t.Fatal("epoll fd still open after Close")
	}
}
