package clickhouse

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// QueryLogRow is one statement the query endpoint answered or refused: a
// row of the query_log table.
type QueryLogRow struct {
	Time        time.Time
	Who, Role   string // the authenticated identity
	Remote      string
	QueryID     string
	SQL         string
	SQLBytes    uint64 // the statement's full length; SQL may be cut
	Result      string // ok, refused or error
	Code        int32  // ClickHouse error code of a refusal or error
	Error       string
	Rows, Bytes uint64
	ResultBytes uint64
	Duration    time.Duration
}

// InsertQueryLog implements Engine.
func (e *Embedded) InsertQueryLog(_ context.Context, rows []QueryLogRow) error {
	n := 128
	for i := range rows {
		n += len(rows[i].SQL) + len(rows[i].Error) + 256
	}
	b := append(make([]byte, 0, n), "INSERT INTO query_log FORMAT JSONEachRow\n"...)
	for i := range rows {
		r := &rows[i]
		b = append(b, `{"time":"`...)
		b = r.Time.UTC().AppendFormat(b, "2006-01-02 15:04:05.000")
		b = append(b, `","who":`...)
		b = appendJSONString(b, r.Who)
		b = append(b, `,"who_role":`...)
		b = appendJSONString(b, r.Role)
		b = append(b, `,"remote":`...)
		b = appendJSONString(b, r.Remote)
		b = append(b, `,"query_id":`...)
		b = appendJSONString(b, r.QueryID)
		b = append(b, `,"sql":`...)
		b = appendJSONString(b, r.SQL)
		b = append(b, `,"sql_bytes":`...)
		b = strconv.AppendUint(b, r.SQLBytes, 10)
		b = append(b, `,"result":`...)
		b = appendJSONString(b, r.Result)
		b = append(b, `,"code":`...)
		b = strconv.AppendInt(b, int64(r.Code), 10)
		b = append(b, `,"error":`...)
		b = appendJSONString(b, r.Error)
		b = append(b, `,"rows":`...)
		b = strconv.AppendUint(b, r.Rows, 10)
		b = append(b, `,"bytes":`...)
		b = strconv.AppendUint(b, r.Bytes, 10)
		b = append(b, `,"result_bytes":`...)
		b = strconv.AppendUint(b, r.ResultBytes, 10)
		b = append(b, `,"duration_ms":`...)
		b = strconv.AppendFloat(b, float64(r.Duration.Microseconds())/1000, 'f', 3, 64)
		b = append(b, '}', '\n')
	}
	b = append(b, 0)
	_, err := e.sess.QueryBytes(b, "")
	return err
}

// InsertQueryLog implements Engine with a typed batch.
func (s *Server) InsertQueryLog(ctx context.Context, rows []QueryLogRow) error {
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO query_log (time, who, who_role, remote, query_id, sql, sql_bytes, result, code, error, rows, bytes, result_bytes, duration_ms)")
	if err != nil {
		return err
	}
	defer func() { _ = b.Abort() }()
	for i := range rows {
		r := &rows[i]
		if err := b.Append(r.Time, r.Who, r.Role, r.Remote, r.QueryID, r.SQL, r.SQLBytes, r.Result, r.Code, r.Error,
			r.Rows, r.Bytes, r.ResultBytes, float64(r.Duration.Microseconds())/1000); err != nil {
			return fmt.Errorf("row %d: %w: %w", i, errRowAppend, err)
		}
	}
	return b.Send()
}
