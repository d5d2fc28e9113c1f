package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// monitor samples the target's Stats and the process RSS while the load
// runs, and drives the progress bar.
type monitor struct {
	done chan struct{}
	wg   sync.WaitGroup

	mu          sync.Mutex
	maxRSS      uint64
	rssInProc   bool // the RSS is this whole process's (servers in-process)
	lastStats   Stats
	statsErrors int
}

const sampleEvery = 250 * time.Millisecond

func startMonitor(ctx context.Context, t Target, rec *recorder, progress io.Writer, total time.Duration) *monitor {
	m := &monitor{done: make(chan struct{})}
	var bar *progressbar.ProgressBar
	if progress != nil {
		bar = progressbar.NewOptions(int(total/time.Second),
			progressbar.OptionSetWriter(progress),
			progressbar.OptionSetDescription(t.Name()),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	m.sample(ctx, t, rec)
	m.wg.Go(func() {
		tick := time.NewTicker(sampleEvery)
		defer tick.Stop()
		for {
			select {
			case <-m.done:
				if bar != nil {
					bar.Finish()
				}
				return
			case <-tick.C:
				m.sample(ctx, t, rec)
				if bar != nil {
					el := rec.since(time.Now())
					bar.Describe(fmt.Sprintf("%-9s %6.0f ops/s", t.Name(), rec.recentRate(el)))
					bar.Set(int(min(el, total) / time.Second))
				}
			}
		}
	})
	return m
}

func (m *monitor) sample(ctx context.Context, t Target, rec *recorder) {
	sctx, cancel := context.WithTimeout(ctx, sampleEvery)
	st, err := t.Stats(sctx)
	cancel()
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.statsErrors++
		return // no RSS either: a child's would be taken for this process's
	}
	m.lastStats = st
	if st.HasQueueDepth {
		rec.sampleQueue(rec.since(time.Now()), st.QueueDepth)
	}
	rss := st.ServerRSSBytes
	if rss == 0 {
		rss, m.rssInProc = selfRSS(), true
	}
	m.maxRSS = max(m.maxRSS, rss)
}

func (m *monitor) stop() {
	close(m.done)
	m.wg.Wait()
}

// recentRate is the completion rate over the last full second.
func (r *recorder) recentRate(el time.Duration) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := int(el/time.Second) - 1
	if i < 0 || i >= len(r.seconds) {
		return 0
	}
	return float64(r.seconds[i].ops)
}

// selfRSS is this process's resident set size (VmRSS), 0 where /proc is
// missing.
func selfRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// Machine describes where the benchmark ran.
type Machine struct {
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Kernel    string `json:"kernel,omitempty"`
	MemTotal  string `json:"mem_total,omitempty"`
}

func machineInfo() Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				m.MemTotal = strings.TrimSpace(rest)
				break
			}
		}
	}
	return m
}
