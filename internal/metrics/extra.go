package metrics

import (
	"crypto/tls"
	"crypto/x509"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics added for the alert rules in deploy/prometheus and the status
// page's health charts: fsync latency, replicated time, retry-after given,
// and certificate expiry.

var (
	descReplicated = prometheus.NewDesc(ns+"_replicated_time_seconds",
		"This server's replicated (lease) clock: the leader's running clock, or the time of the last applied entry. Should advance at the rate of wall time.", nil, nil)
	descCertExpiry = prometheus.NewDesc(ns+"_tls_cert_expiry_timestamp_seconds",
		"Unix time at which the certificate this server presents expires, by use (api or raft).", []string{"use", "subject"}, nil)
)

// WrapLogStore times every StoreLogs of the Raft log store (one transaction,
// one fsync each: see raftnode/boltstore) into leasehold_fsync_seconds and
// the status page's series. Use it as raftnode.Config.WrapLogStore.
func (m *Metrics) WrapLogStore(s raft.LogStore) raft.LogStore { return &timedStore{LogStore: s, m: m} }

type timedStore struct {
	raft.LogStore
	m *Metrics
}

func (t *timedStore) StoreLog(l *raft.Log) error { return t.StoreLogs([]*raft.Log{l}) }

func (t *timedStore) StoreLogs(logs []*raft.Log) error {
	start := time.Now()
	err := t.LogStore.StoreLogs(logs)
	d := time.Since(start)
	t.m.fsyncLatency.Observe(d.Seconds())
	t.m.Series.AddFsync(start.Add(d), d)
	return err
}

// AddCertificates exports the expiry of the certificate cfg presents, read
// at every scrape (so a reloaded certificate shows at once), under use. A
// nil cfg (TLS off) adds nothing. One collector serves every use: a metric
// name may be registered once.
func (m *Metrics) AddCertificates(use string, cfg *tls.Config) {
	if cfg == nil {
		return
	}
	m.certsMu.Lock()
	defer m.certsMu.Unlock()
	if m.certs == nil {
		m.certs = &certCollector{}
		m.Registry.MustRegister(m.certs)
	}
	m.certs.mu.Lock()
	m.certs.uses = append(m.certs.uses, certUse{use, cfg})
	m.certs.mu.Unlock()
}

type certUse struct {
	use string
	cfg *tls.Config
}

type certCollector struct {
	mu   sync.Mutex
	uses []certUse
}

func (c *certCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descCertExpiry }

func (c *certCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	uses := c.uses
	c.mu.Unlock()
	for _, u := range uses {
		certs := u.cfg.Certificates
		if u.cfg.GetCertificate != nil {
			if crt, err := u.cfg.GetCertificate(&tls.ClientHelloInfo{}); err == nil && crt != nil {
				certs = []tls.Certificate{*crt}
			}
		}
		for _, crt := range certs {
			leaf := crt.Leaf
			if leaf == nil && len(crt.Certificate) > 0 {
				leaf, _ = x509.ParseCertificate(crt.Certificate[0])
			}
			if leaf == nil {
				continue
			}
			ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, float64(leaf.NotAfter.Unix()), u.use, leaf.Subject.CommonName)
		}
	}
}
