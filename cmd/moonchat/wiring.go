package main

import (
	"github.com/moonchat/moonchat/scripting"
	"github.com/moonchat/moonchat/store"
)

// The store and the Lua layer stand side by side: neither imports the
// other, and this command wires the one into the other (serve.go hands the
// *store.DB to scripting.Options.KV). The compile-time check that the
// store is what the scripts expect therefore lives here, where both are
// known.
var _ scripting.KV = (*store.DB)(nil)
