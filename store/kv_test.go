package store

import (
	"errors"
	"slices"
	"testing"
)

func TestKVRoundTripAndPersistence(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{})
	if v, ok, err := db.Get("karma.lua", "ann"); v != "" || ok || err != nil {
		t.Errorf("Get(missing) = %q, %v, %v", v, ok, err)
	}
	if keys, err := db.Keys("karma.lua"); keys != nil || err != nil {
		t.Errorf("Keys(empty namespace) = %v, %v", keys, err)
	}
	for _, kv := range [][3]string{
		{"karma.lua", "bob", "3"}, {"karma.lua", "ann", "1"}, {"karma.lua", "ann", "2"},
		{"seen.lua", "ann", "yesterday"}, {"karma.lua", "zed", ""}, {"karma.lua", "\x00bin", "v\x00"},
	} {
		if err := db.Set(kv[0], kv[1], kv[2]); err != nil {
			t.Fatalf("Set%v: %v", kv, err)
		}
	}
	if err := db.Delete("karma.lua", "bob"); err != nil {
		t.Fatal(err)
	}
	for _, del := range [][2]string{{"karma.lua", "bob"}, {"never.lua", "x"}} {
		if err := db.Delete(del[0], del[1]); err != nil {
			t.Errorf("Delete(missing %v) = %v, want nil", del, err)
		}
	}
	check := func(db *DB) {
		t.Helper()
		for _, tc := range []struct {
			script, key, want string
			ok                bool
		}{
			{"karma.lua", "ann", "2", true},
			{"karma.lua", "bob", "", false},
			{"karma.lua", "zed", "", true},
			{"karma.lua", "\x00bin", "v\x00", true},
			{"seen.lua", "ann", "yesterday", true},
			{"seen.lua", "bob", "", false},
		} {
			v, ok, err := db.Get(tc.script, tc.key)
			if v != tc.want || ok != tc.ok || err != nil {
				t.Errorf("Get(%s, %q) = %q, %v, %v; want %q, %v", tc.script, tc.key, v, ok, err, tc.want, tc.ok)
			}
		}
		if keys, err := db.Keys("karma.lua"); err != nil || !slices.Equal(keys, []string{"\x00bin", "ann", "zed"}) {
			t.Errorf("Keys = %q, %v", keys, err)
		}
	}
	check(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openAt(t, path, Options{})
	check(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	check(ro)
	if err := ro.Set("karma.lua", "ann", "9"); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Set on read-only DB = %v, want ErrReadOnly", err)
	}
}

func TestKVInvalid(t *testing.T) {
	db := openTemp(t, Options{})
	for _, tc := range [][2]string{{"", "k"}, {"s.lua", ""}, {"s.lua", string(make([]byte, maxKeyLen+1))}} {
		if err := db.Set(tc[0], tc[1], "v"); !errors.Is(err, ErrInvalid) {
			t.Errorf("Set(%q, key of %d bytes) = %v, want ErrInvalid", tc[0], len(tc[1]), err)
		}
		if _, _, err := db.Get(tc[0], tc[1]); !errors.Is(err, ErrInvalid) {
			t.Errorf("Get(%q, key of %d bytes) = %v, want ErrInvalid", tc[0], len(tc[1]), err)
		}
	}
}
