package sign

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"

	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

func mustSigner(t testing.TB, seed byte) *Signer {
	t.Helper()
	s, err := NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustMarshal(t testing.TB, e Envelope) []byte {
	t.Helper()
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKeyID(t *testing.T) {
	s := mustSigner(t, 1)
	id := s.KeyID()
	if len(id) != 16 || strings.Trim(id, "0123456789abcdef") != "" {
		t.Fatalf("key id %q: want 16 lower-case hex digits", id)
	}
	if id != KeyID(s.PublicKey()) {
		t.Fatalf("signer's id %s, KeyID %s", id, KeyID(s.PublicKey()))
	}
	if other := mustSigner(t, 2).KeyID(); other == id {
		t.Fatalf("two keys share the id %s", id)
	}
}

// TestOpen: what a verifier accepts and refuses, and why.
func TestOpen(t *testing.T) {
	trusted, stranger := mustSigner(t, 1), mustSigner(t, 2)
	kr := NewKeyring(trusted.PublicKey())
	payload := []byte(`{"loginid":"a","req_auth_id":"r"}`)
	good := trusted.Sign(payload)
	forgedID := stranger.Sign(payload)
	forgedID.KeyID = trusted.KeyID() // names the trusted key, signed by another
	tampered := good
	tampered.Payload = []byte(`{"loginid":"a","req_auth_id":"x"}`)
	badSig := good
	badSig.Sig = bytes.Clone(good.Sig)
	badSig.Sig[0] ^= 1
	shortSig := good
	shortSig.Sig = good.Sig[:10]
	otherAlg := good
	otherAlg.Alg = "none"
	b64 := base64.StdEncoding.EncodeToString
	tests := []struct {
		name  string
		value []byte
		want  error // nil: accepted
	}{
		{"signed by a trusted key", mustMarshal(t, good), nil},
		{"empty payload, signed", mustMarshal(t, trusted.Sign(nil)), nil},
		{"a bare tombstone", nil, ErrUnsigned},
		{"blank", []byte(" \n"), ErrUnsigned},
		{"a plain unsigned message", payload, ErrUnsigned},
		{"signed by an unknown key", mustMarshal(t, stranger.Sign(payload)), ErrUnknownKey},
		{"key id of a trusted key, signed by another", mustMarshal(t, forgedID), ErrBadSignature},
		{"tampered payload", mustMarshal(t, tampered), ErrBadSignature},
		{"bad signature", mustMarshal(t, badSig), ErrBadSignature},
		{"short signature", mustMarshal(t, shortSig), ErrBadSignature},
		{"another algorithm", mustMarshal(t, otherAlg), ErrMalformed},
		{"not JSON", []byte("\x00\x01"), ErrMalformed},
		{"a JSON array", []byte(`["key_id"]`), ErrMalformed},
		{"null", []byte(`null`), ErrMalformed},
		{"unknown field", []byte(`{"key_id":"` + trusted.KeyID() + `","alg":"ed25519","payload":"","sig":"","extra":1}`), ErrMalformed},
		{"sig missing", []byte(`{"key_id":"` + trusted.KeyID() + `","alg":"ed25519","payload":""}`), ErrMalformed},
		{"payload not a string", []byte(`{"key_id":"k","alg":"ed25519","payload":{},"sig":""}`), ErrMalformed},
		{"payload not base64", []byte(`{"key_id":"k","alg":"ed25519","payload":"!!","sig":""}`), ErrMalformed},
		{"payload base64 unpadded", []byte(`{"key_id":"k","alg":"ed25519","payload":"YQ","sig":""}`), ErrMalformed},
		{"sig not base64", []byte(`{"key_id":"k","alg":"ed25519","payload":"` + b64(payload) + `","sig":"%%"}`), ErrMalformed},
		{"too large", append(append([]byte(`{"key_id":"`), bytes.Repeat([]byte("a"), MaxEnvelopeBytes)...), `"}`...), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, id, err := Open(tt.value, kr)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if id != trusted.KeyID() {
					t.Errorf("key id %q, want %q", id, trusted.KeyID())
				}
				var e Envelope
				if e, err = Decode(tt.value); err != nil || !bytes.Equal(got, e.Payload) {
					t.Errorf("payload %q, want the envelope's %q (%v)", got, e.Payload, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if got != nil || id != "" {
				t.Errorf("refused, yet returned payload %q, key id %q", got, id)
			}
		})
	}
}

// TestVerifyNilKeyring: with no keyring everything signed is from an
// unknown key.
func TestVerifyNilKeyring(t *testing.T) {
	if _, _, err := Verify(mustSigner(t, 1).Sign([]byte("x")), nil); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("error %v, want ErrUnknownKey", err)
	}
}

// TestSignsExactBytes: the signature is over the payload's bytes as
// carried: JSON that means the same but is spelled differently does not
// verify, and the payload comes back byte for byte.
func TestSignsExactBytes(t *testing.T) {
	s := mustSigner(t, 1)
	kr := NewKeyring(s.PublicKey())
	payload := []byte(`{ "b":1,"a":"\u0041" }`)
	value := mustMarshal(t, s.Sign(payload))
	got, _, err := Open(value, kr)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("payload %q, %v; want %q", got, err, payload)
	}
	e, err := Decode(value)
	if err != nil {
		t.Fatal(err)
	}
	e.Payload = []byte(`{"a":"A","b":1}`) // the same JSON, re-encoded
	if _, _, err := Verify(e, kr); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("a re-encoded payload verified: %v", err)
	}
}

