// Package sign signs and verifies what one part of auditpipe publishes for
// another to act on (grants today; assignments, dispatch and the
// collector's chain checkpoints next): Ed25519 keys, key ids, a signed
// envelope and a keyring of trusted public keys.
//
// The envelope is the message's value, a JSON object:
//
//	{"key_id": "3f2a…", "alg": "ed25519", "payload": "<base64>", "sig": "<base64>"}
//
// The signature is over the payload's bytes exactly as carried (the
// base64-decoded "payload"), never over a re-encoding: the signer signs the
// bytes it publishes and the verifier hands on the bytes it verified. The
// payload is base64 (standard alphabet, padded) and not embedded JSON so
// that no JSON encoder on the way can change a byte of what was signed.
// The key id is the hex of the first 8 bytes of the SHA-256 of the public
// key (KeyID); it names the key, it does not authenticate anything: the
// signature does.
package sign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
)

// Alg is the one signature algorithm an envelope may name.
const Alg = "ed25519"

// MaxEnvelopeBytes bounds an envelope Decode reads: a Kafka message's
// default maximum.
const MaxEnvelopeBytes = 1 << 20

// Why an envelope is refused; test with errors.Is.
var (
	// ErrUnsigned: the value is empty (a bare Kafka tombstone) or a JSON
	// object with neither key_id nor sig (an unsigned message).
	ErrUnsigned = errors.New("unsigned")
	// ErrMalformed: not an envelope (not a JSON object, an unknown or
	// missing field, bad base64, another algorithm, too large).
	ErrMalformed = errors.New("malformed envelope")
	// ErrUnknownKey: signed by a key the keyring does not hold.
	ErrUnknownKey = errors.New("unknown key")
	// ErrBadSignature: the signature does not verify with the key the
	// envelope names.
	ErrBadSignature = errors.New("bad signature")
)

// KeyID returns the id of pub: the hex of the first 8 bytes of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// GenerateKey returns a new private key from crypto/rand.
func GenerateKey() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("sign: generate key: %w", err)
	}
	return priv, nil
}

// Envelope is a signed message: the payload's bytes, the signature over
// exactly them, and the id of the key that made it.
type Envelope struct {
	KeyID   string
	Alg     string
	Payload []byte
	Sig     []byte
}

// wireEnvelope is the envelope's JSON form.
type wireEnvelope struct {
	KeyID   string `json:"key_id"`
	Alg     string `json:"alg"`
	Payload string `json:"payload"`
	Sig     string `json:"sig"`
}

var b64 = base64.StdEncoding.Strict()

// Marshal returns the envelope's JSON, the message value.
func (e Envelope) Marshal() ([]byte, error) {
	b, err := json.Marshal(wireEnvelope{
		KeyID: e.KeyID, Alg: e.Alg,
		Payload: b64.EncodeToString(e.Payload), Sig: b64.EncodeToString(e.Sig),
	})
	if err != nil {
		return nil, fmt.Errorf("sign: encode envelope: %w", err)
	}
	return b, nil
}

// Decode parses an envelope strictly: a JSON object with exactly the
// fields key_id, alg, payload and sig, each a string, alg "ed25519",
// payload and sig in standard padded base64. An empty value, or an object
// with neither key_id nor sig, is ErrUnsigned; anything else wrong is
// ErrMalformed. Decode does not verify: Verify does.
func Decode(b []byte) (Envelope, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return Envelope{}, fmt.Errorf("empty value: %w", ErrUnsigned)
	}
	if len(b) > MaxEnvelopeBytes {
		return Envelope{}, fmt.Errorf("%d bytes, more than %d: %w", len(b), MaxEnvelopeBytes, ErrMalformed)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil || fields == nil {
		return Envelope{}, fmt.Errorf("not a JSON object: %w", ErrMalformed)
	}
	_, hasKey := fields["key_id"]
	_, hasSig := fields["sig"]
	if !hasKey && !hasSig {
		return Envelope{}, fmt.Errorf("no key_id and no sig: %w", ErrUnsigned)
	}
	want := []string{"key_id", "alg", "payload", "sig"}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		if !slices.Contains(want, k) {
			return Envelope{}, fmt.Errorf("unknown field %q: %w", k, ErrMalformed)
		}
	}
	str := make(map[string]string, len(want))
	for _, k := range want {
		raw, ok := fields[k]
		if !ok {
			return Envelope{}, fmt.Errorf("field %q missing: %w", k, ErrMalformed)
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return Envelope{}, fmt.Errorf("field %q is not a string: %w", k, ErrMalformed)
		}
		str[k] = s
	}
	if str["alg"] != Alg {
		return Envelope{}, fmt.Errorf("alg %q is not %s: %w", str["alg"], Alg, ErrMalformed)
	}
	payload, err := b64.DecodeString(str["payload"])
	if err != nil {
		return Envelope{}, fmt.Errorf("payload: %v: %w", err, ErrMalformed)
	}
	sig, err := b64.DecodeString(str["sig"])
	if err != nil {
		return Envelope{}, fmt.Errorf("sig: %v: %w", err, ErrMalformed)
	}
	return Envelope{KeyID: str["key_id"], Alg: Alg, Payload: payload, Sig: sig}, nil
}

