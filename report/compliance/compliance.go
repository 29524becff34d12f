// Package compliance builds the patch compliance report: the managed
// instances missing security updates, with the CVEs each update fixes,
// over the whole inventory, a compartment (with its sub-compartments when
// recursive) or an instance group. Its text form is what the seed's
// compliance_report.py (OCI OS Management) prints, line for line.
//
// The report reads the latest inventory report of every instance from the
// ClickHouse table instance_inventory (migration 0009); Build takes the
// rows themselves, so the report is testable without ClickHouse, and Read
// runs the query.
package compliance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/auditpipe/auditpipe/clickhouse"
)

// Scope selects the instances a report covers. At most one of
// Compartment and Group is set; Recursive only with Compartment. The zero
// Scope is every instance.
type Scope struct {
	Compartment string `json:"compartment,omitempty"`
	Recursive   bool   `json:"recursive,omitempty"`
	Group       string `json:"group,omitempty"`
}

// Validate checks the scope's fields against each other.
func (s Scope) Validate() error {
	switch {
	case s.Compartment != "" && s.Group != "":
		return errors.New("compliance: compartment and group exclude each other")
	case s.Recursive && s.Compartment == "":
		return errors.New("compliance: recursive needs a compartment")
	}
	return nil
}

// Row is one row of an instance's latest inventory report: the header
// row (Package empty) that names the instance, or one of its security
// updates.
type Row struct {
	InstanceID    string
	InstanceName  string
	CompartmentID string
	// Package and UpdateVersion name the update; empty on the header row.
	Package       string
	UpdateVersion string
	CVEs          []string
}

// Report is the compliance report.
type Report struct {
	Scope Scope `json:"scope"`
	// TotalInstances counts the instances in scope.
	TotalInstances int `json:"total_instances"`
	// Vulnerable are the instances with outstanding security updates, in
	// row order.
	Vulnerable []Instance `json:"vulnerable_instances"`
}

// Instance is an instance missing security updates.
type Instance struct {
	ID              string           `json:"id"`
	DisplayName     string           `json:"display_name"`
	CompartmentID   string           `json:"compartment_id"`
	SecurityUpdates []SecurityUpdate `json:"security_updates"`
}

// SecurityUpdate is an outstanding security update. DisplayName is
// "PACKAGE VERSION", the version being the one that fixes RelatedCVEs.
type SecurityUpdate struct {
	DisplayName string   `json:"display_name"`
	Package     string   `json:"package"`
	Version     string   `json:"version"`
	RelatedCVEs []string `json:"related_cves"`
}

// Build makes the report of scope from rows: every instance named by a
// row counts, and the instances with update rows are the vulnerable
// ones, in the order their first row comes.
func Build(scope Scope, rows []Row) *Report {
	rep := &Report{Scope: scope, Vulnerable: []Instance{}}
	seen := map[string]bool{}
	at := map[string]int{}
	for _, r := range rows {
		if !seen[r.InstanceID] {
			seen[r.InstanceID] = true
			rep.TotalInstances++
		}
		if r.Package == "" {
			continue
		}
		i, ok := at[r.InstanceID]
		if !ok {
			i = len(rep.Vulnerable)
			at[r.InstanceID] = i
			rep.Vulnerable = append(rep.Vulnerable, Instance{ID: r.InstanceID, DisplayName: r.InstanceName, CompartmentID: r.CompartmentID})
		}
		cves := r.CVEs
		if cves == nil {
			cves = []string{}
		}
		rep.Vulnerable[i].SecurityUpdates = append(rep.Vulnerable[i].SecurityUpdates, SecurityUpdate{
			DisplayName: strings.TrimSpace(r.Package + " " + r.UpdateVersion),
			Package:     r.Package, Version: r.UpdateVersion, RelatedCVEs: cves,
		})
	}
	return rep
}

// inventorySQL reads the header row and the security updates of each
// instance's latest inventory report; {scope} is replaced by the scope's
// condition, whose values are bound as parameters.
const inventorySQL = `WITH latest AS (
    SELECT instance_id, max(time) AS t FROM instance_inventory GROUP BY instance_id
)
SELECT i.instance_id, i.instance_name, i.compartment_id, i.package, i.update_version, i.cves
FROM instance_inventory AS i FINAL
INNER JOIN latest AS l ON i.instance_id = l.instance_id AND i.time = l.t
WHERE (i.package = '' OR i.update_type = 'SECURITY'){scope}
ORDER BY i.instance_name, i.instance_id, i.package = '' DESC, i.package, i.update_version`

// Query returns the SQL and the parameters that read scope's rows.
func Query(scope Scope) (string, []clickhouse.Param) {
	var cond string
	var params []clickhouse.Param
	switch {
	case scope.Group != "":
		cond = " AND has(i.group_ids, {group:String})"
		params = append(params, clickhouse.StringParam("group", scope.Group))
	case scope.Compartment != "" && scope.Recursive:
		cond = " AND has(i.compartment_path, {compartment:String})"
		params = append(params, clickhouse.StringParam("compartment", scope.Compartment))
	case scope.Compartment != "":
		cond = " AND i.compartment_id = {compartment:String}"
		params = append(params, clickhouse.StringParam("compartment", scope.Compartment))
	}
	return strings.Replace(inventorySQL, "{scope}", cond, 1), params
}

