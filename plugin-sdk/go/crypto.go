package modgate

import (
	"crypto/sha256"
	"crypto/sha512"
	"errors"
)

// Hash is a digest algorithm the host computes natively.
type Hash uint8

// The digest algorithms.
const (
	SHA256 Hash = iota
	SHA384
	SHA512
)

// Algorithm is a JWS signature algorithm the host verifies natively.
type Algorithm uint8

// The signature algorithms (JOSE names RS256 … EdDSA).
const (
	RS256 Algorithm = iota
	RS384
	RS512
	PS256
	PS384
	PS512
	ES256
	ES384
	EdDSA
)

var joseNames = [...]string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"}

// AlgorithmFromJOSE gives the algorithm of a JOSE name ("RS256", …, "EdDSA").
func AlgorithmFromJOSE(name string) (Algorithm, bool) {
	for i, n := range joseNames {
		if n == name {
			return Algorithm(i), true
		}
	}
	return 0, false
}

// String gives the JOSE name.
func (a Algorithm) String() string {
	if int(a) < len(joseNames) {
		return joseNames[a]
	}
	return "unknown"
}

// ErrCryptoUnavailable: natively (go test), public-key checks need the host.
var ErrCryptoUnavailable = errors.New("crypto: public keys are checked by the modgate host only")

// inGuestDigestMax is the longest input Digest hashes in the plugin itself: for short inputs
// (a token, a header) Go's own SHA-2 in WebAssembly takes less than the trip to the host and
// back (whose result the host must allocate in the plugin's memory, a call into the Go
// runtime of its own); longer ones go to the host, which is much faster per byte.
const inGuestDigestMax = 256

// Digest hashes data: short inputs in the plugin, longer ones in the host (much faster than
// in WebAssembly per byte). Inputs are capped (1 MiB).
func Digest(h Hash, data []byte) ([]byte, error) {
	if len(data) <= inGuestDigestMax {
		switch h {
		case SHA256:
			sum := sha256.Sum256(data)
			return sum[:], nil
		case SHA384:
			sum := sha512.Sum384(data)
			return sum[:], nil
		case SHA512:
			sum := sha512.Sum512(data)
			return sum[:], nil
		}
	}
	return hostDigest(h, data)
}

// HMAC computes the HMAC of data under key.
func HMAC(h Hash, key, data []byte) ([]byte, error) { return hostHMAC(h, key, data) }

// HMACVerify checks tag against the HMAC of data under key, in constant time.
func HMACVerify(h Hash, key, data, tag []byte) (bool, error) {
	return hostHMACVerify(h, key, data, tag)
}

// Key is a public key parsed once by the host and kept for the instance's life (a bounded
// number per instance). Keep it (in a package variable) rather than parsing per call.
type Key struct {
	alg Algorithm
	key hostKey
}

// ParseJWK parses a public key given as a JWK (JSON) for alg.
func ParseJWK(alg Algorithm, jwk string) (*Key, error) {
	k, err := hostParseKey(alg, jwk, nil)
	if err != nil {
		return nil, err
	}
	return &Key{alg: alg, key: k}, nil
}

// ParseSPKI parses a public key given as SubjectPublicKeyInfo DER for alg.
func ParseSPKI(alg Algorithm, der []byte) (*Key, error) {
	k, err := hostParseKey(alg, "", der)
	if err != nil {
		return nil, err
	}
	return &Key{alg: alg, key: k}, nil
}

// Algorithm is the algorithm k verifies.
func (k *Key) Algorithm() Algorithm { return k.alg }

// Verify reports whether signature (JWS encoding: r||s for ECDSA) signs message under k.
func (k *Key) Verify(message, signature []byte) (bool, error) {
	return hostVerify(k.key, message, signature)
}
