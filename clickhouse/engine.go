package clickhouse

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse/chdb"
	"github.com/auditpipe/auditpipe/schemas"
)

// Engine is a ClickHouse that auditpipe writes to and queries: a server
// through clickhouse-go/v2 (OpenServer) or embedded chDB (OpenEmbedded).
// Implementations are safe for concurrent use.
type Engine interface {
	// Exec runs one statement that returns no rows (DDL, ALTER, SET).
	Exec(ctx context.Context, sql string) error
	// InsertEvents inserts audit events into audit_events. token is the
	// insert_deduplication_token: inserting the same rows with the same
	// token again is a no-op.
	InsertEvents(ctx context.Context, token string, rows []EventRow) error
	// InsertMessages inserts messages of other topics into pipeline_messages.
	InsertMessages(ctx context.Context, token string, rows []MessageRow) error
	// InsertLifecycle inserts lifecycle events into lifecycle_events;
	// token is the insert_deduplication_token, as for InsertEvents.
	InsertLifecycle(ctx context.Context, token string, rows []LifecycleRow) error
	// InsertInventory inserts the agents' inventory reports into
	// instance_inventory; token as for InsertEvents.
	InsertInventory(ctx context.Context, token string, rows []InventoryRow) error
	// InsertQueryLog inserts the query endpoint's log rows into query_log.
	InsertQueryLog(ctx context.Context, rows []QueryLogRow) error
	// Query runs a SELECT and returns its rows.
	Query(ctx context.Context, sql string) (*Result, error)
	// QueryParams runs a SELECT with query parameters bound by the
	// engine (see ParamQuerier).
	QueryParams(ctx context.Context, sql string, params []Param) (*Result, error)
	// Close releases the engine. An engine shared through Shared is closed
	// by its owner only.
	Close() error
}

// Open opens the engine that store configures: the ClickHouse server when
// store.ClickHouse.Addr is set, else embedded chDB in store.Embedded.Dir.
// The caller closes it.
func Open(ctx context.Context, store StoreConfig) (Engine, error) {
	if len(store.ClickHouse.Addr) > 0 {
		if store.Cluster.Name != "" {
			return openServer(ctx, store.ClickHouse, clusterSettings)
		}
		return OpenServer(ctx, store.ClickHouse)
	}
	return OpenEmbedded(store.Embedded.Lib, store.Embedded.Dir)
}

// EventRow is one audit event to insert.
type EventRow struct {
	Event schemas.Event
	// TS is Event.TS parsed.
	TS time.Time
	// JSON is the event as received, on one line, ending in '}'.
	JSON []byte
	// ContentHash is the hex SHA-256 of the event's canonical bytes
	// (schemas.Event.Hash), stored in content_hash; "" stores "".
	ContentHash string
	// Partition and Offset locate the Kafka message; -1 for backfills.
	Partition int32
	Offset    int64
}

// MessageRow is one message of a topic other than the audit topic.
type MessageRow struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       string
	TS        time.Time
	Payload   []byte // valid UTF-8
}

// Result is the outcome of a query: column names and types, and rows of
// values (string, json.Number, bool, nil, []any, map[string]any for the
// embedded and HTTP engines; the Go types of clickhouse-go for a server).
type Result struct {
	Columns []string
	Types   []string
	Rows    [][]any
}

// Querier runs a SELECT and returns its rows. Every Engine is one, and so
// is queryapi.HTTPClient (a query endpoint, or any ClickHouse HTTP
// interface).
type Querier interface {
	Query(ctx context.Context, sql string) (*Result, error)
}

// ParamQuerier is a Querier that also binds query parameters: the values
// of {name:Type} placeholders in sql, sent apart from the statement and
// bound by ClickHouse after it has parsed it, so a value (a request id a
// user typed) never becomes SQL text. Both engines are ParamQueriers, and
// so is queryapi.HTTPClient (the query endpoint's param_NAME).
type ParamQuerier interface {
	Querier
	QueryParams(ctx context.Context, sql string, params []Param) (*Result, error)
}

