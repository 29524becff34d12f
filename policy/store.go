package policy

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/auditpipe/auditpipe/internal/backoff"
	"github.com/auditpipe/auditpipe/internal/sqlmigrate"
)

//go:embed migrations
var migrationFiles embed.FS

// Store drivers.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// dialect is what differs between the two engines.
type dialect struct {
	name string
	// forUpdate is appended to a SELECT that reads a row the transaction
	// will change: PostgreSQL locks it; SQLite's BEGIN IMMEDIATE already
	// holds the database's write lock.
	forUpdate string
	// numbered placeholders ($1) instead of ?
	numbered bool
}

var (
	sqliteDialect   = dialect{name: DriverSQLite}
	postgresDialect = dialect{name: DriverPostgres, forUpdate: " FOR UPDATE", numbered: true}
)

// rebind rewrites the ? placeholders of q for the dialect (the store's
// statements hold no ? in literals).
func (d dialect) rebind(q string) string {
	if !d.numbered {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Store is the policy service's state: one implementation over
// database/sql for SQLite (modernc.org/sqlite: WAL, busy timeout, foreign
// keys, BEGIN IMMEDIATE) and PostgreSQL (pgx; rows read for change are
// locked with SELECT … FOR UPDATE). Its migrations (policy/migrations/
// <driver>/NNNN_name.sql) are applied by OpenStore. It is safe for
// concurrent use, by several processes on one PostgreSQL too.
type Store struct {
	db  *sql.DB
	d   dialect
	log *slog.Logger
	// written gets a signal (never blocking, at most one waiting) after
	// each commit that added outbox records: the relay's wake-up.
	written chan struct{}
}

// sqliteURIPath escapes what a path shares with URI syntax: SQLite
// reads the DSN as a URI (the driver splits it at the first '?', and
// SQLite decodes %XX and stops the path at '#'), so a data directory
// named "a%41" or "a?b" would open another file or none.
func sqliteURIPath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
}

// OpenStore opens the store cfg names and applies its migrations.
func OpenStore(ctx context.Context, cfg StoreConfig, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var (
		db  *sql.DB
		err error
		d   dialect
	)
	switch cfg.Driver {
	case DriverSQLite:
		d = sqliteDialect
		q := url.Values{}
		q.Add("_pragma", "busy_timeout("+strconv.FormatInt(cfg.BusyTimeout.Milliseconds(), 10)+")")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "foreign_keys(1)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Set("_txlock", "immediate")
		db, err = sql.Open("sqlite", "file:"+sqliteURIPath(cfg.Path)+"?"+q.Encode())
	case DriverPostgres:
		d = postgresDialect
		db, err = sql.Open("pgx", cfg.DSN.Reveal())
	}
	if err != nil {
		return nil, fmt.Errorf("policy store: open %s: %w", cfg.Driver, err)
	}
	db.SetMaxOpenConns(cfg.MaxOpenConns)
	s := &Store{db: db, d: d, log: log, written: make(chan struct{}, 1)}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("policy store: %s: %w", cfg.Driver, err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Written is signalled after a commit of this process added records to
// the outbox (one signal stands for any number of commits). Records
// written by other processes are not signalled: the relay also polls.
func (s *Store) Written() <-chan struct{} { return s.written }

// Driver returns DriverSQLite or DriverPostgres.
func (s *Store) Driver() string { return s.d.name }

// Ping checks the database answers (a readiness check).
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("policy store: %w", err)
	}
	return nil
}

// Migrations returns the store's migrations for driver.
func Migrations(driver string) ([]sqlmigrate.Migration, error) {
	return sqlmigrate.Load(migrationFiles, "migrations/"+driver, "policy migrations ("+driver+")")
}

// migrationLockKey is the advisory lock key that serializes migrations of
// policy processes opening one PostgreSQL at once.
const migrationLockKey = 0x6f70_6374_6c00

// migrate applies the migrations not yet recorded in schema_migrations,
// in one transaction, and refuses an applied migration whose file
// changed since.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := Migrations(s.d.name)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *txn) error {
		if s.d.name == DriverPostgres {
			if _, err := tx.exec("SELECT pg_advisory_xact_lock(?)", int64(migrationLockKey)); err != nil {
				return err
			}
		}
		if _, err := tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
  version BIGINT PRIMARY KEY,
  name TEXT NOT NULL,
  checksum TEXT NOT NULL,
  applied_ms BIGINT NOT NULL
)`); err != nil {
			return err
		}
		rows, err := tx.query("SELECT version, checksum FROM schema_migrations")
		if err != nil {
			return err
		}
		applied := map[uint32]string{}
		for rows.Next() {
			var v int64
			var sum string
			if err := rows.Scan(&v, &sum); err != nil {
				rows.Close()
				return err
			}
			applied[uint32(v)] = sum
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, m := range ms {
			if sum, ok := applied[m.Version]; ok {
				if sum != m.Checksum {
					return fmt.Errorf("policy store: migration %04d_%s changed after it was applied (checksum %s, applied %s): add a new migration instead", m.Version, m.Name, m.Checksum, sum)
				}
				continue
			}
			for _, st := range m.Statements {
				if _, err := tx.exec(st); err != nil {
					return fmt.Errorf("policy store: migration %04d_%s: %w", m.Version, m.Name, err)
				}
			}
			if _, err := tx.exec("INSERT INTO schema_migrations (version, name, checksum, applied_ms) VALUES (?, ?, ?, ?)",
				int64(m.Version), m.Name, m.Checksum, time.Now().UnixMilli()); err != nil {
				return err
			}
			s.log.Info("policy store migration applied", "driver", s.d.name, "version", m.Version, "name", m.Name)
		}
		return nil
	})
}

// querier is a transaction or the database itself.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// txn is one transaction of the store, or (read) plain reads outside one.
type txn struct {
	ctx context.Context
	tx  querier
	d   dialect
	// outboxed: the transaction added outbox records.
	outboxed bool
}

// read returns a txn that reads without a transaction (one statement,
// one snapshot), for Get and List.
func (s *Store) read(ctx context.Context) *txn { return &txn{ctx: ctx, tx: s.db, d: s.d} }

func (t *txn) exec(q string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(t.ctx, t.d.rebind(q), args...)
}

func (t *txn) query(q string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(t.ctx, t.d.rebind(q), args...)
}

func (t *txn) queryRow(q string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(t.ctx, t.d.rebind(q), args...)
}

// maxTxAttempts bounds the retries of a transaction that lost a race the
// database detected (SQLite busy past its timeout, a PostgreSQL
// serialization failure or deadlock).
const maxTxAttempts = 8

// tx runs fn in a transaction and commits it, retrying the whole of fn
// when the database reports a retryable conflict. fn must not keep state
// across attempts beyond what it returns through the transaction.
func (s *Store) tx(ctx context.Context, fn func(tx *txn) error) error {
	for attempt := 0; ; attempt++ {
		err := s.tryTx(ctx, fn)
		if err == nil || !retryableDB(err) || attempt+1 >= maxTxAttempts {
			return err
		}
		s.log.Debug("policy store: transaction retried", "attempt", attempt+1, "err", err)
		if !backoff.Sleep(ctx, backoff.Delay(attempt, 5*time.Millisecond, 200*time.Millisecond)) {
			return errors.Join(err, ctx.Err())
		}
	}
}

func (s *Store) tryTx(ctx context.Context, fn func(tx *txn) error) (err error) {
	sqlTx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("policy store: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = sqlTx.Rollback()
		}
	}()
	t := &txn{ctx: ctx, tx: sqlTx, d: s.d}
	if err := fn(t); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("policy store: commit: %w", err)
	}
	if t.outboxed {
		select {
		case s.written <- struct{}{}:
		default:
		}
	}
	return nil
}

// retryableDB reports whether err is a conflict the database resolved by
// failing this transaction, so that running it again may succeed.
func retryableDB(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return true
		}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", "40P01": // serialization_failure, deadlock_detected
			return true
		}
	}
	return false
}

// uniqueViolation reports whether err is a unique or primary key
// constraint failure.
func uniqueViolation(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		c := se.Code()
		return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// getDoc reads the document of id from table into v; lock reads it for
// change. It reports whether the row exists.
func (t *txn) getDoc(table, id string, lock bool, v any) (bool, error) {
	q := "SELECT doc FROM " + table + " WHERE id = ?"
	if lock {
		q += t.d.forUpdate
	}
	var doc string
	err := t.queryRow(q, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("policy store: read %s %s: %w", table, id, err)
	}
	if err := json.Unmarshal([]byte(doc), v); err != nil {
		return false, fmt.Errorf("policy store: decode %s %s: %w", table, id, err)
	}
	return true, nil
}

// getObj reads object id from table (for change when lock); a missing
// row is a *NotFoundError.
func getObj[T any](tx *txn, table, object, id string, lock bool) (T, error) {
	var v T
	ok, err := tx.getDoc(table, id, lock, &v)
	if err == nil && !ok {
		err = &NotFoundError{Object: object, ID: id}
	}
	return v, err
}

// docs runs q (selecting doc) and decodes every row with newV.
func docs[T any](t *txn, q string, args ...any) ([]T, error) {
	rows, err := t.query(q, args...)
	if err != nil {
		return nil, fmt.Errorf("policy store: %w", err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, fmt.Errorf("policy store: %w", err)
		}
		var v T
		if err := json.Unmarshal([]byte(doc), &v); err != nil {
			return nil, fmt.Errorf("policy store: decode: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("policy store: %w", err)
	}
	return out, nil
}

func encodeDoc(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("policy store: encode: %w", err)
	}
	return string(b), nil
}

func decodeDoc(doc string, v any) error {
	if err := json.Unmarshal([]byte(doc), v); err != nil {
		return fmt.Errorf("policy store: decode: %w", err)
	}
	return nil
}

// ms is t in Unix milliseconds, or nil for the zero time.
func ms(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

// updated checks that an UPDATE … WHERE version = ? changed one row: the
// rows read for change are locked, so another count is a bug or a store
// changed behind the service's back.
func updated(res sql.Result, object, id string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("policy store: %w", err)
	}
	if n != 1 {
		return &ConflictError{Object: object, ID: id, Reason: "changed by another transaction; try again"}
	}
	return nil
}
