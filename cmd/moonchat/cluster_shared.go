package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moonchat/moonchat/cluster"
	"github.com/moonchat/moonchat/core/chat"
)

// Cluster-wide state (issue 15, docs/cluster.md "What is cluster-wide"):
// besides the room log, a cluster node shares with the others, through
// package cluster's buckets on the Log's connection,
//
//   - the moderation state, name owners, ignore lists and the audit log
//     (cluster.State: chat.Config.Shared; State.Watch hands every stored
//     change to the chat server);
//   - the roster (cluster.Presence: chat.Config.Presence; Presence.Run
//     keeps this node alive and purges dead ones, Presence.Watch hands
//     the other nodes' members in, Presence.ServeKicks answers the other
//     nodes' kicks of this node's members, Presence.ServeDirects the
//     direct messages they relay to and from this node's guests);
//   - the scripts' chat.kv (cluster.ScriptKV) and the timers' lease
//     (cluster.Lease: the scripts' timers run on the node that holds it).
//
// Life cycle: openShared (in openCluster, before the store: a node name
// another live process uses refuses the start there) starts Presence.Run
// at once, since the other nodes count a node dead whose heartbeat stops;
// wireShared hands State and Presence to the chat server's config;
// startShared, once the chat server exists, runs the watchers, the kick
// service and the lease; closeShared (after the chat server's shutdown,
// whose rooms released their members' claims) stops them all, then takes
// this node out of the roster (Presence.Close) before the connection
// closes.
//
// Each goroutine here is owned by the clusterNode: shared.cancel stops
// them and shared.wg waits for them. One that returns for any reason but
// its context (a watch that stopped, another process took this node's
// name) stops the node through clusterNode.stop: a node deaf to the
// cluster's bans, or whose members the cluster no longer counts, must not
// serve.

// presenceCloseTimeout bounds Presence.Close at shutdown: what it could not
// remove, the other nodes purge when this node's heartbeat goes stale.
const presenceCloseTimeout = 10 * time.Second

// timerLease is the name of the scripts' timers' lease.
const timerLease = "timers"

// sharedAPI is what the cluster-wide state needs of the chat server:
// taking in the stored changes and the other nodes' members, kicking this
// node's members for the other nodes, and reading the audit log.
type sharedAPI interface {
	chat.SharedApplier
	chat.PresenceApplier
	PresenceLost(room string, session uint64)
	KickBy(sessionID uint64, reason, by string) error
	ServeDirect(d chat.RelayedDirect) chat.RelayAnswer
	Noticed(room, text string)
	Audit(room string, since time.Time, n int) ([]chat.AuditEntry, error)
}

// clusterShared is this node's part of the cluster-wide state.
type clusterShared struct {
	state    *cluster.State
	presence *cluster.Presence
	kv       *cluster.ScriptKV
	lease    *cluster.Lease

	// srv is the chat server, once startShared ran (PresenceLost and the
	// local socket's audit need it; before it there is no member).
	srv atomic.Pointer[sharedAPI]

	cancel context.CancelFunc // stops every goroutine below
	wg     sync.WaitGroup
}

