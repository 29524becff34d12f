// Package signtest makes the keys tests sign with: a host agent's key
// enrolled in a directory of host keys, as `auditpipe agent enroll`
// leaves it.
package signtest

import (
	"bytes"
	"crypto/ed25519"
	"testing"

	"github.com/auditpipe/auditpipe/internal/sign"
)

// EnrolledHost returns a key of host, made from seed (the same seed, the
// same key), enrolled for host in dir.
func EnrolledHost(t testing.TB, dir, host string, seed byte) *sign.Signer {
	t.Helper()
	s, err := sign.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sign.Enroll(dir, host, s.PublicKey()); err != nil {
		t.Fatal(err)
	}
	return s
}
