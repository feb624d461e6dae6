package main

import (
	"github.com/moonchat/moonchat/cluster"
	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/scripting"
	"github.com/moonchat/moonchat/store"
)

// The store and the Lua layer stand side by side: neither imports the
// other, and this command wires the one into the other (serve.go hands the
// *store.DB to scripting.Options.KV). The compile-time check that the
// store is what the scripts expect therefore lives here, where both are
// known.
var _ scripting.KV = (*store.DB)(nil)

// Likewise in cluster mode (cluster_wiring.go): the room log is the chat
// server's Broker as it is, and the store is the consumer's replica.
var (
	_ chat.Broker = (*cluster.Log)(nil)
	_ replica     = (*store.DB)(nil)
)