// TestEnvelopeMatchesSchema: the envelope Marshal writes validates against
// schemas/jsonschema/signed.schema.json, and what the schema refuses
// Decode refuses too.
func TestEnvelopeMatchesSchema(t *testing.T) {
	const path = "../../schemas/jsonschema/signed.schema.json"
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(path, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(path)
	if err != nil {
		t.Fatal(err)
	}
	validate := func(b []byte) error {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return err
		}
		return sch.Validate(v)
	}
	s := mustSigner(t, 1)
	for _, p := range [][]byte{nil, []byte(`{"loginid":"a"}`), bytes.Repeat([]byte{0xff}, 100)} {
		b := mustMarshal(t, s.Sign(p))
		if err := validate(b); err != nil {
			t.Errorf("%s: %v", b, err)
		}
	}
	for _, bad := range []string{
		`{"key_id":"` + s.KeyID() + `","alg":"none","payload":"","sig":""}`,
		`{"key_id":"` + s.KeyID() + `","alg":"ed25519","payload":""}`,
		`{"key_id":"` + s.KeyID() + `","alg":"ed25519","payload":"","sig":"","x":1}`,
	} {
		if validate([]byte(bad)) == nil {
			t.Errorf("the schema accepts %s", bad)
		}
		if _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("Decode accepts %s", bad)
		}
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	priv := filepath.Join(dir, "k.key")
	pubPath := filepath.Join(dir, "k.pub")
	if err := SavePrivateKey(priv, key); err != nil {
		t.Fatal(err)
	}
	if err := SavePublicKey(pubPath, pub); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{priv, pubPath} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", p, st.Mode().Perm())
		}
	}
	b, _ := os.ReadFile(priv)
	if !bytes.HasPrefix(b, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Errorf("private key file is not PEM PKCS #8: %q", b[:20])
	}
	if err := SavePrivateKey(priv, key); err == nil {
		t.Error("an existing private key was replaced")
	}
	gotKey, err := LoadPrivateKey(priv)
	if err != nil || !gotKey.Equal(key) {
		t.Fatalf("private key round trip: %v", err)
	}
	gotPub, err := LoadPublicKey(pubPath)
	if err != nil || !gotPub.Equal(pub) {
		t.Fatalf("public key round trip: %v", err)
	}

	// Raw base64 forms.
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	enc := base64.StdEncoding.EncodeToString
	for name, raw := range map[string][]byte{"seed": key.Seed(), "full": key} {
		got, err := LoadPrivateKey(write(name+".b64", []byte(enc(raw)+"\n")))
		if err != nil || !got.Equal(key) {
			t.Errorf("private key as base64 %s: %v", name, err)
		}
	}
	if got, err := LoadPublicKey(write("pub.b64", []byte(enc(pub)+"\n"))); err != nil || !got.Equal(pub) {
		t.Errorf("public key as base64: %v", err)
	}
	mismatched := append(bytes.Clone(key.Seed()), bytes.Repeat([]byte{7}, 32)...)
	if _, err := LoadPrivateKey(write("mismatch.b64", []byte(enc(mismatched)))); err == nil {
		t.Error("a 64-byte key whose public half is wrong loaded")
	}
	if _, err := LoadPublicKey(priv); err == nil {
		t.Error("a private key file loaded as a public key")
	}
	if _, err := LoadPublicKey(write("short.b64", []byte(enc(pub[:31])))); err == nil {
		t.Error("a 31-byte public key loaded")
	}

	// A private key others may read is refused, and its error does not
	// quote the file.
	loose := write("loose.key", b)
	if err := os.Chmod(loose, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPrivateKey(loose); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a group-readable private key: %v", err)
	}
	garbled := write("garbled.key", []byte("AAAA"+enc(key.Seed())[4:]+"x"))
	if _, err := LoadPrivateKey(garbled); err == nil || strings.Contains(err.Error(), enc(key.Seed())[4:]) {
		t.Errorf("a garbled key: %v (must fail without quoting the file)", err)
	}
}

