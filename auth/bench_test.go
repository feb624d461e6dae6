package auth_test

import (
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// benchVerify measures Verify on one valid token and reports
// verifications per second (per core).
func benchVerify(b *testing.B, m jwt.SigningMethod, key func(*keys) any) {
	k := newKeys(b)
	v := mustNew(b, fullConfig(k))
	tok := sign(b, m, key(k), good(nil), nil)
	if _, err := v.Verify(tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verify/s")
}

func BenchmarkVerifyHS256(b *testing.B) {
	benchVerify(b, jwt.SigningMethodHS256, func(k *keys) any { return k.secret })
}

func BenchmarkVerifyES256(b *testing.B) {
	benchVerify(b, jwt.SigningMethodES256, func(k *keys) any { return k.p256 })
}

func BenchmarkVerifyRS256(b *testing.B) {
	benchVerify(b, jwt.SigningMethodRS256, func(k *keys) any { return k.rsa })
}

func BenchmarkVerifyEdDSA(b *testing.B) {
	benchVerify(b, jwt.SigningMethodEdDSA, func(k *keys) any { return k.ed })
}
