package store

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/moonchat/moonchat/core/chat"
)

// restrictionID is what makes a restriction unique in the store.
func restrictionID(r chat.Restriction) string {
	return string(r.Kind) + "|" + r.Room + "|" + r.Target.Account + "|" + r.Target.Name + "|" + r.Target.Addr
}

// sortRestrictions orders rs for comparison.
func sortRestrictions(rs []chat.Restriction) []chat.Restriction {
	slices.SortFunc(rs, func(a, b chat.Restriction) int { return strings.Compare(restrictionID(a), restrictionID(b)) })
	return rs
}

// equalRestrictions compares two sets, times with time.Time.Equal.
func equalRestrictions(a, b []chat.Restriction) bool {
	a, b = sortRestrictions(slices.Clone(a)), sortRestrictions(slices.Clone(b))
	return slices.EqualFunc(a, b, func(x, y chat.Restriction) bool {
		return restrictionID(x) == restrictionID(y) && x.Created.Equal(y.Created) && x.Expires.Equal(y.Expires) &&
			x.By == y.By && x.Reason == y.Reason
	})
}

// TestRestrictionsRoundTrip: every kind of target, per room and global,
// with and without expiry, reads back as stored; a Put with the same
// kind, room and target replaces; Delete reports whether there was one;
// all of it survives a reopen (writable and read-only); a read-only or
// closed DB refuses writes.
func TestRestrictionsRoundTrip(t *testing.T) {
	clock := newClock()
	path := tempPath(t)
	db := openAt(t, path, Options{Now: clock.Now})
	if got, err := db.Restrictions(); err != nil || len(got) != 0 {
		t.Fatalf("new DB: Restrictions = %v, %v", got, err)
	}
	now := clock.Now()
	local := time.FixedZone("x", 3600)
	want := []chat.Restriction{
		{Kind: chat.KindBan, Target: chat.Target{Account: "u-1"}, Created: now, By: "admin", Reason: "spam"},
		{Kind: chat.KindBan, Room: "lobby", Target: chat.Target{Name: "troll"}, Created: now.In(local), Expires: now.Add(time.Hour + time.Nanosecond), By: "mod (u-2)"},
		{Kind: chat.KindMute, Room: "lobby", Target: chat.Target{Name: "troll"}, Created: now, Expires: now.Add(time.Minute)},
		{Kind: chat.KindMute, Room: "dev", Target: chat.Target{Addr: "2001:db8::/48"}, Created: now, Reason: "flood"},
		{Kind: chat.KindBan, Target: chat.Target{Addr: "203.0.113.7"}, Created: now, Reason: "ünïcode ✓"},
	}
	for _, r := range want {
		if err := db.PutRestriction(r); err != nil {
			t.Fatalf("PutRestriction(%+v): %v", r, err)
		}
	}
	// Created zero is set to the clock's now.
	noCreated := chat.Restriction{Kind: chat.KindBan, Room: "dev", Target: chat.Target{Account: "u-3"}}
	if err := db.PutRestriction(noCreated); err != nil {
		t.Fatal(err)
	}
	noCreated.Created = now
	want = append(want, noCreated)
	if got, err := db.Restrictions(); err != nil || !equalRestrictions(got, want) {
		t.Fatalf("Restrictions = %+v, %v\nwant %+v", got, err, want)
	}
	for _, r := range mustRestrictions(t, db) {
		if r.Created.Location() != time.UTC {
			t.Errorf("Created %v not in UTC", r.Created)
		}
	}

	// Replace: same kind, room and target; new reason and expiry.
	repl := want[1]
	repl.Reason, repl.Expires = "again", now.Add(48*time.Hour)
	if err := db.PutRestriction(repl); err != nil {
		t.Fatal(err)
	}
	want[1] = repl
	if got := mustRestrictions(t, db); !equalRestrictions(got, want) {
		t.Fatalf("after replacing: %+v\nwant %+v", got, want)
	}

	// Delete: the mute on troll in lobby goes, the ban on troll stays.
	if ok, err := db.DeleteRestriction(chat.KindMute, "lobby", chat.Target{Name: "troll"}); err != nil || !ok {
		t.Fatalf("DeleteRestriction = %v, %v; want true", ok, err)
	}
	if ok, err := db.DeleteRestriction(chat.KindMute, "lobby", chat.Target{Name: "troll"}); err != nil || ok {
		t.Fatalf("second DeleteRestriction = %v, %v; want false", ok, err)
	}
	if ok, err := db.DeleteRestriction(chat.KindBan, "", chat.Target{Account: "u-nobody"}); err != nil || ok {
		t.Fatalf("DeleteRestriction of nothing = %v, %v; want false", ok, err)
	}
	want = slices.Delete(want, 2, 3)
	if got := mustRestrictions(t, db); !equalRestrictions(got, want) {
		t.Fatalf("after delete: %+v\nwant %+v", got, want)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.PutRestriction(want[0]); !errors.Is(err, ErrClosed) {
		t.Errorf("PutRestriction after Close = %v, want ErrClosed", err)
	}

	ro, err := OpenReadOnly(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := mustRestrictions(t, ro); !equalRestrictions(got, want) {
		t.Errorf("read-only reopen: %+v\nwant %+v", got, want)
	}
	if err := ro.PutRestriction(want[0]); !errors.Is(err, ErrReadOnly) {
		t.Errorf("read-only PutRestriction = %v, want ErrReadOnly", err)
	}
	if _, err := ro.DeleteRestriction(chat.KindBan, "", chat.Target{Account: "u-1"}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("read-only DeleteRestriction = %v, want ErrReadOnly", err)
	}
	ro.Close()

	db = openAt(t, path, Options{Now: clock.Now})
	if got := mustRestrictions(t, db); !equalRestrictions(got, want) {
		t.Errorf("reopen: %+v\nwant %+v", got, want)
	}
	if st, err := db.Verify(t.Context(), func(err error) { t.Error(err) }); err != nil || !st.OK() || st.Restrictions != len(want) {
		t.Errorf("Verify = %+v, %v; want OK with %d restrictions", st, err, len(want))
	}
}

func mustRestrictions(t *testing.T, db *DB) []chat.Restriction {
	t.Helper()
	got, err := db.Restrictions()
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestPutRestrictionBounds: restrictions the store cannot keep are
// refused with ErrInvalidRestriction (and ErrInvalid) and store nothing;
// the longest allowed fields are stored.
func TestPutRestrictionBounds(t *testing.T) {
	db := openTemp(t, Options{})
	now := time.Now()
	ok := chat.Restriction{Kind: chat.KindBan, Target: chat.Target{Account: "u-1"}, Created: now}
	with := func(f func(r *chat.Restriction)) chat.Restriction {
		r := ok
		f(&r)
		return r
	}
	for name, r := range map[string]chat.Restriction{
		"unknown kind":      with(func(r *chat.Restriction) { r.Kind = "kick" }),
		"empty kind":        with(func(r *chat.Restriction) { r.Kind = "" }),
		"no target":         with(func(r *chat.Restriction) { r.Target = chat.Target{} }),
		"two targets":       with(func(r *chat.Restriction) { r.Target.Name = "bob" }),
		"long room":         with(func(r *chat.Restriction) { r.Room = strings.Repeat("r", 256) }),
		"long account":      with(func(r *chat.Restriction) { r.Target.Account = strings.Repeat("a", MaxAccountIDLen+1) }),
		"long name":         with(func(r *chat.Restriction) { r.Target = chat.Target{Name: strings.Repeat("n", MaxOwnedNameLen+1)} }),
		"not an address":    with(func(r *chat.Restriction) { r.Target = chat.Target{Addr: "example.org"} }),
		"bad prefix":        with(func(r *chat.Restriction) { r.Target = chat.Target{Addr: "10.0.0.0/33"} }),
		"long address":      with(func(r *chat.Restriction) { r.Target = chat.Target{Addr: strings.Repeat("1", MaxAddrLen+1)} }),
		"long by":           with(func(r *chat.Restriction) { r.By = strings.Repeat("b", MaxByLen+1) }),
		"long reason":       with(func(r *chat.Restriction) { r.Reason = strings.Repeat("x", MaxReasonLen+1) }),
		"expires = created": with(func(r *chat.Restriction) { r.Expires = r.Created }),
		"expires before":    with(func(r *chat.Restriction) { r.Expires = r.Created.Add(-time.Second) }),
		"created in 1969":   with(func(r *chat.Restriction) { r.Created = time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC) }),
		"expires in 2300":   with(func(r *chat.Restriction) { r.Expires = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) }),
	} {
		if err := db.PutRestriction(r); !errors.Is(err, ErrInvalidRestriction) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: PutRestriction = %v, want ErrInvalidRestriction", name, err)
		}
	}
	if _, err := db.DeleteRestriction("kick", "", chat.Target{Account: "u-1"}); !errors.Is(err, ErrInvalidRestriction) {
		t.Errorf("DeleteRestriction of an unknown kind = %v, want ErrInvalidRestriction", err)
	}
	if got := mustRestrictions(t, db); len(got) != 0 {
		t.Fatalf("stored %+v", got)
	}
	longest := []chat.Restriction{
		with(func(r *chat.Restriction) {
			r.Room, r.Target.Account = strings.Repeat("r", 255), strings.Repeat("a", MaxAccountIDLen)
			r.By, r.Reason = strings.Repeat("b", MaxByLen), strings.Repeat("x", MaxReasonLen)
		}),
		with(func(r *chat.Restriction) { r.Target = chat.Target{Name: strings.Repeat("n", MaxOwnedNameLen)} }),
		with(func(r *chat.Restriction) { r.Target = chat.Target{Addr: "fe80::1%eth0"} }),
		with(func(r *chat.Restriction) { r.Target = chat.Target{Addr: "::ffff:203.0.113.0/120"} }),
	}
	for _, r := range longest {
		if err := db.PutRestriction(r); err != nil {
			t.Errorf("PutRestriction(%.60v): %v", r, err)
		}
	}
	if got := mustRestrictions(t, db); !equalRestrictions(got, longest) {
		t.Errorf("the longest fields were not stored as given")
	}
}

