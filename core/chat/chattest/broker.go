package chattest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/moonchat/moonchat/core/chat"
)

// ErrUnavailable is what a disconnected Node's Publish and Redact return
// (as package cluster returns cluster.ErrUnavailable): nothing was
// published.
var ErrUnavailable = errors.New("chattest: broker disconnected")

// Broker is an in-memory cluster log shared by several chat.Servers (the
// nodes), standing in for package cluster in core/chat's tests: one list
// of records in one order, ids per key contiguous from 1, assigned by
// Publish. Each node has a Node: its chat.Broker (Config.Broker) and a
// consumer goroutine that, for every record in the log's order, applies
// it to the node's replica (a History) and then calls Deliver or
// Redacted on the node's server, as cmd/moonchat's consumer does.
type Broker struct {
	mu      sync.Mutex
	records []record
	last    map[string]uint64
	nodes   []*Node
}

// record is one entry of the log: a batch of key's messages, or the
// redaction of one of them.
type record struct {
	key    string
	msgs   []chat.Message
	redact uint64
}

// NewBroker returns an empty log.
func NewBroker() *Broker {
	return &Broker{last: map[string]uint64{}}
}

// Records returns how many records the log holds.
func (b *Broker) Records() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.records)
}

// Messages returns the messages of key in the log, in its order (the
// redacted ones included: records are never rewritten).
func (b *Broker) Messages(key string) []chat.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []chat.Message
	for _, r := range b.records {
		if r.key == key {
			out = append(out, r.msgs...)
		}
	}
	return out
}

// wakeAll tells every node's consumer that the log grew.
func (b *Broker) wakeAll() {
	b.mu.Lock()
	nodes := append([]*Node(nil), b.nodes...)
	b.mu.Unlock()
	for _, n := range nodes {
		n.wakeUp()
	}
}

// Node is one node's connection to a Broker: it implements chat.Broker
// (publishing into the shared log) and consumes the log into its replica
// and its server. It starts connected. Its consumer runs from Consume
// until Close.
type Node struct {
	b *Broker
	// Hist is the node's replica, which the consumer applies records to
	// (give it to chat.New as the History).
	Hist *History

	mu        sync.Mutex
	connected bool
	paused    bool
	hold      *deliveryHold
	failErr   error
	applied   int // records applied and delivered; consumer only, read under mu

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

// deliveryHold stops the consumer between applying a record and
// delivering it (HoldDelivery).
type deliveryHold struct {
	reached, release chan struct{}
}

var _ chat.Broker = (*Node)(nil)

// Node returns a new node of b with hist as its replica (nil: a new
// History).
func (b *Broker) Node(hist *History) *Node {
	if hist == nil {
		hist = NewHistory()
	}
	n := &Node{b: b, Hist: hist, connected: true, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	b.mu.Lock()
	b.nodes = append(b.nodes, n)
	b.mu.Unlock()
	return n
}

// Publish implements chat.Broker: msgs get key's next ids and are
// appended to the log as one record; every node's consumer is woken. A
// disconnected node refuses with ErrUnavailable, and FailPublish's error
// refuses the same way; nothing is published then (ids stay 0).
func (n *Node) Publish(_ context.Context, key string, msgs []*chat.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	n.mu.Lock()
	connected, fail := n.connected, n.failErr
	n.mu.Unlock()
	if !connected {
		return fmt.Errorf("publish to %q: %w", key, ErrUnavailable)
	}
	if fail != nil {
		return fmt.Errorf("publish to %q: %w", key, fail)
	}
	rec := record{key: key, msgs: make([]chat.Message, len(msgs))}
	n.b.mu.Lock()
	for i, m := range msgs {
		n.b.last[key]++
		m.ID = n.b.last[key]
		rec.msgs[i] = *m
		rec.msgs[i].Room = key
		rec.msgs[i].To = "" // not carried, as package cluster does
	}
	n.b.records = append(n.b.records, rec)
	n.b.mu.Unlock()
	n.b.wakeAll()
	return nil
}

// Redact implements chat.Broker: a redaction record of key's message id
// (which key must have had).
func (n *Node) Redact(_ context.Context, key string, id uint64) error {
	n.mu.Lock()
	connected := n.connected
	n.mu.Unlock()
	if !connected {
		return fmt.Errorf("redact %q/%d: %w", key, id, ErrUnavailable)
	}
	n.b.mu.Lock()
	if id == 0 || id > n.b.last[key] {
		n.b.mu.Unlock()
		return fmt.Errorf("redact %q/%d: no such message", key, id)
	}
	n.b.records = append(n.b.records, record{key: key, redact: id})
	n.b.mu.Unlock()
	n.b.wakeAll()
	return nil
}

// Connected implements chat.Broker.
func (n *Node) Connected() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.connected
}

// SetConnected cuts the node off the log (false: Publish and Redact
// refuse, the consumer stops reading) or connects it again (true: the
// consumer catches up from where it stopped, as package cluster's does).
func (n *Node) SetConnected(up bool) {
	n.mu.Lock()
	n.connected = up
	n.mu.Unlock()
	n.wakeUp()
}

// FailPublish makes Publish fail with err while the node stays connected
// (a log that refuses, a timeout); nil ends it.
func (n *Node) FailPublish(err error) {
	n.mu.Lock()
	n.failErr = err
	n.mu.Unlock()
}

// Pause stops the consumer before it applies the next record (the log
// goes on growing: the node lags); Resume lets it catch up.
func (n *Node) Pause() {
	n.mu.Lock()
	n.paused = true
	n.mu.Unlock()
}

// Resume ends Pause.
func (n *Node) Resume() {
	n.mu.Lock()
	n.paused = false
	n.mu.Unlock()
	n.wakeUp()
}

// HoldDelivery makes the consumer apply the next record to the replica
// and then wait before delivering it to the server: reached is closed
// when it waits, release lets it go on. This is the moment a join must
// not get the record twice (replay and live) nor miss it.
func (n *Node) HoldDelivery() (reached <-chan struct{}, release func()) {
	h := &deliveryHold{reached: make(chan struct{}), release: make(chan struct{})}
	n.mu.Lock()
	n.hold = h
	n.mu.Unlock()
	var once sync.Once
	return h.reached, func() { once.Do(func() { close(h.release) }) }
}

// Applied returns how many records the node applied and delivered.
func (n *Node) Applied() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.applied
}

