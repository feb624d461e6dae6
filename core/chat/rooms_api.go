package chat

// RoomStat describes one room's stored history, as GET /api/rooms reports
// it.
type RoomStat struct {
	Name string
	// Count is the number of messages stored in the room.
	Count int
	// FirstID is the oldest stored message's ID (0 when Count is 0);
	// LastID is the newest ID ever assigned in the room, which stays when
	// the newest messages are redacted or pruned.
	FirstID, LastID uint64
}

// RoomLister is an optional interface of a History: one that implements it
// can list its rooms, which GET /api/rooms needs. It is separate from
// History so that a History without a room index (a test double, a remote
// store) still plugs in; the chat server type-asserts it.
type RoomLister interface {
	// RoomStats lists every room that has ever stored a message, sorted
	// by name.
	RoomStats() ([]RoomStat, error)
}
