package main

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/moonchat/moonchat/core/chat"
)

// What a cluster node says about itself: the moonchat_cluster_* series of
// /metrics (docs/cluster.md, "Metrics") and the local socket's
// GET /cluster/status, which `moonchat cluster status` prints
// (cluster_cmd.go). Both read the same counters (cluster.Log.Stats and
// clusterNode's own).

// clusterStatus is what a node says of itself, to the other nodes' status
// gatherings (cluster.Log.ServeNodes) and, with Nodes, as the answer of
// GET /cluster/status on the local socket. Lag is nil when NATS does not
// answer (LagError says why).
type clusterStatus struct {
	Node      string     `json:"node"`
	Stream    string     `json:"stream"`
	Replicas  int        `json:"replicas"`
	NATS      string     `json:"nats"` // nats_url without credentials
	Connected bool       `json:"connected"`
	DownSince *time.Time `json:"down_since,omitempty"`
	Applied   uint64     `json:"applied"`
	Lag       *uint64    `json:"lag"`
	LagError  string     `json:"lag_error,omitempty"`

	Published   uint64 `json:"published"`
	Conflicts   uint64 `json:"conflicts"`
	Retries     uint64 `json:"retries"`
	Stalls      uint64 `json:"stalls"`
	ApplyErrors uint64 `json:"apply_errors"`
	Disconnects uint64 `json:"disconnects"`

	// Rooms are the rooms with members on this node.
	Rooms []roomCount `json:"rooms"`
	// Nodes are the statuses of every node that answered within
	// nodesWait, this one included, by name (GET /cluster/status only);
	// NodesError says why there are none when the gathering failed.
	Nodes      []clusterStatus `json:"nodes,omitempty"`
	NodesError string          `json:"nodes_error,omitempty"`
}

// roomCount is a room and how many members it has on one node.
type roomCount struct {
	Room    string `json:"room"`
	Members int    `json:"members"`
}

// roomLister is what the status needs of the chat server: the rooms with
// members here and their members.
type roomLister interface {
	Rooms() []string
	Users(room string) []chat.User
}

// nodesWait is how long GET /cluster/status waits for the nodes' answers:
// a node that does not answer within it is not listed.
const nodesWait = time.Second

// status gathers this node's clusterStatus; the lag asks NATS (bounded
// by statusTimeout).
func (n *clusterNode) status(ctx context.Context) clusterStatus {
	st := n.log.Stats()
	s := clusterStatus{
		Node:        n.name,
		Stream:      n.cfg.Stream,
		Replicas:    n.cfg.Replicas,
		NATS:        redactURL(n.cfg.NATSURL),
		Connected:   n.log.Connected(),
		Applied:     n.rep.Applied(),
		Published:   st.Records,
		Conflicts:   st.Conflicts,
		Retries:     st.Retries,
		Stalls:      st.Stalls,
		ApplyErrors: n.applyErrors.Load(),
		Disconnects: n.disconnects.Load(),
	}
	if d := n.down(); !d.IsZero() {
		d = d.UTC()
		s.DownSince = &d
	}
	if rl := n.roomLister(); rl != nil {
		// The chat server lists the cluster's rooms and members: each
		// node counts its own (User.Node ""), so that the nodes' counts
		// add up to the room's members.
		for _, r := range rl.Rooms() {
			here := 0
			for _, u := range rl.Users(r) {
				if u.Node == "" {
					here++
				}
			}
			if here > 0 {
				s.Rooms = append(s.Rooms, roomCount{Room: r, Members: here})
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	if lag, err := n.log.Lag(ctx); err != nil {
		s.LagError = err.Error()
	} else {
		s.Lag = &lag
	}
	return s
}

// statusHandler answers GET /cluster/status on the local socket: this
// node's status, and every node's as they answered a gathering.
func (n *clusterNode) statusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := n.status(r.Context())
		answers, err := n.log.GatherNodes(r.Context(), nodesWait)
		if err != nil {
			st.NodesError = err.Error()
		}
		for _, a := range answers {
			var ns clusterStatus
			if err := json.Unmarshal(a, &ns); err != nil {
				n.logger.Warn("cluster: a node's status does not decode", "err", err)
				continue
			}
			ns.Nodes, ns.NodesError = nil, ""
			st.Nodes = append(st.Nodes, ns)
		}
		slices.SortFunc(st.Nodes, func(a, b clusterStatus) int { return strings.Compare(a.Node, b.Node) })
		writeLocalJSON(w, http.StatusOK, st)
	})
}

// serveNodes answers the other nodes' status gatherings with this node's
// status (logged when it cannot: the others then do not list it).
func (n *clusterNode) serveNodes() {
	err := n.log.ServeNodes(func() []byte {
		ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
		defer cancel()
		b, err := json.Marshal(n.status(ctx))
		if err != nil {
			return nil
		}
		return b
	})
	if err != nil {
		n.logger.Warn("cluster: this node does not answer status requests; `moonchat cluster status` on other nodes will not list it", "err", err)
	}
}

