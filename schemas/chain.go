package schemas

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/auditpipe/auditpipe/internal/sign"
)

// The hash chain (see the README's "Security model").
//
// An event's canonical bytes are its JSON encoding by AppendJSON, prev_hash
// included: exactly the bytes the collector writes to Kafka. AppendJSON is
// a function of the Event's value, so anyone holding the event's fields (a
// ClickHouse row, a SIEM message with its "json" parameter) can compute the
// same bytes again: decode, re-encode, hash. An event's hash is the hex
// SHA-256 of its canonical bytes; each event's prev_hash is the hash of the
// previous event of the same host (by seq), "" for the first one ever.

// CanonicalJSON returns the event's canonical bytes, appended to dst.
func (e *Event) CanonicalJSON(dst []byte) []byte { return e.AppendJSON(dst) }

// Hash returns the hex SHA-256 of the event's canonical bytes.
func (e *Event) Hash() string {
	var buf [2048]byte
	return HashBytes(e.AppendJSON(buf[:0]))
}

// HashBytes returns the hex SHA-256 of b: the hash of an event whose
// canonical bytes b are.
func HashBytes(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// NewChainEventID returns the event id of a chain checkpoint of host over
// the seq range first..last: stable, so a checkpoint sent again after a
// crash is the same event.
func NewChainEventID(host string, first, last uint64) string {
	b := append([]byte("chain\x00"), host...)
	b = append(b, 0)
	b = strconv.AppendUint(b, first, 10)
	b = append(b, 0)
	b = strconv.AppendUint(b, last, 10)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// ChainKeyID returns the key id of an Ed25519 public key (sign.KeyID: the
// first 8 bytes of its SHA-256, hex), as every signed message names it.
func ChainKeyID(pub ed25519.PublicKey) string { return sign.KeyID(pub) }

// ChainSigningBytes returns what a chain checkpoint's signature covers: its
// canonical bytes with sig empty (key_id included).
func (e *Event) ChainSigningBytes() []byte {
	c := *e
	c.Sig = ""
	return c.AppendJSON(nil)
}

// SignChain sets the chain checkpoint's key_id and sig with key.
func (e *Event) SignChain(key ed25519.PrivateKey) {
	pub, _ := key.Public().(ed25519.PublicKey)
	e.KeyID = ChainKeyID(pub)
	e.Sig = ""
	e.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(key, e.ChainSigningBytes()))
}

// Errors of VerifyChainSig.
var (
	ErrUnsigned   = errors.New("chain checkpoint is not signed")
	ErrUnknownKey = errors.New("chain checkpoint is signed by an unknown key")
	ErrBadSig     = errors.New("chain checkpoint signature does not verify")
)

// VerifyChainSig checks a chain checkpoint's signature against keys (by key
// id). It returns ErrUnsigned, ErrUnknownKey or ErrBadSig, wrapped.
func (e *Event) VerifyChainSig(keys map[string]ed25519.PublicKey) error {
	if e.Sig == "" {
		return ErrUnsigned
	}
	pub, ok := keys[e.KeyID]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownKey, e.KeyID)
	}
	sig, err := base64.StdEncoding.DecodeString(e.Sig)
	if err != nil || !ed25519.Verify(pub, e.ChainSigningBytes(), sig) {
		return fmt.Errorf("%w (key %s)", ErrBadSig, e.KeyID)
	}
	return nil
}
