package store

import (
	"errors"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/moonchat/moonchat/core/chat"
)

// TestAccountRoundTrip: each message keeps its sender's account (id and
// roles; nil for a guest) through every read — Recent, Before, After,
// Query in one room and across rooms — also after a restart, and the file
// verifies.
func TestAccountRoundTrip(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{})
	alice := &chat.Account{ID: "u-alice", Roles: []string{"user", "mod"}}
	msgs := []*chat.Message{
		{Room: "r", User: "alice", Text: "hello", Account: alice},
		{Room: "r", User: "guest-1", Text: "hi"},
		{Room: "r", User: "alice", Text: "waves", Action: true, Account: alice},
		{Room: "r", User: "bob", Text: "bye", Account: &chat.Account{ID: "u-bob"}},
		// A guest whose session was granted a role: an account without ID.
		{Room: "r", User: "guest-2", Text: "as mod", Account: &chat.Account{Roles: []string{"guest", "mod"}}},
	}
	if err := db.Append(t.Context(), msgs); err != nil {
		t.Fatal(err)
	}
	check := func(what string, got []chat.Message, from int) {
		t.Helper()
		if len(got) == 0 {
			t.Errorf("%s: nothing", what)
		}
		for i, m := range got {
			if want := *msgs[from+i]; !sameMessage(m, want) {
				t.Errorf("%s: message %d = %+v (account %+v), want %+v (account %+v)", what, m.ID, m, m.Account, want, want.Account)
			}
		}
	}
	for round := range 2 {
		got, err := db.Recent("r", 10)
		if err != nil {
			t.Fatal(err)
		}
		check("Recent", got, 0)
		if got[1].Account != nil {
			t.Errorf("a guest's message has account %+v", got[1].Account)
		}
		got, _ = db.Before("r", 5, 10)
		check("Before", got, 0)
		got, _, _, _ = db.After("r", 1, 10)
		check("After", got, 1)
		got, _, _ = db.Query(Query{Room: "r", Grep: "waves"})
		check("Query grep", got, 2)
		got, _, _ = db.Query(Query{Room: "r", User: "alice"})
		check("Query user", got[1:], 2)
		got, _, _ = db.Query(Query{User: "bob"})
		check("Query every room", got, 3)
		if st, err := db.Verify(t.Context(), func(err error) { t.Error(err) }); err != nil || !st.OK() || st.Records != 5 {
			t.Errorf("Verify = %+v, %v", st, err)
		}
		if round == 0 {
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db = openAt(t, path, Options{})
		}
	}
}

// TestAppendRefusesBadAccount: an account the file cannot hold (an
// over-long id, too many roles, an empty or over-long role) fails the
// Append with ErrInvalidAccount and stores none of its messages; the
// largest account allowed is stored.
func TestAppendRefusesBadAccount(t *testing.T) {
	db := openTemp(t, Options{})
	many := make([]string, MaxRoles+1)
	for i := range many {
		many[i] = "r"
	}
	for _, tc := range []struct {
		name string
		acct chat.Account
	}{
		{"long id", chat.Account{ID: strings.Repeat("i", MaxAccountIDLen+1)}},
		{"too many roles", chat.Account{ID: "u", Roles: many}},
		{"empty role", chat.Account{ID: "u", Roles: []string{"user", ""}}},
		{"long role", chat.Account{ID: "u", Roles: []string{strings.Repeat("r", MaxRoleLen+1)}}},
	} {
		err := db.Append(t.Context(), []*chat.Message{
			{Room: "r", User: "ok", Text: "fine"},
			{Room: "r", User: "x", Text: "t", Account: &tc.acct},
		})
		if !errors.Is(err, ErrInvalidAccount) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Append = %v, want ErrInvalidAccount", tc.name, err)
		}
	}
	if got, err := db.Recent("r", 10); err != nil || len(got) != 0 {
		t.Errorf("Recent = %+v, %v; want nothing stored", got, err)
	}
	big := &chat.Account{ID: strings.Repeat("i", MaxAccountIDLen), Roles: make([]string, MaxRoles)}
	for i := range big.Roles {
		big.Roles[i] = strings.Repeat("r", MaxRoleLen)
	}
	m := chat.Message{Room: "r", User: "x", Text: "t", Account: big}
	if err := db.Append(t.Context(), []*chat.Message{&m}); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Recent("r", 1); err != nil || len(got) != 1 || !sameMessage(got[0], m) {
		t.Errorf("the largest account did not round-trip: %v", err)
	}
}

