package sign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Key files. A private key is written as PEM "PRIVATE KEY" (PKCS #8, as
// `openssl genpkey -algorithm ed25519` writes it), mode 0600; a public key
// as PEM "PUBLIC KEY" (PKIX). Both load from PEM or from one line of
// standard base64: a public key's 32 bytes, a private key's 32-byte seed
// or 64 bytes.
const (
	pemPrivate = "PRIVATE KEY"
	pemPublic  = "PUBLIC KEY"
)

// SavePrivateKey writes key to path (PEM, mode 0600), atomically; it
// refuses to replace a file that exists.
func SavePrivateKey(path string, key ed25519.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("sign: private key %s: %w", path, err)
	}
	return writeNew(path, pem.EncodeToMemory(&pem.Block{Type: pemPrivate, Bytes: der}), 0o600)
}

// SavePublicKey writes pub to path (PEM, mode 0600 like every file of a
// data directory; copy it where it is trusted), atomically; it refuses to
// replace a file that exists.
func SavePublicKey(path string, pub ed25519.PublicKey) error {
	b, err := encodePublicKey(pub)
	if err != nil {
		return fmt.Errorf("sign: public key %s: %w", path, err)
	}
	return writeNew(path, b, 0o600)
}

// encodePublicKey is pub's PEM "PUBLIC KEY" (PKIX).
func encodePublicKey(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("sign: public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublic, Bytes: der}), nil
}

// LoadPrivateKey reads a private key file. It refuses a file that its
// group or others may read or write: a private key is its owner's only.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("sign: private key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("sign: private key %s: mode %v: readable by others than its owner (chmod 600 it)", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sign: private key: %w", err)
	}
	key, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("sign: private key %s: %w", path, err)
	}
	return key, nil
}

// LoadPublicKey reads a public key file.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sign: public key: %w", err)
	}
	pub, err := ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("sign: public key %s: %w", path, err)
	}
	return pub, nil
}

// LoadKeyring reads the public key files at paths into a keyring.
func LoadKeyring(paths ...string) (*Keyring, error) {
	k := NewKeyring()
	for _, p := range paths {
		pub, err := LoadPublicKey(p)
		if err != nil {
			return nil, err
		}
		k.Add(pub)
	}
	return k, nil
}

// ParsePrivateKey parses a private key: PEM PKCS #8, or base64 of the
// 32-byte seed or the 64-byte key. Errors never quote the input.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != pemPrivate {
			return nil, fmt.Errorf("PEM block %q, want %q", blk.Type, pemPrivate)
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, errors.New("not a PKCS #8 private key")
		}
		key, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("a %T, not an Ed25519 key", k)
		}
		return key, nil
	}
	raw, err := b64.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil {
		return nil, errors.New("neither PEM nor base64")
	}
	switch len(raw) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(raw), nil
	case ed25519.PrivateKeySize:
		key := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize])
		if !bytes.Equal(key[ed25519.SeedSize:], raw[ed25519.SeedSize:]) {
			return nil, errors.New("the 64 bytes' public half does not match their seed")
		}
		return key, nil
	default:
		return nil, fmt.Errorf("%d bytes, want %d (seed) or %d", len(raw), ed25519.SeedSize, ed25519.PrivateKeySize)
	}
}

// ParsePublicKey parses a public key: PEM PKIX, or base64 of its 32 bytes.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != pemPublic {
			return nil, fmt.Errorf("PEM block %q, want %q", blk.Type, pemPublic)
		}
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("not a PKIX public key: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("a %T, not an Ed25519 key", k)
		}
		return pub, nil
	}
	raw, err := b64.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil {
		return nil, errors.New("neither PEM nor base64")
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%d bytes, want %d", len(raw), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}

// EnsureKeyPair returns the signer of the private key at privPath,
// creating it and its public key at pubPath first when privPath does not
// exist (mode 0600 both). It reports whether it created them. When the
// private key exists and the public key file does not, the public key is
// written again.
func EnsureKeyPair(privPath, pubPath string) (s *Signer, created bool, err error) {
	key, err := LoadPrivateKey(privPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if key, err = GenerateKey(); err != nil {
			return nil, false, err
		}
		if err := SavePrivateKey(privPath, key); err != nil {
			return nil, false, err
		}
		created = true
	case err != nil:
		return nil, false, err
	}
	if _, err := os.Stat(pubPath); errors.Is(err, fs.ErrNotExist) {
		if err := SavePublicKey(pubPath, key.Public().(ed25519.PublicKey)); err != nil {
			return nil, false, err
		}
	} else if err != nil {
		return nil, false, fmt.Errorf("sign: public key: %w", err)
	} else {
		pub, err := LoadPublicKey(pubPath)
		if err != nil {
			return nil, false, err
		}
		if !pub.Equal(key.Public()) {
			return nil, false, fmt.Errorf("sign: %s is not the public key of %s", pubPath, privPath)
		}
	}
	s, err = NewSigner(key)
	return s, created, err
}

// writeNew writes b to a new file at path, of mode perm, atomically: a
// temporary file in the same directory, synced, then linked in place, so
// that an existing file is never replaced.
func writeNew(path string, b []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("sign: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("sign: write %s: %w", path, err)
	}
	return nil
}