// TestExpiredRestrictionsPrunedOnOpen: a writable Open removes the
// restrictions whose expiry has passed, keeps the others (permanent ones
// and those still running), and logs the count; a read-only Open
// removes nothing.
func TestExpiredRestrictionsPrunedOnOpen(t *testing.T) {
	clock := newClock()
	path := tempPath(t)
	db := openAt(t, path, Options{Now: clock.Now})
	now := clock.Now()
	keep := []chat.Restriction{
		{Kind: chat.KindBan, Target: chat.Target{Account: "forever"}, Created: now},
		{Kind: chat.KindMute, Target: chat.Target{Account: "day"}, Created: now, Expires: now.Add(24 * time.Hour)},
	}
	gone := []chat.Restriction{
		{Kind: chat.KindBan, Room: "lobby", Target: chat.Target{Name: "hour"}, Created: now, Expires: now.Add(time.Hour)},
		{Kind: chat.KindMute, Target: chat.Target{Addr: "10.0.0.0/8"}, Created: now, Expires: now.Add(2 * time.Hour)},
	}
	for _, r := range append(slices.Clone(keep), gone...) {
		if err := db.PutRestriction(r); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	clock.Advance(2 * time.Hour) // exactly at the second expiry: expired

	ro, err := OpenReadOnly(path, Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if got := mustRestrictions(t, ro); len(got) != 4 {
		t.Errorf("read-only open: %d restrictions, want all 4 (nothing removed)", len(got))
	}
	ro.Close()

	var logs logBuffer
	db = openAt(t, path, Options{Now: clock.Now, Logger: logs.logger()})
	if got := mustRestrictions(t, db); !equalRestrictions(got, keep) {
		t.Errorf("after Open: %+v\nwant %+v", got, keep)
	}
	if s := logs.String(); !strings.Contains(s, "removed expired bans and mutes") || !strings.Contains(s, "removed=2") {
		t.Errorf("log:\n%s", s)
	}
	if st, err := db.Verify(t.Context(), func(err error) { t.Error(err) }); err != nil || st.Restrictions != 2 {
		t.Errorf("Verify = %+v, %v; want 2 restrictions in the file", st, err)
	}
}

// TestRoomSettingsRoundTrip: settings read back as stored, replace, the
// zero value deletes, they survive a reopen; bad ones are refused with
// ErrInvalidRoomSettings.
func TestRoomSettingsRoundTrip(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{})
	if got, err := db.RoomSettings(); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("new DB: RoomSettings = %v, %v; want an empty map", got, err)
	}
	since := time.Date(2026, 12, 2, 18, 0, 0, 123, time.UTC)
	want := map[string]chat.RoomSettings{
		"lobby": {Topic: "Be nice ✓", TopicBy: "mod", TopicSince: since, Slow: 5 * time.Second},
		"dev":   {Slow: MaxSlow},
		"quiet": {Topic: "shh"},
	}
	for room, s := range want {
		if err := db.PutRoomSettings(room, s); err != nil {
			t.Fatalf("PutRoomSettings(%q): %v", room, err)
		}
	}
	if got, err := db.RoomSettings(); err != nil || !maps.EqualFunc(got, want, equalSettings) {
		t.Fatalf("RoomSettings = %+v, %v\nwant %+v", got, err, want)
	}
	want["lobby"] = chat.RoomSettings{Topic: "new", TopicSince: since.Add(time.Hour)}
	if err := db.PutRoomSettings("lobby", want["lobby"]); err != nil {
		t.Fatal(err)
	}
	if err := db.PutRoomSettings("quiet", chat.RoomSettings{}); err != nil {
		t.Fatal(err)
	}
	delete(want, "quiet")
	if err := db.PutRoomSettings("never-set", chat.RoomSettings{}); err != nil {
		t.Errorf("zero settings of a room without any: %v", err)
	}
	for name, tc := range map[string]struct {
		room string
		s    chat.RoomSettings
	}{
		"empty room":     {"", chat.RoomSettings{Topic: "t"}},
		"long room":      {strings.Repeat("r", 256), chat.RoomSettings{Topic: "t"}},
		"negative slow":  {"r", chat.RoomSettings{Slow: -time.Second}},
		"slow too long":  {"r", chat.RoomSettings{Slow: MaxSlow + 1}},
		"long topic":     {"r", chat.RoomSettings{Topic: strings.Repeat("t", MaxTopicLen+1)}},
		"long topic by":  {"r", chat.RoomSettings{Topic: "t", TopicBy: strings.Repeat("b", MaxByLen+1)}},
		"topic in 1969":  {"r", chat.RoomSettings{Topic: "t", TopicSince: time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC)}},
		"topic in 2300":  {"r", chat.RoomSettings{Topic: "t", TopicSince: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)}},
		"zero, bad room": {"", chat.RoomSettings{}},
	} {
		if err := db.PutRoomSettings(tc.room, tc.s); !errors.Is(err, ErrInvalidRoomSettings) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: PutRoomSettings = %v, want ErrInvalidRoomSettings", name, err)
		}
	}
	db.Close()
	db = openAt(t, path, Options{})
	if got, err := db.RoomSettings(); err != nil || !maps.EqualFunc(got, want, equalSettings) {
		t.Fatalf("reopen: RoomSettings = %+v, %v\nwant %+v", got, err, want)
	}
	if st, err := db.Verify(t.Context(), func(err error) { t.Error(err) }); err != nil || !st.OK() || st.RoomSettings != 2 {
		t.Errorf("Verify = %+v, %v; want OK with 2 room settings", st, err)
	}
}