// TestCorruptAccountRecord: a bit flipped inside a stored account id is
// caught by the record's checksum: the record is skipped by reads and
// reported by Verify as a *CorruptRecord wrapping ErrChecksum, its
// neighbours are served.
func TestCorruptAccountRecord(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{})
	err := db.Append(t.Context(), []*chat.Message{
		{Room: "r", User: "a", Text: "one", Account: &chat.Account{ID: "account-number-one", Roles: []string{"user"}}},
		{Room: "r", User: "b", Text: "two", Account: &chat.Account{ID: "account-number-two", Roles: []string{"user"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	flipOnDisk(t, path, "account-number-one")
	db = openAt(t, path, Options{Logger: (&logBuffer{}).logger()})
	got, err := db.Recent("r", 10)
	if err != nil || len(got) != 1 || got[0].Account == nil || got[0].Account.ID != "account-number-two" {
		t.Fatalf("Recent = %+v, %v; want message 2 alone", got, err)
	}
	var bad []*CorruptRecord
	st, err := db.Verify(t.Context(), func(err error) {
		var c *CorruptRecord
		if errors.As(err, &c) && errors.Is(err, ErrChecksum) {
			bad = append(bad, c)
		} else {
			t.Errorf("Verify: unexpected %v", err)
		}
	})
	if err != nil || st.Corrupt != 1 || len(bad) != 1 || bad[0].ID != 1 {
		t.Errorf("Verify = %+v, %v, %v", st, err, bad)
	}
}

// TestRecordV2FileReadsAfterV3: version 2 records (a guest's and an
// action) written before version 3 read as before beside version 3 ones,
// with no account.
func TestRecordV2FileReadsAfterV3(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{})
	db.Close()
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	const ns = 1_700_000_000_000_000_000
	err = bdb.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketRooms).CreateBucket([]byte("r"))
		if err != nil {
			return err
		}
		if err := b.Put(idKey(1), v2Record(1, ns, 0, "r", "ann", "plain")); err != nil {
			return err
		}
		if err := b.Put(idKey(2), v2Record(2, ns, flagAction, "r", "ann", "waves")); err != nil {
			return err
		}
		return tx.Bucket(bucketRoomMeta).Put([]byte("r"), roomMeta{LastID: 2, Count: 2}.encode())
	})
	bdb.Close()
	if err != nil {
		t.Fatal(err)
	}
	db = openAt(t, path, Options{})
	m := appendAccount(t, db, "r", "bob", "new", &chat.Account{ID: "u-bob", Roles: []string{"user"}})
	got, err := db.Recent("r", 10)
	if err != nil || len(got) != 3 {
		t.Fatalf("Recent = %+v, %v", got, err)
	}
	if got[0].Account != nil || got[1].Account != nil || got[0].Action || !got[1].Action || got[1].Text != "waves" {
		t.Errorf("version 2 records read as %+v, %+v", got[0], got[1])
	}
	if !sameMessage(got[2], m) {
		t.Errorf("version 3 record = %+v, want %+v", got[2], m)
	}
	if err := db.Check(); err != nil {
		t.Error(err)
	}
}

// appendAccount appends one message of an account and returns it with its
// ID.
func appendAccount(t testing.TB, db *DB, room, user, text string, a *chat.Account) chat.Message {
	t.Helper()
	m := &chat.Message{Room: room, User: user, Text: text, Account: a}
	if err := db.Append(t.Context(), []*chat.Message{m}); err != nil {
		t.Fatalf("Append(%s %s %q): %v", room, user, text, err)
	}
	return *m
}
