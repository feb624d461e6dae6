package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAfterSignal: after a signal the default action is restored; a
// command without its own bounded shutdown that does not return within the
// grace period makes the process exit 1, saying why.
func TestAfterSignal(t *testing.T) {
	t.Run("stuck command", func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(errors.New("terminated signal received"))
		var stderr bytes.Buffer
		restored, code := false, -1
		afterSignal(ctx, make(chan struct{}), func() { restored = true }, true, time.Millisecond, &stderr, func(c int) { code = c })
		if !restored || code != 1 || !strings.Contains(stderr.String(), "terminated signal received, and the command did not stop within 1ms") {
			t.Fatalf("restored %v, exit %d, stderr %q", restored, code, stderr.String())
		}
	})
	t.Run("command returned", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		finished := make(chan struct{})
		close(finished)
		afterSignal(ctx, finished, func() {}, true, time.Hour, &bytes.Buffer{}, func(c int) { t.Errorf("exit(%d) for a finished command", c) })
	})
	t.Run("own shutdown", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		restored := false
		afterSignal(ctx, make(chan struct{}), func() { restored = true }, false, time.Nanosecond, &bytes.Buffer{}, func(c int) { t.Errorf("exit(%d) for serve", c) })
		if !restored {
			t.Error("default signal action not restored")
		}
	})
}

// TestProcessCheckSIGTERM (issue 10.13): `moonchat check` on scripts
// whose top level never ends stops on SIGTERM, at once and with a non-zero
// status saying it was interrupted. Each script runs into the load time
// limit (1s) on its own; there are ten of them, so that a check that did
// not pass the signal on to the scripts would outlive the signal grace
// period of main (3s) and be ended by it, saying so, instead.
func TestProcessCheckSIGTERM(t *testing.T) {
	dir := t.TempDir()
	scripts := filepath.Join(dir, "scripts")
	if err := os.Mkdir(scripts, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		src := fmt.Sprintf("chat.log(\"looping %d\")\nwhile true do end\n", i)
		if err := os.WriteFile(filepath.Join(scripts, fmt.Sprintf("loop%d.lua", i)), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(t, dir, nil)
	cmd := exec.Command(moonchatBinary(t), "check", "-config", cfg)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit code is read from ProcessState
		close(done)
	}()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(waitLong)
	for !strings.Contains(stderr.String(), "looping") {
		if time.Now().After(deadline) {
			t.Fatalf("the script did not start within %v: stderr %q", waitLong, stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(waitLong):
		t.Fatalf("check still runs %v after SIGTERM", waitLong)
	}
	if code := cmd.ProcessState.ExitCode(); code == 0 || code == -1 {
		t.Errorf("exit code %d, want a non-zero status from the process itself", code)
	}
	if !strings.Contains(stderr.String(), "moonchat check: interrupted (terminated signal received)") ||
		strings.Contains(stderr.String(), "did not stop") || stdout.String() != "" {
		t.Errorf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
}
