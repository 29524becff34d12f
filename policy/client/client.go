// Package client talks to the policy HTTP API (policy/api,
// policy/openapi.yaml) for the CLI and other programs: one method per
// operation, the domain's types in and out, the API's JSON errors as
// *Error.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/api"
)

// DefaultServer is the all-in-one's address.
const DefaultServer = "http://127.0.0.1:9464"

// Client is a policy API client. Its zero value but BaseURL is usable.
type Client struct {
	// BaseURL is the server, e.g. http://127.0.0.1:9464 (the API is
	// under /v1/).
	BaseURL string
	// Token is the bearer token ("" sends none).
	Token config.Secret
	// HTTP defaults to a client with a 30 s timeout.
	HTTP *http.Client
}

// Error is the API's error answer.
type Error struct {
	Status    int
	Code      string
	Message   string
	Problems  []policy.FieldProblem
	RequestID string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
	if e.RequestID != "" {
		msg += " (opc-request-id " + e.RequestID + ")"
	}
	return msg
}

// IsStatus reports whether err is an *Error with status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

var defaultHTTP = &http.Client{Timeout: 30 * time.Second}

// do sends one request: in as the JSON body (nil: none), the query,
// if-match when ifMatch > 0; decodes the answer into out (nil: none) and
// returns the headers.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, ifMatch int64, in, out any) (http.Header, error) {
	u := strings.TrimRight(c.BaseURL, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("policy client: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("policy client: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok := c.Token.Reveal(); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if ifMatch > 0 {
		req.Header.Set(api.HeaderIfMatch, `"`+strconv.FormatInt(ifMatch, 10)+`"`)
	}
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("policy API %s: %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("policy API %s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		e := &Error{Status: resp.StatusCode, RequestID: resp.Header.Get(api.HeaderRequestID)}
		var body api.Error
		if json.Unmarshal(b, &body) == nil && body.Code != "" {
			e.Code, e.Message, e.Problems = body.Code, body.Message, body.Problems
		} else {
			// The process's authentication answers in text.
			e.Code, e.Message = http.StatusText(resp.StatusCode), strings.TrimSpace(string(b))
		}
		return resp.Header, e
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.Header, fmt.Errorf("policy API %s %s: decoding the answer: %w", method, path, err)
		}
	}
	return resp.Header, nil
}

func get[T any](ctx context.Context, c *Client, path string, q url.Values) (T, error) {
	var v T
	_, err := c.do(ctx, http.MethodGet, path, q, 0, nil, &v)
	return v, err
}

func send[T any](ctx context.Context, c *Client, method, path string, ifMatch int64, in any) (T, error) {
	var v T
	_, err := c.do(ctx, method, path, nil, ifMatch, in, &v)
	return v, err
}

// Page is one page of a list and the cursor of the next ("" at the end).
type Page[T any] struct {
	Items []T
	Next  string
}

// ListOptions select a page: Limit items (0: the server's default) after
// Page (a previous page's Next), and the list's filters as query
// parameters (lifecycleState, resourceId, compartmentId,
// compartmentIdInSubtree …).
type ListOptions struct {
	Limit   int
	Page    string
	Filters url.Values
}

func (o ListOptions) query() url.Values {
	q := url.Values{}
	for k, vs := range o.Filters {
		for _, v := range vs {
			if v != "" {
				q.Add(k, v)
			}
		}
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Page != "" {
		q.Set("page", o.Page)
	}
	return q
}

func list[T any](ctx context.Context, c *Client, path string, o ListOptions) (Page[T], error) {
	var col struct {
		Items []T `json:"items"`
	}
	h, err := c.do(ctx, http.MethodGet, path, o.query(), 0, nil, &col)
	if err != nil {
		return Page[T]{}, err
	}
	return Page[T]{Items: col.Items, Next: h.Get(api.HeaderNextPage)}, nil
}

// All follows the pages of a list from o.Page to the end.
func All[T any](ctx context.Context, o ListOptions, page func(context.Context, ListOptions) (Page[T], error)) ([]T, error) {
	var out []T
	for {
		p, err := page(ctx, o)
		if err != nil {
			return out, err
		}
		out = append(out, p.Items...)
		if p.Next == "" {
			return out, nil
		}
		o.Page = p.Next
	}
}

func esc(s string) string { return url.PathEscape(s) }

// Actions returns the catalog (only the actions of resourceType when
// set).
func (c *Client) Actions(ctx context.Context, resourceType string) ([]policy.Action, error) {
	q := url.Values{}
	if resourceType != "" {
		q.Set("resourceType", resourceType)
	}
	col, err := get[struct {
		Items []policy.Action `json:"items"`
	}](ctx, c, "/v1/actions", q)
	return col.Items, err
}

// Action returns one action of the catalog.
func (c *Client) Action(ctx context.Context, name string) (policy.Action, error) {
	return get[policy.Action](ctx, c, "/v1/actions/"+esc(name), nil)
}

// CreateCompartment creates a compartment.
func (c *Client) CreateCompartment(ctx context.Context, in policy.CompartmentInput) (policy.Compartment, error) {
	return send[policy.Compartment](ctx, c, http.MethodPost, "/v1/compartments", 0, in)
}

// ListCompartments returns a page of compartments.
func (c *Client) ListCompartments(ctx context.Context, o ListOptions) (Page[policy.Compartment], error) {
	return list[policy.Compartment](ctx, c, "/v1/compartments", o)
}

// GetCompartment returns a compartment.
func (c *Client) GetCompartment(ctx context.Context, id string) (policy.Compartment, error) {
	return get[policy.Compartment](ctx, c, "/v1/compartments/"+esc(id), nil)
}

// UpdateCompartment changes the fields u sets (ifMatch 0: no version check).
func (c *Client) UpdateCompartment(ctx context.Context, id string, ifMatch int64, u policy.CompartmentUpdate) (policy.Compartment, error) {
	return send[policy.Compartment](ctx, c, http.MethodPut, "/v1/compartments/"+esc(id), ifMatch, u)
}

// DeleteCompartment deletes an empty compartment.
func (c *Client) DeleteCompartment(ctx context.Context, id string, ifMatch int64) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/compartments/"+esc(id), nil, ifMatch, nil, nil)
	return err
}