func (n *Node) wakeUp() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Consume starts the node's consumer, delivering to srv, until Close.
func (n *Node) Consume(srv *chat.Server) {
	go n.consume(srv)
}

// Close stops the consumer (started by Consume) and waits for it.
func (n *Node) Close() {
	close(n.stop)
	<-n.done
}

// next returns the record the consumer is to apply, if it may.
func (n *Node) next() (record, bool) {
	n.mu.Lock()
	ok, i := n.connected && !n.paused, n.applied
	n.mu.Unlock()
	if !ok {
		return record{}, false
	}
	n.b.mu.Lock()
	defer n.b.mu.Unlock()
	if i >= len(n.b.records) {
		return record{}, false
	}
	return n.b.records[i], true
}

// consume is the consumer goroutine: replica first, then the server.
func (n *Node) consume(srv *chat.Server) {
	defer close(n.done)
	for {
		rec, ok := n.next()
		if !ok {
			select {
			case <-n.stop:
				return
			case <-n.wake:
			}
			continue
		}
		if rec.redact != 0 {
			_, _ = n.Hist.Redact(rec.key, rec.redact)
		} else {
			n.Hist.Apply(rec.msgs)
		}
		n.mu.Lock()
		h := n.hold
		n.hold = nil
		n.mu.Unlock()
		if h != nil {
			close(h.reached)
			select {
			case <-h.release:
			case <-n.stop:
				return
			}
		}
		if rec.redact != 0 {
			srv.Redacted(rec.key, rec.redact)
		} else {
			srv.Deliver(rec.key, append([]chat.Message(nil), rec.msgs...))
		}
		n.mu.Lock()
		n.applied++
		n.mu.Unlock()
	}
}

// StartNode runs a chat.Server as a node of b (Start with Config.Broker
// set to a new Node whose replica is hist, nil: a new History) and starts
// its consumer; both stop when the test ends.
func StartNode(t testing.TB, b *Broker, cfg chat.Config, hooks chat.Hooks, hist *History) (*Server, *Node) {
	t.Helper()
	n := b.Node(hist)
	cfg.Broker = n
	s := Start(t, cfg, hooks, n.Hist)
	n.Consume(s.Chat)
	t.Cleanup(n.Close) // before the server's shutdown (cleanups run last first)
	return s, n
}

// Apply stores msgs with the ids they have (a replica applying the
// cluster's log, as package store's Apply does): the room's last id
// becomes the highest of them.
func (h *History) Apply(msgs []chat.Message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range msgs {
		all := h.rooms[m.Room]
		if n := len(all); n > 0 && all[n-1].ID >= m.ID {
			continue // applied already
		}
		m.To = ""
		h.rooms[m.Room] = append(all, m)
		h.nextID[m.Room] = max(h.nextID[m.Room], m.ID)
	}
}

// LastID implements chat.LastIDer: the highest id room ever had here.
func (h *History) LastID(room string) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.nextID[room]
}

var _ chat.LastIDer = (*History)(nil)
