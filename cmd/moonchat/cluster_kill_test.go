package main

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestClusterNodeKill (issue 15): a node killed with SIGKILL while members
// on both nodes post loses nothing that any member saw: every message any
// client received is in the surviving node's history with the id, sender
// and text the client was given, the survivor's ids are 1..N without a
// hole, and the killed node, started again, catches up to exactly the
// survivor's history (its store was killed mid-apply: no record lost, none
// applied twice).
func TestClusterNodeKill(t *testing.T) {
	natsURL := startTestNATS(t)
	cfgA := clusterNodeConfig(t, natsURL, "node-a")
	cfgB := clusterNodeConfig(t, natsURL, "node-b")
	a := startChild(t, cfgA)
	b := startChild(t, cfgB)

	type sender struct {
		c   *client
		col *collector
	}
	var senders []sender
	for i, addr := range []string{a.addr, a.addr, b.addr, b.addr} {
		c := dial(t, addr, "lobby", fmt.Sprintf("s%d", i), nil)
		c.waitFor("history", func(e event) bool { return e.Type == "history" })
		senders = append(senders, sender{c, collect(c)})
	}

	// Each sender posts steadily until stop (or maxSends): a writer that
	// meets a dead connection (node b killed) just ends.
	const maxSends = 2000
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range maxSends {
				select {
				case <-stop:
					return
				default:
				}
				msg := fmt.Sprintf(`{"type":"message","text":"s%d n%d"}`, i, n)
				_ = s.c.conn.SetWriteDeadline(time.Now().Add(waitLong))
				if s.c.conn.WriteMessage(websocket.TextMessage, []byte(msg)) != nil {
					return
				}
				if n%10 == 9 {
					time.Sleep(5 * time.Millisecond) // steady, not a flood
				}
			}
		}()
	}
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopLoad)

	// Kill node b once its members have seen a good part of the load,
	// then let node a's members go on a while.
	senders[2].col.waitN(t, 300)
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	b.wait(t)
	seen := len(senders[0].col.waitN(t, 1))
	senders[0].col.waitN(t, seen+200)
	stopLoad()

	// Node a's history is settled once a last message comes back to its
	// sender after everything else.
	senders[0].c.send("last")
	senders[0].col.waitText(t, "last")
	histA := historyJSON(t, cfgA, a.addr, "lobby")
	byID := map[uint64]event{}
	for i, m := range histA {
		if m.ID != uint64(i+1) {
			t.Fatalf("node a's history: message %d has id %d (hole or duplicate)", i, m.ID)
		}
		byID[m.ID] = m
	}
	checked := 0
	for i, s := range senders {
		s.col.mu.Lock()
		got := s.col.msgs
		s.col.mu.Unlock()
		for _, m := range got {
			h, ok := byID[m.ID]
			if !ok || h.User != m.User || h.Text != m.Text {
				t.Fatalf("sender %d received %d %s: %q; node a's history has %+v (found %v)", i, m.ID, m.User, m.Text, h, ok)
			}
			checked++
		}
	}
	t.Logf("%d messages in node a's history; %d received messages checked against it", len(histA), checked)

	// Node b again: it catches up to exactly node a's history.
	b = startChild(t, cfgB)
	histB := historyJSON(t, cfgB, b.addr, "lobby")
	if len(histB) != len(histA) {
		t.Fatalf("node b after the kill: %d messages, node a %d", len(histB), len(histA))
	}
	for i := range histA {
		if histA[i].ID != histB[i].ID || histA[i].User != histB[i].User || histA[i].Text != histB[i].Text {
			t.Fatalf("message %d: node a %+v, node b %+v", i, histA[i], histB[i])
		}
	}
}