func equalSettings(a, b chat.RoomSettings) bool {
	return a.Topic == b.Topic && a.TopicBy == b.TopicBy && a.TopicSince.Equal(b.TopicSince) && a.Slow == b.Slow
}

// TestAudit: entries read back oldest first, filtered by room (exactly:
// "" lists every room's) and since (inclusive), the n newest of them;
// equal times keep the order of appending; a zero Time is the clock's
// now; they survive a reopen; bad entries are refused with
// ErrInvalidAudit.
func TestAudit(t *testing.T) {
	clock := newClock()
	path := tempPath(t)
	db := openAt(t, path, Options{Now: clock.Now})
	if got, err := db.Audit("", time.Time{}, 10); err != nil || len(got) != 0 {
		t.Fatalf("new DB: Audit = %v, %v", got, err)
	}
	t0 := clock.Now()
	var all []chat.AuditEntry
	add := func(e chat.AuditEntry) {
		t.Helper()
		if err := db.AppendAudit(e); err != nil {
			t.Fatalf("AppendAudit(%+v): %v", e, err)
		}
		if e.Time.IsZero() {
			e.Time = clock.Now()
		}
		all = append(all, e)
	}
	add(chat.AuditEntry{Time: t0, Room: "lobby", By: "mod", Action: "ban", Target: "troll", Reason: "spam"})
	add(chat.AuditEntry{Time: t0.Add(time.Second), Room: "dev", By: "admin", Action: "slow", Target: "10s"})
	add(chat.AuditEntry{Time: t0.Add(time.Second), Room: "lobby", By: "mod", Action: "delete", Target: "42"})
	add(chat.AuditEntry{Time: t0.Add(2 * time.Second), Room: "", By: "admin", Action: "ban", Target: "203.0.113.0/24"})
	clock.Advance(3 * time.Second)
	add(chat.AuditEntry{Room: "lobby", By: "mod", Action: "topic", Reason: "ünïcode"}) // zero Time: now
	// An entry whose Time is older than the newest: it sorts by Time.
	add(chat.AuditEntry{Time: t0.Add(500 * time.Millisecond), Room: "dev", By: "mod", Action: "mute", Target: "bob"})
	byTime := []int{0, 5, 1, 2, 3, 4} // indexes of all, oldest first

	pick := func(idx ...int) []chat.AuditEntry {
		var out []chat.AuditEntry
		for _, i := range idx {
			out = append(out, all[i])
		}
		return out
	}
	check := func(what string) {
		t.Helper()
		for _, tc := range []struct {
			room  string
			since time.Time
			n     int
			want  []chat.AuditEntry
		}{
			{"", time.Time{}, 100, pick(byTime...)},
			{"", time.Time{}, 2, pick(3, 4)},
			{"", time.Time{}, 0, nil},
			{"lobby", time.Time{}, 100, pick(0, 2, 4)},
			{"lobby", time.Time{}, 2, pick(2, 4)},
			{"dev", time.Time{}, 100, pick(5, 1)},
			{"nowhere", time.Time{}, 100, nil},
			{"lobb", time.Time{}, 100, nil}, // a prefix of a room is not that room
			{"lobbyx", time.Time{}, 100, nil},
			{"", t0.Add(time.Second), 100, pick(1, 2, 3, 4)}, // since is inclusive
			{"", t0.Add(time.Second + 1), 100, pick(3, 4)},
			{"lobby", t0.Add(time.Second), 1, pick(4)},
			{"dev", t0.Add(time.Second), 100, pick(1)},
			{"", t0.Add(time.Hour), 100, nil},
			{"", time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), 100, pick(byTime...)},
			{"", time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), 100, nil},
		} {
			got, err := db.Audit(tc.room, tc.since, tc.n)
			if err != nil || !slices.EqualFunc(got, tc.want, equalAudit) {
				t.Errorf("%s: Audit(%q, %v, %d) = %+v, %v\nwant %+v", what, tc.room, tc.since, tc.n, got, err, tc.want)
			}
		}
	}
	check("open")
	for name, e := range map[string]chat.AuditEntry{
		"no action":   {By: "mod"},
		"long action": {Action: strings.Repeat("a", MaxActionLen+1)},
		"long room":   {Action: "ban", Room: strings.Repeat("r", 256)},
		"long by":     {Action: "ban", By: strings.Repeat("b", MaxByLen+1)},
		"long target": {Action: "ban", Target: strings.Repeat("t", MaxAuditTargetLen+1)},
		"long reason": {Action: "ban", Reason: strings.Repeat("x", MaxReasonLen+1)},
		"in 1969":     {Action: "ban", Time: time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if err := db.AppendAudit(e); !errors.Is(err, ErrInvalidAudit) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: AppendAudit = %v, want ErrInvalidAudit", name, err)
		}
	}
	for _, bad := range []struct {
		room string
		n    int
	}{{"", -1}, {strings.Repeat("r", 256), 1}} {
		if _, err := db.Audit(bad.room, time.Time{}, bad.n); !errors.Is(err, ErrInvalid) {
			t.Errorf("Audit(%d-byte room, %d) = %v, want ErrInvalid", len(bad.room), bad.n, err)
		}
	}
	db.Close()
	db = openAt(t, path, Options{Now: clock.Now})
	check("reopen")
	if st, err := db.Verify(t.Context(), func(err error) { t.Error(err) }); err != nil || !st.OK() || st.Audit != len(all) {
		t.Errorf("Verify = %+v, %v; want OK with %d audit entries", st, err, len(all))
	}
}

