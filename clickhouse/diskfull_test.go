package clickhouse

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	chgo "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/auditpipe/auditpipe/clickhouse/chdb"
)

func TestIsDiskFull(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		// What chDB 26.7 returned for an insert on a full tmpfs.
		{"chDB NOT_ENOUGH_SPACE", &chdb.Error{Message: "Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space. (NOT_ENOUGH_SPACE)"}, true},
		{"chDB write failed", fmt.Errorf("insert: %w", &chdb.Error{Message: "Code: 74. DB::Exception: Cannot write to file /d/tmp_insert/data.bin: , errno: 28, strerror: No space left on device. (CANNOT_WRITE_TO_FILE_DESCRIPTOR)"}), true},
		{"chDB row refused", &chdb.Error{Message: "Code: 117. DB::Exception: Unknown field found while parsing JSONEachRow format: x. (INCORRECT_DATA)"}, false},
		{"server code 243", &chgo.Exception{Code: 243, Message: "Cannot reserve 12.00 MiB, not enough space"}, true},
		{"server other code", &chgo.Exception{Code: 62, Message: "Syntax error"}, false},
		{"ENOSPC", &fs.PathError{Op: "write", Path: "/d/x", Err: syscall.ENOSPC}, true},
		{"EDQUOT", fmt.Errorf("w: %w", syscall.EDQUOT), true},
		{"connection refused", errors.New("dial tcp: connection refused"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsDiskFull(tt.err); got != tt.want {
				t.Errorf("IsDiskFull(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
