package policy

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"

	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/config"
)

// Seed is a set of objects created through the service at start
// (policy.seed_file): what a newcomer's all-in-one needs to show the
// whole loop, or the first objects of a new installation. Objects refer
// to each other by the ids the seed gives (compartments, resources) and
// by name (controls). ApplySeed creates only what is missing, so it runs
// at every start.
type Seed struct {
	Compartments []SeedCompartment `yaml:"compartments"`
	Resources    []SeedResource    `yaml:"resources"`
	Controls     []SeedControl     `yaml:"controls"`
	Assignments  []SeedAssignment  `yaml:"assignments"`
	Requests     []SeedRequest     `yaml:"requests"`
}

// SeedCompartment is a compartment; ID is required.
type SeedCompartment struct {
	ID          string `yaml:"id"`
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Parent      string `yaml:"parent"`
}

// SeedResource is a resource in a compartment of the seed or the store.
type SeedResource struct {
	ID           string     `yaml:"id"`
	Name         string     `yaml:"name"`
	ResourceType string     `yaml:"resource_type"`
	Compartment  string     `yaml:"compartment"`
	Hosts        []SeedHost `yaml:"hosts"`
}

// SeedHost is one host of a resource.
type SeedHost struct {
	Name  string `yaml:"name"`
	Layer string `yaml:"layer"`
}

// SeedControl is an operator control, found again by its name in its
// compartment.
type SeedControl struct {
	Name                   string   `yaml:"name"`
	Description            string   `yaml:"description"`
	Compartment            string   `yaml:"compartment"`
	ResourceType           string   `yaml:"resource_type"`
	Approvers              []string `yaml:"approvers"`
	ApproverGroups         []string `yaml:"approver_groups"`
	PreApprovedActions     []string `yaml:"pre_approved_actions"`
	ApprovalRequiredAction []string `yaml:"approval_required_actions"`
	FullyPreApproved       bool     `yaml:"fully_pre_approved"`
	NumberOfApprovers      int      `yaml:"number_of_approvers"`
	MaxDurationHours       int      `yaml:"max_duration_hours"`
}

// SeedAssignment assigns a control of the seed (by name) to a resource,
// always enforced.
type SeedAssignment struct {
	Control  string `yaml:"control"`
	Resource string `yaml:"resource"`
	Comment  string `yaml:"comment"`
}

// SeedRequest is an access request made by Requester (an operator).
type SeedRequest struct {
	Requester     string   `yaml:"requester"`
	Resource      string   `yaml:"resource"`
	Actions       []string `yaml:"actions"`
	Reason        string   `yaml:"reason"`
	Severity      string   `yaml:"severity"`
	DurationHours int      `yaml:"duration_hours"`
	// Login pins the login user of the request's grant (32 lowercase hex
	// digits) instead of a random one: for a sample whose audit log was
	// recorded with that user. The request must be auto-approved (its
	// grant issued at creation). Never reuse a login: a collector that
	// saw its revocation refuses it for good.
	Login string `yaml:"login"`
	// AuditType and SSHPublicKeys are the request's (RequestInput).
	AuditType     string   `yaml:"audit_type"`
	SSHPublicKeys []string `yaml:"ssh_public_keys"`
}

// SeedActor is the actor of the changes a seed makes.
const SeedActor = "seed"

var loginRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

// LoadSeed reads a seed file strictly (unknown fields are errors naming
// the field).
func LoadSeed(path string) (Seed, error) {
	var s Seed
	if err := config.Load(path, &s); err != nil {
		return Seed{}, fmt.Errorf("policy seed %s: %w", path, err)
	}
	var errs config.Errors
	for i, r := range s.Requests {
		if r.Login != "" && !loginRe.MatchString(r.Login) {
			errs.Addf(config.IndexPath("requests", i)+".login", "%q is not 32 lowercase hex digits", r.Login)
		}
	}
	for i, c := range s.Compartments {
		if c.ID == "" {
			errs.Addf(config.IndexPath("compartments", i)+".id", "required (resources and controls refer to it)")
		}
	}
	if err := errs.Err(); err != nil {
		return Seed{}, fmt.Errorf("policy seed %s: %w", path, err)
	}
	return s, nil
}

// SeedResult counts what ApplySeed created.
type SeedResult struct {
	Created int
	// Requests are the seed's requests, created now or found, in the
	// seed's order.
	Requests []AccessRequest
}

