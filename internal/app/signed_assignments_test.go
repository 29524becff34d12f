package app

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// Regression (issue 10): the all-in-one's forwarder, following
// opctl.assignments.v1, took any record for a resource's SIEM. Now it
// trusts the all-in-one's own key (DATA/grants.pub, made on first start
// even when the forwarder starts before the collector) without
// forwarder.assignment_keys: an assignment signed with it applies; an
// unsigned one is refused.
func TestAllInOneTrustsItsOwnAssignmentKey(t *testing.T) {
	dir := t.TempDir()
	cfg := sampleConfig(dir, filepath.Join(dir, "audit.log"))
	cfg.Forwarder.Assignments.Follow = true
	if err := cfg.Validate(); err != nil {
		t.Fatalf("target all following assignments without forwarder.assignment_keys: %v", err)
	}
	a, stop := startModules(t, cfg, "server", "broker", "forwarder")
	defer stop()
	key, err := sign.LoadPrivateKey(filepath.Join(cfg.Embedded.DataDir, GrantsKeyName))
	if err != nil {
		t.Fatalf("the signing key, made at the forwarder's start: %v", err)
	}
	signer, err := sign.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	// A SIEM that is not there: its destination retries, which is enough
	// to count it.
	signed, err := grants.AssignmentRecord(signer, schemas.Assignment{ResourceID: "exacc-main", IsEnforcedAlways: true, IsLogForwarded: true,
		RemoteSyslogServerAddress: "127.0.0.1", RemoteSyslogServerPort: 9, Hosts: []string{"cell01"}, PublishSeq: 1})
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := json.Marshal(schemas.Assignment{ResourceID: "other", IsEnforcedAlways: true, IsLogForwarded: true,
		RemoteSyslogServerAddress: "203.0.113.7", RemoteSyslogServerPort: 6514, Hosts: []string{"cell01"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := a.shared.kafka.NewWriter(kafka.TopicAssignments)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Write(ctx, signed, kafka.Record{Key: []byte("other"), Value: plain}); err != nil {
		t.Fatal(err)
	}
	reg := a.Registry()
	waitMetric(t, reg, "the unsigned assignment refused", `auditpipe_forwarder_assignments_refused_total{reason="unsigned"}`, 1)
	waitMetric(t, reg, "the signed assignment applied", "auditpipe_forwarder_assignments", 1)
}
