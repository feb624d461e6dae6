package cluster

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/scripting"
)

// ScriptKV is the scripts' chat.kv storage.
var _ scripting.KV = (*ScriptKV)(nil)

// TestScriptKV: get, set, delete and keys, per script namespace, across
// nodes; keys in byte order whatever they hold.
func TestScriptKV(t *testing.T) {
	ns := startNATS(t, nil)
	ctx := context.Background()
	a, err := openNode(t, ns.url(), "a").OpenScriptKV(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lb := openNode(t, ns.url(), "b")
	b, err := lb.OpenScriptKV(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := b.Get("karma.lua", "bob"); ok || err != nil {
		t.Fatalf("Get of a missing key = %v, %v", ok, err)
	}
	keys := []string{"bob", "Bob", "a.b", "*", ">", "", "ünï", "zz top", "b"}
	for i, k := range keys {
		if err := a.Set("karma.lua", k, string(rune('0'+i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Set("other.lua", "bob", "other"); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := b.Get("karma.lua", "bob"); v != "0" || !ok || err != nil {
		t.Fatalf("Get = %q, %v, %v", v, ok, err)
	}
	if err := a.Set("karma.lua", "bob", "10"); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := b.Get("karma.lua", "bob"); v != "10" {
		t.Fatalf("Get after Set = %q", v)
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	got, err := b.Keys("karma.lua")
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("Keys = %q, %v; want %q", got, err, want)
	}
	if err := b.Delete("karma.lua", "bob"); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete("karma.lua", "never"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	if _, ok, _ := a.Get("karma.lua", "bob"); ok {
		t.Fatal("deleted key still there")
	}
	got, _ = a.Keys("karma.lua")
	if slices.Contains(got, "bob") || len(got) != len(keys)-1 {
		t.Fatalf("Keys after Delete = %q", got)
	}
	if got, _ := a.Keys("other.lua"); !slices.Equal(got, []string{"bob"}) {
		t.Fatalf("other namespace = %q", got)
	}
	if got, err := a.Keys("none.lua"); len(got) != 0 || err != nil {
		t.Fatalf("empty namespace = %q, %v", got, err)
	}
	lb.Close()
	if err := b.Set("karma.lua", "x", "y"); !errors.Is(err, chat.ErrUnavailable) {
		t.Fatalf("Set on a closed Log = %v, want chat.ErrUnavailable", err)
	}
}
