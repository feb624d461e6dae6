package main

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// The [cluster] section (issue 15): how this node reaches NATS JetStream
// and which stream holds the cluster's rooms. nats_url "" is a single
// node, as before; everything else here matters only when it is set.
// Its consumer is clusterLogConfig (cluster_wiring.go), which hands each
// key on to cluster.Config unchanged; the stream's retention comes from
// [store] max_age and max_per_room.

// ClusterConfig is the [cluster] table.
type ClusterConfig struct {
	// NATSURL is one NATS server URL or several separated by commas
	// ("" = single node: no cluster).
	NATSURL string `toml:"nats_url"`
	// Node names this node in NATS's monitoring and in the records it
	// publishes ("" = the machine's host name).
	Node     string `toml:"node"`
	Stream   string `toml:"stream"`
	Replicas int    `toml:"replicas"`
	// Creds is a NATS credentials file, NKey an NKey seed file (at most
	// one); TLSCert, TLSKey and TLSCA a client certificate and the CA to
	// verify the NATS servers with. Relative paths are relative to the
	// config file (loadConfig).
	Creds          string   `toml:"creds"`
	NKey           string   `toml:"nkey"`
	TLSCert        string   `toml:"tls_cert"`
	TLSKey         string   `toml:"tls_key"`
	TLSCA          string   `toml:"tls_ca"`
	PublishTimeout Duration `toml:"publish_timeout"`
}

// Limits of [cluster] that are not a matter of taste.
const (
	// maxPublishTimeout stays well under the stream's duplicate window
	// (2 minutes, package cluster): a publish repeated after a lost
	// acknowledgement must still be recognised as the same record.
	maxPublishTimeout = time.Minute
	// maxNodeName: the node's name travels in a NATS header and in the
	// connection's name; short and plain keeps both readable.
	maxNodeName = 64
	// maxReplicas is JetStream's own bound on a stream's replicas.
	maxReplicas = 5
)

// enabled reports whether this node runs in a cluster.
func (c *ClusterConfig) enabled() bool { return c.NATSURL != "" }

// checkClusterConfig validates [cluster] (called by validateConfig).
// The keys are checked even with nats_url empty, so that a mistake shows
// before the day the cluster is switched on.
func checkClusterConfig(cfg *Config, fail func(key, format string, args ...any)) {
	c := &cfg.Cluster
	if c.NATSURL != "" {
		for u := range strings.SplitSeq(c.NATSURL, ",") {
			if err := checkNATSURL(strings.TrimSpace(u)); err != nil {
				fail("[cluster] nats_url", "%v", err)
			}
		}
		if cfg.Store.Path == "" {
			fail("[cluster] nats_url", "a cluster node keeps its replica of the rooms in its store: set [store] path")
		}
	}
	if err := checkNodeName(c.Node); err != nil {
		fail("[cluster] node", "%v", err)
	}
	if !validStream(c.Stream) {
		fail("[cluster] stream", "%q: want 1-64 characters from A-Z a-z 0-9 \"-\" and \"_\" (it is also the first token of the stream's subjects)", c.Stream)
	}
	if c.Replicas < 1 || c.Replicas > maxReplicas {
		fail("[cluster] replicas", "must be between 1 and %d, got %d", maxReplicas, c.Replicas)
	}
	if c.Creds != "" && c.NKey != "" {
		fail("[cluster] creds", "set creds or nkey, not both")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		fail("[cluster] tls_cert", "tls_cert and tls_key go together: set both or neither")
	}
	if c.PublishTimeout <= 0 || c.PublishTimeout.D() > maxPublishTimeout {
		fail("[cluster] publish_timeout", "must be between 1ms and %v, got %q", maxPublishTimeout, c.PublishTimeout.D().String())
	}
}

// checkNATSURL validates one entry of nats_url, as the NATS client takes
// it: scheme nats, tls, ws or wss, a host and a port (the client's
// default, 4222, is not assumed: say it). The error never repeats a
// password the URL holds.
func checkNATSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not a URL: want e.g. \"nats://10.0.0.1:4222\" (several separated by commas)", redactURL(s))
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return fmt.Errorf("%q: the scheme must be nats://, tls://, ws:// or wss://", redactURL(s))
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" {
		return fmt.Errorf("%q: want host:port, e.g. \"nats://10.0.0.1:4222\"", redactURL(s))
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: invalid port %q", redactURL(s), port)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: a NATS URL has no path, query or fragment", redactURL(s))
	}
	return nil
}

// redactURL hides the credentials of a URL (nats://user:pass@host) in
// messages and logs.
func redactURL(s string) string {
	if i, j := strings.Index(s, "//"), strings.LastIndexByte(s, '@'); i >= 0 && j > i {
		return s[:i+2] + "***@" + s[j+1:]
	}
	return s
}

// checkNodeName validates [cluster] node: "" (the host name) or a plain
// name.
func checkNodeName(s string) error {
	if s == "" {
		return nil
	}
	if len(s) > maxNodeName || strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}) {
		return fmt.Errorf("%q: want 1-%d characters from A-Z a-z 0-9 \"-_.\" (or \"\" for the host name)", s, maxNodeName)
	}
	return nil
}

// validStream applies package cluster's rule for stream names.
func validStream(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	})
}

// nodeName is [cluster] node, or the host name when it is empty (or
// "moonchat" when even that is unknown).
func nodeName(c *ClusterConfig) string {
	if c.Node != "" {
		return c.Node
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "moonchat"
}