func TestLoadKeyring(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	var want []string
	for i := range 2 {
		s := mustSigner(t, byte(i+1))
		p := filepath.Join(dir, fmt.Sprintf("%d.pub", i))
		if err := SavePublicKey(p, s.PublicKey()); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
		want = append(want, s.KeyID())
	}
	kr, err := LoadKeyring(paths...)
	if err != nil {
		t.Fatal(err)
	}
	if kr.Len() != 2 || !strings.Contains(strings.Join(kr.IDs(), ","), want[0]) || !strings.Contains(strings.Join(kr.IDs(), ","), want[1]) {
		t.Fatalf("keyring %v, want %v", kr.IDs(), want)
	}
	if _, err := LoadKeyring(filepath.Join(dir, "missing.pub")); err == nil {
		t.Fatal("a missing key file made a keyring")
	}
}

func TestEnsureKeyPair(t *testing.T) {
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "g.key"), filepath.Join(dir, "g.pub")
	s1, created, err := EnsureKeyPair(priv, pub)
	if err != nil || !created {
		t.Fatalf("first: created %v, %v", created, err)
	}
	s2, created, err := EnsureKeyPair(priv, pub)
	if err != nil || created || s2.KeyID() != s1.KeyID() {
		t.Fatalf("second: created %v, id %s (first %s), %v", created, s2.KeyID(), s1.KeyID(), err)
	}
	if err := os.Remove(pub); err != nil {
		t.Fatal(err)
	}
	if _, _, err := EnsureKeyPair(priv, pub); err != nil {
		t.Fatalf("public key written again: %v", err)
	}
	if got, err := LoadPublicKey(pub); err != nil || KeyID(got) != s1.KeyID() {
		t.Fatalf("public key rewritten as %v, %v", got, err)
	}
	// A public key file that belongs to another key is an error, not
	// trusted silently.
	if err := os.Remove(pub); err != nil {
		t.Fatal(err)
	}
	if err := SavePublicKey(pub, mustSigner(t, 9).PublicKey()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := EnsureKeyPair(priv, pub); err == nil {
		t.Fatal("a mismatched public key file was accepted")
	}
}

// TestSignerNeverPrintsTheKey: a signer in a log or a format string shows
// its key id, never the private key.
func TestSignerNeverPrintsTheKey(t *testing.T) {
	s := mustSigner(t, 3)
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "signer", s)
	out := logs.String() + fmt.Sprintf("%v %+v %s", s, s, s)
	if !strings.Contains(out, s.KeyID()) {
		t.Errorf("key id missing from %q", out)
	}
	for _, secret := range []string{
		base64.StdEncoding.EncodeToString(s.key.Seed()),
		fmt.Sprintf("%x", s.key.Seed()),
		fmt.Sprint(s.key.Seed()[:4]),
	} {
		if strings.Contains(out, strings.Trim(secret, "[]")) {
			t.Fatalf("the private key is printed: %q", out)
		}
	}
}

// FuzzDecode: Decode never panics; what it accepts re-encodes to an
// envelope that decodes to the same thing, and only the named errors come
// out of it.
func FuzzDecode(f *testing.F) {
	s := mustSigner(f, 1)
	f.Add(mustMarshal(f, s.Sign([]byte(`{"loginid":"830916abb78e4157b9e45b641e34fcf6","req_auth_id":"req1"}`))))
	f.Add(mustMarshal(f, s.Sign(nil)))
	f.Add([]byte(`{"loginid":"a","req_auth_id":"r"}`))
	f.Add([]byte(`{"key_id":"00","alg":"ed25519","payload":"","sig":"","x":null}`))
	f.Add([]byte(``))
	kr := NewKeyring(s.PublicKey())
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrUnsigned) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("error of no named kind: %v", err)
			}
			return
		}
		again, err := Decode(mustMarshal(t, e))
		if err != nil {
			t.Fatalf("re-encoded envelope refused: %v", err)
		}
		if again.KeyID != e.KeyID || again.Alg != e.Alg || !bytes.Equal(again.Payload, e.Payload) || !bytes.Equal(again.Sig, e.Sig) {
			t.Fatalf("round trip changed %+v into %+v", e, again)
		}
		p, id, err := Verify(e, kr)
		if err == nil && (id != s.KeyID() || !ed25519.Verify(s.PublicKey(), p, e.Sig)) {
			t.Fatalf("verified an envelope the key did not sign: %+v", e)
		}
		if err != nil && !errors.Is(err, ErrUnknownKey) && !errors.Is(err, ErrBadSignature) {
			t.Fatalf("verify error of no named kind: %v", err)
		}
	})
}
