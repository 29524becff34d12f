package compliance

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
)

// inventoryInsert is the inventory the chDB test stores: db1 reported
// twice (the older report's openssl update is gone from the newer one),
// in compartment prod; web1 and web2 in prod's child web, web1 and db1 in
// group g; old1 in another compartment. The reports carry non-security
// updates too, which the report leaves out.
const inventoryInsert = `INSERT INTO instance_inventory
(time, instance_id, instance_name, compartment_id, compartment_path, group_ids, os_family, package, version, arch, update_version, update_type, cves) VALUES
('2026-11-30 10:00:00', 'i-db1', 'db1', 'prod', ['root','prod'], ['g'], 'LINUX', '', '', '', '', '', []),
('2026-11-30 10:00:00', 'i-db1', 'db1', 'prod', ['root','prod'], ['g'], 'LINUX', 'openssl', '3.0.14-1~deb12u2', 'amd64', '3.0.15-1~deb12u1', 'SECURITY', ['CVE-2024-9143']),
('2026-12-01 10:00:00', 'i-db1', 'db1', 'prod', ['root','prod'], ['g'], 'LINUX', '', '', '', '', '', []),
('2026-12-01 10:00:00', 'i-db1', 'db1', 'prod', ['root','prod'], ['g'], 'LINUX', 'openssl', '3.0.15-1~deb12u1', 'amd64', '', '', []),
('2026-12-01 10:00:00', 'i-db1', 'db1', 'prod', ['root','prod'], ['g'], 'LINUX', 'tzdata', '2024a-0+deb12u1', 'all', '2025b-0+deb12u1', 'OTHER', []),
('2026-12-01 11:00:00', 'i-web1', 'web1', 'web', ['root','prod','web'], ['g'], 'LINUX', '', '', '', '', '', []),
('2026-12-01 11:00:00', 'i-web1', 'web1', 'web', ['root','prod','web'], ['g'], 'LINUX', 'libxml2', '2.9.14+dfsg-1.3~deb12u1', 'amd64', '2.9.14+dfsg-1.3~deb12u2', 'SECURITY', ['CVE-2025-1001','CVE-2025-1002','CVE-2025-1003','CVE-2025-1004','CVE-2025-1005']),
('2026-12-01 11:00:00', 'i-web1', 'web1', 'web', ['root','prod','web'], ['g'], 'LINUX', 'curl', '7.88.1-10+deb12u7', 'amd64', '7.88.1-10+deb12u8', 'SECURITY', ['CVE-2025-2001']),
('2026-12-01 11:05:00', 'i-web2', 'web2', 'web', ['root','prod','web'], [], 'LINUX', '', '', '', '', '', []),
('2026-12-01 11:05:00', 'i-web2', 'web2', 'web', ['root','prod','web'], [], 'LINUX', 'bash', '5.2.15-2+b7', 'amd64', '', '', []),
('2026-12-01 12:00:00', 'i-old1', 'old1', 'other', ['root','other'], [], 'LINUX', '', '', '', '', '', []),
('2026-12-01 12:00:00', 'i-old1', 'old1', 'other', ['root','other'], [], 'LINUX', 'sudo', '1.9.13p3-1+deb12u1', 'amd64', '1.9.13p3-1+deb12u2', 'SECURITY', ['CVE-2025-32462','CVE-2025-32463'])`

// TestReadChDB stores inventory reports in chDB through the migrations
// and reads each scope's report with the package's query.
func TestReadChDB(t *testing.T) {
	ctx := context.Background()
	eng := clickhousetest.OpenEmbedded(t, "")
	if _, err := clickhouse.Migrate(ctx, eng, 0, nil); err != nil {
		t.Fatal(err)
	}
	// The same report sent twice must count once.
	for range 2 {
		if err := eng.Exec(ctx, inventoryInsert); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		scope Scope
		total int
		// vulnerable lists each vulnerable instance as id:package,package.
		vulnerable []string
	}{
		{Scope{}, 4, []string{"i-old1:sudo", "i-web1:curl,libxml2"}},
		{Scope{Compartment: "prod"}, 1, nil},
		{Scope{Compartment: "prod", Recursive: true}, 3, []string{"i-web1:curl,libxml2"}},
		{Scope{Compartment: "web"}, 2, []string{"i-web1:curl,libxml2"}},
		{Scope{Group: "g"}, 2, []string{"i-web1:curl,libxml2"}},
		{Scope{Group: "nosuch"}, 0, nil},
		{Scope{Compartment: "x' OR 1=1 --"}, 0, nil},
	}
	for _, tc := range tests {
		rep, err := Read(ctx, eng, tc.scope)
		if err != nil {
			t.Fatalf("%+v: %v", tc.scope, err)
		}
		var got []string
		for _, in := range rep.Vulnerable {
			s := in.ID + ":"
			for i, u := range in.SecurityUpdates {
				if i > 0 {
					s += ","
				}
				s += u.Package
			}
			got = append(got, s)
		}
		if rep.TotalInstances != tc.total || !slices.Equal(got, tc.vulnerable) {
			t.Errorf("%+v: total %d, vulnerable %v; want %d, %v", tc.scope, rep.TotalInstances, got, tc.total, tc.vulnerable)
		}
	}
	// The CVEs come back in stored order, and the text is the seed's.
	rep, err := Read(ctx, eng, Scope{Compartment: "web"})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteText(&b, rep, true); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "chdb-web.txt", b.Bytes())
}
