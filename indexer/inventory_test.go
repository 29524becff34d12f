package indexer

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/schemas"
)

const goldenInventory = "../schemas/testdata/policy/inventory.json"

func TestDecodeInventory(t *testing.T) {
	raw, err := os.ReadFile(goldenInventory)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := DecodeInventory(raw, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	// The header row, then bash, libssl3, tzdata.
	if len(rows) != 4 || rows[0].Package != "" || rows[0].InstanceID != "ocid1.instance.db01" || rows[0].CompartmentID != "ocid1.compartment.prod" ||
		rows[2].Package != "libssl3" || rows[2].UpdateType != "SECURITY" || len(rows[2].CVEs) != 2 || rows[3].UpdateType != "OTHER" || rows[1].UpdateVersion != "" {
		t.Errorf("rows %+v", rows)
	}
	for _, tt := range []struct {
		name, value, reason string
	}{
		{"oversize", string(raw), ReasonOversize},
		{"not UTF-8", "{\"inventory\":\"\xff\"}", ReasonInvalidUTF8},
		{"not an object", `["inventory"]`, ReasonInvalidJSON},
		{"unknown field", `{"inventory":"SCHEDULED","host":"h","instance_id":"i","os_family":"debian","packages":[],"time":"2026-01-01T00:00:00Z","x":1}`, ReasonInvalidInventory},
		{"no instance", `{"inventory":"SCHEDULED","host":"h","os_family":"debian","packages":[],"time":"2026-01-01T00:00:00Z"}`, ReasonInvalidInventory},
	} {
		limit := 1 << 20
		if tt.reason == ReasonOversize {
			limit = 100
		}
		if _, err := DecodeInventory([]byte(tt.value), limit); RejectReason(err) != tt.reason {
			t.Errorf("%s: %v (reason %q), want %s", tt.name, err, RejectReason(err), tt.reason)
		}
	}
	if isInventory([]byte(`{"work_request_id":"w","inventoryx":1}`)) || !isInventory(raw) {
		t.Error("isInventory tells an inventory from the topic's other messages wrongly")
	}
}

// TestInventoryIndexed: the agents' topic through the indexer: an
// inventory becomes its rows in instance_inventory (once, though it is
// delivered twice), the topic's other messages (work progress) go to
// pipeline_messages, and a broken inventory is a dead letter.
func TestInventoryIndexed(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	kc, _ := kafkatest.Start(t, 1)
	raw, err := os.ReadFile(goldenInventory)
	if err != nil {
		t.Fatal(err)
	}
	progress, err := os.ReadFile("../schemas/testdata/policy/work-progress-failed.json")
	if err != nil {
		t.Fatal(err)
	}
	var broken map[string]any
	_ = json.Unmarshal(raw, &broken)
	delete(broken, "instance_id")
	bad, _ := json.Marshal(broken)
	host := []byte("exa-main-db01")
	produce(t, kc, schemas.TopicAgent, []kafka.Record{{Key: host, Value: raw}, {Key: host, Value: progress}, {Key: host, Value: bad}, {Key: host, Value: raw}})
	cfg := testConfig(kc, "inventory")
	ix, err := New(cfg, Deps{Engine: eng})
	if err != nil {
		t.Fatal(err)
	}
	stop := startIndexer(t, ix)
	waitFor(t, "the inventory stored and the bad one dead-lettered", 30*time.Second, func() bool {
		return countOr(eng, "SELECT count() FROM instance_inventory") == 4 &&
			testutil.ToFloat64(ix.m.deadLetters.WithLabelValues(ReasonInvalidInventory)) == 1 &&
			countOr(eng, "SELECT count() FROM pipeline_messages") == 1
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	r, err := eng.Query(context.Background(), `SELECT package, version, update_version, update_type, arrayStringConcat(cves, ','),
		instance_name, arrayStringConcat(compartment_path, '/'), arrayStringConcat(group_ids, ','), os_family, formatDateTime(time, '%Y-%m-%dT%H:%i:%SZ')
		FROM instance_inventory FINAL ORDER BY package`)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"", "", "", "", ""},
		{"bash", "5.2.15-2+b7", "", "", ""},
		{"libssl3", "3.0.14-1~deb12u2", "3.0.15-1~deb12u1", "SECURITY", "CVE-2024-5535,CVE-2024-9143"},
		{"tzdata", "2024a-0+deb12u1", "2025b-0+deb12u1", "OTHER", ""},
	}
	if len(r.Rows) != len(want) {
		t.Fatalf("rows %v", r.Rows)
	}
	for i, w := range want {
		for j, v := range append(w, "exa-main-db01", "ocid1.compartment.root/ocid1.compartment.prod", "ocid1.instancegroup.dbs", "debian", "2026-03-08T08:01:14Z") {
			if got := clickhouse.ValueString(r.Rows[i][j]); got != v {
				t.Errorf("row %d %s = %q, want %q", i, r.Columns[j], got, v)
			}
		}
	}
	dead := readDeadLetters(t, kc, 1)
	if dead[0].Reason != ReasonInvalidInventory || dead[0].Raw != string(bad) || dead[0].Host != string(host) {
		t.Errorf("dead letter %+v", dead[0])
	}
}
