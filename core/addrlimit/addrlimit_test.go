package addrlimit

import (
	"net/http"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.1:5000", "192.0.2.1"},
		{"192.0.2.1", "192.0.2.1"},
		{"[::ffff:192.0.2.1]:80", "192.0.2.1"}, // IPv4-mapped: the IPv4 address
		{"[2001:db8:1:2:aaaa::1]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:bbbb::9]:443", "2001:db8:1:2::/64"}, // same /64
		{"[2001:db8:1:3::1]:443", "2001:db8:1:3::/64"},
		{"[fe80::1%eth0]:80", "fe80::/64"},
		{"[::1]:80", "::/64"},
		{"not-an-ip:80", "not-an-ip"},
		{"@", "@"},
	} {
		if got := KeyOf(tc.in); got != tc.want {
			t.Errorf("KeyOf(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if Key(netip.Addr{}) != (netip.Prefix{}) {
		t.Error("the unknown address has a key of its own")
	}
}

func TestParsePrefixes(t *testing.T) {
	got, err := ParsePrefixes([]string{"127.0.0.1", "::1", "10.1.2.3/8", "2001:db8::/32", "::ffff:192.0.2.0/120"})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("192.0.2.0/24"),
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, bad := range []string{"", "localhost", "10.0.0.0/33", "fe80::1%eth0", "1.2.3"} {
		if _, err := ParsePrefixes([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestClientAddr(t *testing.T) {
	trusted, _ := ParsePrefixes([]string{"10.0.0.0/8", "::1"})
	xff := NewProxies(trusted, XForwardedFor)
	fwd := NewProxies(trusted, Forwarded)
	for _, tc := range []struct {
		name    string
		p       Proxies
		remote  string
		header  map[string][]string
		want    string // "" = ErrUnknownClient
		viaHdr  bool
		comment string
	}{
		{name: "no proxy", p: xff, remote: "192.0.2.9:1234", want: "192.0.2.9:1234"},
		{name: "untrusted peer's header ignored", p: xff, remote: "192.0.2.9:1234",
			header: map[string][]string{"X-Forwarded-For": {"198.51.100.1"}}, want: "192.0.2.9:1234"},
		{name: "trusted nobody", p: Proxies{}, remote: "10.0.0.1:1",
			header: map[string][]string{"X-Forwarded-For": {"198.51.100.1"}}, want: "10.0.0.1:1"},
		{name: "one proxy", p: xff, remote: "10.0.0.1:1",
			header: map[string][]string{"X-Forwarded-For": {"198.51.100.1"}}, want: "198.51.100.1:0", viaHdr: true},
		{name: "spoofed left part", p: xff, remote: "10.0.0.1:1",
			header: map[string][]string{"X-Forwarded-For": {"6.6.6.6, 198.51.100.1"}}, want: "198.51.100.1:0", viaHdr: true},
		{name: "two proxies, two lines", p: xff, remote: "[::1]:1",
			header: map[string][]string{"X-Forwarded-For": {"6.6.6.6, 198.51.100.1", "10.2.3.4"}}, want: "198.51.100.1:0", viaHdr: true},
		{name: "all trusted: leftmost", p: xff, remote: "10.0.0.1:1",
			header: map[string][]string{"X-Forwarded-For": {"10.9.9.9, 10.0.0.2"}}, want: "10.9.9.9:0", viaHdr: true},
		{name: "proxy's own request", p: xff, remote: "10.0.0.1:1", want: "10.0.0.1:1"},
		{name: "mapped", p: xff, remote: "[::ffff:10.0.0.1]:1",
			header: map[string][]string{"X-Forwarded-For": {"::ffff:198.51.100.1"}}, want: "198.51.100.1:0", viaHdr: true},
		{name: "garbage hop", p: xff, remote: "10.0.0.1:1",
			header: map[string][]string{"X-Forwarded-For": {"198.51.100.1, bogus"}}, viaHdr: true},
		{name: "the other header is not read", p: xff, remote: "10.0.0.1:1",
			header: map[string][]string{"Forwarded": {"for=198.51.100.1"}}, want: "10.0.0.1:1"},
		{name: "forwarded", p: fwd, remote: "10.0.0.1:1",
			header: map[string][]string{"Forwarded": {`for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https;by=10.0.0.1`}}, want: "[2001:db8:cafe::17]:4711", viaHdr: true},
		{name: "forwarded case and quotes", p: fwd, remote: "10.0.0.1:1",
			header: map[string][]string{"Forwarded": {`For="198.51.100.1:80"`, `for=10.0.0.7`}}, want: "198.51.100.1:80", viaHdr: true},
		{name: "forwarded unknown", p: fwd, remote: "10.0.0.1:1",
			header: map[string][]string{"Forwarded": {"for=unknown"}}, viaHdr: true},
		{name: "forwarded obfuscated", p: fwd, remote: "10.0.0.1:1",
			header: map[string][]string{"Forwarded": {"for=_hidden"}}, viaHdr: true},
		{name: "forwarded element without for", p: fwd, remote: "10.0.0.1:1",
			header: map[string][]string{"Forwarded": {"for=198.51.100.1, proto=https"}}, viaHdr: true},
		{name: "forwarded quoted comma", p: fwd, remote: "10.0.0.1:1",
			header: map[string][]string{"Forwarded": {`for=198.51.100.1;ext="a,b"`}}, want: "198.51.100.1:0", viaHdr: true},
		{name: "xff not read in forwarded mode", p: fwd, remote: "10.0.0.1:1",
			header: map[string][]string{"X-Forwarded-For": {"198.51.100.1"}}, want: "10.0.0.1:1"},
	} {
		h := http.Header{}
		for k, vs := range tc.header {
			for _, v := range vs {
				h.Add(k, v)
			}
		}
		got, via, err := tc.p.ClientAddr(tc.remote, h)
		if tc.want == "" {
			if err != ErrUnknownClient {
				t.Errorf("%s: got %v, %v; want ErrUnknownClient", tc.name, got, err)
			}
			continue
		}
		if err != nil || got.String() != tc.want || via != tc.viaHdr {
			t.Errorf("%s: got %v via=%v err=%v; want %s via=%v", tc.name, got, via, err, tc.want, tc.viaHdr)
		}
	}
}

func mustNew(t *testing.T, cfg Config) *Limiter {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestConnsPerAddress: the count is per Key (an IPv6 /64 together),
// another address is unaffected, a release frees a slot, exempt
// addresses are not counted, the unknown address is limited.
func TestConnsPerAddress(t *testing.T) {
	exempt, _ := ParsePrefixes([]string{"127.0.0.1", "::1"})
	l := mustNew(t, Config{MaxConns: 2, Exempt: exempt})
	now := time.Unix(1000, 0)
	a1 := netip.MustParseAddr("2001:db8::1")
	a2 := netip.MustParseAddr("2001:db8::2") // same /64
	b := netip.MustParseAddr("192.0.2.1")
	l1, r := l.Admit(a1, now)
	if r != nil {
		t.Fatal(r)
	}
	l2, r := l.Admit(a2, now)
	if r != nil {
		t.Fatal(r)
	}
	if _, r := l.Admit(a1, now); r == nil || r.Kind != KindConns || r.RetryAfterSeconds() != "10" {
		t.Fatalf("third connection of the /64: %+v", r)
	}
	if _, r := l.Admit(b, now); r != nil {
		t.Fatalf("another address refused: %v", r)
	}
	l1.Release()
	l3, r := l.Admit(a2, now)
	if r != nil {
		t.Fatalf("after a release: %v", r)
	}
	l2.Release()
	l3.Release()
	if n := l.Conns(a1); n != 0 {
		t.Fatalf("%d connections left", n)
	}
	for range 5 {
		if le, r := l.Admit(netip.MustParseAddr("127.0.0.1"), now); r != nil || le != (Lease{}) {
			t.Fatalf("exempt address: %v %v", le, r)
		}
	}
	if _, r := l.Admit(netip.MustParseAddr("::ffff:127.0.0.1"), now); r != nil {
		t.Fatalf("mapped exempt address: %v", r)
	}
	var unknown netip.Addr
	_, _ = l.Admit(unknown, now)
	_, _ = l.Admit(unknown, now)
	if _, r := l.Admit(unknown, now); r == nil {
		t.Fatal("unknown clients are not limited")
	}
	Lease{}.Release() // harmless
}

// TestHandshakeRate: the burst, then a refusal with the wait, another
// address unaffected, a token back after 1/rate.
func TestHandshakeRate(t *testing.T) {
	l := mustNew(t, Config{Rate: 0.5, Burst: 3})
	now := time.Unix(1000, 0)
	a := netip.MustParseAddr("198.51.100.7")
	for i := range 3 {
		le, r := l.Admit(a, now)
		if r != nil {
			t.Fatalf("handshake %d: %v", i, r)
		}
		le.Release() // closed at once: the rate still counts it
	}
	_, r := l.Admit(a, now)
	if r == nil || r.Kind != KindRate || r.RetryAfterSeconds() != "2" || r.Reason != "too many connection attempts from your address; retry in 2s" {
		t.Fatalf("fourth handshake: %+v", r)
	}
	if _, r := l.Admit(netip.MustParseAddr("198.51.100.8"), now); r != nil {
		t.Fatalf("another address: %v", r)
	}
	if _, r := l.Admit(a, now.Add(2*time.Second)); r != nil {
		t.Fatalf("after 2s: %v", r)
	}
}

// TestTableFull: a full table forgets recovered addresses, and refuses a
// new one (fail closed) while none has recovered, sweeping at most once a
// second.
func TestTableFull(t *testing.T) {
	l := mustNew(t, Config{MaxConns: 10, Rate: 1, Burst: 1, MaxAddrs: 2})
	now := time.Unix(1000, 0)
	x, y, z := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")
	lx, _ := l.Admit(x, now)
	ly, _ := l.Admit(y, now)
	if _, r := l.Admit(z, now); r == nil || r.Kind != KindTable {
		t.Fatalf("full table: %+v", r)
	}
	lx.Release()
	ly.Release()
	if _, r := l.Admit(z, now.Add(500*time.Millisecond)); r == nil || r.Kind != KindTable {
		t.Fatalf("swept again within a second, or buckets not yet full counted as recovered: %+v", r)
	}
	if _, r := l.Admit(z, now.Add(2*time.Second)); r != nil {
		t.Fatalf("recovered addresses not forgotten: %v", r)
	}
	if n := l.Tracked(); n != 1 {
		t.Fatalf("tracked %d, want 1", n)
	}
}

func TestNewRefuses(t *testing.T) {
	for _, cfg := range []Config{{MaxConns: -1}, {Rate: -1}, {Rate: 1}, {MaxAddrs: -1}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

func TestSampler(t *testing.T) {
	s := NewSampler(1, 2)
	now := time.Unix(1000, 0)
	for i := range 2 {
		if ok, n := s.Allow(now); !ok || n != 0 {
			t.Fatalf("line %d: %v %d", i, ok, n)
		}
	}
	for range 5 {
		if ok, _ := s.Allow(now); ok {
			t.Fatal("past the burst")
		}
	}
	if ok, n := s.Allow(now.Add(time.Second)); !ok || n != 5 {
		t.Fatalf("a second later: %v, %d suppressed", ok, n)
	}
}