// CreateResource creates a resource.
func (c *Client) CreateResource(ctx context.Context, in policy.ResourceInput) (policy.Resource, error) {
	return send[policy.Resource](ctx, c, http.MethodPost, "/v1/resources", 0, in)
}

// ListResources returns a page of resources.
func (c *Client) ListResources(ctx context.Context, o ListOptions) (Page[policy.Resource], error) {
	return list[policy.Resource](ctx, c, "/v1/resources", o)
}

// GetResource returns a resource.
func (c *Client) GetResource(ctx context.Context, id string) (policy.Resource, error) {
	return get[policy.Resource](ctx, c, "/v1/resources/"+esc(id), nil)
}

// UpdateResource changes the fields u sets.
func (c *Client) UpdateResource(ctx context.Context, id string, ifMatch int64, u policy.ResourceUpdate) (policy.Resource, error) {
	return send[policy.Resource](ctx, c, http.MethodPut, "/v1/resources/"+esc(id), ifMatch, u)
}

// DeleteResource deletes a resource no assignment or request names.
func (c *Client) DeleteResource(ctx context.Context, id string, ifMatch int64) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/resources/"+esc(id), nil, ifMatch, nil, nil)
	return err
}

// CreateControl creates an operator control.
func (c *Client) CreateControl(ctx context.Context, in policy.ControlInput) (policy.Control, error) {
	return send[policy.Control](ctx, c, http.MethodPost, "/v1/operatorControls", 0, in)
}

// ListControls returns a page of operator controls.
func (c *Client) ListControls(ctx context.Context, o ListOptions) (Page[policy.Control], error) {
	return list[policy.Control](ctx, c, "/v1/operatorControls", o)
}

// GetControl returns an operator control.
func (c *Client) GetControl(ctx context.Context, id string) (policy.Control, error) {
	return get[policy.Control](ctx, c, "/v1/operatorControls/"+esc(id), nil)
}

// UpdateControl replaces a control's fields (api.ControlUpdate makes u
// from the control read).
func (c *Client) UpdateControl(ctx context.Context, id string, ifMatch int64, u api.UpdateControlDetails) (policy.Control, error) {
	return send[policy.Control](ctx, c, http.MethodPut, "/v1/operatorControls/"+esc(id), ifMatch, u)
}

// DeleteControl deletes an unassigned control.
func (c *Client) DeleteControl(ctx context.Context, id string, ifMatch int64) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/operatorControls/"+esc(id), nil, ifMatch, nil, nil)
	return err
}

// CreateAssignment assigns a control to a resource.
func (c *Client) CreateAssignment(ctx context.Context, in policy.AssignmentInput) (policy.Assignment, error) {
	return send[policy.Assignment](ctx, c, http.MethodPost, "/v1/operatorControlAssignments", 0, in)
}

// ListAssignments returns a page of assignments.
func (c *Client) ListAssignments(ctx context.Context, o ListOptions) (Page[policy.Assignment], error) {
	return list[policy.Assignment](ctx, c, "/v1/operatorControlAssignments", o)
}

// GetAssignment returns an assignment.
func (c *Client) GetAssignment(ctx context.Context, id string) (policy.Assignment, error) {
	return get[policy.Assignment](ctx, c, "/v1/operatorControlAssignments/"+esc(id), nil)
}

