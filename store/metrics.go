package store

import "github.com/prometheus/client_golang/prometheus"

// The store's /metrics series. DB is a prometheus.Collector: the chat
// server registers a History that is one in its own registry (see
// chat.History), so these appear beside the server's series with no
// wiring in cmd/moonchat and no second copy of the counts. They are read
// from the DB's own counters at scrape time, so the read and commit paths
// pay nothing for them. docs/protocol.md lists them.

// Descriptions of the series; immutable after init.
var (
	corruptRecordsDesc = prometheus.NewDesc("moonchat_store_corrupt_records_total",
		"Stored message records (and owned-name and moderation entries) that failed verification (checksum, decoding, key) when read; they are not served. Each is counted once.",
		nil, nil)
	commitsDesc = prometheus.NewDesc("moonchat_store_commits_total",
		"Write transactions (each one fsync) of the history group committer.",
		nil, nil)
)

// Describe sends the descriptions of the store's series
// (prometheus.Collector).
func (db *DB) Describe(ch chan<- *prometheus.Desc) {
	ch <- corruptRecordsDesc
	ch <- commitsDesc
}

// Collect sends the store's series with their current values
// (prometheus.Collector): moonchat_store_corrupt_records_total
// (CorruptRecords) and moonchat_store_commits_total (Stats().Commits).
func (db *DB) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(corruptRecordsDesc, prometheus.CounterValue, float64(db.CorruptRecords()))
	ch <- prometheus.MustNewConstMetric(commitsDesc, prometheus.CounterValue, float64(db.Stats().Commits))
}