// clusterCollector exports the node's cluster counters as the
// moonchat_cluster_* series. The lag asks NATS at each scrape (bounded by
// statusTimeout); while NATS does not answer that one series is left out
// (unknown is not 0) and moonchat_cluster_connected says why.
type clusterCollector struct {
	n *clusterNode

	connected, applied, lag                                         *prometheus.Desc
	published, conflicts, retries, stalls, applyErrors, disconnects *prometheus.Desc
	releasesPending, leaseHeld                                      *prometheus.Desc
	reservations, nodesPurged, membersPurged, membersLost           *prometheus.Desc
	claimsRefused, undecodable, expiriesKept                        *prometheus.Desc
}

func newClusterCollector(n *clusterNode) *clusterCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("moonchat_cluster_"+name, help, nil, nil)
	}
	return &clusterCollector{
		n:           n,
		connected:   d("connected", "1 while this node's connection to NATS is up (posts are accepted), 0 while it is not."),
		applied:     d("applied_sequence", "Stream sequence of the last record this node applied to its store."),
		lag:         d("lag", "Stream records this node has yet to apply (absent while NATS does not answer)."),
		published:   d("records_published_total", "Records (batches and deletions) this node published, acknowledged by JetStream."),
		conflicts:   d("publish_conflicts_total", "Publishes refused because another node appended to the room first (renumbered and sent again)."),
		retries:     d("retries_total", "Sends and reads repeated after no answer (a JetStream leader election, a lost acknowledgement)."),
		stalls:      d("consumer_stalls_total", "Stream consumers recreated because they delivered nothing while the stream had more."),
		applyErrors: d("apply_errors_total", "Stream records the store could not apply (applied again after a pause)."),
		disconnects: d("disconnects_total", "Times this node lost its connection to NATS."),
		releasesPending: d("presence_releases_pending",
			"Members who left this node whose names the cluster's roster still holds: releases that failed while NATS was unreachable, retried until done."),
		leaseHeld: d("timer_lease_held", "1 while this node holds the cluster's timer lease (the scripts' chat.every timers run here), 0 while not."),
		reservations: d("id_reservations_total",
			"Writes of a room's id bound (<stream>_ids, one per room every 1000 ids) this node made before publishing past it."),
		nodesPurged:   d("nodes_purged_total", "Dead nodes (heartbeat silent 10 s) whose members this node took out of the cluster's roster."),
		membersPurged: d("members_purged_total", "Roster entries of dead nodes this node removed."),
		membersLost: d("members_lost_total",
			"This node's members whose name another node's member took while this node was counted dead (told and closed with 1013)."),
		claimsRefused: prometheus.NewDesc("moonchat_cluster_claims_refused_total",
			"Name claims the cluster's roster refused: reason unavailable (NATS unreachable: the join or rename refused), taken (another node's member holds it: the next variant tried).",
			[]string{"reason"}, nil),
		undecodable:  d("state_undecodable_total", "Stored changes of the cluster's moderation state this node could not decode and skipped (each logged)."),
		expiriesKept: d("expiries_kept_total", "Expiry sweeps that left a restriction in place because another node had replaced it."),
	}
}

// Describe implements prometheus.Collector.
func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.connected, c.applied, c.lag, c.published, c.conflicts, c.retries, c.stalls, c.applyErrors, c.disconnects,
		c.releasesPending, c.leaseHeld, c.reservations, c.nodesPurged, c.membersPurged, c.membersLost, c.claimsRefused, c.undecodable, c.expiriesKept} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	st := n.log.Stats()
	connected := 0.0
	if n.log.Connected() {
		connected = 1
	}
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(c.connected, connected)
	gauge(c.applied, float64(n.rep.Applied()))
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	if lag, err := n.log.Lag(ctx); err == nil {
		gauge(c.lag, float64(lag))
	}
	cancel()
	counter(c.published, st.Records)
	counter(c.conflicts, st.Conflicts)
	counter(c.retries, st.Retries)
	counter(c.stalls, st.Stalls)
	counter(c.applyErrors, n.applyErrors.Load())
	counter(c.disconnects, n.disconnects.Load())
	counter(c.reservations, st.Reservations)
	if sh := n.shared; sh != nil {
		ps, ss := sh.presence.Stats(), sh.state.Stats()
		gauge(c.releasesPending, float64(ps.Pending))
		counter(c.nodesPurged, ps.NodesPurged)
		counter(c.membersPurged, ps.MembersPurged)
		counter(c.membersLost, ps.MembersLost)
		ch <- prometheus.MustNewConstMetric(c.claimsRefused, prometheus.CounterValue, float64(ps.ClaimsUnavailable), "unavailable")
		ch <- prometheus.MustNewConstMetric(c.claimsRefused, prometheus.CounterValue, float64(ps.ClaimsTaken), "taken")
		counter(c.undecodable, ss.Undecodable)
		counter(c.expiriesKept, ss.ExpiriesKept)
		held := 0.0
		if sh.lease.Held() {
			held = 1
		}
		gauge(c.leaseHeld, held)
	}
}

// statusJSON renders s for `moonchat cluster status -json`.
func statusJSON(s clusterStatus) ([]byte, error) { return json.MarshalIndent(s, "", "  ") }
