package chat

// This file lends the external tests (package chat_test, which use
// chattest's doubles) the few internals they set or size themselves by.

// FanoutMinMembers is the smallest room whose broadcasts the fan-out
// workers share (fanoutMinMembers).
const FanoutMinMembers = fanoutMinMembers

// WithFanoutWorkers returns cfg with n sweepers per big room (-1: the room
// goroutine writes every broadcast itself), a setting only tests have.
func WithFanoutWorkers(cfg Config, n int) Config {
	cfg.fanoutWorkers = n
	return cfg
}
