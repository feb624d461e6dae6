package chat

import "net/http"

// This file lends the external tests (package chat_test, which use
// chattest's doubles) the few internals they set, size or record by.

// FanoutMinMembers is the smallest room whose broadcasts the fan-out
// workers share (fanoutMinMembers).
const FanoutMinMembers = fanoutMinMembers

// WithFanout returns cfg with workers sweepers per big room (-1: the
// room goroutine writes every broadcast itself) for rooms of minMembers
// or more (0: FanoutMinMembers), settings only tests have.
func WithFanout(cfg Config, workers, minMembers int) Config {
	cfg.fanoutWorkers, cfg.fanoutMin = workers, minMembers
	return cfg
}

// ServeRooms is the GET /api/rooms handler itself, for tests of the
// handler whatever the router in server.go does.
func (s *Server) ServeRooms(w http.ResponseWriter, r *http.Request) { s.serveRooms(w, r) }

// RenderIndex is renderIndex: the page template filled in for a default
// room.
var RenderIndex = renderIndex

// Queued returns how many operations wait in room's queue (0 when the
// room does not exist), so that a test can line operations up behind one
// the room goroutine is held in.
func (s *Server) Queued(room string) int {
	s.mu.Lock()
	r := s.rooms[room]
	s.mu.Unlock()
	if r == nil {
		return 0
	}
	r.qmu.Lock()
	defer r.qmu.Unlock()
	return len(r.queue)
}

// MetricsProbe records chosen samples straight into a few of a server's
// series, so that a test can check the text /metrics writes for known
// values: the message path would observe timings a test cannot choose.
type MetricsProbe struct {
	// HookMessage observes a message hook's duration, in seconds.
	HookMessage func(seconds float64)
	// AppendTime observes a History.Append's duration, in seconds.
	AppendTime func(seconds float64)
	// BatchSize observes the number of chat messages in a room batch.
	BatchSize func(messages float64)
	// MessagesIn adds n to moonchat_messages_in_total.
	MessagesIn func(n uint64)
}

// Probe returns the MetricsProbe of s's own series.
func (s *Server) Probe() MetricsProbe {
	m := &s.metrics
	return MetricsProbe{
		HookMessage: m.hookMessage.observe,
		AppendTime:  m.appendTime.observe,
		BatchSize:   m.batchSize.observe,
		MessagesIn:  m.messagesIn.Add,
	}
}
