package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// runCluster is "moonchat cluster SUBCOMMAND". Its one subcommand today,
// status, asks the running server of a config, on its local socket
// (localsock.go), how the cluster is doing: this node's connection to
// NATS, the stream sequence its store has applied and how far behind the
// stream it is; then every node that answered the server's gathering
// (cluster.Log.GatherNodes) within nodesWait, with its lag and its rooms'
// members. There is no list of members of the cluster: a node that does
// not answer (stopped, or cut off from NATS) is simply not listed.
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
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nnodes (those that answered within %v):\n", nodesWait)
	if st.NodesError != "" {
		fmt.Fprintf(w, "  none: %s\n", escapeText(st.NodesError))
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(st.Nodes) > 0 {
		fmt.Fprintln(tw, "  NODE\tNATS\tAPPLIED\tLAG\tPUBLISHED\tROOMS\tMEMBERS")
	}
	byRoom := map[string][]string{}
	for _, ns := range st.Nodes {
		nats, lag, members := "connected", "unknown", 0
		if !ns.Connected {
			nats = "UNREACHABLE"
		}
		if ns.Lag != nil {
			lag = fmt.Sprint(*ns.Lag)
		}
		for _, r := range ns.Rooms {
			members += r.Members
			byRoom[r.Room] = append(byRoom[r.Room], fmt.Sprintf("%s %d", ns.Node, r.Members))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%d\t%d\t%d\n", escapeText(ns.Node), nats, ns.Applied, lag, ns.Published, len(ns.Rooms), members)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nrooms (members per node):")
	if len(byRoom) == 0 {
		fmt.Fprintln(w, "  none with members")
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, room := range slices.Sorted(maps.Keys(byRoom)) {
		fmt.Fprintf(tw, "  %s\t%s\n", escapeText(room), escapeText(strings.Join(byRoom[room], ", ")))
	}
	return tw.Flush()
}
