package main

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/ws"
	"github.com/moonchat/moonchat/defaults"
	"github.com/moonchat/moonchat/scripting"
	"github.com/moonchat/moonchat/store"
	"github.com/prometheus/client_golang/prometheus"
)

// HTTP server limits for the plain-HTTP side (chat page, API). WebSocket
// connections are hijacked and then governed by the engine's own timeouts;
// there is deliberately no WriteTimeout, because net/http would set a write
// deadline on the connection before the hijack and kill it later.
const (
	httpIdleTimeout    = 2 * time.Minute
	httpMaxHeaderBytes = 64 << 10
)

// runServe is "moonchat serve": run the chat server until ctx is cancelled
// (SIGINT/SIGTERM), reloading the scripts on SIGHUP.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := newFlagSet("serve", "[-config FILE]", stderr)
	configPath := fset.String("config", "", "config file (default: ./config.toml if it exists, else the built-in defaults)")
	readyFile := fset.String("ready-file", "", hiddenFlag+"write the bound address to this file once listening")
	if err := parseFlags(fset, args); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, logger, *readyFile)
}

// server is one running moonchat: everything serve opens, in the order it
// must be closed in reverse.
type server struct {
	cfg    *Config
	log    *slog.Logger
	db     *store.DB         // nil without history
	lua    *scripting.Engine // nil when scripting is disabled
	chat   *chat.Server
	hosts  *ws.HostPolicy // the Host names answered to, for the log and pprof
	http   *http.Server
	ln     net.Listener
	pprof  *http.Server // nil unless [server] pprof is set
	pprofL net.Listener
	admin  *http.Server // nil unless [admin] listen is set
	adminL net.Listener
	tls    *serverTLS // nil unless [server] tls_cert or acme_domains is set (tls.go)
	// local is the Unix socket beside the store file (localsock.go); nil
	// without a store, or when it could not be made (logged).
	local *localSocket
	// cluster is this node's part of a cluster (cluster_wiring.go); nil
	// on a single node ([cluster] nats_url empty).
	cluster *clusterNode
	// serving is set once open succeeded and the listeners are handed
	// to their servers (which then own and close them).
	serving bool
}

// serve runs the server described by cfg until ctx is cancelled, then
// shuts it down within shutdown_timeout. readyFile, when not empty,
// receives the bound address once the server accepts connections.
func serve(ctx context.Context, cfg *Config, log *slog.Logger, readyFile string) error {
	log.Info("config", "source", cfg.Source)
	s := &server{cfg: cfg, log: log}
	if err := s.open(ctx); err != nil {
		s.close()
		return err
	}
	warnFileModes(cfg, log) // after open: the database exists now

	// SIGHUP reloads the scripts. Registered before announcing readiness so
	// that a supervisor's first SIGHUP cannot kill the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	s.serving = true
	var wg sync.WaitGroup
	serveErr := make(chan error, 3)
	wg.Add(1)
	go func() {
		defer wg.Done()
		serveErr <- s.http.Serve(s.ln)
	}()
	if s.pprof != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveErr <- s.pprof.Serve(s.pprofL)
		}()
	}
	if s.admin != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveErr <- s.admin.Serve(s.adminL)
		}()
	}
	if s.local != nil {
		// Not in serveErr: the chat goes on without the socket (logged).
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.local.serve(); !errors.Is(err, http.ErrServerClosed) {
				log.Error("local socket stopped: `moonchat history -direct` cannot read while this server runs", "path", s.local.path, "err", err)
			}
		}()
	}
	// The certificate files are polled for changes until shutdown.
	wctx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	if s.tls != nil && s.tls.certs != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.tls.certs.watch(wctx)
		}()
	}
	addr := s.ln.Addr().String()
	scheme := "http://"
	if s.tls != nil {
		scheme = "https://"
	}
	log.Info("listening", "addr", addr, "url", scheme+addr+"/")
	logHosts(log, s.hosts, &cfg.Server, s.ln.Addr())
	if readyFile != "" {
		if err := writeFileAtomic(readyFile, []byte(addr+"\n")); err != nil {
			log.Error("write ready file", "err", err)
		}
	}

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down", "timeout", cfg.Server.ShutdownTimeout.D())
			break loop
		case <-hup:
			s.reload()
		case err := <-s.cluster.fatalErr():
			runErr = err // logged by the consumer
			break loop
		case err := <-serveErr:
			if !errors.Is(err, http.ErrServerClosed) {
				runErr = fmt.Errorf("serve: %w", err)
				log.Error("serve", "err", err)
				break loop
			}
		}
	}
	s.shutdown()
	stopWatch()
	wg.Wait()
	s.close()
	log.Info("stopped")
	return runErr
}

