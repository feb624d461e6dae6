package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// Config says how a Log reaches NATS and what stream it keeps there.
type Config struct {
	// URL is the NATS server URL, or several separated by commas (the
	// client fails over between them): [cluster] nats_url.
	URL string
	// Stream is the JetStream stream's name and its subjects' first token
	// ([cluster] stream; "" = "moonchat"). Every node of one cluster uses
	// the same.
	Stream string
	// Node names this node ([cluster] node): the NATS connection's name
	// ("moonchat NODE", as the server's monitoring lists it) and the
	// Moonchat-Node header of its records, for debugging ("" = neither).
	Node string
	// Replicas is the stream's replica count (1–5; 0 = 1). With 3, a
	// record is acknowledged once a quorum (2) stored it (docs/cluster.md).
	Replicas int
	// MaxAge drops records older than this from the stream (0 = keep
	// forever): [store] max_age.
	MaxAge time.Duration
	// MaxPerRoom bounds each room's subject to this many records (0 = no
	// limit): [store] max_per_room. A record holds one or more messages,
	// so the stream keeps at least this many messages of a room; each
	// node's store prunes its replica to exactly max_per_room.
	MaxPerRoom int

	// CredsFile is a NATS credentials file (JWT and NKey seed); NKeyFile
	// an NKey seed file. At most one of them. User and password, or a
	// token, go in URL (nats://user:pass@host:4222).
	CredsFile string
	NKeyFile  string
	// TLSCert and TLSKey are a client certificate for NATS servers that
	// ask for one; TLSCA is a CA bundle to verify the servers with (else
	// the system's). Any of them makes the connection TLS-only.
	TLSCert, TLSKey, TLSCA string

	// PublishTimeout bounds one Publish or Redact call, retries included
	// (0 = 5s). Past it the call fails with ErrUnacknowledged (a record
	// was sent, its fate unknown) or ErrUnavailable.
	PublishTimeout time.Duration
	// MaxAttempts bounds how often a record is renumbered after another
	// node appended to the same room first (0 = 64). Past it: ErrConflict.
	// (PublishTimeout is the bound that matters; this one stops a call
	// that would spin.)
	MaxAttempts int
	// ReconnectWait is the pause between reconnection attempts (0 = 1s).
	// The connection retries forever.
	ReconnectWait time.Duration

	// Floor, when set, returns the highest id this node's replica ever
	// applied for key (store's LastID, which survives pruning). Publish
	// asks it only when the stream holds no record of the room: MaxAge
	// dropped every record of a room idle for that long, and the room's
	// ids must still not start again at 1 (docs/cluster.md, "Ids").
	Floor func(key string) uint64

	// OnState, when set, is called with false when the connection to NATS
	// is lost and with true when it is back (not at Open, which returns
	// connected, nor at Close). The chat server uses it to refuse posts
	// with a notice while NATS is unreachable. Calls are made one at a
	// time, in order, from the NATS client's callback goroutine: it must
	// not block.
	OnState func(connected bool)
	// Logger receives connection changes and retries (nil = discard).
	Logger *slog.Logger
}

// withDefaults returns c with its zero values replaced by the defaults,
// or an error naming every invalid field.
func (c Config) withDefaults() (Config, error) {
	if c.Stream == "" {
		c.Stream = "moonchat"
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 5 * time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 64
	}
	if c.ReconnectWait == 0 {
		c.ReconnectWait = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("no NATS URL"))
	}
	if !validStreamName(c.Stream) {
		errs = append(errs, fmt.Errorf("stream %q: use letters, digits, '-' and '_'", c.Stream))
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("replicas %d: must be 1 to 5", c.Replicas))
	}
	if c.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("max age %v is negative", c.MaxAge))
	}
	if c.MaxPerRoom < 0 {
		errs = append(errs, fmt.Errorf("max per room %d is negative", c.MaxPerRoom))
	}
	if c.CredsFile != "" && c.NKeyFile != "" {
		errs = append(errs, errors.New("both a credentials file and an NKey file"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("a TLS client certificate needs both cert and key"))
	}
	if c.PublishTimeout < 0 || c.MaxAttempts < 0 || c.ReconnectWait < 0 {
		errs = append(errs, errors.New("negative publish timeout, attempts or reconnect wait"))
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("cluster: config: %w", errors.Join(errs...))
	}
	return c, nil
}

// validStreamName: the name is also the subjects' first token, so it is
// kept to characters that are safe in both.
func validStreamName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// How often the connection is pinged, and how many pings may go
// unanswered before it counts as lost (natsOptions).
const (
	pingInterval = 2 * time.Second
	maxPingsOut  = 2
)

// natsOptions are the connection options of c; handlers are the Log's.
func (c Config) natsOptions(l *Log) ([]nats.Option, error) {
	opts := []nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(c.ReconnectWait),
		nats.Timeout(c.PublishTimeout),
		// Publishes are refused while disconnected (Publish checks the
		// status first); nothing needs buffering.
		nats.ReconnectBufSize(-1),
		// A link that dies silently (a partition: no RST, no FIN) is
		// seen only by unanswered pings. The client's default (every 2
		// minutes, 2 outstanding) left a cut-off node "connected" for
		// about 6 minutes, each post waiting PublishTimeout and failing
		// as unacknowledged instead of being refused at once
		// (TestClusterPartition, cmd/moonchat). One ping every
		// pingInterval costs nothing and notices in 2-3 intervals.
		nats.PingInterval(pingInterval),
		nats.MaxPingsOutstanding(maxPingsOut),
		nats.DisconnectErrHandler(l.disconnected),
		nats.ReconnectHandler(l.reconnected),
		nats.ClosedHandler(l.closed),
	}
	if c.Node != "" {
		opts = append(opts, nats.Name("moonchat "+c.Node))
	}
	if c.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	if c.NKeyFile != "" {
		o, err := nats.NkeyOptionFromSeed(c.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("cluster: nkey file: %w", err)
		}
		opts = append(opts, o)
	}
	if c.TLSCert != "" {
		opts = append(opts, nats.ClientCert(c.TLSCert, c.TLSKey))
	}
	if c.TLSCA != "" {
		opts = append(opts, nats.RootCAs(c.TLSCA))
	}
	return opts, nil
}
