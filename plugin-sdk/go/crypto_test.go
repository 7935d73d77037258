//go:build !wasip1

package modgate_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"testing"

	modgate "modgate.dev/sdk"
	"modgate.dev/sdk/modgatetest"
)

// Short inputs are hashed in the plugin, longer ones by the host: the same digests either way.
func TestDigestShortAndLongInputs(t *testing.T) {
	modgatetest.Reset()
	for _, n := range []int{0, 20, 256, 257, 4096} {
		data := bytes.Repeat([]byte{'x'}, n)
		s256 := sha256.Sum256(data)
		s384 := sha512.Sum384(data)
		s512 := sha512.Sum512(data)
		for h, want := range map[modgate.Hash][]byte{modgate.SHA256: s256[:], modgate.SHA384: s384[:], modgate.SHA512: s512[:]} {
			got, err := modgate.Digest(h, data)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("Digest(%d, %d bytes) = %x, %v; want %x", h, n, got, err, want)
			}
		}
	}
}
