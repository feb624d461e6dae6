package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/moonchat/moonchat/cluster"
	"github.com/moonchat/moonchat/store"
)

// The batch consumer (issue 15, docs/performance.md "One room posted to
// from three nodes"): applying each stream record in a transaction of
// its own made a node's consumer the bottleneck of a busy room (one
// fsync per record, and with several nodes posting about one record per
// message). consumeBatches reads the stream with cluster.Log.ConsumeBatch
// and puts the records that queued up while the store was busy into the
// store in one transaction (store.DB.ApplyBatch), as the single node's
// group commit does for posts, then delivers them one by one in the
// stream's order. A node that keeps up still applies one record at a
// time, at once.

// batchReplica is a replica that applies several stream records in one
// transaction, all or none (store.DB.ApplyBatch).
type batchReplica interface {
	replica
	ApplyBatch(recs []store.LogRecord) error
}

// consumeBatches applies the stream until ctx ends or the Log is closed,
// as consume does (a record the store refused is read again after a
// pause, never skipped; one that does not decode, contradicts the store
// or comes from a stream created again stops the node through fatal),
// but takes the records already received in batches (applyEntries).
func (n *clusterNode) consumeBatches(ctx context.Context, out deliverer) {
	pause := applyRetryMin
	var recs []store.LogRecord // applyEntries' buffer, reused
	for {
		from := n.rep.Applied()
		err := n.log.ConsumeBatch(ctx, from, func(es []cluster.Entry) error {
			var err error
			recs, err = n.applyEntries(es, out, recs)
			return err
		})
		if n.consumeStopped(ctx, err) {
			return
		}
		if n.rep.Applied() > from {
			pause = applyRetryMin // it made progress: a new failure
		}
		n.logger.Error("cluster: applying the stream stopped; reading it again", "node", n.name,
			"after", n.rep.Applied(), "err", err, "retry_in", pause)
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, applyRetryMax)
	}
}

// consumeStopped says whether the consumer must stop after ConsumeBatch
// returned err: ctx ended or the Log closed (return quietly), or an error
// that reading the stream again would only repeat (reported to fatal,
// logged with what to do). false: read the stream again after a pause.
func (n *clusterNode) consumeStopped(ctx context.Context, err error) bool {
	switch {
	case ctx.Err() != nil || errors.Is(err, cluster.ErrClosed):
		return true
	case errors.Is(err, cluster.ErrCorrupt) || errors.Is(err, cluster.ErrVersion):
		n.logger.Error("cluster: a record of the stream cannot be read; this node stops (upgrade it if the record is of a newer moonchat)",
			"node", n.name, "after", n.rep.Applied(), "err", err)
		n.stop(fmt.Errorf("cluster: consuming the stream: %w", err))
		return true
	case errors.Is(err, cluster.ErrStreamReset):
		n.logger.Error("cluster: the stream was created again (its NATS store lost?) after this node's store applied records of the old one; this node stops rather than skip the new stream's first records "+
			"(to join the new stream, start this node with a new [store] path: its history is then what the stream holds)",
			"node", n.name, "applied", n.rep.Applied(), "err", err)
		n.stop(fmt.Errorf("cluster: consuming the stream: %w", err))
		return true
	case errors.Is(err, store.ErrDiverged) || errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrReplica):
		// Applying it again would fail again: the store and the stream
		// disagree about a room (another cluster's stream, a store from
		// elsewhere), or the record cannot be stored.
		n.logger.Error("cluster: a record of the stream cannot be applied to this node's store; this node stops (is [store] path this cluster's replica, and [cluster] stream this cluster's?)",
			"node", n.name, "after", n.rep.Applied(), "err", err)
		n.stop(fmt.Errorf("cluster: applying the stream: %w", err))
		return true
	}
	return false
}

// applyEntries puts es in the replica, then hands each to the chat
// server in order: a member sees a message only once it is in this
// node's store, so that a replay or history page a moment later holds it
// too. Several entries go in one transaction (ApplyBatch). If that fails
// they are applied again one at a time, each delivered once stored, so
// that the records before a bad one still go in and the error names the
// record (the store's error, counted in applyErrors). recs is a buffer
// for the store's records, returned for the next call.
func (n *clusterNode) applyEntries(es []cluster.Entry, out deliverer, recs []store.LogRecord) ([]store.LogRecord, error) {
	if br, ok := n.rep.(batchReplica); ok && len(es) > 1 {
		recs = recs[:0]
		for _, e := range es {
			recs = append(recs, store.LogRecord{Seq: e.Seq, Key: e.Key, Msgs: e.Msgs, Redact: e.Redact})
		}
		err := br.ApplyBatch(recs)
		clear(recs) // the buffer keeps no messages
		if err == nil {
			for _, e := range es {
				deliverEntry(e, out)
			}
			return recs, nil
		}
		n.logger.Warn("cluster: stream records could not be applied in one transaction; applying them one by one",
			"node", n.name, "records", len(es), "first", es[0].Seq, "err", err)
	}
	for _, e := range es {
		if err := n.rep.Apply(e.Seq, e.Key, e.Msgs, e.Redact); err != nil {
			n.applyErrors.Add(1)
			return recs, fmt.Errorf("store: applying stream record %d of %q: %w", e.Seq, e.Key, err)
		}
		deliverEntry(e, out)
	}
	return recs, nil
}

// deliverEntry hands one record, already in the replica, to the chat server.
func deliverEntry(e cluster.Entry, out deliverer) {
	if e.Redact != 0 {
		out.Redacted(e.Key, e.Redact)
	} else {
		out.Deliver(e.Key, e.Msgs)
	}
}
