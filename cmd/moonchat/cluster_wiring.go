package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moonchat/moonchat/cluster"
	"github.com/moonchat/moonchat/core/chat"
)

// Cluster mode (issue 15, docs/cluster.md): with [cluster] nats_url set,
// serve opens package cluster's room log, hands the chat server a Broker
// (broker_wiring.go) through which its rooms publish, and runs the one
// goroutine that reads the stream back: each record is applied to this
// node's store (the replica) and then handed to the chat server, which
// delivers it to this node's members. Nothing is delivered that the stream
// did not hand back, on the publishing node as on every other.
//
// Life cycle, in serve's order: openCluster (first of all: a node that
// cannot reach NATS fails closed before it touches its store, which
// opening as a replica would convert), wire (the store opened as the
// replica, before the chat server), start (once the chat server exists),
// catchUp (before the listeners serve), and close (after the chat
// server's shutdown, before the store closes: the consumer stops first,
// then the connection).

// replica is what the consumer needs of the store (package store's DB in
// replica mode): apply one stream record in one transaction with its
// stream sequence, say which sequence was applied last, and each room's
// last id (cluster.Config.Floor).
type replica interface {
	Apply(seq uint64, key string, msgs []chat.Message, redact uint64) error
	Applied() uint64
	LastID(key string) uint64
}

// deliverer is what the consumer needs of the chat server: hand a batch
// or a redaction, already in the replica, to this node's members.
type deliverer interface {
	Deliver(key string, msgs []chat.Message)
	Redacted(key string, id uint64)
}

// Bounds of the consume loop.
const (
	// applyRetryMin and applyRetryMax bound the pause before the stream
	// is read again after a record could not be applied (a store error):
	// the record is not skipped, it is applied again until it goes in.
	applyRetryMin = 100 * time.Millisecond
	applyRetryMax = 10 * time.Second
	// catchUpWait bounds how long a starting node applies the records it
	// missed before it serves anyway (logged): serving earlier is
	// correct — the chat server replays only what the replica holds and
	// delivers the rest as it comes — but members would see a backlog
	// arrive as live messages.
	catchUpWait = time.Minute
	// statusTimeout bounds the NATS requests of /metrics and
	// `moonchat cluster status` (the stream's last sequence).
	statusTimeout = 2 * time.Second
)

// clusterNode is this node's part of the cluster: the room log, the
// replica and the consume goroutine.
type clusterNode struct {
	cfg    *ClusterConfig
	name   string // [cluster] node, or the host name
	logger *slog.Logger
	log    *cluster.Log
	rep    replica

	// The consume goroutine: cancel stops it, done is closed when it
	// has returned. fatal receives the error that stopped it for good (a
	// record this node cannot read): serve then stops.
	cancel context.CancelFunc
	done   chan struct{}
	fatal  chan error

	// rooms is the chat server, for the status's rooms (set by start).
	rooms atomic.Pointer[roomLister]

	// shared is the cluster-wide state (cluster_shared.go); nil until
	// openShared got as far as the roster.
	shared *clusterShared

	applyErrors atomic.Uint64 // records the store refused (retried)
	disconnects atomic.Uint64 // NATS connection losses (OnState false)
	downMu      sync.Mutex
	downSince   time.Time // when the connection was lost; zero while up
}

// clusterLogConfig maps [cluster] and [store]'s retention onto
// cluster.Config, each key to its field, unchanged (nats_url's entries
// trimmed of spaces).
func clusterLogConfig(cfg *Config, log *slog.Logger) cluster.Config {
	c := &cfg.Cluster
	var urls []string
	for u := range strings.SplitSeq(c.NATSURL, ",") {
		urls = append(urls, strings.TrimSpace(u))
	}
	return cluster.Config{
		URL:            strings.Join(urls, ","),
		Stream:         c.Stream,
		Node:           nodeName(c),
		Replicas:       c.Replicas,
		MaxAge:         cfg.Store.MaxAge.D(),
		MaxPerRoom:     cfg.Store.MaxPerRoom,
		CredsFile:      c.Creds,
		NKeyFile:       c.NKey,
		TLSCert:        c.TLSCert,
		TLSKey:         c.TLSKey,
		TLSCA:          c.TLSCA,
		PublishTimeout: c.PublishTimeout.D(),
		Logger:         log,
	}
}

// openCluster connects to NATS and opens the stream. It fails when NATS
// cannot be reached: a node that cannot publish must not start and
// pretend to be a chat server. The replica is attached by wire.
func openCluster(ctx context.Context, cfg *Config, log *slog.Logger) (*clusterNode, error) {
	n := &clusterNode{cfg: &cfg.Cluster, logger: log, fatal: make(chan error, 1)}
	lc := clusterLogConfig(cfg, log)
	n.name = lc.Node
	// Asked only by Publish, which the chat server calls once wired.
	lc.Floor = func(key string) uint64 { return n.rep.LastID(key) }
	lc.OnState = n.onState
	l, err := cluster.Open(ctx, lc)
	if err != nil {
		if errors.Is(err, cluster.ErrUnavailable) {
			return nil, fmt.Errorf("[cluster] nats_url %s: NATS JetStream cannot be reached, so this node cannot share its rooms and does not start (start the NATS servers with JetStream, or set nats_url = \"\" for a single node): %w",
				redactURL(lc.URL), err)
		}
		return nil, fmt.Errorf("[cluster]: %w", err)
	}
	n.log = l
	log.Info("cluster", "node", n.name, "nats", redactURL(lc.URL), "stream", lc.Stream, "replicas", lc.Replicas,
		"max_age", lc.MaxAge, "max_per_room", lc.MaxPerRoom)
	// The cluster-wide state too, before the store: a node whose name
	// another live process uses stops here (cluster_shared.go).
	if err := n.openShared(ctx); err != nil {
		n.close()
		return nil, err
	}
	return n, nil
}