func equalAudit(a, b chat.AuditEntry) bool {
	return a.Time.Equal(b.Time) && a.Time.Location() == time.UTC &&
		a.Room == b.Room && a.By == b.By && a.Action == b.Action && a.Target == b.Target && a.Reason == b.Reason
}

// TestModerationCorruptEntries: a moderation entry whose bytes changed,
// or that was copied under another key, is left out by the reads (logged
// and counted once), the others are served, and Verify reports each; a
// write under the same key repairs it.
func TestModerationCorruptEntries(t *testing.T) {
	clock := newClock()
	path := tempPath(t)
	db := openAt(t, path, Options{Now: clock.Now})
	now := clock.Now()
	bans := []chat.Restriction{
		{Kind: chat.KindBan, Target: chat.Target{Account: "u-1"}, Created: now, Reason: "one"},
		{Kind: chat.KindBan, Target: chat.Target{Account: "u-2"}, Created: now, Reason: "two"},
	}
	for _, r := range bans {
		if err := db.PutRestriction(r); err != nil {
			t.Fatal(err)
		}
	}
	for _, room := range []string{"a", "b"} {
		if err := db.PutRoomSettings(room, chat.RoomSettings{Topic: "topic " + room}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if err := db.AppendAudit(chat.AuditEntry{Time: now.Add(time.Duration(i) * time.Second), By: "mod", Action: "kick", Target: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		flip := func(bucket []byte, key []byte, at int) error {
			b := tx.Bucket(bucket)
			v := append([]byte(nil), b.Get(key)...)
			v[len(v)-at] ^= 0x01
			return b.Put(key, v)
		}
		k1, _ := restrictionKey(chat.KindBan, "", chat.Target{Account: "u-1"})
		if err := flip(bucketRestrictions, k1, 6); err != nil { // the reason's last byte
			return err
		}
		// u-2's ban copied as a ban of u-3: intact bytes, wrong key.
		k2, _ := restrictionKey(chat.KindBan, "", chat.Target{Account: "u-2"})
		k3, _ := restrictionKey(chat.KindBan, "", chat.Target{Account: "u-3"})
		if err := tx.Bucket(bucketRestrictions).Put(k3, append([]byte(nil), tx.Bucket(bucketRestrictions).Get(k2)...)); err != nil {
			return err
		}
		if err := flip(bucketSettings, []byte("a"), 5); err != nil {
			return err
		}
		k, _ := tx.Bucket(bucketAudit).Cursor().First()
		return flip(bucketAudit, append([]byte(nil), k...), 5)
	})
	bdb.Close()
	if err != nil {
		t.Fatal(err)
	}

	var logs logBuffer
	db = openAt(t, path, Options{Now: clock.Now, Logger: logs.logger()})
	for range 2 {
		if got := mustRestrictions(t, db); !equalRestrictions(got, bans[1:]) {
			t.Errorf("Restrictions = %+v, want only u-2's ban", got)
		}
		if got, err := db.RoomSettings(); err != nil || len(got) != 1 || got["b"].Topic != "topic b" {
			t.Errorf("RoomSettings = %+v, %v; want only b's", got, err)
		}
		if got, err := db.Audit("", time.Time{}, 10); err != nil || len(got) != 2 || !got[0].Time.Equal(now.Add(time.Second)) {
			t.Errorf("Audit = %+v, %v; want the 2 newer entries", got, err)
		}
	}
	// Open's pruneExpired met the two bad restrictions first; each of the
	// four bad entries is counted and logged once.
	if n := db.CorruptRecords(); n != 4 {
		t.Errorf("CorruptRecords = %d, want 4 (each entry once)", n)
	}
	if s := logs.String(); strings.Count(s, "moderation entry is corrupt") != 4 ||
		!strings.Contains(s, "bucket=restrictions") || !strings.Contains(s, "bucket=roomsettings") || !strings.Contains(s, "bucket=audit") {
		t.Errorf("log:\n%s", s)
	}
	var problems []error
	st, err := db.Verify(t.Context(), func(err error) { problems = append(problems, err) })
	if err != nil || st.Problems != 4 || st.Restrictions != 3 || st.RoomSettings != 2 || st.Audit != 3 {
		t.Fatalf("Verify = %+v, %v, %v", st, err, problems)
	}
	for _, p := range problems {
		if !errors.Is(p, ErrChecksum) || !errors.Is(p, ErrCorrupt) {
			t.Errorf("Verify problem %v: want ErrChecksum and ErrCorrupt", p)
		}
	}
	if err := db.Check(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Check = %v, want ErrCorrupt", err)
	}
	// Writing under the same keys repairs them.
	if err := db.PutRestriction(bans[0]); err != nil {
		t.Fatal(err)
	}
	if ok, err := db.DeleteRestriction(chat.KindBan, "", chat.Target{Account: "u-3"}); err != nil || !ok {
		t.Errorf("DeleteRestriction of the corrupt entry = %v, %v; want true", ok, err)
	}
	if got := mustRestrictions(t, db); !equalRestrictions(got, bans) {
		t.Errorf("after repair: %+v", got)
	}
}

// TestModerationFormat3Upgrade opens a format 3 file (before the
// moderation buckets): read-only, it holds no moderation data and is not
// changed; a writable open marks it format 4 with the buckets, its names
// and messages intact, and moderation works.
func TestModerationFormat3Upgrade(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{})
	appendText(t, db, "lobby", "ann", "before")
	if err := db.SetNameOwner("u-1", "ann"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		for _, name := range moderationBuckets {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyFormat, []byte{0, 0, 0, 3})
	})
	bdb.Close()
	if err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ro.Restrictions(); err != nil || len(got) != 0 {
		t.Errorf("format 3, read-only: Restrictions = %v, %v", got, err)
	}
	if got, err := ro.RoomSettings(); err != nil || len(got) != 0 {
		t.Errorf("format 3, read-only: RoomSettings = %v, %v", got, err)
	}
	if got, err := ro.Audit("", time.Time{}, 10); err != nil || len(got) != 0 {
		t.Errorf("format 3, read-only: Audit = %v, %v", got, err)
	}
	if st, err := ro.Verify(t.Context(), func(err error) { t.Error(err) }); err != nil || !st.OK() {
		t.Errorf("format 3, read-only: Verify = %+v, %v", st, err)
	}
	if f := formatOf(t, ro); f != 3 {
		t.Errorf("read-only open: format %d, want 3 (unchanged)", f)
	}
	ro.Close()

	db = openAt(t, path, Options{})
	if f := formatOf(t, db); f != formatVersion || formatVersion != 4 {
		t.Errorf("writable open: format %d, want 4", f)
	}
	if got, err := db.NameOwners(); err != nil || got["u-1"] != "ann" {
		t.Errorf("NameOwners after the upgrade = %v, %v", got, err)
	}
	if got, err := db.Recent("lobby", 10); err != nil || len(got) != 1 || got[0].Text != "before" {
		t.Errorf("Recent after the upgrade = %+v, %v", got, err)
	}
	r := chat.Restriction{Kind: chat.KindMute, Room: "lobby", Target: chat.Target{Name: "ann"}, Created: time.Now()}
	if err := db.PutRestriction(r); err != nil {
		t.Fatal(err)
	}
	if err := db.PutRoomSettings("lobby", chat.RoomSettings{Slow: time.Second}); err != nil {
		t.Fatal(err)
	}
	if err := db.AppendAudit(chat.AuditEntry{By: "mod", Action: "mute", Target: "ann"}); err != nil {
		t.Fatal(err)
	}
	if got := mustRestrictions(t, db); !equalRestrictions(got, []chat.Restriction{r}) {
		t.Errorf("Restrictions = %+v", got)
	}
	if err := db.Check(); err != nil {
		t.Error(err)
	}
}

