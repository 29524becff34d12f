// Package chainkey reads and creates the Ed25519 keys that sign the
// collector's chain checkpoints: the private key as PKCS #8 PEM ("PRIVATE
// KEY"), the public key as PKIX PEM ("PUBLIC KEY"), the files openssl
// writes with `openssl genpkey -algorithm ed25519` and `openssl pkey
// -pubout`.
package chainkey

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/auditpipe/auditpipe/schemas"
)

// LoadPrivate reads an Ed25519 private key from a PKCS #8 PEM file. The
// error never holds the key's bytes.
func LoadPrivate(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("chain key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("chain key %s: want a PEM block \"PRIVATE KEY\" (PKCS #8)", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("chain key %s: not a PKCS #8 key", path)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("chain key %s: %T, want an Ed25519 key", path, k)
	}
	return priv, nil
}

// LoadPublic reads Ed25519 public keys, by key id (schemas.ChainKeyID),
// from a PEM file of one or more "PUBLIC KEY" blocks (PKIX). A "PRIVATE
// KEY" block is refused: public key files get passed around.
func LoadPublic(path string) (map[string]ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("chain public key: %w", err)
	}
	keys := map[string]ed25519.PublicKey{}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("chain public key %s: PEM block %q, want \"PUBLIC KEY\"", path, blk.Type)
		}
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("chain public key %s: %w", path, err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("chain public key %s: %T, want an Ed25519 key", path, k)
		}
		keys[schemas.ChainKeyID(pub)] = pub
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("chain public key %s: no PEM \"PUBLIC KEY\" block", path)
	}
	return keys, nil
}

// Ensure returns the private key at path, creating it (mode 0600, with the
// public key beside it as path + ".pub", 0644) when it does not exist yet.
// created reports whether it did.
func Ensure(path string) (key ed25519.PrivateKey, created bool, err error) {
	key, err = LoadPrivate(path)
	if err == nil {
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("chain key: generate: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, false, fmt.Errorf("chain key: %w", err)
	}
	pder, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, false, fmt.Errorf("chain key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("chain key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("chain key: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		_ = f.Close()
		return nil, false, fmt.Errorf("chain key: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("chain key: write %s: %w", path, err)
	}
	if err := os.WriteFile(path+".pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder}), 0o644); err != nil {
		return nil, false, fmt.Errorf("chain key: write %s.pub: %w", path, err)
	}
	return priv, true, nil
}
