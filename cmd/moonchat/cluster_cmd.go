package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// runCluster is "moonchat cluster SUBCOMMAND". Its one subcommand today,
// status, asks the running server of a config, on its local socket
// (localsock.go), how its part of the cluster is doing: this node's
// connection to NATS, the stream sequence its store has applied and how
// far behind the stream it is. The other nodes, the rooms and their
// members per node are not in it yet (docs/cluster.md says so): a node
// knows only itself.
func runCluster(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "status" {
		fset := newFlagSet("cluster", "status [-config FILE] [-json]", stderr)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			return newUsageError(fset, flag.ErrHelp)
		}
		what := "no subcommand"
		if len(args) > 0 {
			what = fmt.Sprintf("unknown subcommand %q", args[0])
		}
		return newUsageError(fset, fmt.Errorf("%s: the one subcommand is status", what))
	}
	fset := newFlagSet("cluster status", "[-config FILE] [-json]", stderr)
	configPath := fset.String("config", "", "config file of the server to ask (default: ./config.toml if it exists, else the built-in defaults)")
	asJSON := fset.Bool("json", false, "print the answer as JSON")
	if err := parseFlags(fset, args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	if !cfg.Cluster.enabled() {
		return fmt.Errorf("%s: [cluster] nats_url is empty: this is a single node, not part of a cluster", cfg.Source)
	}
	sock := localSocketPath(cfg)
	var st clusterStatus
	if err := localGet(ctx, sock, "/cluster/status", nil, &st); err != nil {
		if errors.Is(err, errNoLocalSocket) {
			return fmt.Errorf("%w\nis the server of %s running? `moonchat cluster status` asks the running server", err, cfg.Source)
		}
		return err
	}
	if *asJSON {
		b, err := statusJSON(st)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	return printClusterStatus(stdout, st)
}

// printClusterStatus prints st for people, one fact a line. Names and the
// URL come from the config but go through escapeText anyway: a terminal
// is no place for control characters.
func printClusterStatus(w io.Writer, st clusterStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	line := func(k, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t%s\n", k, escapeText(fmt.Sprintf(format, args...)))
	}
	line("node", "%s", st.Node)
	line("stream", "%s (replicas %d)", st.Stream, st.Replicas)
	switch {
	case st.Connected:
		line("nats", "connected (%s)", st.NATS)
	case st.DownSince != nil:
		line("nats", "UNREACHABLE since %s (%s ago): posts are refused (%s)", st.DownSince.Format(time.RFC3339),
			time.Since(*st.DownSince).Round(time.Second), st.NATS)
	default:
		line("nats", "UNREACHABLE: posts are refused (%s)", st.NATS)
	}
	line("applied", "%d (stream sequence of the last record in this node's store)", st.Applied)
	if st.Lag != nil {
		line("lag", "%d records", *st.Lag)
	} else {
		line("lag", "unknown: %s", st.LagError)
	}
	line("published", "%d records (%d conflicts, %d retries)", st.Published, st.Conflicts, st.Retries)
	line("consumer", "%d stalls recreated, %d records the store refused (retried)", st.Stalls, st.ApplyErrors)
	line("disconnects", "%d", st.Disconnects)
	line("not shown yet", "%s", strings.Join([]string{"the other nodes", "rooms and members per node"}, ", "))
	return tw.Flush()
}
