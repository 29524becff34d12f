package schemas_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/auditpipe/auditpipe/schemas"
)

// Issue 9: a chain checkpoint is a contract event like the others: its
// JSON matches chain.schema.json, decodes strictly to the same value, and
// its signature covers every field (key_id included).
func TestChainCheckpoint(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	keys := map[string]ed25519.PublicKey{schemas.ChainKeyID(pub): pub}
	ev := schemas.Event{
		Layer: "HOST", Event: schemas.KindChain, Host: "web01", Time: "Thu Oct 29 03:20:22 2020", TS: "2020-10-29T03:20:22.418Z",
		EventID: schemas.NewChainEventID("web01", 11, 20), PrevHash: string(bytes.Repeat([]byte("a"), 64)),
		ChainFirst: 11, ChainLast: 20, ChainCount: 10, ChainHead: string(bytes.Repeat([]byte("b"), 64)),
	}
	ev.SignChain(key)
	if err := ev.Validate(); err != nil {
		t.Fatal(err)
	}
	b := ev.AppendJSON(nil)
	var back schemas.Event
	if err := back.DecodeJSON(b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.AppendJSON(nil), b) || back.Hash() != ev.Hash() {
		t.Fatalf("round trip differs:\n%s\n%s", back.AppendJSON(nil), b)
	}
	inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err := compileSchemas(t)[schemas.KindChain].Validate(inst); err != nil {
		t.Errorf("%s does not match chain.schema.json: %v", b, err)
	}
	if err := back.VerifyChainSig(keys); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(e *schemas.Event)
		want   error
	}{
		{"head changed", func(e *schemas.Event) { e.ChainHead = string(bytes.Repeat([]byte("c"), 64)) }, schemas.ErrBadSig},
		{"range changed", func(e *schemas.Event) { e.ChainLast = 19 }, schemas.ErrBadSig},
		{"ts changed", func(e *schemas.Event) { e.TS = "2020-10-29T03:20:23.418Z" }, schemas.ErrBadSig},
		{"unsigned", func(e *schemas.Event) { e.Sig, e.KeyID = "", "" }, schemas.ErrUnsigned},
		{"other key id", func(e *schemas.Event) { e.KeyID = "0000000000000000" }, schemas.ErrUnknownKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := back
			tc.change(&e)
			if err := e.VerifyChainSig(keys); !errors.Is(err, tc.want) {
				t.Errorf("VerifyChainSig = %v, want %v", err, tc.want)
			}
		})
	}
	// Chain fields on another kind, or a bad head, do not validate.
	bad := ev
	bad.ChainHead = "x"
	if bad.Validate() == nil {
		t.Error("a chain_head that is not a hash validated")
	}
	cmd := schemas.Event{Event: schemas.KindCommand, Host: "h", TS: ev.TS, EventID: ev.EventID, ChainHead: ev.ChainHead}
	if cmd.Validate() == nil {
		t.Error("chain fields on a command validated")
	}
}
