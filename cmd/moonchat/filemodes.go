package main

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"strings"
)

// warnFileModes logs, once at start-up, a warning for each secret-bearing
// file that users other than the server's can read: the config file when
// it holds [auth] jwt_secret or [admin] token (whoever reads them can
// mint tokens for any account, or use the admin API), and the database
// (every room's history, unencrypted). moonchat does not change modes it
// did not set; the operator decides (docs/security.md, "Files"). A file
// that cannot be inspected is warned about too: the check could not be
// made.
func warnFileModes(cfg *Config, log *slog.Logger) {
	if cfg.Source != builtinSource && (cfg.Auth.JWTSecret != "" || cfg.Admin.Token != "") {
		var holds []string
		if cfg.Auth.JWTSecret != "" {
			holds = append(holds, "[auth] jwt_secret")
		}
		if cfg.Admin.Token != "" {
			holds = append(holds, "[admin] token")
		}
		warnIfShared(log, cfg.Source, "the config file holds secrets but is readable by group or others: chmod 600 it", "holds", strings.Join(holds, ", "))
	}
	if cfg.Store.Path != "" {
		warnIfShared(log, cfg.Store.Path, "the database (every room's history) is readable by group or others: chmod 600 it")
	}
}

// warnIfShared logs msg with path and its mode when path's permission
// bits give group or others any access.
func warnIfShared(log *slog.Logger, path, msg string, args ...any) {
	fi, err := os.Stat(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			log.Warn("cannot check the mode of a file holding secrets", "path", path, "err", err)
		}
		return
	}
	if mode := fi.Mode().Perm(); mode&0o077 != 0 {
		log.Warn(msg, append([]any{"path", path, "mode", mode.String()}, args...)...)
	}
}