// StringParam returns the parameter name bound to the string value, in
// ClickHouse's escaped text form (backslash, tab, newline, carriage
// return and NUL escaped, as clickhouse-go escapes a string it binds), so
// that {name:String} is exactly value.
func StringParam(name, value string) Param {
	return Param{Name: name, Value: paramEscaper.Replace(value)}
}

var paramEscaper = strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\n", `\n`, "\r", `\r`, "\x00", `\0`)

// EventsToken is the deduplication token of an insert of rows: a digest of
// their event ids in order, so the same rows retried give the same token.
func EventsToken(rows []EventRow) string {
	h := sha256.New()
	for i := range rows {
		h.Write([]byte(rows[i].Event.EventID))
	}
	return "ev-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// EventIDKey returns the key under which event_ids (migration 0010) keeps
// an event id: its first 16 hex digits as an unsigned big-endian number,
// what the migration's backfill computes in SQL as
// reinterpretAsUInt64(reverse(unhex(substring(event_id, 1, 16)))). ok is
// false when eventID does not start with 16 hex digits.
func EventIDKey(eventID string) (key uint64, ok bool) {
	if len(eventID) < 16 {
		return 0, false
	}
	for i := 0; i < 16; i++ {
		c := eventID[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		key = key<<4 | uint64(d)
	}
	return key, true
}

// MessagesToken is the deduplication token of an insert of messages: a
// digest of their topic, partition and offset, so the same messages
// retried give the same token.
func MessagesToken(rows []MessageRow) string {
	h := sha256.New()
	var b []byte
	for i := range rows {
		b = append(b[:0], rows[i].Topic...)
		b = append(b, 0)
		b = strconv.AppendInt(b, int64(rows[i].Partition), 10)
		b = append(b, 0)
		b = strconv.AppendInt(b, rows[i].Offset, 10)
		b = append(b, 0)
		h.Write(b)
	}
	return "msg-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// QuoteString returns s as a ClickHouse string literal.
func QuoteString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '\'':
			b.WriteByte('\\')
			b.WriteByte(c)
		case 0:
			b.WriteString(`\0`)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// quoteIdent returns name as a ClickHouse identifier.
func quoteIdent(name string) string {
	return "`" + strings.NewReplacer("\\", "\\\\", "`", "\\`").Replace(name) + "`"
}

// IsRowError reports whether err is the store refusing the insert (a
// ClickHouse exception), which may be about particular rows, rather than
// failing to reach it.
func IsRowError(err error) bool {
	var ce *chdb.Error
	return errors.As(err, &ce) || isServerException(err) || errors.Is(err, errRowAppend)
}

// codeNotEnoughSpace is ClickHouse's NOT_ENOUGH_SPACE error code.
const codeNotEnoughSpace = 243

// IsDiskFull reports whether err is the store out of disk space, a fault
// of the store's machine rather than of the rows: ClickHouse's
// NOT_ENOUGH_SPACE (code 243; what chDB 26.7 returns when it cannot
// reserve room for a new part: "Code: 243. DB::Exception: Cannot reserve
// 1.00 MiB, not enough space. (NOT_ENOUGH_SPACE)"), or a write that failed
// with ENOSPC or EDQUOT, as an error or in an exception's text.
func IsDiskFull(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	var ce *chdb.Error
	if errors.As(err, &ce) {
		return diskFullText(ce.Message)
	}
	code, msg, ok := serverException(err)
	return ok && (code == codeNotEnoughSpace || diskFullText(msg))
}

// diskFullText reports whether a ClickHouse exception's text says the disk
// is full.
func diskFullText(msg string) bool {
	for _, s := range []string{"Code: 243.", "(NOT_ENOUGH_SPACE)", "No space left on device", "Disk quota exceeded"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// errRowAppend marks a row that clickhouse-go could not append to a batch.
var errRowAppend = errors.New("row does not fit the table")
