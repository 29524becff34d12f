package testenv

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParseRequire(t *testing.T) {
	tests := []struct {
		in      string
		want    []Dep
		wantErr string
	}{
		{in: "", want: nil},
		{in: "all", want: All()},
		{in: "chdb, rsyslog", want: []Dep{CHDB, Rsyslog}},
		{in: "all,clickhouse-server", want: append(All(), ClickHouseServer)},
		{in: "clickhouse-server", want: []Dep{ClickHouseServer}},
		{in: "chdb,,", want: []Dep{CHDB}},
		{in: "rsylog", wantErr: `unknown dependency "rsylog"`},
		{in: "ALL", wantErr: `unknown dependency "ALL"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRequire(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseRequire(%q) error %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseRequire(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

// outcome records what SkipOrFail did to a test.
type outcome struct {
	testing.TB
	failed, skipped bool
	msg             string
}

func (o *outcome) Helper() {}

func (o *outcome) Fatal(args ...any) {
	o.failed, o.msg = true, fmt.Sprint(args...)
	panic(o)
}

func (o *outcome) Fatalf(format string, args ...any) {
	o.failed, o.msg = true, fmt.Sprintf(format, args...)
	panic(o)
}

func (o *outcome) Skipf(format string, args ...any) {
	o.skipped, o.msg = true, fmt.Sprintf(format, args...)
	panic(o)
}

// run calls SkipOrFail(dep) on a recorder; Fatalf and Skipf end it with a
// panic, as the real ones end the test's goroutine.
func run(t *testing.T, dep Dep) (o *outcome) {
	o = &outcome{TB: t}
	defer func() {
		if r := recover(); r != nil && r != o {
			panic(r)
		}
	}()
	SkipOrFail(o, dep, "libfoo %s", "missing")
	return o
}

func TestSkipOrFail(t *testing.T) {
	tests := []struct {
		require  string
		dep      Dep
		wantFail bool
	}{
		{"", CHDB, false},
		{"all", CHDB, true},
		{"all", KernelAudit, true},
		{"all", SyslogNG, true},
		{"all", ClickHouseServer, false}, // cannot be installed here: not in all
		{"all,clickhouse-server", ClickHouseServer, true},
		{"rsyslog", CHDB, false},
		{"rsyslog,chdb", CHDB, true},
	}
	for _, tt := range tests {
		t.Run(tt.require+"/"+string(tt.dep), func(t *testing.T) {
			t.Setenv(EnvRequire, tt.require)
			o := run(t, tt.dep)
			if o.failed != tt.wantFail || o.skipped == tt.wantFail {
				t.Fatalf("failed %v skipped %v, want failed %v", o.failed, o.skipped, tt.wantFail)
			}
			if !strings.Contains(o.msg, "missing "+string(tt.dep)) || !strings.Contains(o.msg, "libfoo missing") {
				t.Fatalf("message %q does not name the dependency and the reason", o.msg)
			}
		})
	}
	t.Run("unknown name fails", func(t *testing.T) {
		t.Setenv(EnvRequire, "chbd")
		if o := run(t, CHDB); !o.failed || !strings.Contains(o.msg, `"chbd"`) {
			t.Fatalf("failed %v, message %q", o.failed, o.msg)
		}
	})
}