// openShared opens the cluster-wide state on n's connection and starts
// Presence.Run. A node name that another live process uses refuses the
// start with a message that says so.
func (n *clusterNode) openShared(ctx context.Context) error {
	sh := &clusterShared{}
	var err error
	if sh.state, err = n.log.OpenState(ctx, cluster.StateConfig{}); err != nil {
		return fmt.Errorf("[cluster]: the cluster's moderation state: %w", err)
	}
	sh.presence, err = n.log.OpenPresence(ctx, cluster.PresenceConfig{
		OnLost: func(room string, session uint64) {
			if p := sh.srv.Load(); p != nil {
				(*p).PresenceLost(room, session)
			}
		},
	})
	if errors.Is(err, cluster.ErrNodeInUse) {
		return fmt.Errorf("[cluster] node %q: another moonchat process of this cluster runs with this node name, so this one does not start (give every node its own name): %w", n.name, err)
	}
	if err != nil {
		return fmt.Errorf("[cluster]: the cluster's roster: %w", err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	sh.cancel = cancel
	n.shared = sh // from here on close stops what runs
	n.goShared(rctx, "presence heartbeat", func() error { return sh.presence.Run(rctx) })
	if sh.kv, err = n.log.OpenScriptKV(ctx); err != nil {
		return fmt.Errorf("[cluster]: the scripts' chat.kv: %w", err)
	}
	if sh.lease, err = n.log.OpenLease(ctx, timerLease, 0); err != nil {
		return fmt.Errorf("[cluster]: the scripts' timer lease: %w", err)
	}
	return nil
}

// goShared runs f in a goroutine of the clusterNode's: when f returns
// while ctx has not ended, the node stops (logged as what).
func (n *clusterNode) goShared(ctx context.Context, what string, f func() error) {
	n.shared.wg.Go(func() {
		err := f()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("stopped")
		}
		if errors.Is(err, cluster.ErrNodeInUse) {
			n.logger.Error("cluster: another moonchat process took this node's name while it was cut off; this node stops", "node", n.name, "err", err)
		} else {
			n.logger.Error("cluster: "+what+" stopped; this node stops (it would serve without the cluster's state)", "node", n.name, "err", err)
		}
		n.stop(fmt.Errorf("cluster: %s: %w", what, err))
	})
}

// singleNodeState says, for the log, what a store used as a single node
// holds that a cluster node does not use: bans, mutes and room settings
// live in the cluster's state and are not carried over. "" when there is
// nothing (or rep cannot tell).
func singleNodeState(rep replica) string {
	type modStore interface {
		Restrictions() ([]chat.Restriction, error)
		RoomSettings() (map[string]chat.RoomSettings, error)
	}
	ms, ok := rep.(modStore)
	if !ok {
		return ""
	}
	rs, err1 := ms.Restrictions()
	st, err2 := ms.RoomSettings()
	if err1 != nil || err2 != nil || len(rs)+len(st) == 0 {
		return ""
	}
	return fmt.Sprintf("cluster: this node's store holds bans, mutes or room settings from single-node mode (restrictions=%d room_settings=%d); "+
		"a cluster node uses the cluster's moderation state instead, and they are not carried over (make them again in the cluster)", len(rs), len(st))
}

// wireShared hands the chat server the cluster's state and roster, the
// scripting engine its chat.kv and timer gate, and adds GET
// /cluster/audit to the local socket (ls nil: none).
func (n *clusterNode) wireShared(c *chat.Config, ls *localSocket) {
	if warn := singleNodeState(n.rep); warn != "" {
		n.logger.Warn(warn)
	}
	c.Shared = n.shared.state
	c.Presence = n.shared.presence
	if ls != nil {
		ls.handle("GET /cluster/audit", n.auditHandler())
	}
}

// startShared runs, once the chat server srv exists, the watchers that
// hand it the other nodes' changes, the service of kicks and relayed
// direct messages from the other nodes, the room notices of every node
// (chat.broadcast) and the timers' lease. It fails when the kicks or
// direct messages cannot be served (NATS unreachable at this moment): the
// node does not start.
func (n *clusterNode) startShared(srv sharedAPI) error {
	sh := n.shared
	sh.srv.Store(&srv)
	ctx, cancel := context.WithCancel(context.Background())
	prev := sh.cancel
	sh.cancel = func() { cancel(); prev() }
	n.goShared(ctx, "the watch of the cluster's moderation state", func() error { return sh.state.Watch(ctx, srv) })
	n.goShared(ctx, "the watch of the cluster's roster", func() error { return sh.presence.Watch(ctx, srv) })
	n.goShared(ctx, "the scripts' timer lease", func() error { return sh.lease.Run(ctx) })
	if err := sh.presence.ServeKicks(ctx, srv.KickBy); err != nil {
		return fmt.Errorf("[cluster]: serving the other nodes' kicks: %w", err)
	}
	if err := sh.presence.ServeDirects(ctx, srv.ServeDirect); err != nil {
		return fmt.Errorf("[cluster]: serving the direct messages other nodes relay: %w", err)
	}
	if err := n.log.ServeNotices(ctx, srv.Noticed); err != nil {
		return fmt.Errorf("[cluster]: receiving room notices: %w", err)
	}
	return nil
}

// closeShared stops the goroutines and waits for them, then takes this
// node's members and heartbeat out of the roster (bounded by
// presenceCloseTimeout). Call it after the chat server's shutdown and
// before the Log closes.
func (n *clusterNode) closeShared() {
	sh := n.shared
	if sh == nil {
		return
	}
	sh.cancel()
	sh.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), presenceCloseTimeout)
	defer cancel()
	if err := sh.presence.Close(ctx); err != nil {
		n.logger.Warn("cluster: this node's members could not be taken out of the cluster's roster; the other nodes purge them once its heartbeat is stale", "node", n.name, "err", err)
	}
}

// auditHandler answers GET /cluster/audit?room=&since=&limit= on the
// local socket (`moonchat audit` on a cluster node): the cluster's audit
// log as the chat server reads it. The same trust as reading a single
// node's store file, which holds its audit log.
func (n *clusterNode) auditHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := n.shared.srv.Load()
		if p == nil {
			localFail(w, http.StatusServiceUnavailable, errors.New("the server is starting"))
			return
		}
		q := r.URL.Query()
		limit, err := strconv.Atoi(q.Get("limit"))
		if err != nil || limit < 1 {
			localFail(w, http.StatusBadRequest, fmt.Errorf("limit %q: a positive number is needed", q.Get("limit")))
			return
		}
		var since time.Time
		if s := q.Get("since"); s != "" {
			if since, err = time.Parse(time.RFC3339Nano, s); err != nil {
				localFail(w, http.StatusBadRequest, fmt.Errorf("since: %w", err))
				return
			}
		}
		entries, err := (*p).Audit(q.Get("room"), since, limit)
		if err != nil {
			localFail(w, http.StatusServiceUnavailable, fmt.Errorf("reading the cluster's audit log: %w", err))
			return
		}
		out := make([]jsonAudit, len(entries))
		for i, e := range entries {
			out[i] = jsonAudit{Time: e.Time.UTC().Format(time.RFC3339Nano), Room: e.Room, By: e.By, Action: e.Action, Target: e.Target, Reason: e.Reason}
		}
		writeLocalJSON(w, http.StatusOK, apiAudit{Entries: out})
	})
}
