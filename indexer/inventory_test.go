package indexer

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/internal/sign/signtest"
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
	env, err := signtest.EnrolledHost(t, t.TempDir(), "h", 1).Sign(raw).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if isInventory([]byte(`{"work_request_id":"w","inventoryx":1}`)) || !isInventory(raw) || !isInventory(env) {
		t.Error("isInventory tells an inventory from the topic's other messages wrongly")
	}
}

// TestInventoryIndexed: the agents' topic through the indexer: an
// inventory signed by its host's enrolled key becomes its rows in
// instance_inventory (once, though it is delivered twice), the topic's
// other messages (work progress) go to pipeline_messages, and a broken
// inventory is a dead letter, as is a forged one (unsigned, another
// host's key, a host not enrolled), which changes no row.
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
	keysDir := t.TempDir()
	db01, other := signtest.EnrolledHost(t, keysDir, string(host), 1), signtest.EnrolledHost(t, keysDir, "exa-main-db02", 2)
	stranger := signtest.EnrolledHost(t, t.TempDir(), "exa-main-db03", 3)
	signed := func(s *sign.Signer, payload []byte) []byte {
		b, err := s.Sign(payload).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// Issue 9: a forged inventory that hides db01's security update,
	// later than the real one (so that it would replace it in FINAL),
	// unsigned, signed by another host's key, or by a host not enrolled.
	var forged map[string]any
	_ = json.Unmarshal(raw, &forged)
	forged["time"] = "2026-03-09T08:00:00Z"
	forged["packages"] = []map[string]string{{"name": "libssl3", "version": "3.0.15-1~deb12u1"}}
	hidden, _ := json.Marshal(forged)
	forged["host"] = "exa-main-db03"
	unknown, _ := json.Marshal(forged)
	produce(t, kc, schemas.TopicAgent, []kafka.Record{{Key: host, Value: signed(db01, raw)}, {Key: host, Value: signed(db01, progress)},
		{Key: host, Value: signed(db01, bad)}, {Key: host, Value: signed(db01, raw)},
		{Key: host, Value: hidden}, {Key: host, Value: signed(other, hidden)}, {Key: []byte("exa-main-db03"), Value: signed(stranger, unknown)}})
	cfg := testConfig(kc, "inventory")
	cfg.HostKeysDir = keysDir
	ix, err := New(cfg, Deps{Engine: eng})
	if err != nil {
		t.Fatal(err)
	}
	stop := startIndexer(t, ix)
	waitFor(t, "the inventory stored and the bad one dead-lettered", 30*time.Second, func() bool {
		return countOr(eng, "SELECT count() FROM instance_inventory") == 4 &&
			testutil.ToFloat64(ix.m.deadLetters.WithLabelValues(ReasonInvalidInventory)) == 1 &&
			testutil.ToFloat64(ix.m.deadLetters.WithLabelValues(ReasonInventoryRefused+grants.ReasonUnsigned)) == 1 &&
			testutil.ToFloat64(ix.m.deadLetters.WithLabelValues(ReasonInventoryRefused+grants.ReasonUnknownKey)) == 1 &&
			testutil.ToFloat64(ix.m.deadLetters.WithLabelValues(ReasonInventoryRefused+grants.ReasonUnknownHost)) == 1 &&
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
	dead := readDeadLetters(t, kc, 4)
	for i, want := range []string{ReasonInvalidInventory, "inventory_unsigned", "inventory_unknown_key", "inventory_unknown_host"} {
		if dead[i].Reason != want {
			t.Errorf("dead letter %d: %s, want %s", i, dead[i].Reason, want)
		}
	}
	if dead[0].Raw != string(signed(db01, bad)) || dead[0].Host != string(host) || dead[1].Raw != string(hidden) {
		t.Errorf("dead letters %+v", dead[:2])
	}
}

// instanceMap is the policy's instances for the tests: instance id → host.
type instanceMap map[string]string

func (m instanceMap) InstanceHost(_ context.Context, id string) (string, bool, error) {
	h, ok := m[id]
	return h, ok, nil
}

// TestInventoryBoundToInstance: review finding (issue 9): an agent could
// overwrite another instance's inventory, since the inventory's
// instance_id was not bound to the host whose key signed it. With the
// policy's instances (Deps.Instances) db02's inventory naming db01's
// instance is refused (instance_mismatch), as is one naming an instance
// the policy does not know (unknown_instance); and db01's own older
// inventory written again is refused as replayed. None changes a row.
func TestInventoryBoundToInstance(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	kc, _ := kafkatest.Start(t, 1)
	raw, err := os.ReadFile(goldenInventory)
	if err != nil {
		t.Fatal(err)
	}
	keysDir := t.TempDir()
	db01, db02 := signtest.EnrolledHost(t, keysDir, "exa-main-db01", 1), signtest.EnrolledHost(t, keysDir, "exa-main-db02", 2)
	// edit returns the golden inventory with fields changed, signed by s.
	edit := func(s *sign.Signer, fields map[string]any) []byte {
		var v map[string]any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		for k, x := range fields {
			v[k] = x
		}
		payload, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.Sign(payload).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var golden map[string]any
	_ = json.Unmarshal(raw, &golden)
	seq := int64(golden["publish_seq"].(float64))
	// Later than db01's, without its security update: it would replace
	// db01's in FINAL.
	hiding := map[string]any{"host": "exa-main-db02", "time": "2026-03-09T08:00:00Z", "publish_seq": seq + 1,
		"packages": []map[string]string{{"name": "libssl3", "version": "3.0.15-1~deb12u1"}}}
	unknown := map[string]any{"host": "exa-main-db02", "instance_id": "ocid1.instance.nonesuch", "publish_seq": seq + 2}
	older := map[string]any{"time": "2026-03-01T08:00:00Z", "publish_seq": seq - 1, "packages": []map[string]string{{"name": "libssl3", "version": "3.0.0"}}}
	// db02's own, numbered below its two refused ones: a refused inventory
	// does not move the host's replay memory (the number was checked
	// before the instance, so db02's own was refused as replayed).
	own02 := map[string]any{"host": "exa-main-db02", "instance_id": "ocid1.instance.db02", "publish_seq": seq}
	db01Key, db02Key := []byte("exa-main-db01"), []byte("exa-main-db02")
	produce(t, kc, schemas.TopicAgent, []kafka.Record{
		{Key: db01Key, Value: edit(db01, nil)},
		{Key: db02Key, Value: edit(db02, hiding)},
		{Key: db02Key, Value: edit(db02, unknown)},
		{Key: db01Key, Value: edit(db01, older)},
		{Key: db02Key, Value: edit(db02, own02)},
	})
	cfg := testConfig(kc, "inventory-bound")
	cfg.HostKeysDir = keysDir
	ix, err := New(cfg, Deps{Engine: eng, Instances: instanceMap{"ocid1.instance.db01": "exa-main-db01", "ocid1.instance.db02": "exa-main-db02"}})
	if err != nil {
		t.Fatal(err)
	}
	stop := startIndexer(t, ix)
	reasons := []string{ReasonInventoryRefused + ReasonInstanceMismatch, ReasonInventoryRefused + ReasonUnknownInstance, ReasonInventoryRefused + grants.ReasonReplayed}
	waitFor(t, "db01's and db02's inventories stored and the three refused", 30*time.Second, func() bool {
		if countOr(eng, "SELECT count() FROM instance_inventory") != 8 {
			return false
		}
		for _, r := range reasons {
			if testutil.ToFloat64(ix.m.deadLetters.WithLabelValues(r)) != 1 {
				return false
			}
		}
		return true
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := countOr(eng, "SELECT count() FROM instance_inventory FINAL WHERE instance_id = 'ocid1.instance.db01' AND package = 'libssl3' AND update_type = 'SECURITY' AND formatDateTime(time, '%Y-%m-%dT%H:%i:%SZ') = '2026-03-08T08:01:14Z'"); got != 1 {
		t.Errorf("db01's security update: %d rows, want 1 (db01's own inventory)", got)
	}
	for _, inst := range []string{"db01", "db02"} {
		if got := countOr(eng, "SELECT count() FROM instance_inventory WHERE instance_id = 'ocid1.instance."+inst+"'"); got != 4 {
			t.Errorf("%d rows of %s, want its own 4", got, inst)
		}
	}
	dead := readDeadLetters(t, kc, 3)
	for i, want := range reasons {
		if dead[i].Reason != want {
			t.Errorf("dead letter %d: %s, want %s", i, dead[i].Reason, want)
		}
	}
}

// TestInventoryReplayAfterRestart: issue 9, replay protection that
// survives a restart. The indexer's memory of the inventories it stored
// (grants.Seqs, by host) started empty at each start, so a host's older
// inventory written again after the indexer restarted was stored as new
// rows. The memory is now kept in indexer.state_dir
// (InventoryStateFile): the restarted indexer refuses it as
// inventory_replayed, dead-letters it and stores nothing.
func TestInventoryReplayAfterRestart(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	kc, _ := kafkatest.Start(t, 1)
	raw, err := os.ReadFile(goldenInventory)
	if err != nil {
		t.Fatal(err)
	}
	keysDir := t.TempDir()
	db01 := signtest.EnrolledHost(t, keysDir, "exa-main-db01", 1)
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	seq := int64(v["publish_seq"].(float64))
	sealed := func(payload []byte) kafka.Record {
		b, err := db01.Sign(payload).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return kafka.Record{Key: []byte("exa-main-db01"), Value: b}
	}
	v["time"], v["publish_seq"] = "2026-03-01T08:00:00Z", seq-1
	older, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	replay := sealed(older)
	produce(t, kc, schemas.TopicAgent, []kafka.Record{replay, sealed(raw)})

	cfg := testConfig(kc, "inventory-replay")
	cfg.HostKeysDir = keysDir
	cfg.StateDir = filepath.Join(t.TempDir(), "indexer")
	run := func() *Indexer {
		t.Helper()
		ix, err := New(cfg, Deps{Engine: eng})
		if err != nil {
			t.Fatal(err)
		}
		return ix
	}
	ix := run()
	stop := startIndexer(t, ix)
	waitFor(t, "both inventories stored", 30*time.Second, func() bool {
		return countOr(eng, "SELECT count() FROM instance_inventory WHERE formatDateTime(time, '%Y-%m-%d') = '2026-03-01'") > 0 &&
			countOr(eng, "SELECT count() FROM instance_inventory WHERE formatDateTime(time, '%Y-%m-%d') = '2026-03-08'") > 0
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	rows := countOr(eng, "SELECT count() FROM instance_inventory")

	// While the indexer is stopped, the older inventory is written again.
	produce(t, kc, schemas.TopicAgent, []kafka.Record{replay})
	ix = run()
	stop = startIndexer(t, ix)
	reason := ReasonInventoryRefused + grants.ReasonReplayed
	waitFor(t, "the replay refused", 30*time.Second, func() bool {
		return testutil.ToFloat64(ix.m.deadLetters.WithLabelValues(reason)) == 1
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := countOr(eng, "SELECT count() FROM instance_inventory"); got != rows {
		t.Errorf("%d rows after the replay, want %d", got, rows)
	}
	if dead := readDeadLetters(t, kc, 1); dead[0].Reason != reason {
		t.Errorf("dead letter %s, want %s", dead[0].Reason, reason)
	}
}

// TestDamagedInventoryMemoryRefusesStart: a replay memory that cannot be
// read stops the indexer at New, naming the file.
func TestDamagedInventoryMemoryRefusesStart(t *testing.T) {
	cfg := testConfig(kafka.Config{Brokers: []string{"127.0.0.1:9"}}, "damaged")
	cfg.StateDir = t.TempDir()
	path := filepath.Join(cfg.StateDir, InventoryStateFile)
	if err := os.WriteFile(path, []byte(`{"version":1,"what":"login","keys":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg, Deps{Engine: clickhousetest.OpenEmbedded(t, "")}); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("New: %v, want an error naming %s", err, path)
	}
}
