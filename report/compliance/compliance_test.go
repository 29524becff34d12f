package compliance

import (
	"bytes"
	"encoding/json"
	"flag"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/auditpipe/auditpipe/internal/golden"
	"github.com/auditpipe/auditpipe/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// checkGolden compares got with testdata/name, or rewrites it with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Check(t, filepath.Join("testdata", name), got, *update)
}

// cves returns n CVE ids from CVE-2026-base on.
func cves(n int, base int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "CVE-2026-" + strconv.Itoa(base+i)
	}
	return out
}

// goldenCases are the reports the golden files and the seed's script
// print.
var goldenCases = []struct {
	name    string
	scope   Scope
	rows    []Row
	details bool
}{
	{
		// Three instances, two missing updates: one with a CVE list of
		// nine that wraps onto three lines, one of exactly four (a line
		// that reaches the width on its last CVE), a long id (CVE-2026-123456)
		// and an update with no CVEs.
		name:  "several.txt",
		scope: Scope{Compartment: "ocid1.compartment.oc1..prod", Recursive: true},
		rows: []Row{
			{InstanceID: "ocid1.instance.oc1..db1", InstanceName: "db1", CompartmentID: "ocid1.compartment.oc1..prod"},
			{InstanceID: "ocid1.instance.oc1..db1", InstanceName: "db1", CompartmentID: "ocid1.compartment.oc1..prod",
				Package: "openssl", UpdateVersion: "3.0.15-1~deb12u1", CVEs: cves(9, 5000)},
			{InstanceID: "ocid1.instance.oc1..db1", InstanceName: "db1", CompartmentID: "ocid1.compartment.oc1..prod",
				Package: "tzdata", UpdateVersion: "2025b-0+deb12u1"},
			{InstanceID: "ocid1.instance.oc1..web1", InstanceName: "web1", CompartmentID: "ocid1.compartment.oc1..web"},
			{InstanceID: "ocid1.instance.oc1..web1", InstanceName: "web1", CompartmentID: "ocid1.compartment.oc1..web",
				Package: "curl", UpdateVersion: "7.88.1-10+deb12u8", CVEs: cves(4, 7000)},
			{InstanceID: "ocid1.instance.oc1..web1", InstanceName: "web1", CompartmentID: "ocid1.compartment.oc1..web",
				Package: "libxml2", UpdateVersion: "2.9.14+dfsg-1.3~deb12u1", CVEs: []string{"CVE-2026-123456", "CVE-2025-0001", "CVE-2025-0002", "CVE-2025-0003", "CVE-2025-0004"}},
			{InstanceID: "ocid1.instance.oc1..web2", InstanceName: "web2", CompartmentID: "ocid1.compartment.oc1..web"},
		},
		details: true,
	},
	{
		// None missing: "None is", plural total.
		name:  "none.txt",
		scope: Scope{Compartment: "ocid1.compartment.oc1..prod"},
		rows: []Row{
			{InstanceID: "ocid1.instance.oc1..a", InstanceName: "a"},
			{InstanceID: "ocid1.instance.oc1..b", InstanceName: "b"},
		},
		details: true,
	},
	{
		// One instance of a group, missing one update: "1 is", singular
		// total, the group line; no details.
		name:  "group-one.txt",
		scope: Scope{Group: "ocid1.instancegroup.oc1..g"},
		rows: []Row{
			{InstanceID: "ocid1.instance.oc1..a", InstanceName: "a"},
			{InstanceID: "ocid1.instance.oc1..a", InstanceName: "a", Package: "hello", UpdateVersion: "2.0", CVEs: []string{"CVE-2026-1001"}},
		},
	},
	{
		// Nothing in scope: "0 managed instance, None is".
		name:  "empty.txt",
		scope: Scope{Compartment: "ocid1.compartment.oc1..empty"},
	},
}

func TestGoldenText(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteText(&b, Build(tc.scope, tc.rows), tc.details); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tc.name, b.Bytes())
		})
	}
}

// TestSeedScriptAgrees runs the seed's own printing code
// (testdata/compliance_report_show.py) on each golden report and
// compares its output with WriteText's byte for byte.
func TestSeedScriptAgrees(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		testenv.SkipOrFail(t, testenv.PythonVenv, "python3 not found: %v", err)
	}
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			rep := Build(tc.scope, tc.rows)
			in, err := json.Marshal(struct {
				*Report
				Details bool `json:"details"`
			}{rep, tc.details})
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(py, "testdata/compliance_report_show.py")
			cmd.Stdin = bytes.NewReader(in)
			want, err := cmd.Output()
			if err != nil {
				t.Fatalf("python: %v", err)
			}
			var got bytes.Buffer
			if err := WriteText(&got, rep, tc.details); err != nil {
				t.Fatal(err)
			}
			if got.String() != string(want) {
				t.Errorf("WriteText differs from the seed's script\n got:\n%s\nwant:\n%s", got.String(), want)
			}
		})
	}
}

func TestGoldenJSON(t *testing.T) {
	var b bytes.Buffer
	tc := goldenCases[0]
	if err := WriteJSON(&b, Build(tc.scope, tc.rows), true); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "several.json", b.Bytes())
	b.Reset()
	if err := WriteJSON(&b, Build(goldenCases[1].scope, goldenCases[1].rows), false); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "none.json", b.Bytes())
}

func TestScopeValidate(t *testing.T) {
	tests := []struct {
		scope Scope
		ok    bool
	}{
		{Scope{}, true},
		{Scope{Compartment: "c"}, true},
		{Scope{Compartment: "c", Recursive: true}, true},
		{Scope{Group: "g"}, true},
		{Scope{Compartment: "c", Group: "g"}, false},
		{Scope{Recursive: true}, false},
		{Scope{Group: "g", Recursive: true}, false},
	}
	for _, tc := range tests {
		if err := tc.scope.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: %v, want ok %v", tc.scope, err, tc.ok)
		}
	}
}
