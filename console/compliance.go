package console

import (
	"bytes"
	"net/http"
	"strings"

	"github.com/auditpipe/auditpipe/policy/api"
	"github.com/auditpipe/auditpipe/report/compliance"
)

// compliancePage is the patch compliance report (report/compliance, as
// `auditpipe report compliance` prints it) read through the console's
// ClickHouse session, over every instance, a compartment (with its
// sub-compartments when recursive) or an instance group. Who may read
// the managed instances (the API's ListManagedInstances) may read it.
func (c *Console) compliancePage(w http.ResponseWriter, r *http.Request, s *session) error {
	if c.deps.Store == nil || !c.deps.API.Allowed("ListManagedInstances", s.who) {
		return &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: "no such page: " + r.URL.Path}
	}
	q := r.URL.Query()
	scope := compliance.Scope{Compartment: strings.TrimSpace(q.Get("compartment")), Recursive: q.Get("recursive") == "1",
		Group: strings.TrimSpace(q.Get("group"))}
	if err := scope.Validate(); err != nil {
		return &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidParameter,
			Message: "scope: " + strings.TrimPrefix(err.Error(), "compliance: ") + " (fill in a compartment or a group, not both; sub-compartments go with a compartment)"}
	}
	rep, err := compliance.Read(r.Context(), c.deps.Store, scope)
	if err != nil {
		return &api.Error{Status: http.StatusBadGateway, Code: api.CodeInternalServerError, Message: "the audit store did not answer: " + err.Error()}
	}
	var text bytes.Buffer
	if err := compliance.WriteText(&text, rep, true); err != nil {
		return err
	}
	c.render(w, r, s, http.StatusOK, "compliance", map[string]any{"Scope": scope, "Report": rep, "Text": text.String()})
	return nil
}
