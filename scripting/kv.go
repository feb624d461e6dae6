package scripting

// KV is the persistent key-value storage behind the Lua chat.kv table. Each
// script (by file name, e.g. "karma.lua") has its own namespace. Package
// store implements it; tests may use an in-memory map.
type KV interface {
	// Get returns the value of key in script's namespace and whether it exists.
	Get(script, key string) (value string, ok bool, err error)
	// Set stores value under key in script's namespace, durably.
	Set(script, key, value string) error
	// Delete removes key from script's namespace; deleting a missing key is not an error.
	Delete(script, key string) error
	// Keys lists the keys of script's namespace in byte order.
	Keys(script string) ([]string, error)
}