// UpdateAssignment replaces an assignment's window and forwarding.
func (c *Client) UpdateAssignment(ctx context.Context, id string, ifMatch int64, u policy.AssignmentUpdate) (policy.Assignment, error) {
	return send[policy.Assignment](ctx, c, http.MethodPut, "/v1/operatorControlAssignments/"+esc(id), ifMatch, u)
}

// DeleteAssignment unassigns, saying why.
func (c *Client) DeleteAssignment(ctx context.Context, id string, ifMatch int64, description string) error {
	q := url.Values{}
	if description != "" {
		q.Set("detachmentDescription", description)
	}
	_, err := c.do(ctx, http.MethodDelete, "/v1/operatorControlAssignments/"+esc(id), q, ifMatch, nil, nil)
	return err
}

// CreateRequest makes an access request (the token's identity is the
// requester).
func (c *Client) CreateRequest(ctx context.Context, in policy.RequestInput) (policy.AccessRequest, error) {
	return send[policy.AccessRequest](ctx, c, http.MethodPost, "/v1/accessRequests", 0, in)
}

// ListRequests returns a page of the access requests the caller may see.
func (c *Client) ListRequests(ctx context.Context, o ListOptions) (Page[policy.AccessRequest], error) {
	return list[policy.AccessRequest](ctx, c, "/v1/accessRequests", o)
}

// GetRequest returns an access request.
func (c *Client) GetRequest(ctx context.Context, id string) (policy.AccessRequest, error) {
	return get[policy.AccessRequest](ctx, c, "/v1/accessRequests/"+esc(id), nil)
}

func (c *Client) requestAction(ctx context.Context, id, action string, ifMatch int64, in any) (policy.AccessRequest, error) {
	return send[policy.AccessRequest](ctx, c, http.MethodPost, "/v1/accessRequests/"+esc(id)+"/action/"+action, ifMatch, in)
}

// Approve approves a request or its pending extension.
func (c *Client) Approve(ctx context.Context, id string, ifMatch int64, in policy.ApproveInput) (policy.AccessRequest, error) {
	return c.requestAction(ctx, id, "approve", ifMatch, in)
}

// Reject rejects a request or its pending extension, with a comment.
func (c *Client) Reject(ctx context.Context, id string, ifMatch int64, comment string) (policy.AccessRequest, error) {
	return c.requestAction(ctx, id, "reject", ifMatch, api.RejectDetails{ApproverComment: comment})
}

// Revoke ends a request.
func (c *Client) Revoke(ctx context.Context, id string, ifMatch int64, comment string) (policy.AccessRequest, error) {
	return c.requestAction(ctx, id, "revoke", ifMatch, api.RevokeDetails{ApproverComment: comment})
}

// Extend asks for hours more.
func (c *Client) Extend(ctx context.Context, id string, ifMatch int64, hours int, reason string) (policy.AccessRequest, error) {
	return c.requestAction(ctx, id, "extend", ifMatch, api.ExtendDetails{ExtendDuration: hours, Reason: reason})
}

// Complete ends the requester's access early.
func (c *Client) Complete(ctx context.Context, id string, ifMatch int64, comment string) (policy.AccessRequest, error) {
	return c.requestAction(ctx, id, "complete", ifMatch, api.CompleteDetails{ClosureComment: comment})
}

// Interact puts a message on the MOREINFO thread: an approver's question,
// or the requester's answer.
func (c *Client) Interact(ctx context.Context, id, message string) (policy.AccessRequest, error) {
	return c.requestAction(ctx, id, "interactionRequest", 0, api.InteractionDetails{MoreInfoDetails: message})
}

// Interactions returns the request's MOREINFO thread.
func (c *Client) Interactions(ctx context.Context, id string) ([]policy.Interaction, error) {
	p, err := list[policy.Interaction](ctx, c, "/v1/accessRequests/"+esc(id)+"/interactions", ListOptions{})
	return p.Items, err
}

// History returns the request's transitions.
func (c *Client) History(ctx context.Context, id string) ([]policy.HistoryEntry, error) {
	p, err := list[policy.HistoryEntry](ctx, c, "/v1/accessRequests/"+esc(id)+"/history", ListOptions{})
	return p.Items, err
}

// Grant returns a grant's login user.
func (c *Client) Grant(ctx context.Context, loginID string) (policy.Grant, error) {
	return get[policy.Grant](ctx, c, "/v1/grants/"+esc(loginID), nil)
}

// ReportDeployment is a host agent's report on a grant's login user.
func (c *Client) ReportDeployment(ctx context.Context, loginID string, rep api.ReportDetails) (policy.AccessRequest, error) {
	return send[policy.AccessRequest](ctx, c, http.MethodPost, "/v1/grants/"+esc(loginID)+"/action/report", 0, rep)
}
