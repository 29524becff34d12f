package indexer

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/auditpipe/auditpipe/indexer/chdb"
)

// isRowError reports whether err is the store refusing the insert (a
// ClickHouse exception), which may be about particular rows, rather than
// failing to reach it.
func isRowError(err error) bool {
	var ce *chdb.Error
	return errors.As(err, &ce) || isServerException(err) || errors.Is(err, errRowAppend)
}

// errRowAppend marks a row that clickhouse-go could not append to a batch.
var errRowAppend = errors.New("row does not fit the table")

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

func toValidUTF8(b []byte) string { return strings.ToValidUTF8(string(b), "\uFFFD") }
