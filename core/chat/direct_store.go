package chat

import (
	"net/url"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"
)

// The direct-message state of the server (issue 14): the index of
// connected accounts' connections, the per-conversation locks, the
// conversations kept in memory (any with a guest on one side) and, when
// the History cannot list conversations, the ones of the process's life.
// The engine that uses them is direct.go.

// dmSide is one side of a conversation: an account, a guest's one
// connection (a guest's conversations last for its session), or in a
// cluster a guest connected to another node (remote, named by its node
// and session there; rname is its name when this node last knew it).
type dmSide struct {
	account string
	guest   *member // nil for an account
	remote  remoteKey
	rname   string
}

// isRemote reports whether d is another node's guest.
func (d dmSide) isRemote() bool { return d.remote.node != "" }

// isGuest reports whether d is a guest, of this node or another.
func (d dmSide) isGuest() bool { return d.guest != nil || d.isRemote() }

// key is the side's part of an in-memory conversation key: "a" and the
// escaped account id, "g" and the guest's session id, or "r", the
// escaped node and the session there for another node's guest.
func (d dmSide) key() string {
	switch {
	case d.guest != nil:
		return "g" + strconv.FormatUint(d.guest.id, 10)
	case d.isRemote():
		return "r" + url.QueryEscape(d.remote.node) + "." + strconv.FormatUint(d.remote.session, 10)
	}
	return "a" + url.QueryEscape(d.account)
}

// same reports whether d and e are the same user.
func (d dmSide) same(e dmSide) bool {
	switch {
	case d.guest != nil || e.guest != nil:
		return d.guest == e.guest
	case d.isRemote() || e.isRemote():
		return d.remote == e.remote
	}
	return d.account == e.account
}

// memConvPrefix starts the key of a conversation kept in memory. It is a
// conversation key for IsConversation (so every room path refuses it as
// it does an account's) but never a ConversationKey: '|' is escaped in
// those, so ParseConversationKey refuses it and no account pair can
// collide with it.
const memConvPrefix = conversationPrefix + "|"

// memConvKey is the key of the in-memory conversation of a and b (the
// same either way round).
func memConvKey(a, b dmSide) string {
	ka, kb := a.key(), b.key()
	if kb < ka {
		ka, kb = kb, ka
	}
	return memConvPrefix + ka + "|" + kb
}

// stored reports whether the conversation of a and b is kept by the
// History: between two accounts, when the server has one.
func (s *Server) storedConv(a, b dmSide) bool {
	return !a.isGuest() && !b.isGuest() && s.history != nil
}

// convKey is the conversation key of a and b: ConversationKey for two
// accounts, memConvKey when a guest takes part.
func convKey(a, b dmSide) string {
	if !a.isGuest() && !b.isGuest() {
		return ConversationKey(a.account, b.account)
	}
	return memConvKey(a, b)
}

// memMsg is one message of an in-memory conversation and which side
// sent it.
type memMsg struct {
	Message
	fromSide int
}

// memConv is a conversation kept in memory: the newest Config.APILimit
// messages, oldest first, with ids that grow by one per message.
type memConv struct {
	key    string
	sides  [2]dmSide
	msgs   []memMsg
	lastID uint64
}

// convTrack is what the process knows of an account's stored
// conversation when the History cannot list them (ConversationLister).
type convTrack struct {
	key, peer string
	count     int
	lastID    uint64
	lastTime  time.Time
}

// directState is the server's direct-message state.
//
// Invariants:
//   - byAccount is guarded by Server.mu and changed with Server.sessions
//     (OnOpen, OnClose): an account's connections, joined or joining, so
//     that a delivery does not scan every session;
//   - mu guards the rest and is a leaf lock (nothing else is taken under
//     it); a conversation's lock (convLock) is taken without mu held and
//     is held around Append and the hand-off of its deliveries only;
//   - a memConv exists only while none of its guests' connections has
//     closed (member.gone is set before dropGuest takes mu, and append
//     refuses a gone guest under mu). One with another node's guest
//     (direct_relay.go) always has a guest of this node too and ends with
//     it at the latest; it ends when the other node's guest leaves the
//     cluster's roster (dropRemote), unless its relayed message raced
//     with that leave;
//   - tracks is used only when the History is no ConversationLister.
type directState struct {
	byAccount map[string][]*member

	mu      sync.Mutex
	locks   map[string]*convLock
	mem     map[string]*memConv
	byGuest map[uint64][]string              // guest session → its in-memory conversations
	byRem   map[remoteKey][]string           // another node's guest → this node's conversations with it
	byAcct  map[string][]string              // account → its in-memory conversations
	tracks  map[string]map[string]*convTrack // account → key → what was stored
}

