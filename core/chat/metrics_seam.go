package chat

import "io"

// MetricsWriter is implemented by a History that has series of its own for
// /metrics (package store: moonchat_store_*). It is separate from History,
// like RoomLister, so that any History still plugs in; the chat server
// type-asserts it and appends what it writes after its own series.
type MetricsWriter interface {
	// WriteMetrics writes whole metric families (# HELP, # TYPE, samples)
	// in the Prometheus text format, version 0.0.4, under names the chat
	// server does not use.
	WriteMetrics(w io.Writer) error
}

// writeHistoryMetrics appends the History's own series, if it has any.
func (s *Server) writeHistoryMetrics(w io.Writer) {
	mw, ok := s.history.(MetricsWriter)
	if !ok {
		return
	}
	if err := mw.WriteMetrics(w); err != nil {
		s.log.Warn("chat: /metrics: writing the history's series failed", "err", err)
	}
}
