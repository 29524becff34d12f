package app

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// TestAgentTargetRenders: target agent, without the live switch, takes
// a signed grant for its host from the broker and renders it under
// agent.root (nothing on the host changes); the configuration without
// grant keys is refused, naming the field.
func TestAgentTargetRenders(t *testing.T) {
	kcfg, _ := kafkatest.Start(t, 1)
	dir := t.TempDir()
	key, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := sign.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(dir, "grants.pub")
	if err := sign.SavePublicKey(pub, s.PublicKey()); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Target = TargetAgent
	cfg.Server.HTTPAddr = "off"
	cfg.Kafka.Brokers = kcfg.Brokers
	cfg.Agent.Host = "dbhost01"
	cfg.Agent.Root = filepath.Join(dir, "plan")
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "agent.grant_keys") {
		t.Fatalf("validate without grant keys: %v", err)
	}
	cfg.Agent.GrantKeys = []string{pub}

	const login = "830916abb78e4157b9e45b641e34fcf6"
	rec, err := grants.Record(s, schemas.Grant{LoginID: login, ReqAuthID: "ocid1.req.1", Hosts: []string{"dbhost01"},
		Expires: time.Now().Add(time.Hour), Privileges: &schemas.Privileges{Layers: []string{"HOST"}, SudoCommands: []string{"/usr/bin/id"}}, PublishSeq: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := grants.Publish(ctx, kcfg, rec); err != nil {
		t.Fatal(err)
	}
	startTarget(t, cfg)
	frag := filepath.Join(cfg.Agent.Root, "etc/sudoers.d/auditpipe-"+login)
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(frag)
		if err == nil && strings.Contains(string(b), "NOPASSWD: NOEXEC: /usr/bin/id") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no fragment rendered: %v %s", err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat("/etc/sudoers.d/auditpipe-" + login); err == nil {
		t.Error("the rendering agent installed a fragment on the host")
	}
}
