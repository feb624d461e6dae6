package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/moonchat/moonchat/core/chat"
)

// benchConnect measures WebSocket connections per second through the
// [auth] authenticator with tokens signed by method: handshake, token
// verification, join (welcome), close. No store, no scripts.
func benchConnect(b *testing.B, method jwt.SigningMethod) {
	cfg, err := defaultConfig()
	if err != nil {
		b.Fatal(err)
	}
	cfg.Chat.FloodRate = 0
	cfg.Auth.Guests = method == nil // nil: a guest without a token, the baseline
	cfg.Auth.JWTSecret = testSecret
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		b.Fatal(err)
	}
	pemPath := filepath.Join(b.TempDir(), "ec.pem")
	if err := os.WriteFile(pemPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		b.Fatal(err)
	}
	cfg.Auth.JWTPublicKeys = []string{pemPath}
	cc := chatConfig(cfg, slog.New(slog.DiscardHandler))
	if cc.Authenticator, err = newAuthenticator(&cfg.Auth, []byte(testSecret), nil, nil); err != nil {
		b.Fatal(err)
	}
	srv, err := chat.New(cc, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	b.Cleanup(func() {
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	var signKey any = []byte(testSecret)
	if method == jwt.SigningMethodES256 {
		signKey = key
	}
	q := url.Values{}
	if method != nil {
		tok, err := jwt.NewWithClaims(method, jwt.MapClaims{"sub": "u-bench", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(signKey)
		if err != nil {
			b.Fatal(err)
		}
		q.Set("token", tok)
	}
	u := url.URL{Scheme: "ws", Host: hs.Listener.Addr().String(), Path: "/chat/bench", RawQuery: q.Encode()}
	d := websocket.Dialer{Subprotocols: []string{"moonchat.v1"}, HandshakeTimeout: waitLong}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		conn, _, err := d.Dial(u.String(), nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := conn.ReadMessage(); err != nil { // welcome: joined
			b.Fatal(err)
		}
		conn.Close()
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "connects/s")
}

// BenchmarkConnectJWT (issue 12): connections per second with token
// verification at the handshake, HS256 and ES256, beside a guest (no
// token) as the baseline.
func BenchmarkConnectJWT(b *testing.B) {
	b.Run("guest", func(b *testing.B) { benchConnect(b, nil) })
	b.Run("HS256", func(b *testing.B) { benchConnect(b, jwt.SigningMethodHS256) })
	b.Run("ES256", func(b *testing.B) { benchConnect(b, jwt.SigningMethodES256) })
}

// BenchmarkAuthenticate (issue 12): the authenticator alone, per
// handshake: a guest (no token, no connect script: the fast path every
// guest takes) and an HS256 token.
func BenchmarkAuthenticate(b *testing.B) {
	cfg, err := defaultConfig()
	if err != nil {
		b.Fatal(err)
	}
	a, err := newAuthenticator(&cfg.Auth, []byte(testSecret), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "u-bench", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(testSecret))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name, url string
		authed    bool
	}{
		{"guest", "/chat/lobby?name=alice", false},
		{"HS256", "/chat/lobby?name=alice&token=" + tok, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, bc.url, nil)
			b.ReportAllocs()
			for b.Loop() {
				if _, ok, err := a.Authenticate(r, "lobby"); err != nil || ok != bc.authed {
					b.Fatalf("authenticate: %v %v", ok, err)
				}
			}
		})
	}
}
