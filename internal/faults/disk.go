package faults

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Disk is the fault state of one server's Raft log store: a delay added to
// every write (a slow fsync) and a stall that holds writes until released
// (a disk that stops answering, as in etcd #15247).
type Disk struct {
	mu      sync.Mutex
	delay   time.Duration
	stalled chan struct{} // non-nil while stalled; closed on release
}

// SetDelay slows every log write by d.
func (d *Disk) SetDelay(delay time.Duration) {
	d.mu.Lock()
	d.delay = delay
	d.mu.Unlock()
}

// Stall makes log writes block until Release.
func (d *Disk) Stall() {
	d.mu.Lock()
	if d.stalled == nil {
		d.stalled = make(chan struct{})
	}
	d.mu.Unlock()
}

// Release ends a stall and removes the delay.
func (d *Disk) Release() {
	d.mu.Lock()
	if d.stalled != nil {
		close(d.stalled)
		d.stalled = nil
	}
	d.delay = 0
	d.mu.Unlock()
}

func (d *Disk) wait() {
	d.mu.Lock()
	delay, stalled := d.delay, d.stalled
	d.mu.Unlock()
	if stalled != nil {
		<-stalled
	}
	if delay > 0 {
		time.Sleep(delay)
	}
}

// LogStore wraps a Raft log store; writes go through the Disk's faults
// before reaching it. Reads are not slowed: the pattern under test is a
// leader stuck persisting its own entries.
type LogStore struct {
	raft.LogStore
	disk *Disk
}

func (l *LogStore) StoreLog(log *raft.Log) error {
	l.disk.wait()
	return l.LogStore.StoreLog(log)
}

func (l *LogStore) StoreLogs(logs []*raft.Log) error {
	l.disk.wait()
	return l.LogStore.StoreLogs(logs)
}
