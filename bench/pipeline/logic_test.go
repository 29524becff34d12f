package pipeline_test

import (
	"strings"
	"testing"
	"time"
)

// The harness's own arithmetic, which its figures rest on.

func TestMultisetDiff(t *testing.T) {
	tests := []struct {
		name          string
		want, got     []uint64
		missing, dups int
	}{
		{"all once", []uint64{1, 2, 3}, []uint64{1, 2, 3}, 0, 0},
		{"one missing", []uint64{1, 2, 3}, []uint64{1, 3}, 1, 0},
		{"copies", []uint64{1, 2, 3}, []uint64{1, 1, 2, 3, 3, 3}, 0, 3},
		{"unexpected ids ignored", []uint64{2}, []uint64{1, 2, 9}, 0, 0},
		{"nothing received", []uint64{1, 2}, nil, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, d := multisetDiff(tt.want, tt.got)
			if m != tt.missing || d != tt.dups {
				t.Fatalf("missing %d, copies %d; want %d, %d", m, d, tt.missing, tt.dups)
			}
		})
	}
}

func TestIDKeyMatchesClickHouse(t *testing.T) {
	// reinterpretAsUInt64(unhex('0100000000000000')) is 1 in ClickHouse
	// (little endian); unhex('ff00…') is 255.
	for id, want := range map[string]uint64{
		"0100000000000000" + strings.Repeat("0", 16): 1,
		"ff00000000000000" + strings.Repeat("a", 16): 255,
		"0000000000000080" + strings.Repeat("0", 16): 1 << 63,
	} {
		if got, ok := idKey(id); !ok || got != want {
			t.Errorf("idKey(%s) = %d, %v; want %d", id, got, ok, want)
		}
	}
	if _, ok := idKey("xyz"); ok {
		t.Error("idKey accepted a short id")
	}
}

func TestPercentiles(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	p := percentiles(d, 0.5, 0.99, 1)
	if p[0] != 50*time.Millisecond || p[1] != 99*time.Millisecond || p[2] != 100*time.Millisecond {
		t.Fatalf("p50, p99, max = %v", p)
	}
}

func TestPerfByPackage(t *testing.T) {
	report := `# header
    30.00%  auditpipe          [.] github.com/auditpipe/auditpipe/collector/builder.(*Builder).Build
    10.00%  auditpipe          [.] github.com/auditpipe/auditpipe/collector/builder.appendRecord
    20.00%  libchdb.so         [.] DB::MergeTreeDataWriter::writeTempPart
     5.00%  auditpipe          [.] runtime.mallocgc
     5.00%  [kernel.kallsyms]  [k] copy_user_generic
    15.00%  auditpipe          [.] github.com/twmb/franz-go/pkg/kfake.(*Cluster).handleProduce
`
	got := perfByPackage(report)
	want := " 40.00%  collector/builder\n 20.00%  chDB (libchdb.so)\n 15.00%  github.com/twmb/franz-go/pkg/kfake\n  5.00%  kernel\n  5.00%  runtime\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}