// convLock is one conversation's lock and how many wait for or hold it.
type convLock struct {
	mu sync.Mutex
	n  int
}

// lock takes key's conversation lock; the returned func releases it.
func (d *directState) lock(key string) func() {
	d.mu.Lock()
	if d.locks == nil {
		d.locks = make(map[string]*convLock)
	}
	l := d.locks[key]
	if l == nil {
		l = &convLock{}
		d.locks[key] = l
	}
	l.n++
	d.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		d.mu.Lock()
		if l.n--; l.n == 0 {
			delete(d.locks, key)
		}
		d.mu.Unlock()
	}
}

// addConn and removeConn keep byAccount; Server.mu must be held.
func (d *directState) addConn(m *member) {
	if m.account == "" {
		return
	}
	if d.byAccount == nil {
		d.byAccount = make(map[string][]*member)
	}
	d.byAccount[m.account] = append(d.byAccount[m.account], m)
}

func (d *directState) removeConn(m *member) {
	if m.account == "" {
		return
	}
	list := removeMember(d.byAccount[m.account], m)
	if len(list) == 0 {
		delete(d.byAccount, m.account)
	} else {
		d.byAccount[m.account] = list
	}
}

// conns returns the connections of side (Server.mu must be held): every
// connection of an account, or the guest's one while it is open.
func (d *directState) conns(side dmSide, out []*member) []*member {
	switch {
	case side.guest != nil:
		if !side.guest.gone.Load() {
			out = append(out, side.guest)
		}
		return out
	case side.isRemote():
		return out // on its own node
	}
	return append(out, d.byAccount[side.account]...)
}

// appendMem stores msg, sent by a to b, in their in-memory conversation,
// giving it the next id; it keeps the newest limit messages. It reports
// false when a guest of the conversation has gone (its conversations are
// dropped with its session).
func (d *directState) appendMem(a, b dmSide, msg *Message, limit int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, side := range [2]dmSide{a, b} {
		if side.guest != nil && side.guest.gone.Load() {
			return false
		}
	}
	key := memConvKey(a, b)
	c := d.mem[key]
	if c == nil {
		if d.mem == nil {
			d.mem = make(map[string]*memConv)
			d.byGuest = make(map[uint64][]string)
			d.byRem = make(map[remoteKey][]string)
			d.byAcct = make(map[string][]string)
		}
		c = &memConv{key: key, sides: [2]dmSide{a, b}}
		d.mem[key] = c
		for _, side := range dedupSides(a, b) {
			switch {
			case side.guest != nil:
				d.byGuest[side.guest.id] = append(d.byGuest[side.guest.id], key)
			case side.isRemote():
				d.byRem[side.remote] = append(d.byRem[side.remote], key)
			default:
				d.byAcct[side.account] = append(d.byAcct[side.account], key)
			}
		}
	}
	from := 0
	if !c.sides[0].same(a) {
		from = 1 // c was made with the sides the other way round
	}
	c.lastID++
	msg.ID = c.lastID
	c.msgs = append(c.msgs, memMsg{Message: *msg, fromSide: from})
	if len(c.msgs) > limit {
		n := copy(c.msgs, c.msgs[len(c.msgs)-limit:])
		clear(c.msgs[n:])
		c.msgs = c.msgs[:n]
	}
	return true
}

// dedupSides returns a and b, or a alone for a note to self.
func dedupSides(a, b dmSide) []dmSide {
	if a.same(b) {
		return []dmSide{a}
	}
	return []dmSide{a, b}
}

// dropGuest forgets the in-memory conversations of guest m, whose
// connection closed: for both sides (an account's conversation with a
// guest lasts for the guest's session).
func (d *directState) dropGuest(m *member) {
	if m.account != "" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dropConvs(d.byGuest[m.id], dmSide{guest: m})
	delete(d.byGuest, m.id)
}

// dropRemote forgets this node's in-memory conversations with another
// node's guest k, which left the cluster's roster (RemoteLeft).
func (d *directState) dropRemote(k remoteKey) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dropConvs(d.byRem[k], dmSide{remote: k})
	delete(d.byRem, k)
}