// TestFormat4WithoutModerationIsCorrupt: a format 4 file must have every
// moderation bucket.
func TestFormat4WithoutModerationIsCorrupt(t *testing.T) {
	for _, name := range moderationBuckets {
		path := tempPath(t)
		db := openAt(t, path, Options{})
		db.Close()
		bdb, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = bdb.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(name) })
		bdb.Close()
		if err != nil {
			t.Fatal(err)
		}
		db, err = Open(path, Options{})
		if err == nil {
			db.Close()
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("without %q: Open = %v, want ErrCorrupt", name, err)
		}
	}
}

// TestModerationWritesShareCommits: concurrent moderation writes and
// messages go through the group committer together (-race checks the
// sharing), and each call returns with its write visible.
func TestModerationWritesShareCommits(t *testing.T) {
	db := openTemp(t, Options{})
	errs := make(chan error, 60)
	for i := range 20 {
		go func() {
			errs <- db.PutRestriction(chat.Restriction{Kind: chat.KindMute, Target: chat.Target{Account: "u-" + string(rune('a'+i))}})
		}()
		go func() { errs <- db.AppendAudit(chat.AuditEntry{By: "mod", Action: "mute"}) }()
		go func() { errs <- db.Append(t.Context(), msgsOf("lobby", "hi")) }()
	}
	for range 60 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := mustRestrictions(t, db); len(got) != 20 {
		t.Errorf("%d restrictions, want 20", len(got))
	}
	if got, _ := db.Audit("", time.Time{}, 100); len(got) != 20 {
		t.Errorf("%d audit entries, want 20", len(got))
	}
}