// wire attaches rep (the store, opened as a replica), hands the chat
// server the room log as its Broker (*cluster.Log is one: wiring.go) and
// the cluster-wide state (wireShared), adds the moonchat_cluster_* series
// to /metrics and GET /cluster/status and /cluster/audit to the local
// socket (ls nil: there is none, and `moonchat cluster status` cannot
// ask; openLocalSocket logged why).
func (n *clusterNode) wire(c *chat.Config, ls *localSocket, rep replica) {
	n.rep = rep
	n.logger.Info("cluster: this node's store is its replica of the stream", "node", n.name, "applied", rep.Applied())
	c.Broker = n.log
	c.Collectors = append(c.Collectors, newClusterCollector(n))
	n.wireShared(c, ls)
	if ls != nil {
		ls.handle("GET /cluster/status", n.statusHandler())
	}
}

// onState is cluster.Config.OnState: it records the connection's state
// for `moonchat cluster status` and /metrics, and logs how long it was
// down when it is back (package cluster logs the loss itself, on the same
// logger: "cluster: NATS connection lost; posts are refused until it is
// back"). It must not block.
func (n *clusterNode) onState(up bool) {
	n.downMu.Lock()
	defer n.downMu.Unlock()
	if !up {
		n.disconnects.Add(1)
		n.downSince = time.Now()
		return
	}
	if !n.downSince.IsZero() {
		n.logger.Info("cluster: this node accepts posts again", "node", n.name, "down_for", time.Since(n.downSince).Round(time.Millisecond))
	}
	n.downSince = time.Time{}
}

// roomLister returns the chat server for the status (nil before start).
func (n *clusterNode) roomLister() roomLister {
	if p := n.rooms.Load(); p != nil {
		return *p
	}
	return nil
}

// down returns since when NATS has been unreachable (zero: it is not).
func (n *clusterNode) down() time.Time {
	n.downMu.Lock()
	defer n.downMu.Unlock()
	return n.downSince
}

// start runs the consume goroutine, which applies the stream from the
// replica's applied sequence on and hands each record to out (the chat
// server, which the node's status also lists the rooms of), and answers
// the other nodes' status gatherings. close stops both. (The cluster-wide
// state's goroutines start with startShared.)
func (n *clusterNode) start(out deliverer) {
	if rl, ok := out.(roomLister); ok {
		n.rooms.Store(&rl)
	}
	n.serveNodes()
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan struct{})
	go func() {
		defer close(n.done)
		n.consumeBatches(ctx, out)
	}()
}

// stop reports err, which stops the node for good, to serve (fatalErr).
// Only the first of several is kept: each goroutine that reports returns
// at once after.
func (n *clusterNode) stop(err error) {
	select {
	case n.fatal <- err:
	default:
	}
}

// catchUp waits, at start, until the replica has applied the stream as
// it was when catchUp was called, at most catchUpWait or until ctx ends
// (logged either way). It never fails: a node that is still behind
// serves and catches up while serving.
func (n *clusterNode) catchUp(ctx context.Context) {
	qctx, cancel := context.WithTimeout(ctx, statusTimeout)
	lag, err := n.log.Lag(qctx)
	cancel()
	if err != nil {
		n.logger.Warn("cluster: cannot tell how far behind the stream this node is; serving while it catches up", "err", err)
		return
	}
	target := n.rep.Applied() + lag
	if lag == 0 {
		return
	}
	start := time.Now()
	n.logger.Info("cluster: catching up with the stream before serving", "node", n.name, "records", lag, "applied", n.rep.Applied())
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for n.rep.Applied() < target {
		select {
		case <-ctx.Done():
			return
		case <-n.done:
			return // the consumer stopped (fatal goes to serve)
		case <-t.C:
		}
		if time.Since(start) > catchUpWait {
			n.logger.Warn("cluster: still behind the stream; serving while it catches up", "node", n.name,
				"applied", n.rep.Applied(), "target", target, "waited", catchUpWait)
			return
		}
	}
	n.logger.Info("cluster: caught up", "node", n.name, "applied", n.rep.Applied(), "took", time.Since(start).Round(time.Millisecond))
}

// fatalErr is the channel on which the consumer reports that it stopped
// for good; nil (never ready) for a node without a cluster.
func (n *clusterNode) fatalErr() <-chan error {
	if n == nil {
		return nil
	}
	return n.fatal
}

// close stops the consume goroutine and waits for it, then closes the
// connection. After it the store may close: nothing applies to it any
// more.
func (n *clusterNode) close() {
	n.closeShared() // after the chat server's shutdown: its rooms released their claims
	if n.cancel != nil {
		n.cancel()
		<-n.done
	}
	if err := n.log.Close(); err != nil {
		n.logger.Warn("cluster: close", "err", err)
	}
	if n.rep != nil {
		n.logger.Info("cluster: closed", "node", n.name, "applied", n.rep.Applied())
	}
}
