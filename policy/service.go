package policy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// ActorPolicy is the actor of time-driven changes (expiry, a future
// start, an assignment window).
const ActorPolicy = "policy"

// Service is the policy service: compartments, resources, operator
// controls, their assignments and access requests, with the rules that
// decide requests and the grants approvals issue. Every change is one
// store transaction that also writes its history, its lifecycle event
// and what it publishes (signed grants and assignments) to the outbox.
//
// Role checks per endpoint are the API's; the service makes the
// decisions that depend on the data (is this identity an approver of the
// request's control, is it the requester) and returns a *ForbiddenError.
// Updates take the version the caller read (If-Match; 0 skips the check)
// and return a *VersionError when it moved. Safe for concurrent use, and
// by several processes on one PostgreSQL.
type Service struct {
	store   *Store
	catalog *Catalog
	signer  *sign.Signer
	now     func() time.Time
	log     *slog.Logger
	// newLogin makes a grant's login user: randomHex, except in the copy
	// a seed uses to create a request whose login it pins.
	newLogin func() string
}

// Options are the service's optional parts.
type Options struct {
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Log defaults to a logger that discards.
	Log *slog.Logger
}

// NewService returns the service over store, deciding with catalog and
// signing what it publishes with signer.
func NewService(store *Store, catalog *Catalog, signer *sign.Signer, opts Options) (*Service, error) {
	if store == nil || catalog == nil || signer == nil {
		return nil, errors.New("policy: NewService needs a store, a catalog and a signer")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{store: store, catalog: catalog, signer: signer, now: opts.Now, log: opts.Log, newLogin: randomHex}, nil
}

// Catalog returns the action catalog.
func (s *Service) Catalog() *Catalog { return s.catalog }

// Store returns the store (the outbox relay reads it).
func (s *Service) Store() *Store { return s.store }

// clock returns now in UTC to the millisecond, the store's precision.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Millisecond) }

// newID returns an id for an object of kind: ocid1.<kind>.<32 hex>.
func newID(kind string) string { return "ocid1." + kind + "." + randomHex() }

// randomHex returns 128 random bits as 32 lowercase hex digits.
func randomHex() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("policy: crypto/rand: %v", err)) // never fails on Linux
	}
	return hex.EncodeToString(b[:])
}

// change is one state change to record: history always, a lifecycle
// event for controls, assignments and requests.
type change struct {
	object, id        string
	resource, compart string
	actor             string
	from, to, action  string
	kind              string // lifecycle kind suffix; default action
	comment           string
	details           map[string]string
	noLifecycle       bool
}

// record writes c's history entry and lifecycle event in tx.
func (s *Service) record(tx *txn, c change, now time.Time) error {
	if err := tx.history(HistoryEntry{ObjectType: c.object, ObjectID: c.id, Time: now, Actor: c.actor, From: c.from, To: c.to, Action: c.action, Comment: c.comment}); err != nil {
		return err
	}
	if c.noLifecycle || (c.object != ObjectControl && c.object != ObjectAssignment && c.object != ObjectAccessRequest) {
		return nil
	}
	kind := c.kind
	if kind == "" {
		kind = c.action
	}
	details := map[string]string{}
	for k, v := range c.details {
		if v != "" {
			details[k] = v
		}
	}
	if c.comment != "" {
		details["comment"] = c.comment
	}
	if len(details) == 0 {
		details = nil
	}
	return tx.lifecycle(schemas.Lifecycle{
		EventID: randomHex(), Kind: c.object + "." + kind, ObjectType: c.object, ObjectID: c.id,
		ResourceID: c.resource, CompartmentID: c.compart, StateFrom: c.from, StateTo: c.to,
		Actor: c.actor, Time: now, Details: details,
	})
}

// checkVersion returns a *VersionError when ifMatch is set and is not
// the current version.
func checkVersion(object, id string, ifMatch, current int64) error {
	if ifMatch != 0 && ifMatch != current {
		return &VersionError{Object: object, ID: id, Expected: ifMatch, Actual: current}
	}
	return nil
}

// History returns the changes of an object, oldest first.
func (s *Service) History(ctx context.Context, object, id string) ([]HistoryEntry, error) {
	return s.store.History(ctx, object, id)
}

// Page selects a page of a list: at most Limit items (default 100, at
// most 1000) after the cursor After (the Next of the previous page).
// Lists are newest first.
type Page struct {
	Limit int
	After string
}

const (
	defaultPageLimit = 100
	maxPageLimit     = 1000
)

// where is a list's conditions.
type where struct {
	conds []string
	args  []any
}

func (w *where) eq(col string, v string) {
	if v != "" {
		w.conds = append(w.conds, col+" = ?")
		w.args = append(w.args, v)
	}
}

func (w *where) in(col string, vs []string) {
	if len(vs) == 0 {
		w.conds = append(w.conds, "1 = 0")
		return
	}
	marks := make([]string, len(vs))
	for i, v := range vs {
		marks[i] = "?"
		w.args = append(w.args, v)
	}
	w.conds = append(w.conds, col+" IN ("+strings.Join(marks, ", ")+")")
}

// list returns a page of table's documents matching w, newest first, and
// the cursor of the next page ("" at the end).
func list[T any](ctx context.Context, st *Store, table string, w where, p Page) ([]T, string, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = defaultPageLimit
	}
	limit = min(limit, maxPageLimit)
	if p.After != "" {
		msPart, id, ok := strings.Cut(p.After, ".")
		ts, err := strconv.ParseInt(msPart, 10, 64)
		if !ok || err != nil || id == "" {
			return nil, "", &ValidationError{Object: "page", Problems: []FieldProblem{{Field: "page", Message: fmt.Sprintf("cursor %q is not one a list returned", p.After)}}}
		}
		w.conds = append(w.conds, "(created_ms < ? OR (created_ms = ? AND id < ?))")
		w.args = append(w.args, ts, ts, id)
	}
	q := "SELECT doc, created_ms, id FROM " + table
	if len(w.conds) > 0 {
		q += " WHERE " + strings.Join(w.conds, " AND ")
	}
	q += " ORDER BY created_ms DESC, id DESC LIMIT ?"
	rows, err := st.read(ctx).query(q, append(w.args, limit+1)...)
	if err != nil {
		return nil, "", fmt.Errorf("policy store: list %s: %w", table, err)
	}
	defer rows.Close()
	var (
		out    []T
		cursor string
		more   bool
	)
	for rows.Next() {
		var (
			doc, id string
			ts      int64
		)
		if err := rows.Scan(&doc, &ts, &id); err != nil {
			return nil, "", fmt.Errorf("policy store: list %s: %w", table, err)
		}
		if len(out) == limit {
			more = true
			break
		}
		var v T
		if err := json.Unmarshal([]byte(doc), &v); err != nil {
			return nil, "", fmt.Errorf("policy store: list %s: %w", table, err)
		}
		out = append(out, v)
		cursor = strconv.FormatInt(ts, 10) + "." + id
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("policy store: list %s: %w", table, err)
	}
	if !more {
		cursor = ""
	}
	return out, cursor, nil
}

// isApprover reports whether who may decide requests under c: named in
// its approvers_list, or in one of its approver_groups_list.
func isApprover(c *Control, who auth.Identity) bool {
	return slices.Contains(c.ApproversList, who.Name) || who.InGroup(c.ApproverGroupsList...)
}

// NamesApprover reports whether the control names who as an approver (in
// approvers_list, or a member of a group of approver_groups_list): the
// rule by which approvers may act on the requests the control decides,
// and by which the API shows them those requests.
func (c *Control) NamesApprover(who auth.Identity) bool { return isApprover(c, who) }
