package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Limits on the keys a Config may name. They refuse keys too weak to
// trust rather than accepting them quietly.
const (
	// MinSecretLen is the shortest HMAC secret accepted, in bytes: RFC 7518
	// section 3.2 requires a key at least as long as the hash output, and
	// the weakest family member, HS256, has a 256-bit output.
	MinSecretLen = 32
	// MinRSABits is the smallest RSA modulus accepted (RFC 7518 section
	// 3.3 requires 2048 bits or more).
	MinRSABits = 2048
)

// PublicKey names one PEM source of trusted public keys: a file (Path) or
// the PEM text itself (PEM), exactly one of the two.
//
// The PEM may hold several blocks; each "PUBLIC KEY" (PKIX), "RSA PUBLIC
// KEY" (PKCS #1) or "CERTIFICATE" block adds a key. Private keys are
// refused: the server only needs the public half and must not hold more.
type PublicKey struct {
	// ID is matched against a token's "kid" header. Empty means the file
	// name without its extension ("keys/app.pem" → "app").
	ID string
	// Path is a PEM file to read.
	Path string
	// PEM is PEM text, for keys that do not live in a file.
	PEM []byte
}

// keyEntry is one trusted key with the id tokens may name it by.
type keyEntry struct {
	id  string
	key any // []byte, *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// algorithms returns the JWS "alg" values a verification key admits (RFC
// 7518 section 3.1, RFC 8037 section 3.1): an RSA key admits RS* and PS*,
// an ECDSA key only the one ES* of its curve, an Ed25519 key EdDSA.
func algorithms(key any) ([]string, error) {
	switch k := key.(type) {
	case []byte:
		// RFC 7518 section 3.2: the key must be at least as long as the
		// hash output, so a 32-byte secret admits HS256 only.
		var algs []string
		for _, a := range []struct {
			alg  string
			size int
		}{{"HS256", 32}, {"HS384", 48}, {"HS512", 64}} {
			if len(k) >= a.size {
				algs = append(algs, a.alg)
			}
		}
		if len(algs) == 0 {
			return nil, fmt.Errorf("secret of %d bytes, need at least %d (RFC 7518 section 3.2)", len(k), MinSecretLen)
		}
		return algs, nil
	case *rsa.PublicKey:
		if k.N.BitLen() < MinRSABits {
			return nil, fmt.Errorf("RSA key of %d bits, need at least %d", k.N.BitLen(), MinRSABits)
		}
		return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return []string{"ES256"}, nil
		case elliptic.P384():
			return []string{"ES384"}, nil
		case elliptic.P521():
			return []string{"ES512"}, nil
		}
		return nil, fmt.Errorf("ECDSA curve %s has no JWS algorithm", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return []string{"EdDSA"}, nil
	}
	return nil, fmt.Errorf("unsupported key type %T", key)
}

// loadPublicKeys reads every key of one PublicKey source.
func loadPublicKeys(src PublicKey) ([]keyEntry, error) {
	data, name := src.PEM, "inline PEM"
	switch {
	case src.Path != "" && src.PEM != nil:
		return nil, errors.New("public key: give Path or PEM, not both")
	case src.Path != "":
		name = src.Path
		var err error
		if data, err = os.ReadFile(src.Path); err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
	case len(src.PEM) == 0:
		return nil, errors.New("public key: neither Path nor PEM given")
	}
	id := src.ID
	if id == "" && src.Path != "" {
		base := filepath.Base(src.Path)
		id = strings.TrimSuffix(base, filepath.Ext(base))
	}
	var keys []keyEntry
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		key, err := parsePEMBlock(block)
		if err != nil {
			return nil, fmt.Errorf("public key %s: %w", name, err)
		}
		if key == nil {
			continue // a block of another kind (parameters, comments)
		}
		if _, err := algorithms(key); err != nil {
			return nil, fmt.Errorf("public key %s: %w", name, err)
		}
		keys = append(keys, keyEntry{id: id, key: key})
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("public key %s: no PEM public key found", name)
	}
	return keys, nil
}

// parsePEMBlock returns the public key in one PEM block, nil for a block
// that holds no key, and an error for a private key or a broken block.
func parsePEMBlock(block *pem.Block) (any, error) {
	switch block.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		return cert.PublicKey, nil
	}
	if strings.Contains(block.Type, "PRIVATE KEY") {
		return nil, fmt.Errorf("holds a %s; give only the public key", block.Type)
	}
	return nil, nil
}