// open opens the store, the scripts, the chat server and the listeners.
// On error the caller calls close for whatever was opened. ctx (the
// signals) stops the scripts' loading.
func (s *server) open(ctx context.Context) error {
	cfg, log := s.cfg, s.log

	if cfg.Cluster.enabled() {
		// First: a node that cannot reach NATS stops here, before its
		// store is opened as a replica (cluster_wiring.go).
		n, err := openCluster(ctx, cfg, log)
		if err != nil {
			return err
		}
		s.cluster = n
	}
	var history chat.History // an untyped nil without a store
	if cfg.Store.Path == "" {
		log.Info("history off ([store] path is empty)")
	} else {
		opts := storeOptions(cfg, log, false)
		opts.Replica = cfg.Cluster.enabled() // a replica of the cluster's log (cluster_wiring.go)
		db, err := store.Open(cfg.Store.Path, opts)
		if err != nil {
			return explainStoreError(err)
		}
		s.db, history = db, db
		log.Info("history", "path", cfg.Store.Path, "max_per_room", cfg.Store.MaxPerRoom, "max_age", cfg.Store.MaxAge.D())
		s.openLocalSocket()
	}

	var hooks chat.Hooks // an untyped nil without scripts
	if !cfg.Scripting.Enabled {
		log.Info("scripting off ([scripting] enabled = false)")
	} else {
		fsys, dir := scriptsFS(cfg, log)
		opts := scripting.Options{
			FS:            fsys,
			Dir:           dir,
			HookTimeout:   cfg.Scripting.HookTimeout.D(),
			MaxMemory:     int64(cfg.Scripting.MaxMemoryBytes),
			Logger:        log,
			MaxTextBytes:  cfg.Chat.MaxTextBytes,
			ScriptOptions: cfg.Scripts,
			Shadow:        cfg.Scripting.Shadow,
			DisableAfter:  disableAfter(cfg.Scripting.DisableAfter),
		}
		if s.db != nil {
			opts.KV = s.db
		}
		if s.cluster != nil {
			// chat.kv is the cluster's, and the timers run on the
			// node that holds the cluster's lease (cluster_shared.go).
			opts.KV = s.cluster.shared.kv
			opts.TimerGate = s.cluster.shared.lease.Held
		}
		eng, err := scripting.New(ctx, opts)
		if err != nil {
			return fmt.Errorf("load scripts: %w", err)
		}
		s.lua, hooks = eng, eng // the engine logs what it loaded
	}

	hosts, err := ws.NewHostPolicy(answerHosts(&cfg.Server))
	if err != nil {
		return fmt.Errorf("[server] hosts: %w", err)
	}
	s.hosts = hosts
	chatCfg := chatConfig(cfg, log)
	if chatCfg.AddrLimits, chatCfg.Proxies, err = addrLimits(&cfg.Server); err != nil {
		return err
	}
	secret, err := mintSecret(cfg, log)
	if err != nil {
		return err
	}
	var scripts scriptHooks // an untyped nil without scripts
	if s.lua != nil {
		scripts = s.lua
	}
	// The authenticator exists even without keys: the server accepts the
	// tokens it mints at login, and the connect script may run.
	authn, err := newAuthenticator(&cfg.Auth, secret, scripts, log)
	if err != nil {
		return err
	}
	authn.proxies = chatCfg.Proxies // the connect script's req.addr: the client's
	chatCfg.Authenticator = authn
	if !cfg.Auth.Guests && cfg.Auth.JWTSecret == "" && len(cfg.Auth.JWTPublicKeys) == 0 &&
		(s.lua == nil || !(s.lua.Handles("connect") || s.lua.Handles("login"))) {
		log.Warn("[auth] guests = false without jwt_secret or jwt_public_keys, and no script handles connect or login: nobody can connect until one does")
	}
	login, err := newLoginService(&cfg.Auth, secret, scripts, log)
	if err != nil {
		return err
	}
	login.proxies = chatCfg.Proxies // its limit counts the client, as the WebSocket limits do
	chatCfg.Routes = login.routes()
	chatCfg.Collectors = login.collectors()
	if s.lua != nil {
		// Per script and event, and the shadow scripts' (scripting/metrics.go).
		chatCfg.Collectors = append(chatCfg.Collectors, s.lua.Collectors()...)
	}
	s.tls, err = newServerTLS(&cfg.Server, dataDir(cfg), log, nil)
	if err != nil {
		return err
	}
	var handshakeErrors prometheus.Counter // failed TLS handshakes (httpErrorLog)
	if s.tls != nil {
		handshakeErrors = newHandshakeErrors()
		chatCfg.Collectors = append(chatCfg.Collectors, handshakeErrors)
	}
	if s.tls != nil && s.tls.certs != nil {
		chatCfg.Collectors = append(chatCfg.Collectors, s.tls.certs.collectors()...)
	}
	connCap, err := newConnCap(&cfg.Server, log)
	if err != nil {
		return err
	}
	if connCap != nil {
		chatCfg.Collectors = append(chatCfg.Collectors, connCap.refused)
	}
	if s.cluster != nil {
		s.cluster.wire(&chatCfg, s.local, s.db) // validateConfig made sure a cluster node has a store
	}
	srv, err := chat.New(chatCfg, hooks, history)
	if err != nil {
		return fmt.Errorf("chat server: %w", err)
	}
	s.chat = srv
	if s.cluster != nil {
		s.cluster.start(srv)
		if err := s.cluster.startShared(srv); err != nil {
			return err
		}
		s.cluster.catchUp(ctx) // before the listeners: members find the replica current
	}
	if s.lua != nil {
		s.lua.Bind(srv)
		// Timers (chat.every) and the directory watcher; Close stops them.
		s.lua.Start(context.Background())
	}
	s.consoleRoutes() // `moonchat console` on the local socket (console_server.go)

	s.ln, err = net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s ([server] listen): %w", cfg.Server.Listen, err)
	}
	if s.tls != nil {
		// https:// and wss:// on this one listener; handshake_timeout
		// (ReadHeaderTimeout) bounds the TLS handshake too.
		s.ln = tls.NewListener(s.ln, s.tls.config)
	}
	s.http = &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: cfg.Server.HandshakeTimeout.D(),
		// The body too (a dribbled POST is cut like dribbled headers:
		// slowloris). A WebSocket is past it: the engine clears the
		// deadline once it has answered the upgrade.
		ReadTimeout:    cfg.Server.HandshakeTimeout.D(),
		IdleTimeout:    httpIdleTimeout,
		MaxHeaderBytes: httpMaxHeaderBytes,
		ErrorLog:       httpErrorLog(log, handshakeErrors),
	}
	if connCap != nil {
		s.http.ConnState = connCap.connState
	}

	if cfg.Server.Pprof != "" {
		s.pprofL, err = net.Listen("tcp", cfg.Server.Pprof)
		if err != nil {
			return fmt.Errorf("listen on %s ([server] pprof): %w", cfg.Server.Pprof, err)
		}
		s.pprof = &http.Server{
			Handler:           hostGuard(s.hosts, pprofMux()),
			ReadHeaderTimeout: cfg.Server.HandshakeTimeout.D(),
			ErrorLog:          httpErrorLog(log, nil),
		}
		log.Warn("pprof listening (no authentication: keep it on loopback)", "addr", s.pprofL.Addr().String())
	}

	if cfg.Admin.Listen != "" {
		s.adminL, err = net.Listen("tcp", cfg.Admin.Listen)
		if err != nil {
			return fmt.Errorf("listen on %s ([admin] listen): %w", cfg.Admin.Listen, err)
		}
		s.admin = &http.Server{
			Handler:           adminMux(srv.AdminHandler(), s.hosts, cfg.Admin.Token),
			ReadHeaderTimeout: cfg.Server.HandshakeTimeout.D(),
			IdleTimeout:       httpIdleTimeout,
			MaxHeaderBytes:    httpMaxHeaderBytes,
			ErrorLog:          httpErrorLog(log, nil),
		}
		log.Info("admin listening: the admin API, /metrics and /debug/pprof/ are served here, not on the main port",
			"addr", s.adminL.Addr().String(), "admin_api", cfg.Admin.Token != "", "protect_metrics", cfg.Admin.ProtectMetrics)
		if cfg.Admin.Token == "" {
			log.Warn("[admin] token is empty: /debug/pprof/ on the admin listener has no authentication (keep it on loopback)")
		}
	}
	return nil
}