// dropConvs deletes the conversations keys of gone (whose own index the
// caller deletes) and takes them out of the other sides' indexes; d.mu
// is held.
func (d *directState) dropConvs(keys []string, gone dmSide) {
	for _, key := range keys {
		c := d.mem[key]
		delete(d.mem, key)
		if c == nil {
			continue
		}
		for _, side := range c.sides {
			switch {
			case side.same(gone):
			case side.guest != nil:
				d.byGuest[side.guest.id] = slices.DeleteFunc(d.byGuest[side.guest.id], func(k string) bool { return k == key })
				if len(d.byGuest[side.guest.id]) == 0 {
					delete(d.byGuest, side.guest.id)
				}
			case side.isRemote():
				d.byRem[side.remote] = slices.DeleteFunc(d.byRem[side.remote], func(k string) bool { return k == key })
				if len(d.byRem[side.remote]) == 0 {
					delete(d.byRem, side.remote)
				}
			default:
				d.byAcct[side.account] = slices.DeleteFunc(d.byAcct[side.account], func(k string) bool { return k == key })
				if len(d.byAcct[side.account]) == 0 {
					delete(d.byAcct, side.account)
				}
			}
		}
	}
}

// memStats describes the in-memory conversations of side: the peer side
// of each, its count, last id and time.
type memStat struct {
	peer     dmSide
	count    int
	lastID   uint64
	lastTime time.Time
}

func (d *directState) memStats(side dmSide) []memStat {
	d.mu.Lock()
	defer d.mu.Unlock()
	var keys []string
	if side.guest != nil {
		keys = d.byGuest[side.guest.id]
	} else {
		keys = d.byAcct[side.account]
	}
	var out []memStat
	for _, key := range keys {
		c := d.mem[key]
		if c == nil || len(c.msgs) == 0 {
			continue
		}
		peer := c.sides[0]
		if peer.same(side) {
			peer = c.sides[1]
		}
		out = append(out, memStat{peer: peer, count: len(c.msgs), lastID: c.lastID, lastTime: c.msgs[len(c.msgs)-1].Time})
	}
	return out
}

// memPage reads one page of an in-memory conversation like
// Server.readPage reads a room (missing conversation: empty); each
// message comes with the side that sent it, 0 or 1 of sides.
func (d *directState) memPage(a, b dmSide, q pageRequest, limit int) (historyPage, []bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.mem[memConvKey(a, b)]
	if c == nil {
		return historyPage{complete: true}, nil, nil
	}
	all := c.msgs
	var page []memMsg
	p := historyPage{complete: true}
	if q.hasAfter {
		start := sort.Search(len(all), func(i int) bool { return all[i].ID > q.after })
		rest := all[start:]
		p.complete = q.after >= c.lastID || (len(rest) > 0 && rest[0].ID == q.after+1)
		p.more = len(rest) > limit
		page = rest[:min(limit, len(rest))]
	} else {
		end := len(all)
		if q.before != 0 {
			end = sort.Search(len(all), func(i int) bool { return all[i].ID >= q.before })
		}
		start := max(0, end-limit)
		p.more = start > 0
		page = all[start:end]
	}
	fromA := make([]bool, len(page))
	p.msgs = make([]Message, len(page))
	for i, mm := range page {
		p.msgs[i] = mm.Message
		fromA[i] = c.sides[mm.fromSide].same(a)
	}
	return p, fromA, nil
}

// track records msg stored in the conversation of accounts a and b, for
// listing when the History cannot (no ConversationLister).
func (d *directState) track(a, b string, msg *Message) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.tracks == nil {
		d.tracks = make(map[string]map[string]*convTrack)
	}
	pairs := [][2]string{{a, b}}
	if a != b {
		pairs = append(pairs, [2]string{b, a})
	}
	for _, pair := range pairs {
		acc, peer := pair[0], pair[1]
		t := d.tracks[acc]
		if t == nil {
			t = make(map[string]*convTrack)
			d.tracks[acc] = t
		}
		ct := t[msg.Room]
		if ct == nil {
			ct = &convTrack{key: msg.Room, peer: peer}
			t[msg.Room] = ct
		}
		ct.count++
		ct.lastID, ct.lastTime = msg.ID, msg.Time
	}
}

// tracked returns account's conversations stored in the process's life.
func (d *directState) tracked(account string) []ConversationStat {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []ConversationStat
	for _, ct := range d.tracks[account] {
		out = append(out, ConversationStat{Key: ct.key, Peer: ct.peer, Count: ct.count, LastID: ct.lastID, LastTime: ct.lastTime})
	}
	return out
}