// Signer signs with one private key. Its String and LogValue show the key
// id only: the private key never reaches a log.
type Signer struct {
	key ed25519.PrivateKey
	id  string
}

// NewSigner returns a signer of key.
func NewSigner(key ed25519.PrivateKey) (*Signer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("sign: private key of %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	return &Signer{key: key, id: KeyID(key.Public().(ed25519.PublicKey))}, nil
}

// KeyID returns the id of the signer's public key.
func (s *Signer) KeyID() string { return s.id }

// PublicKey returns the signer's public key.
func (s *Signer) PublicKey() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// Sign returns the envelope of payload, signed over exactly its bytes.
func (s *Signer) Sign(payload []byte) Envelope {
	p := bytes.Clone(payload)
	return Envelope{KeyID: s.id, Alg: Alg, Payload: p, Sig: ed25519.Sign(s.key, p)}
}

// String implements fmt.Stringer without the key.
func (s *Signer) String() string { return "ed25519 signer " + s.id }

// LogValue implements slog.LogValuer without the key.
func (s *Signer) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Keyring holds the public keys whose signatures are trusted, by key id.
// It is not safe for concurrent modification; build it, then share it.
type Keyring struct {
	keys map[string]ed25519.PublicKey
}

// NewKeyring returns a keyring of keys.
func NewKeyring(keys ...ed25519.PublicKey) *Keyring {
	k := &Keyring{keys: map[string]ed25519.PublicKey{}}
	for _, p := range keys {
		k.Add(p)
	}
	return k
}

// Add trusts pub and returns its key id.
func (k *Keyring) Add(pub ed25519.PublicKey) string {
	id := KeyID(pub)
	k.keys[id] = bytes.Clone(pub)
	return id
}

// Len returns the number of keys.
func (k *Keyring) Len() int {
	if k == nil {
		return 0
	}
	return len(k.keys)
}

// Keys returns the trusted keys by key id (a copy).
func (k *Keyring) Keys() map[string]ed25519.PublicKey {
	out := map[string]ed25519.PublicKey{}
	if k != nil {
		for id, p := range k.keys {
			out[id] = bytes.Clone(p)
		}
	}
	return out
}

// IDs returns the key ids, sorted.
func (k *Keyring) IDs() []string {
	if k == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(k.keys))
}

// Verify checks e against the keyring and returns the payload it signs
// and the id of the key that signed it. The error wraps ErrMalformed,
// ErrUnknownKey or ErrBadSignature.
func Verify(e Envelope, kr *Keyring) (payload []byte, keyID string, err error) {
	if e.Alg != Alg {
		return nil, "", fmt.Errorf("alg %q is not %s: %w", e.Alg, Alg, ErrMalformed)
	}
	var pub ed25519.PublicKey
	if kr != nil {
		pub = kr.keys[e.KeyID]
	}
	if pub == nil {
		return nil, "", fmt.Errorf("key_id %q: %w", e.KeyID, ErrUnknownKey)
	}
	if len(e.Sig) != ed25519.SignatureSize || !ed25519.Verify(pub, e.Payload, e.Sig) {
		return nil, "", fmt.Errorf("key_id %s: %w", e.KeyID, ErrBadSignature)
	}
	return e.Payload, e.KeyID, nil
}

// Open decodes the envelope in b and verifies it: Decode then Verify.
func Open(b []byte, kr *Keyring) (payload []byte, keyID string, err error) {
	e, err := Decode(b)
	if err != nil {
		return nil, "", err
	}
	return Verify(e, kr)
}