// adminMux serves the [admin] listen address: the chat server's admin
// API and /metrics (admin, which checks the Host and the token itself),
// and /debug/pprof/ behind the Host check and, when token is set, the
// admin token.
func adminMux(admin http.Handler, hosts *ws.HostPolicy, token string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/debug/pprof/", hostGuard(hosts, requireBearer(token, pprofMux())))
	mux.Handle("/", admin)
	return mux
}

// requireBearer answers 401 to requests without "Authorization: Bearer
// token" (compared in constant time); token "" lets everything through.
func requireBearer(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := []byte(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="moonchat admin"`)
			http.Error(w, "admin token required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// openLocalSocket makes the Unix socket beside the store file with the
// routes that need file-level trust (localsock.go). Without it the chat
// works as before; only `moonchat history -direct` cannot read while the
// server runs, which the error line says.
func (s *server) openLocalSocket() {
	ls := newLocalSocket(localSocketPath(s.cfg), s.log)
	directRoutes(ls, s.db)
	if err := ls.listen(); err != nil {
		s.log.Error("local socket off: `moonchat history -direct` cannot read while this server runs", "err", err)
		return
	}
	s.local = ls
	s.log.Info("local socket (file-level access: direct-message history)", "path", ls.path)
}

// reload re-reads the scripts (SIGHUP), and before them the scripts'
// settings, [scripts.NAME], from the config file the server started with
// (its other keys need a restart). A config file that no longer loads
// keeps the settings the scripts run with (logged); a broken script keeps
// the old scripts running. The scripting engine logs the outcome, as one
// line naming the cause. SIGHUP also reloads the TLS certificate files
// ([server] tls_cert/tls_key; a failure keeps the certificate in use).
func (s *server) reload() {
	if s.tls != nil && s.tls.certs != nil {
		_ = s.tls.certs.reload("SIGHUP") // logs the outcome
	}
	if s.lua == nil {
		s.log.Info("SIGHUP: scripting is off, nothing to reload")
		return
	}
	if s.cfg.Source != builtinSource {
		cfg, err := loadConfig(s.cfg.Source)
		if err != nil {
			s.log.Error("SIGHUP: config not re-read; the scripts keep their [scripts] settings", "config", s.cfg.Source, "error", err)
		} else {
			if s.lua.SetScriptOptions(cfg.Scripts) {
				s.log.Info("SIGHUP: [scripts] settings changed", "config", s.cfg.Source)
			}
			if s.lua.SetShadow(cfg.Scripting.Shadow) {
				s.log.Info("SIGHUP: [scripting] shadow changed", "config", s.cfg.Source, "shadow", strings.Join(cfg.Scripting.Shadow, ","))
			}
		}
	}
	_ = s.lua.Reload("SIGHUP")
}

// disableAfter maps [scripting] disable_after onto
// scripting.Options.DisableAfter: the config's 0 (never) is the engine's
// negative, as the engine's 0 is its default.
func disableAfter(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// shutdown stops accepting, closes every client with 1001 and waits for
// them, all within shutdown_timeout.
func (s *server) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Server.ShutdownTimeout.D())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		// Closes the listener at once, then waits for plain HTTP requests.
		if err := s.http.Shutdown(ctx); err != nil {
			s.log.Warn("http shutdown", "err", err)
			_ = s.http.Close()
		}
	}()
	go func() {
		defer wg.Done()
		if err := s.chat.Shutdown(ctx); err != nil {
			s.log.Warn("chat shutdown", "err", err)
		}
	}()
	if s.admin != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.admin.Shutdown(ctx); err != nil {
				s.log.Warn("admin http shutdown", "err", err)
				_ = s.admin.Close()
			}
		}()
	}
	if s.local != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.local.shutdown(ctx) // and removes the socket file
		}()
	}
	if s.pprof != nil {
		_ = s.pprof.Close()
	}
	wg.Wait()
}

// close releases what open acquired, in reverse order. The store is
// closed last so that everything the chat server appended is flushed.
func (s *server) close() {
	if !s.serving {
		// open failed: nothing was served, stop the chat server at once
		// and close the listeners it opened (Serve did not take them).
		if s.chat != nil {
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Server.ShutdownTimeout.D())
			_ = s.chat.Shutdown(ctx)
			cancel()
		}
		for _, ln := range []net.Listener{s.ln, s.pprofL, s.adminL} {
			if ln != nil {
				_ = ln.Close()
			}
		}
		if s.local != nil {
			s.local.close()
		}
	}
	if s.cluster != nil {
		s.cluster.close() // the consumer stops before the store closes
	}
	if s.lua != nil {
		if err := s.lua.Close(); err != nil {
			s.log.Warn("close scripts", "err", err)
		}
	}
	if s.db != nil {
		if err := s.db.Close(); err != nil {
			s.log.Error("close history", "path", s.cfg.Store.Path, "err", err)
		} else {
			s.log.Info("history closed", "path", s.cfg.Store.Path)
		}
	}
}

// chatConfig hands the keys the chat server uses on to chat.Config, each
// to its one field, unchanged: chat.Config has no defaults of its own and
// means by 0 what config.toml means.
func chatConfig(cfg *Config, log *slog.Logger) chat.Config {
	c := chat.Config{
		AllowedOrigins: cfg.Server.AllowedOrigins,
		MaxConnections: cfg.Server.MaxConnections,
		DefaultRoom:    cfg.Chat.DefaultRoom,
		MaxNameLength:  cfg.Chat.MaxNameLength,
		MaxRooms:       cfg.Chat.MaxRooms,
		FloodRate:      cfg.Chat.FloodRate,
		FloodBurst:     cfg.Chat.FloodBurst,
		MaxTextBytes:   cfg.Chat.MaxTextBytes,
		Replay:         cfg.Chat.Replay,
		APILimit:       cfg.Chat.APILimit,
		Logger:         log,

		AnnounceBatchMembers: cfg.Chat.AnnounceBatchMembers,
		AnnounceInterval:     cfg.Chat.AnnounceInterval.D(),
		FloodRateAddr:        cfg.Chat.FloodRateAddr,
		FloodBurstAddr:       cfg.Chat.FloodBurstAddr,
		FloodRateAccount:     cfg.Chat.FloodRateAccount,
		FloodBurstAccount:    cfg.Chat.FloodBurstAccount,
		FloodStrikes:         cfg.Chat.FloodStrikes,
		FloodStrikeWindow:    cfg.Chat.FloodStrikeWindow.D(),
		DeleteOwnWindow:      cfg.Chat.DeleteOwnWindow.D(),
		DeliverOnHookFailure: cfg.Scripting.OnFailure == "deliver",
		RoomRules:            roomRules(cfg),
		GuestPrefix:          cfg.Auth.GuestPrefix,
		AdminToken:           cfg.Admin.Token,
		AdminSeparate:        cfg.Admin.Listen != "",
		MetricsNeedToken:     cfg.Admin.ProtectMetrics,
	}
	c.WS.MaxMessageBytes = int64(cfg.Server.MaxMessageBytes)
	c.WS.HandshakeTimeout = cfg.Server.HandshakeTimeout.D()
	c.WS.PingInterval = cfg.Server.PingInterval.D()
	c.WS.PingTimeout = cfg.Server.PingTimeout.D()
	c.WS.IdleTimeout = cfg.Server.IdleTimeout.D()
	c.WS.WriteTimeout = cfg.Server.WriteTimeout.D()
	c.WS.MaxQueueBytes = cfg.Server.MaxQueueBytes
	c.WS.CloseTimeout = cfg.Server.CloseTimeout.D()
	c.WS.Hixie76 = cfg.Server.LegacyHixie76
	c.WS.Compression = cfg.Server.Compression == "on"
	c.WS.CompressionThreshold = cfg.Server.CompressionThreshold
	if c.WS.CompressionThreshold == 0 {
		c.WS.CompressionThreshold = -1 // ws: negative = every message (0 there means its default)
	}
	c.WS.Hosts = answerHosts(&cfg.Server)
	c.WS.Logger = log
	return c
}

// storeOptions maps [store] onto store.Options.
func storeOptions(cfg *Config, log *slog.Logger, readOnly bool) store.Options {
	return store.Options{
		MaxPerRoom:    cfg.Store.MaxPerRoom,
		MaxAge:        cfg.Store.MaxAge.D(),
		PruneInterval: cfg.Store.PruneInterval.D(),
		ReadOnly:      readOnly,
		Logger:        log,
	}
}

// explainStoreError adds what the user should do to a store.Open error.
func explainStoreError(err error) error {
	switch {
	case errors.Is(err, store.ErrLocked):
		return fmt.Errorf("%w\nis another moonchat running? Stop it, or give this one another [store] path", err)
	case errors.Is(err, store.ErrCorrupt):
		return fmt.Errorf("%w\nthe file is damaged: move it away (the server then starts with empty history) or restore a backup", err)
	case errors.Is(err, store.ErrReplica):
		return fmt.Errorf("%w\nit is a cluster node's replica of the stream: only a server with [cluster] nats_url set opens it writable, "+
			"and a change made to it alone would set it apart from the other nodes (delete in a cluster through the chat or the admin API)", err)
	case errors.Is(err, store.ErrFormat):
		return fmt.Errorf("%w\nit was written by a newer moonchat: run that version", err)
	default:
		return err
	}
}

// scriptsFS picks where the scripts come from: [scripting] dir when it
// exists (returned as dir too, so the engine can reload from it), else the
// scripts built into the binary (dir "", nothing to watch).
func scriptsFS(cfg *Config, log *slog.Logger) (fsys fs.FS, dir string) {
	if scriptsDirExists(cfg) {
		fsys := os.DirFS(cfg.Scripting.Dir)
		if len(scriptNames(fsys)) == 0 {
			// The directory replaces the built-in scripts even when
			// empty: say so, it is easy to mistake for a broken install.
			log.Warn("scripts: the directory has no *.lua files, so no scripts run (remove the directory to run the built-in ones)",
				"dir", cfg.Scripting.Dir)
		}
		log.Info("scripts", "dir", cfg.Scripting.Dir, "reload", "on file change and SIGHUP")
		return fsys, cfg.Scripting.Dir
	}
	log.Info("scripts: directory not found, running the built-in default scripts (SIGHUP reloads nothing)",
		"dir", cfg.Scripting.Dir)
	return defaults.Scripts(), ""
}

func scriptsDirExists(cfg *Config) bool {
	info, err := os.Stat(cfg.Scripting.Dir)
	return err == nil && info.IsDir()
}

// scriptsSource names where the scripts come from, for messages.
func scriptsSource(cfg *Config) string {
	if scriptsDirExists(cfg) {
		return cfg.Scripting.Dir
	}
	return "built-in defaults"
}

// scriptNames lists the scripts at the top of fsys, for the log: its
// *.lua files but the tests (*_test.lua), which the engine does not load.
func scriptNames(fsys fs.FS) []string {
	names, _ := fs.Glob(fsys, "*.lua")
	return slices.DeleteFunc(names, scripting.IsTestScript)
}

// answerHosts is the list of Host names the server answers to besides the
// ones it always accepts (ws.HostPolicy): [server] hosts, plus the host of
// [server] listen when that is a name (an address is accepted anyway), plus
// [server] acme_domains (the names it gets certificates for).
func answerHosts(sc *ServerConfig) []string {
	hosts := slices.Clone(sc.Hosts)
	if !slices.Contains(hosts, "*") {
		hosts = append(hosts, sc.ACMEDomains...)
	}
	if h, _, err := net.SplitHostPort(sc.Listen); err == nil && h != "" && net.ParseIP(h) == nil && !slices.Contains(hosts, "*") {
		hosts = append(hosts, h)
	}
	return hosts
}

// logHosts says at start-up which Host names are answered to, and, when
// the server listens beyond loopback with no names configured, how other
// machines must address it.
func logHosts(log *slog.Logger, hosts *ws.HostPolicy, sc *ServerConfig, addr net.Addr) {
	log.Info("answering to Host", "hosts", hosts.String())
	if tcp, ok := addr.(*net.TCPAddr); ok && !tcp.IP.IsLoopback() && len(sc.Hosts) == 0 {
		log.Info("listening beyond loopback with [server] hosts empty: other machines must use this server's IP address (any other name gets 421); list the DNS names they use in [server] hosts")
	}
}

// hostGuard refuses requests whose Host hosts does not accept with 421
// (DNS rebinding: a loopback pprof listener would otherwise hand heap and
// CPU profiles to a foreign page).
func hostGuard(hosts *ws.HostPolicy, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := hosts.Check(r); err != nil {
			reason := err.Error()
			if he, ok := err.(*ws.HandshakeError); ok {
				reason = he.Reason
			}
			http.Error(w, reason, http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// pprofMux serves net/http/pprof on its own mux: importing the package
// also registers on http.DefaultServeMux, which moonchat never serves.
func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// writeFileAtomic writes data to path through a temporary file and a
// rename, so a reader polling for path never sees it half-written.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".moonchat-ready-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
