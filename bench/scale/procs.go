package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is one child process of the run: the NATS server, a moonchat node
// or a load worker. Its output goes to a log file in the run's directory.
// It is started with Pdeathsig, so it dies with the harness even when the
// harness itself is killed; stop ends it otherwise.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string        // path of its log file
	done chan struct{} // closed when it exited
	err  error         // from Wait, valid after done
}

// startProc starts bin with args, its stdout and stderr in dir/NAME.log.
// stdin and stdout, when not nil, are the child's ends of pipes: they are
// passed to it as they are (no copying goroutine that Wait would wait
// for) and closed here once it started.
func startProc(dir, name string, stdin, stdout *os.File, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if stdin != nil {
		cmd.Stdin = stdin
		defer stdin.Close()
	}
	if stdout != nil {
		cmd.Stdout = stdout
		defer stdout.Close()
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to grace, then kills the process and
// waits for it.
func (p *proc) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tail returns the last n lines of the process's log (for errors).
func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitReady waits until the file path holds the address the process
// wrote there (moonchat serve -ready-file), the process exits, or the
// timeout passes.
func (p *proc) waitReady(path string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		if b, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(b)) > 0 {
			return string(bytes.TrimSpace(b)), nil
		}
		if p.exited() {
			return "", fmt.Errorf("%s exited before listening (%v):\n%s", p.name, p.err, p.tail(20))
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s: not listening after %v:\n%s", p.name, timeout, p.tail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitTCP waits until addr accepts TCP connections, the process exits,
// or the timeout passes.
func (p *proc) waitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited before listening (%v):\n%s", p.name, p.err, p.tail(20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %s not accepting after %v:\n%s", p.name, addr, timeout, p.tail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// memory is one reading of a process's resident memory (VmRSS) and
// open descriptors.
type memory struct {
	RSS int64 `json:"rss_bytes"`
	FDs int   `json:"fds"`
}

// sample reads /proc/PID/status and counts /proc/PID/fd.
func sample(pid int) (memory, error) {
	var m memory
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return m, err
	}
	for _, l := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				m.RSS = kb << 10
			}
		}
	}
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err == nil {
		m.FDs = len(fds)
	}
	return m, nil
}

// workerLine is a line a moonchat-bench -worker prints (the fields of
// loadgen.WorkerLine this harness reads).
type workerLine struct {
	Type          string   `json:"type"`
	Connections   int      `json:"connections"`
	ConnectErrors int      `json:"connect_errors"`
	ConnectSec    float64  `json:"connect_s"`
	Handshake     pct      `json:"handshake_ms"`
	Errors        []string `json:"errors"`
	Wave          int      `json:"wave"`
	SentNS        int64    `json:"sent_ns"`
	Seen          int      `json:"seen"`
	Disconnects   int      `json:"disconnects"`
	Micros        []int64  `json:"us"`
	Error         string   `json:"error"`
}

// pct is loadgen's Percents (milliseconds).
type pct struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// worker is one moonchat-bench -worker process and its command pipe.
type worker struct {
	*proc
	node    int // index of the node its clients connect to
	clients int
	in      *os.File
	lines   chan workerLine // closed when its output ends
	conns   int             // connected clients, from its "connected" line
	first   workerLine
}

var errWorkerGone = errors.New("worker output ended")

// startWorker starts a worker; its lines are decoded by a goroutine that
// ends with its output.
func startWorker(dir, name, bin string, node, clients int, args ...string) (*worker, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	p, err := startProc(dir, name, inR, outW, bin, args...)
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, err
	}
	w := &worker{proc: p, node: node, clients: clients, in: inW, lines: make(chan workerLine, 4)}
	// The decoder ends when the worker's stdout does (it exited).
	go func() {
		defer close(w.lines)
		defer outR.Close()
		sc := bufio.NewScanner(outR)
		sc.Buffer(make([]byte, 64<<10), 64<<20) // arrivals lines hold one number per client
		for sc.Scan() {
			var l workerLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				l = workerLine{Type: "error", Error: fmt.Sprintf("undecodable line %q", sc.Text())}
			}
			w.lines <- l
		}
		_, _ = io.Copy(io.Discard, outR) // unblock the writer after a scanner error
	}()
	return w, nil
}

// next returns the worker's next line within timeout.
func (w *worker) next(timeout time.Duration) (workerLine, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case l, ok := <-w.lines:
		if !ok {
			return l, fmt.Errorf("%s: %w (%v):\n%s", w.name, errWorkerGone, w.err, w.tail(10))
		}
		if l.Type == "error" {
			return l, fmt.Errorf("%s: %s", w.name, l.Error)
		}
		return l, nil
	case <-t.C:
		return workerLine{}, fmt.Errorf("%s: no answer within %v", w.name, timeout)
	}
}

// ask sends one command and returns the answer.
func (w *worker) ask(cmd string) (workerLine, error) {
	if _, err := io.WriteString(w.in, cmd+"\n"); err != nil {
		return workerLine{}, fmt.Errorf("%s: %s: %w", w.name, cmd, err)
	}
	return w.next(30 * time.Second)
}

// quit asks the worker to close its clients and exit, and waits up to
// grace before stopping it.
func (w *worker) quit(grace time.Duration) {
	if !w.exited() {
		_, _ = io.WriteString(w.in, "quit\n")
		_ = w.in.Close()
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-w.done:
		case <-t.C:
		}
	}
	w.stop(5 * time.Second)
	for range w.lines { // what it printed unasked: its decoder ends with its output
	}
}