// ApplySeed creates the seed's objects that do not exist yet:
// compartments and resources by id, controls by name in their
// compartment, assignments of the control to the resource (in any state),
// requests by their pinned login, else by requester, resource and reason.
// An object found is left as it is (a request revoked since stays
// revoked). Errors name the seed's entry.
func ApplySeed(ctx context.Context, s *Service, seed Seed) (SeedResult, error) {
	var res SeedResult
	who := auth.Identity{Name: SeedActor, Role: auth.RoleAdmin}
	for i, c := range seed.Compartments {
		if _, err := s.GetCompartment(ctx, c.ID); err == nil {
			continue
		} else if !errors.Is(err, ErrNotFound) {
			return res, seedErr("compartments", i, err)
		}
		if _, err := s.CreateCompartment(ctx, who, CompartmentInput{ID: c.ID, Name: c.Name, Description: c.Description, ParentID: c.Parent}); err != nil {
			return res, seedErr("compartments", i, err)
		}
		res.Created++
	}
	for i, r := range seed.Resources {
		if _, err := s.GetResource(ctx, r.ID); err == nil {
			continue
		} else if !errors.Is(err, ErrNotFound) {
			return res, seedErr("resources", i, err)
		}
		hosts := make([]Host, len(r.Hosts))
		for j, h := range r.Hosts {
			hosts[j] = Host(h)
		}
		if _, err := s.CreateResource(ctx, who, ResourceInput{ID: r.ID, Name: r.Name, ResourceType: r.ResourceType, CompartmentID: r.Compartment, Hosts: hosts}); err != nil {
			return res, seedErr("resources", i, err)
		}
		res.Created++
	}
	controls := map[string]string{} // name → id
	for i, c := range seed.Controls {
		id, err := findControl(ctx, s, c.Compartment, c.Name)
		if err != nil {
			return res, seedErr("controls", i, err)
		}
		if id == "" {
			ctl, err := s.CreateControl(ctx, who, ControlInput{
				OperatorControlName: c.Name, Description: c.Description, CompartmentID: c.Compartment, ResourceType: c.ResourceType,
				ApproversList: c.Approvers, ApproverGroupsList: c.ApproverGroups, PreApprovedOpActions: c.PreApprovedActions,
				ApprovalRequiredOpActions: c.ApprovalRequiredAction, IsFullyPreApproved: c.FullyPreApproved,
				NumberOfApprovers: c.NumberOfApprovers, MaxDurationHours: c.MaxDurationHours,
			})
			if err != nil {
				return res, seedErr("controls", i, err)
			}
			id = ctl.ID
			res.Created++
		}
		controls[c.Name] = id
	}
	for i, a := range seed.Assignments {
		id, ok := controls[a.Control]
		if !ok {
			return res, seedErr("assignments", i, fmt.Errorf("control: %q is not a control of the seed", a.Control))
		}
		got, _, err := s.ListAssignments(ctx, AssignmentFilter{ResourceID: a.Resource, OperatorControlID: id, Page: Page{Limit: 1}})
		if err != nil {
			return res, seedErr("assignments", i, err)
		}
		if len(got) > 0 {
			continue
		}
		if _, err := s.CreateAssignment(ctx, who, AssignmentInput{OperatorControlID: id, ResourceID: a.Resource, Comment: a.Comment,
			AssignmentWindow: AssignmentWindow{IsEnforcedAlways: true}}); err != nil {
			return res, seedErr("assignments", i, err)
		}
		res.Created++
	}
	for i, r := range seed.Requests {
		found, err := findRequest(ctx, s, r)
		if err != nil {
			return res, seedErr("requests", i, err)
		}
		if found != nil {
			res.Requests = append(res.Requests, *found)
			continue
		}
		svc := s
		if r.Login != "" {
			// Only an auto-approved request has its grant at creation:
			// refuse before creating one that would wait.
			c, _, err := s.ControlInForce(ctx, r.Resource, s.clock())
			if err != nil {
				return res, seedErr("requests", i, err)
			}
			if !preApproved(&c, sortedUnique(r.Actions)) {
				return res, seedErr("requests", i, fmt.Errorf("login: operator control %s does not pre-approve %v: only the grant of an auto-approved request can be pinned", c.OperatorControlName, r.Actions))
			}
			pinned := *s
			pinned.newLogin = func() string { return r.Login }
			svc = &pinned
		}
		req, err := svc.CreateRequest(ctx, auth.Identity{Name: r.Requester, Role: auth.RoleOperator}, RequestInput{
			ResourceID: r.Resource, ActionRequests: r.Actions, Reason: r.Reason, Severity: r.Severity, DurationHours: r.DurationHours,
			AuditType: r.AuditType, SSHPublicKeys: r.SSHPublicKeys,
		})
		if err != nil {
			return res, seedErr("requests", i, err)
		}
		res.Created++
		if r.Login != "" && req.UserID != r.Login {
			return res, seedErr("requests", i, fmt.Errorf("login: request %s is %s, not auto-approved: only the grant of an auto-approved request can be pinned", req.ID, req.LifecycleState))
		}
		res.Requests = append(res.Requests, req)
	}
	return res, nil
}

func seedErr(list string, i int, err error) error {
	return fmt.Errorf("policy seed: %s: %w", config.IndexPath(list, i), err)
}

// findControl returns the id of the control named name in compartment,
// or "".
func findControl(ctx context.Context, s *Service, compartment, name string) (string, error) {
	p := Page{Limit: maxPageLimit}
	for {
		cs, next, err := s.ListControls(ctx, ControlFilter{CompartmentID: compartment, Page: p})
		if err != nil {
			return "", err
		}
		for _, c := range cs {
			if c.OperatorControlName == name && c.LifecycleState != ControlDeleted {
				return c.ID, nil
			}
		}
		if next == "" {
			return "", nil
		}
		p.After = next
	}
}

// findRequest returns the seed's request r when it exists.
func findRequest(ctx context.Context, s *Service, r SeedRequest) (*AccessRequest, error) {
	if r.Login != "" {
		g, err := s.GetGrant(ctx, r.Login)
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		req, err := s.GetRequest(ctx, g.RequestID)
		return &req, err
	}
	p := Page{Limit: maxPageLimit}
	for {
		rs, next, err := s.ListRequests(ctx, RequestFilter{RequestorID: r.Requester, ResourceID: r.Resource, Page: p})
		if err != nil {
			return nil, err
		}
		for i := range rs {
			if rs[i].Reason == r.Reason && slices.Equal(rs[i].ActionRequests, sortedUnique(r.Actions)) {
				return &rs[i], nil
			}
		}
		if next == "" {
			return nil, nil
		}
		p.After = next
	}
}
