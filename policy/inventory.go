package policy

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/ident"
	"github.com/auditpipe/auditpipe/schemas"
)

const maxNameLen = 255

func checkName(p *problems, field, v string) {
	switch {
	case strings.TrimSpace(v) == "":
		p.add(field, "is required")
	case len(v) > maxNameLen:
		p.add(field, "is longer than %d bytes", maxNameLen)
	}
}

// CompartmentInput creates a compartment. ID is optional (generated).
type CompartmentInput struct {
	ID          string `json:"id,omitempty"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	ParentID    string `json:"parent_id,omitempty"`
}

// CompartmentUpdate changes the fields that are set.
type CompartmentUpdate struct {
	Name        *string `json:"name,omitempty"`
	Description *string `json:"description,omitempty"`
	// ParentID moves the compartment ("" makes it a root).
	ParentID *string `json:"parent_id,omitempty"`
}

// CreateCompartment creates a compartment under in.ParentID (a root when
// empty).
func (s *Service) CreateCompartment(ctx context.Context, who auth.Identity, in CompartmentInput) (Compartment, error) {
	now := s.clock()
	c := Compartment{ID: in.ID, Name: in.Name, Description: in.Description, ParentID: in.ParentID, TimeOfCreation: now, TimeOfModification: now, Version: 1}
	if c.ID == "" {
		c.ID = newID("compartment")
	}
	p := problems{object: ObjectCompartment}
	if !ident.IsID(c.ID) {
		p.add("id", "%q is not letters, digits and ._:- (at most 255)", c.ID)
	}
	checkName(&p, "name", c.Name)
	if err := p.err(); err != nil {
		return Compartment{}, err
	}
	err := s.store.tx(ctx, func(tx *txn) error {
		if c.ParentID != "" {
			var parent Compartment
			if ok, err := tx.getDoc("compartments", c.ParentID, true, &parent); err != nil {
				return err
			} else if !ok {
				return &ValidationError{Object: ObjectCompartment, Problems: []FieldProblem{{Field: "parent_id", Message: fmt.Sprintf("no compartment %q", c.ParentID)}}}
			}
		}
		doc, err := encodeDoc(c)
		if err != nil {
			return err
		}
		if _, err := tx.exec("INSERT INTO compartments (id, parent_id, created_ms, version, doc) VALUES (?, ?, ?, ?, ?)",
			c.ID, nullable(c.ParentID), now.UnixMilli(), c.Version, doc); err != nil {
			if uniqueViolation(err) {
				return &ConflictError{Object: ObjectCompartment, ID: c.ID, Reason: "exists already"}
			}
			return fmt.Errorf("policy store: create compartment: %w", err)
		}
		return s.record(tx, change{object: ObjectCompartment, id: c.ID, compart: c.ID, actor: who.Name, to: "ACTIVE", action: "created"}, now)
	})
	return c, err
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// GetCompartment returns a compartment.
func (s *Service) GetCompartment(ctx context.Context, id string) (Compartment, error) {
	return getObj[Compartment](s.store.read(ctx), "compartments", ObjectCompartment, id, false)
}

// CompartmentFilter selects compartments: children of ParentID (roots
// when RootsOnly), or every compartment under Under (itself included).
type CompartmentFilter struct {
	ParentID  string
	RootsOnly bool
	Under     string
	Page      Page
}

// ListCompartments lists compartments, newest first, and the next page's
// cursor.
func (s *Service) ListCompartments(ctx context.Context, f CompartmentFilter) ([]Compartment, string, error) {
	var w where
	w.eq("parent_id", f.ParentID)
	if f.RootsOnly {
		w.conds = append(w.conds, "parent_id IS NULL")
	}
	if f.Under != "" {
		ids, err := s.CompartmentSubtree(ctx, f.Under)
		if err != nil {
			return nil, "", err
		}
		w.in("id", ids)
	}
	return list[Compartment](ctx, s.store, "compartments", w, f.Page)
}

// CompartmentSubtree returns id and the ids of every compartment under
// it (the recursive lookup lists filter with).
func (s *Service) CompartmentSubtree(ctx context.Context, id string) ([]string, error) {
	return subtree(s.store.read(ctx), id)
}

func subtree(tx *txn, id string) ([]string, error) {
	rows, err := tx.query(`WITH RECURSIVE sub(id) AS (
  SELECT id FROM compartments WHERE id = ?
  UNION ALL
  SELECT c.id FROM compartments c JOIN sub ON c.parent_id = sub.id
) SELECT id FROM sub`, id)
	if err != nil {
		return nil, fmt.Errorf("policy store: compartment tree: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("policy store: compartment tree: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("policy store: compartment tree: %w", err)
	}
	if len(out) == 0 {
		return nil, &NotFoundError{Object: ObjectCompartment, ID: id}
	}
	return out, nil
}

// UpdateCompartment changes a compartment; moving it under one of its
// own descendants is refused.
func (s *Service) UpdateCompartment(ctx context.Context, who auth.Identity, id string, ifMatch int64, u CompartmentUpdate) (Compartment, error) {
	now := s.clock()
	var c Compartment
	err := s.store.tx(ctx, func(tx *txn) error {
		if ok, err := tx.getDoc("compartments", id, true, &c); err != nil {
			return err
		} else if !ok {
			return &NotFoundError{Object: ObjectCompartment, ID: id}
		}
		if err := checkVersion(ObjectCompartment, id, ifMatch, c.Version); err != nil {
			return err
		}
		p := problems{object: ObjectCompartment}
		if u.Name != nil {
			c.Name = *u.Name
			checkName(&p, "name", c.Name)
		}
		if u.Description != nil {
			c.Description = *u.Description
		}
		if u.ParentID != nil && *u.ParentID != c.ParentID {
			if *u.ParentID != "" {
				under, err := subtree(tx, id)
				if err != nil {
					return err
				}
				var parent Compartment
				if ok, err := tx.getDoc("compartments", *u.ParentID, false, &parent); err != nil {
					return err
				} else if !ok {
					p.add("parent_id", "no compartment %q", *u.ParentID)
				} else if slices.Contains(under, *u.ParentID) {
					p.add("parent_id", "%q is %s or under it: the tree would have a cycle", *u.ParentID, id)
				}
			}
			c.ParentID = *u.ParentID
		}
		if err := p.err(); err != nil {
			return err
		}
		c.Version++
		c.TimeOfModification = now
		doc, err := encodeDoc(c)
		if err != nil {
			return err
		}
		res, err := tx.exec("UPDATE compartments SET parent_id = ?, version = ?, doc = ? WHERE id = ? AND version = ?", nullable(c.ParentID), c.Version, doc, id, c.Version-1)
		if err != nil {
			return fmt.Errorf("policy store: update compartment: %w", err)
		}
		if err := updated(res, ObjectCompartment, id); err != nil {
			return err
		}
		return s.record(tx, change{object: ObjectCompartment, id: id, compart: id, actor: who.Name, from: "ACTIVE", to: "ACTIVE", action: "updated"}, now)
	})
	return c, err
}

// DeleteCompartment deletes an empty compartment (no child compartment,
// resource, control, managed instance, instance group or scheduled job).
func (s *Service) DeleteCompartment(ctx context.Context, who auth.Identity, id string, ifMatch int64) error {
	now := s.clock()
	return s.store.tx(ctx, func(tx *txn) error {
		var c Compartment
		if ok, err := tx.getDoc("compartments", id, true, &c); err != nil {
			return err
		} else if !ok {
			return &NotFoundError{Object: ObjectCompartment, ID: id}
		}
		if err := checkVersion(ObjectCompartment, id, ifMatch, c.Version); err != nil {
			return err
		}
		for _, q := range []struct{ what, sql string }{
			{"compartments", "SELECT COUNT(*) FROM compartments WHERE parent_id = ?"},
			{"resources", "SELECT COUNT(*) FROM resources WHERE compartment_id = ?"},
			{"operator controls", "SELECT COUNT(*) FROM operator_controls WHERE compartment_id = ?"},
			// the scheduler's objects (policy/scheduler, migration 0002)
			{"managed instances", "SELECT COUNT(*) FROM managed_instances WHERE compartment_id = ?"},
			{"instance groups", "SELECT COUNT(*) FROM instance_groups WHERE compartment_id = ?"},
			{"scheduled jobs", "SELECT COUNT(*) FROM scheduled_jobs WHERE compartment_id = ?"},
		} {
			var n int
			if err := tx.queryRow(q.sql, id).Scan(&n); err != nil {
				return fmt.Errorf("policy store: delete compartment: %w", err)
			}
			if n > 0 {
				return &ConflictError{Object: ObjectCompartment, ID: id, Reason: fmt.Sprintf("holds %d %s: move or delete them first", n, q.what)}
			}
		}
		if _, err := tx.exec("DELETE FROM compartments WHERE id = ?", id); err != nil {
			return fmt.Errorf("policy store: delete compartment: %w", err)
		}
		return s.record(tx, change{object: ObjectCompartment, id: id, compart: id, actor: who.Name, from: "ACTIVE", to: "DELETED", action: "deleted"}, now)
	})
}

// ResourceInput creates a resource: ID is the resource's own id (an
// infrastructure's OCID, a cluster's name), required.
type ResourceInput struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	ResourceType  string `json:"resource_type"`
	CompartmentID string `json:"compartment_id"`
	Hosts         []Host `json:"hosts"`
}

// ResourceUpdate changes the fields that are set.
type ResourceUpdate struct {
	Name          *string `json:"name,omitempty"`
	CompartmentID *string `json:"compartment_id,omitempty"`
	Hosts         *[]Host `json:"hosts,omitempty"`
}

func checkHosts(p *problems, hosts []Host) {
	if len(hosts) == 0 {
		p.add("hosts", "at least one host is required")
	}
	seen := map[string]bool{}
	for i, h := range hosts {
		f := fmt.Sprintf("hosts[%d]", i)
		if !ident.IsHost(h.Name) {
			p.add(f+".name", "%q is not a host name", h.Name)
		}
		if seen[h.Name] {
			p.add(f+".name", "%q is listed twice", h.Name)
		}
		seen[h.Name] = true
		if !slices.Contains(schemas.Layers(), h.Layer) {
			p.add(f+".layer", "%q is not one of %s", h.Layer, strings.Join(schemas.Layers(), ", "))
		}
	}
}

// CreateResource creates a resource in a compartment.
func (s *Service) CreateResource(ctx context.Context, who auth.Identity, in ResourceInput) (Resource, error) {
	now := s.clock()
	r := Resource{ID: in.ID, Name: in.Name, ResourceType: in.ResourceType, CompartmentID: in.CompartmentID,
		Hosts: slices.Clone(in.Hosts), TimeOfCreation: now, TimeOfModification: now, Version: 1}
	p := problems{object: ObjectResource}
	if !ident.IsID(r.ID) {
		p.add("id", "%q is not letters, digits and ._:- (at most 255)", r.ID)
	}
	checkName(&p, "name", r.Name)
	if !slices.Contains(ResourceTypes(), r.ResourceType) {
		p.add("resource_type", "%q is not one of %s", r.ResourceType, strings.Join(ResourceTypes(), ", "))
	}
	checkHosts(&p, r.Hosts)
	if r.CompartmentID == "" {
		p.add("compartment_id", "is required")
	}
	if err := p.err(); err != nil {
		return Resource{}, err
	}
	err := s.store.tx(ctx, func(tx *txn) error {
		if err := needCompartment(tx, ObjectResource, r.CompartmentID); err != nil {
			return err
		}
		doc, err := encodeDoc(r)
		if err != nil {
			return err
		}
		if _, err := tx.exec("INSERT INTO resources (id, compartment_id, resource_type, created_ms, version, doc) VALUES (?, ?, ?, ?, ?, ?)",
			r.ID, r.CompartmentID, r.ResourceType, now.UnixMilli(), r.Version, doc); err != nil {
			if uniqueViolation(err) {
				return &ConflictError{Object: ObjectResource, ID: r.ID, Reason: "exists already"}
			}
			return fmt.Errorf("policy store: create resource: %w", err)
		}
		return s.record(tx, change{object: ObjectResource, id: r.ID, resource: r.ID, compart: r.CompartmentID, actor: who.Name, to: "ACTIVE", action: "created"}, now)
	})
	return r, err
}

func needCompartment(tx *txn, object, id string) error {
	var c Compartment
	ok, err := tx.getDoc("compartments", id, false, &c)
	if err != nil {
		return err
	}
	if !ok {
		return &ValidationError{Object: object, Problems: []FieldProblem{{Field: "compartment_id", Message: fmt.Sprintf("no compartment %q", id)}}}
	}
	return nil
}

// GetResource returns a resource.
func (s *Service) GetResource(ctx context.Context, id string) (Resource, error) {
	return getResource(s.store.read(ctx), id, false)
}

func getResource(tx *txn, id string, lock bool) (Resource, error) {
	return getObj[Resource](tx, "resources", ObjectResource, id, lock)
}

// ResourceFilter selects resources.
type ResourceFilter struct {
	CompartmentID string
	// Recursive includes the compartments under CompartmentID.
	Recursive    bool
	ResourceType string
	Page         Page
}

// ListResources lists resources, newest first, and the next page's
// cursor.
func (s *Service) ListResources(ctx context.Context, f ResourceFilter) ([]Resource, string, error) {
	var w where
	if err := s.compartmentCond(ctx, &w, f.CompartmentID, f.Recursive); err != nil {
		return nil, "", err
	}
	w.eq("resource_type", f.ResourceType)
	return list[Resource](ctx, s.store, "resources", w, f.Page)
}

func (s *Service) compartmentCond(ctx context.Context, w *where, id string, recursive bool) error {
	if id == "" {
		return nil
	}
	if !recursive {
		w.eq("compartment_id", id)
		return nil
	}
	ids, err := s.CompartmentSubtree(ctx, id)
	if err != nil {
		return err
	}
	w.in("compartment_id", ids)
	return nil
}

// UpdateResource changes a resource. A resource's type never changes.
// An assignment in force is published again with the new hosts.
func (s *Service) UpdateResource(ctx context.Context, who auth.Identity, id string, ifMatch int64, u ResourceUpdate) (Resource, error) {
	now := s.clock()
	var r Resource
	err := s.store.tx(ctx, func(tx *txn) error {
		var err error
		if r, err = getResource(tx, id, true); err != nil {
			return err
		}
		if err := checkVersion(ObjectResource, id, ifMatch, r.Version); err != nil {
			return err
		}
		p := problems{object: ObjectResource}
		if u.Name != nil {
			r.Name = *u.Name
			checkName(&p, "name", r.Name)
		}
		if u.Hosts != nil {
			r.Hosts = slices.Clone(*u.Hosts)
			checkHosts(&p, r.Hosts)
		}
		if err := p.err(); err != nil {
			return err
		}
		if u.CompartmentID != nil {
			if err := needCompartment(tx, ObjectResource, *u.CompartmentID); err != nil {
				return err
			}
			r.CompartmentID = *u.CompartmentID
		}
		r.Version++
		r.TimeOfModification = now
		doc, err := encodeDoc(r)
		if err != nil {
			return err
		}
		res, err := tx.exec("UPDATE resources SET compartment_id = ?, version = ?, doc = ? WHERE id = ? AND version = ?", r.CompartmentID, r.Version, doc, id, r.Version-1)
		if err != nil {
			return fmt.Errorf("policy store: update resource: %w", err)
		}
		if err := updated(res, ObjectResource, id); err != nil {
			return err
		}
		if err := s.record(tx, change{object: ObjectResource, id: id, resource: id, compart: r.CompartmentID, actor: who.Name, from: "ACTIVE", to: "ACTIVE", action: "updated"}, now); err != nil {
			return err
		}
		if u.Hosts == nil {
			return nil
		}
		as, err := docs[Assignment](tx, "SELECT doc FROM assignments WHERE resource_id = ? AND lifecycle_state = ?", id, string(AssignmentApplied))
		if err != nil {
			return err
		}
		for _, a := range as {
			if err := s.publishAssignment(tx, &a, &r, now); err != nil {
				return err
			}
		}
		return nil
	})
	return r, err
}

// DeleteResource deletes a resource that no assignment, access request
// or managed instance names (they are its history: unassign it instead).
func (s *Service) DeleteResource(ctx context.Context, who auth.Identity, id string, ifMatch int64) error {
	now := s.clock()
	return s.store.tx(ctx, func(tx *txn) error {
		r, err := getResource(tx, id, true)
		if err != nil {
			return err
		}
		if err := checkVersion(ObjectResource, id, ifMatch, r.Version); err != nil {
			return err
		}
		for _, q := range []struct{ what, sql string }{
			{"assignments", "SELECT COUNT(*) FROM assignments WHERE resource_id = ?"},
			{"access requests", "SELECT COUNT(*) FROM access_requests WHERE resource_id = ?"},
			{"managed instances", "SELECT COUNT(*) FROM managed_instances WHERE resource_id = ?"},
		} {
			var n int
			if err := tx.queryRow(q.sql, id).Scan(&n); err != nil {
				return fmt.Errorf("policy store: delete resource: %w", err)
			}
			if n > 0 {
				return &ConflictError{Object: ObjectResource, ID: id, Reason: fmt.Sprintf("%d %s name it", n, q.what)}
			}
		}
		if _, err := tx.exec("DELETE FROM resources WHERE id = ?", id); err != nil {
			return fmt.Errorf("policy store: delete resource: %w", err)
		}
		return s.record(tx, change{object: ObjectResource, id: id, resource: id, compart: r.CompartmentID, actor: who.Name, from: "ACTIVE", to: "DELETED", action: "deleted"}, now)
	})
}

// hostsFor returns the names of r's hosts on layers, narrowed to only
// when it is not empty.
func hostsFor(r *Resource, layers, only []string) []string {
	var out []string
	for _, h := range r.Hosts {
		if slices.Contains(layers, h.Layer) && (len(only) == 0 || slices.Contains(only, h.Name)) {
			out = append(out, h.Name)
		}
	}
	return out
}

func hostNames(r *Resource) []string {
	out := make([]string, len(r.Hosts))
	for i, h := range r.Hosts {
		out[i] = h.Name
	}
	return out
}
