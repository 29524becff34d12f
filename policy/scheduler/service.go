package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/ident"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/policy"
)

// ActorScheduler is the actor of the scheduler's own changes (firing,
// dispatch, timeouts, cleanup) in history and lifecycle events.
const ActorScheduler = "scheduler"

// DefaultRetention is how long finished work requests are kept: the
// seed's two weeks.
const DefaultRetention = 14 * 24 * time.Hour

// Service is the scheduler: managed instances and groups, scheduled
// jobs, their executions and work requests, kept in the policy store
// (its database, migrations, history and outbox) so that a work request's
// change, the dispatch it sends and the lifecycle event that reports it
// commit together. Role checks per endpoint are the API's, as in policy.
// Safe for concurrent use, and by several processes on one PostgreSQL:
// every change reads its rows for change and checks again that it is
// still due.
type Service struct {
	policy    *policy.Service
	store     *policy.Store
	signer    *sign.Signer
	now       func() time.Time
	log       *slog.Logger
	identity  auth.Identity
	retention time.Duration
	m         *metrics
}

// Options are the service's optional parts.
type Options struct {
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Log defaults to a logger that discards.
	Log *slog.Logger
	// Registerer takes the scheduler's metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// Identity is the machine identity governed patch runs request
	// access as. Default name "scheduler", role scheduler.
	Identity auth.Identity
	// Retention is how long finished work requests are kept. Default
	// DefaultRetention (14 days).
	Retention time.Duration
}

