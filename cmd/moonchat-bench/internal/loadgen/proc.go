package loadgen

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/PID/stat; it is
// 100 on every Linux architecture Go supports (sysconf needs cgo).
const clockTicks = 100

// procSample is one reading of a process's CPU time and memory.
type procSample struct {
	at      time.Time
	cpu     time.Duration // user + system
	rss     int64         // VmRSS in bytes
	rssPeak int64         // VmHWM in bytes
}

// sampleProc reads /proc/PID/stat and /proc/PID/status.
func sampleProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("sample server: %w", err)
	}
	// The command name may hold spaces and parentheses: fields start
	// after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("sample server: malformed /proc/%d/stat", pid)
	}
	f := bytes.Fields(stat[i+1:])
	if len(f) < 13 {
		return s, fmt.Errorf("sample server: short /proc/%d/stat", pid)
	}
	// f[0] is field 3 (state): utime is field 14, stime 15.
	ut, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	st, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("sample server: bad cpu times in /proc/%d/stat", pid)
	}
	s.cpu = time.Duration(ut+st) * time.Second / clockTicks

	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("sample server: %w", err)
	}
	s.rss = statusKB(status, "VmRSS:")
	s.rssPeak = statusKB(status, "VmHWM:")
	return s, nil
}

// sampleProcs samples each of pids (a zero sample for a process that
// cannot be read).
func sampleProcs(pids []int) []procSample {
	out := make([]procSample, len(pids))
	for i, pid := range pids {
		out[i], _ = sampleProc(pid)
	}
	return out
}

// statusKB returns a "Key:   123 kB" line of /proc/PID/status in bytes.
func statusKB(status []byte, key string) int64 {
	i := bytes.Index(status, []byte(key))
	if i < 0 {
		return 0
	}
	line := status[i+len(key):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	f := bytes.Fields(line)
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseInt(string(f[0]), 10, 64)
	return v << 10
}

// cpuPercent is the CPU used between two samples, 100 = one core.
func cpuPercent(a, b procSample) float64 {
	wall := b.at.Sub(a.at)
	if wall <= 0 {
		return 0
	}
	return float64(b.cpu-a.cpu) / float64(wall) * 100
}