// Read runs scope's query on q and builds the report.
func Read(ctx context.Context, q clickhouse.ParamQuerier, scope Scope) (*Report, error) {
	if err := scope.Validate(); err != nil {
		return nil, err
	}
	sql, params := Query(scope)
	res, err := q.QueryParams(ctx, sql, params)
	if err != nil {
		return nil, fmt.Errorf("compliance: read the inventory: %w", err)
	}
	rows := make([]Row, 0, len(res.Rows))
	for n, r := range res.Rows {
		if len(r) != 6 {
			return nil, fmt.Errorf("compliance: inventory row %d has %d columns, want 6", n, len(r))
		}
		cves, err := clickhouse.ValueStrings(r[5])
		if err != nil {
			return nil, fmt.Errorf("compliance: inventory row %d: cves: %w", n, err)
		}
		rows = append(rows, Row{
			InstanceID: clickhouse.ValueString(r[0]), InstanceName: clickhouse.ValueString(r[1]),
			CompartmentID: clickhouse.ValueString(r[2]), Package: clickhouse.ValueString(r[3]),
			UpdateVersion: clickhouse.ValueString(r[4]), CVEs: cves,
		})
	}
	return Build(scope, rows), nil
}

// WriteText writes the report as compliance_report.py prints it: the
// overview, then with details every vulnerable instance's updates.
func WriteText(w io.Writer, rep *Report, details bool) error {
	var b strings.Builder
	writeOverview(&b, rep)
	if details {
		writeDetails(&b, rep)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeOverview is show_overview: the title, the group when the report is
// of one, and the sentence, whose plural follows the total ("0 managed
// instance", as the script prints it) and whose verb follows the
// vulnerable count ("None is", "1 is", "2 are").
func writeOverview(b *strings.Builder, rep *Report) {
	b.WriteString("\n Patch Compliance Report Sample\n ==============================\n\n")
	if rep.Scope.Group != "" {
		fmt.Fprintf(b, "Managed Instance Group ID: %s\n", rep.Scope.Group)
	}
	vulnerable := "None"
	if n := len(rep.Vulnerable); n > 0 {
		vulnerable = fmt.Sprint(n)
	}
	verb := "is"
	if len(rep.Vulnerable) > 1 {
		verb = "are"
	}
	plural := ""
	if rep.TotalInstances > 1 {
		plural = "s"
	}
	fmt.Fprintf(b, "\nDetected out of %d managed instance%s, %s %s missing security patches!\n\n",
		rep.TotalInstances, plural, vulnerable, verb)
}

// cveWrap is the length of the accumulated CVE text at which the script
// ends a line.
const cveWrap = 65

// writeDetails is show_details. The CVEs go four to a line: each is
// appended as " " + (CVE + ",") padded to 17, and a line ends once the
// text reaches 65 characters, keeping its comma when more CVEs follow;
// the last line loses its trailing comma.
//
// An update with no CVEs prints no "CVEs:" line. (The script prints one
// for an empty, not None, list and leaves it unterminated; ClickHouse's
// arrays cannot tell the two apart, so both print as None does.)
func writeDetails(b *strings.Builder, rep *Report) {
	for _, in := range rep.Vulnerable {
		fmt.Fprintf(b, "Managed Instance %s (%s)\n", in.DisplayName, in.ID)
		b.WriteString(" has the following outstanding security patches:\n")
		for _, u := range in.SecurityUpdates {
			fmt.Fprintf(b, " %s\n", u.DisplayName)
			if len(u.RelatedCVEs) == 0 {
				continue
			}
			b.WriteString(" CVEs:")
			line := ""
			for n, cve := range u.RelatedCVEs {
				line = fmt.Sprintf("%s %-17s", line, cve+",")
				if len(line) >= cveWrap {
					if n+1 < len(u.RelatedCVEs) {
						b.WriteString(strings.TrimRight(line, " ") + "\n")
						b.WriteString(" ")
					} else {
						b.WriteString(strings.TrimRight(line, ", ") + "\n")
					}
					line = ""
				}
			}
			if line != "" {
				b.WriteString(strings.TrimRight(line, ", ") + "\n")
			}
		}
		b.WriteString("\n")
	}
}

// WriteJSON writes the report as one JSON object; without details the
// vulnerable instances are counted, not listed.
func WriteJSON(w io.Writer, rep *Report, details bool) error {
	out := struct {
		Scope          Scope       `json:"scope"`
		TotalInstances int         `json:"total_instances"`
		Vulnerable     int         `json:"vulnerable_instance_count"`
		Instances      *[]Instance `json:"vulnerable_instances,omitempty"`
	}{Scope: rep.Scope, TotalInstances: rep.TotalInstances, Vulnerable: len(rep.Vulnerable)}
	if details {
		list := rep.Vulnerable
		if list == nil {
			list = []Instance{}
		}
		out.Instances = &list
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