// New returns the scheduler over the policy service p (its store, and
// its rules for the access requests of governed runs), signing dispatch
// messages with signer (the policy signer: agents trust one key).
func New(p *policy.Service, signer *sign.Signer, opts Options) (*Service, error) {
	if p == nil || signer == nil {
		return nil, errors.New("scheduler: New needs the policy service and a signer")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Identity.Name == "" {
		opts.Identity = auth.Identity{Name: ActorScheduler, Role: auth.RoleScheduler}
	}
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	return &Service{policy: p, store: p.Store(), signer: signer, now: opts.Now, log: opts.Log,
		identity: opts.Identity, retention: opts.Retention, m: newMetrics(opts.Registerer)}, nil
}

// clock returns now in UTC to the millisecond, the store's precision.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Millisecond) }

const maxNameLen = 255

// problems collects field problems into a *policy.ValidationError.
type problems struct {
	object string
	list   []policy.FieldProblem
}

func (p *problems) add(field, format string, args ...any) {
	p.list = append(p.list, policy.FieldProblem{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	return &policy.ValidationError{Object: p.object, Problems: p.list}
}

func (p *problems) name(field, v string) {
	switch {
	case strings.TrimSpace(v) == "":
		p.add(field, "is required")
	case len(v) > maxNameLen:
		p.add(field, "is longer than %d bytes", maxNameLen)
	}
}

func invalid(object, field, format string, args ...any) error {
	return &policy.ValidationError{Object: object, Problems: []policy.FieldProblem{{Field: field, Message: fmt.Sprintf(format, args...)}}}
}

// needCompartment checks the compartment exists, as seen by tx.
func needCompartment(tx *policy.Tx, object, id string) error {
	if _, err := policy.GetDoc[policy.Compartment](tx, "compartments", policy.ObjectCompartment, id, false); err != nil {
		if errors.Is(err, policy.ErrNotFound) {
			return invalid(object, "compartment_id", "no compartment %q", id)
		}
		return err
	}
	return nil
}

func checkVersion(object, id string, ifMatch, current int64) error {
	if ifMatch != 0 && ifMatch != current {
		return &policy.VersionError{Object: object, ID: id, Expected: ifMatch, Actual: current}
	}
	return nil
}

// compartmentConds adds the condition selecting compartment id (and,
// when recursive, every compartment under it).
func (s *Service) compartmentConds(ctx context.Context, conds *[]string, args *[]any, id string, recursive bool) error {
	if id == "" {
		return nil
	}
	ids := []string{id}
	if recursive {
		var err error
		if ids, err = s.policy.CompartmentSubtree(ctx, id); err != nil {
			return err
		}
	}
	*conds = append(*conds, "compartment_id IN ("+marks(len(ids))+")")
	for _, v := range ids {
		*args = append(*args, v)
	}
	return nil
}

func marks(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }

// History returns the changes of a scheduler object (ObjectJob,
// ObjectExecution, ObjectWorkRequest, ObjectInstance, ObjectGroup),
// oldest first. A job's history holds its firings, skips and deletion;
// a work request's, every status change with its reason. History
// outlives the cleanup of finished work requests.
func (s *Service) History(ctx context.Context, object, id string) ([]policy.HistoryEntry, error) {
	return s.store.History(ctx, object, id)
}

func (s *Service) history(tx *policy.Tx, object, id, actor, from, to, action, comment string, now time.Time) error {
	return tx.History(policy.HistoryEntry{ObjectType: object, ObjectID: id, Time: now, Actor: actor, From: from, To: to, Action: action, Comment: comment})
}

// InstanceInput creates a managed instance. ID is optional (generated).
type InstanceInput struct {
	ID            string `json:"id,omitempty"`
	DisplayName   string `json:"display_name"`
	Host          string `json:"host"`
	CompartmentID string `json:"compartment_id"`
	// ResourceID, when set, is the policy resource whose hosts include
	// Host: runs on the instance are then governed by its control.
	ResourceID string `json:"resource_id,omitempty"`
}

// CreateInstance registers a managed instance. Its host is unique: an
// agent's reports name it.
func (s *Service) CreateInstance(ctx context.Context, who auth.Identity, in InstanceInput) (Instance, error) {
	now := s.clock()
	i := Instance{ID: in.ID, DisplayName: in.DisplayName, Host: in.Host, CompartmentID: in.CompartmentID, ResourceID: in.ResourceID,
		TimeCreated: now, TimeUpdated: now, Version: 1}
	if i.ID == "" {
		i.ID = policy.NewID("managedinstance")
	}
	p := problems{object: ObjectInstance}
	if !ident.IsID(i.ID) {
		p.add("id", "%q is not letters, digits and ._:- (at most 255)", i.ID)
	}
	p.name("display_name", i.DisplayName)
	if !ident.IsHost(i.Host) {
		p.add("host", "%q is not a host name", i.Host)
	}
	if i.CompartmentID == "" {
		p.add("compartment_id", "is required")
	}
	if err := p.err(); err != nil {
		return Instance{}, err
	}
	err := s.store.Tx(ctx, func(tx *policy.Tx) error {
		if err := needCompartment(tx, ObjectInstance, i.CompartmentID); err != nil {
			return err
		}
		if i.ResourceID != "" {
			r, err := policy.GetDoc[policy.Resource](tx, "resources", policy.ObjectResource, i.ResourceID, false)
			if errors.Is(err, policy.ErrNotFound) {
				return invalid(ObjectInstance, "resource_id", "no resource %q", i.ResourceID)
			}
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(r.Hosts, func(h policy.Host) bool { return h.Name == i.Host }) {
				return invalid(ObjectInstance, "host", "%q is not a host of resource %s", i.Host, r.ID)
			}
		}
		doc, err := encode(i)
		if err != nil {
			return err
		}
		if _, err := tx.Exec("INSERT INTO managed_instances (id, compartment_id, host, resource_id, created_ms, version, doc) VALUES (?, ?, ?, ?, ?, ?, ?)",
			i.ID, i.CompartmentID, i.Host, nullable(i.ResourceID), now.UnixMilli(), i.Version, doc); err != nil {
			if policy.IsUniqueViolation(err) {
				return &policy.ConflictError{Object: ObjectInstance, ID: i.ID, Reason: fmt.Sprintf("an instance with id %s or host %s exists already", i.ID, i.Host)}
			}
			return fmt.Errorf("scheduler store: create instance: %w", err)
		}
		return s.history(tx, ObjectInstance, i.ID, who.Name, "", "ACTIVE", "created", "", now)
	})
	return i, err
}

// GetInstance returns a managed instance.
func (s *Service) GetInstance(ctx context.Context, id string) (Instance, error) {
	return policy.GetDoc[Instance](s.store.Read(ctx), "managed_instances", ObjectInstance, id, false)
}

// InstanceFilter selects managed instances.
type InstanceFilter struct {
	CompartmentID string
	Recursive     bool
	ResourceID    string
	Page          policy.Page
}

// ListInstances lists managed instances, newest first, and the next
// page's cursor.
func (s *Service) ListInstances(ctx context.Context, f InstanceFilter) ([]Instance, string, error) {
	var (
		conds []string
		args  []any
	)
	if err := s.compartmentConds(ctx, &conds, &args, f.CompartmentID, f.Recursive); err != nil {
		return nil, "", err
	}
	if f.ResourceID != "" {
		conds, args = append(conds, "resource_id = ?"), append(args, f.ResourceID)
	}
	return policy.List[Instance](ctx, s.store, "managed_instances", conds, args, f.Page)
}

// DeleteInstance deletes an instance that no group and no active job
// names (its work requests keep its id).
func (s *Service) DeleteInstance(ctx context.Context, who auth.Identity, id string, ifMatch int64) error {
	now := s.clock()
	return s.store.Tx(ctx, func(tx *policy.Tx) error {
		i, err := policy.GetDoc[Instance](tx, "managed_instances", ObjectInstance, id, true)
		if err != nil {
			return err
		}
		if err := checkVersion(ObjectInstance, id, ifMatch, i.Version); err != nil {
			return err
		}
		if err := notNamed(tx, ObjectInstance, id, []reference{
			{"instance groups", "SELECT COUNT(*) FROM instance_group_members WHERE instance_id = ?"},
			{"active scheduled jobs", "SELECT COUNT(*) FROM job_targets t JOIN scheduled_jobs j ON j.id = t.job_id WHERE t.kind = 'instance' AND t.target_id = ? AND j.lifecycle_state = 'ACTIVE'"},
		}); err != nil {
			return err
		}
		if _, err := tx.Exec("DELETE FROM managed_instances WHERE id = ?", id); err != nil {
			return fmt.Errorf("scheduler store: delete instance: %w", err)
		}
		return s.history(tx, ObjectInstance, id, who.Name, "ACTIVE", "DELETED", "deleted", "", now)
	})
}

type reference struct{ what, sql string }

// notNamed returns a *policy.ConflictError when a reference query counts
// rows naming id.
func notNamed(tx *policy.Tx, object, id string, refs []reference) error {
	for _, r := range refs {
		var n int
		if err := tx.QueryRow(r.sql, id).Scan(&n); err != nil {
			return fmt.Errorf("scheduler store: references of %s %s: %w", object, id, err)
		}
		if n > 0 {
			return &policy.ConflictError{Object: object, ID: id, Reason: fmt.Sprintf("%d %s name it", n, r.what)}
		}
	}
	return nil
}

// GroupInput creates a managed instance group. ID is optional
// (generated).
type GroupInput struct {
	ID               string   `json:"id,omitempty"`
	DisplayName      string   `json:"display_name"`
	Description      string   `json:"description,omitempty"`
	CompartmentID    string   `json:"compartment_id"`
	ManagedInstances []string `json:"managed_instances,omitempty"`
}

// CreateGroup creates a group of existing instances.
func (s *Service) CreateGroup(ctx context.Context, who auth.Identity, in GroupInput) (Group, error) {
	now := s.clock()
	g := Group{ID: in.ID, DisplayName: in.DisplayName, Description: in.Description, CompartmentID: in.CompartmentID,
		ManagedInstances: slices.Clone(in.ManagedInstances), TimeCreated: now, TimeUpdated: now, Version: 1}
	if g.ID == "" {
		g.ID = policy.NewID("managedinstancegroup")
	}
	p := problems{object: ObjectGroup}
	if !ident.IsID(g.ID) {
		p.add("id", "%q is not letters, digits and ._:- (at most 255)", g.ID)
	}
	p.name("display_name", g.DisplayName)
	if g.CompartmentID == "" {
		p.add("compartment_id", "is required")
	}
	if err := p.err(); err != nil {
		return Group{}, err
	}
	err := s.store.Tx(ctx, func(tx *policy.Tx) error {
		if err := needCompartment(tx, ObjectGroup, g.CompartmentID); err != nil {
			return err
		}
		doc, err := encode(g)
		if err != nil {
			return err
		}
		if _, err := tx.Exec("INSERT INTO instance_groups (id, compartment_id, created_ms, version, doc) VALUES (?, ?, ?, ?, ?)",
			g.ID, g.CompartmentID, now.UnixMilli(), g.Version, doc); err != nil {
			if policy.IsUniqueViolation(err) {
				return &policy.ConflictError{Object: ObjectGroup, ID: g.ID, Reason: "exists already"}
			}
			return fmt.Errorf("scheduler store: create group: %w", err)
		}
		if err := setMembers(tx, g.ID, g.ManagedInstances); err != nil {
			return err
		}
		return s.history(tx, ObjectGroup, g.ID, who.Name, "", "ACTIVE", "created", strings.Join(g.ManagedInstances, ","), now)
	})
	return g, err
}

// setMembers replaces the members of group id.
func setMembers(tx *policy.Tx, id string, members []string) error {
	if _, err := tx.Exec("DELETE FROM instance_group_members WHERE group_id = ?", id); err != nil {
		return fmt.Errorf("scheduler store: group members: %w", err)
	}
	p := problems{object: ObjectGroup}
	seen := map[string]bool{}
	for n, m := range members {
		f := fmt.Sprintf("managed_instances[%d]", n)
		if seen[m] {
			p.add(f, "%q is listed twice", m)
			continue
		}
		seen[m] = true
		if _, err := policy.GetDoc[Instance](tx, "managed_instances", ObjectInstance, m, false); err != nil {
			if errors.Is(err, policy.ErrNotFound) {
				p.add(f, "no managed instance %q", m)
				continue
			}
			return err
		}
		if _, err := tx.Exec("INSERT INTO instance_group_members (group_id, instance_id, position) VALUES (?, ?, ?)", id, m, n); err != nil {
			return fmt.Errorf("scheduler store: group members: %w", err)
		}
	}
	return p.err()
}

// GetGroup returns a managed instance group.
func (s *Service) GetGroup(ctx context.Context, id string) (Group, error) {
	return policy.GetDoc[Group](s.store.Read(ctx), "instance_groups", ObjectGroup, id, false)
}

// GroupFilter selects groups.
type GroupFilter struct {
	CompartmentID string
	Recursive     bool
	Page          policy.Page
}

// ListGroups lists groups, newest first, and the next page's cursor.
func (s *Service) ListGroups(ctx context.Context, f GroupFilter) ([]Group, string, error) {
	var (
		conds []string
		args  []any
	)
	if err := s.compartmentConds(ctx, &conds, &args, f.CompartmentID, f.Recursive); err != nil {
		return nil, "", err
	}
	return policy.List[Group](ctx, s.store, "instance_groups", conds, args, f.Page)
}

// SetGroupMembers replaces a group's instances (later executions of its
// jobs target the new members).
func (s *Service) SetGroupMembers(ctx context.Context, who auth.Identity, id string, ifMatch int64, members []string) (Group, error) {
	now := s.clock()
	var g Group
	err := s.store.Tx(ctx, func(tx *policy.Tx) error {
		var err error
		if g, err = policy.GetDoc[Group](tx, "instance_groups", ObjectGroup, id, true); err != nil {
			return err
		}
		if err := checkVersion(ObjectGroup, id, ifMatch, g.Version); err != nil {
			return err
		}
		if err := setMembers(tx, id, members); err != nil {
			return err
		}
		g.ManagedInstances, g.TimeUpdated = slices.Clone(members), now
		g.Version++
		doc, err := encode(g)
		if err != nil {
			return err
		}
		res, err := tx.Exec("UPDATE instance_groups SET version = ?, doc = ? WHERE id = ? AND version = ?", g.Version, doc, id, g.Version-1)
		if err != nil {
			return fmt.Errorf("scheduler store: update group: %w", err)
		}
		if err := updatedOne(res, ObjectGroup, id); err != nil {
			return err
		}
		return s.history(tx, ObjectGroup, id, who.Name, "ACTIVE", "ACTIVE", "members_set", strings.Join(members, ","), now)
	})
	return g, err
}

// DeleteGroup deletes a group that no active job names.
func (s *Service) DeleteGroup(ctx context.Context, who auth.Identity, id string, ifMatch int64) error {
	now := s.clock()
	return s.store.Tx(ctx, func(tx *policy.Tx) error {
		g, err := policy.GetDoc[Group](tx, "instance_groups", ObjectGroup, id, true)
		if err != nil {
			return err
		}
		if err := checkVersion(ObjectGroup, id, ifMatch, g.Version); err != nil {
			return err
		}
		if err := notNamed(tx, ObjectGroup, id, []reference{
			{"active scheduled jobs", "SELECT COUNT(*) FROM job_targets t JOIN scheduled_jobs j ON j.id = t.job_id WHERE t.kind = 'group' AND t.target_id = ? AND j.lifecycle_state = 'ACTIVE'"},
		}); err != nil {
			return err
		}
		for _, q := range []string{"DELETE FROM instance_group_members WHERE group_id = ?", "DELETE FROM instance_groups WHERE id = ?"} {
			if _, err := tx.Exec(q, id); err != nil {
				return fmt.Errorf("scheduler store: delete group: %w", err)
			}
		}
		return s.history(tx, ObjectGroup, id, who.Name, "ACTIVE", "DELETED", "deleted", "", now)
	})
}

// InstanceHost returns the host of managed instance id (ok false when
// there is none): what binds an agent's inventory to the instance it
// names (indexer.InstanceHosts).
func (s *Service) InstanceHost(ctx context.Context, id string) (string, bool, error) {
	i, err := s.GetInstance(ctx, id)
	if errors.Is(err, policy.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return i.Host, true, nil
}
