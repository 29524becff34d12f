package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The parts of Grafana's dashboard JSON model (schemaVersion 39) that the
// dashboards in deploy/grafana use. Decoding with DisallowUnknownFields
// into these types refuses a misspelt or stray key; Grafana itself cannot
// be run here (AGPL, no package), so this is its model as we emit it.
type dashboard struct {
	UID          string   `json:"uid"`
	Title        string   `json:"title"`
	Description  string   `json:"description"`
	Tags         []string `json:"tags"`
	Editable     bool     `json:"editable"`
	GraphTooltip int      `json:"graphTooltip"`
	Schema       int      `json:"schemaVersion"`
	Version      int      `json:"version"`
	Refresh      string   `json:"refresh"`
	Time         struct{ From, To string }
	Timezone     string `json:"timezone"`
	Templating   struct{ List []templateVar }
	Annotations  struct{ List []json.RawMessage }
	Links        []json.RawMessage `json:"links"`
	Panels       []panel           `json:"panels"`
}

type templateVar struct {
	Name    string            `json:"name"`
	Label   string            `json:"label"`
	Type    string            `json:"type"`
	Query   string            `json:"query"`
	Current map[string]any    `json:"current"`
	Hide    int               `json:"hide"`
	Refresh int               `json:"refresh"`
	Regex   string            `json:"regex"`
	Options []json.RawMessage `json:"options"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID          int            `json:"id"`
	Type        string         `json:"type"`
	Title       string         `json:"title"`
	Description string         `json:"description"`
	Collapsed   bool           `json:"collapsed"`
	Datasource  *datasourceRef `json:"datasource"`
	GridPos     struct {
		H int `json:"h"`
		W int `json:"w"`
		X int `json:"x"`
		Y int `json:"y"`
	} `json:"gridPos"`
	FieldConfig *struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
		Overrides []json.RawMessage `json:"overrides"`
	} `json:"fieldConfig"`
	Options map[string]any `json:"options"`
	Targets []struct {
		RefID        string         `json:"refId"`
		Datasource   *datasourceRef `json:"datasource"`
		Expr         string         `json:"expr"`
		LegendFormat string         `json:"legendFormat"`
	} `json:"targets"`
	Panels []json.RawMessage `json:"panels"`
}

// panelExpr is one query of a dashboard panel.
type panelExpr struct {
	where string // file, panel and refId
	expr  string
}

// readDashboards decodes every dashboard in deploy/grafana strictly.
func readDashboards(t *testing.T) (map[string]dashboard, error) {
	t.Helper()
	files, err := filepath.Glob("grafana/*.json")
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no dashboards in deploy/grafana")
	}
	out := map[string]dashboard{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		d, err := decodeDashboard(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out[f] = d
	}
	return out, nil
}

func decodeDashboard(b []byte) (dashboard, error) {
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return d, err
	}
	if dec.More() {
		return d, fmt.Errorf("data after the dashboard")
	}
	return d, nil
}

// checkDashboard returns what is wrong with a decoded dashboard: no uid or
// title, no datasource variable, a panel without the variable's uid, ids
// not unique, a panel off Grafana's 24-column grid, a query without a
// refId, with a repeated one, or empty.
func checkDashboard(d dashboard) []string {
	var errs []string
	if d.UID == "" || d.Title == "" || d.Schema == 0 {
		errs = append(errs, "uid, title and schemaVersion are required")
	}
	dsVar := ""
	for _, v := range d.Templating.List {
		if v.Type == "datasource" && v.Query == "prometheus" {
			dsVar = "${" + v.Name + "}"
		}
	}
	if dsVar == "" {
		errs = append(errs, "no datasource variable of type prometheus in templating")
	}
	ids := map[int]string{}
	queries := 0
	for _, p := range d.Panels {
		name := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID <= 0 {
			errs = append(errs, name+": id must be positive")
		}
		if prev, dup := ids[p.ID]; dup {
			errs = append(errs, fmt.Sprintf("%s: id also used by %q", name, prev))
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			errs = append(errs, fmt.Sprintf("%s: gridPos %+v off the 24-column grid", name, g))
		}
		if p.Type == "row" {
			continue
		}
		if p.Title == "" || p.Description == "" {
			errs = append(errs, name+": title and description are required")
		}
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != dsVar {
			errs = append(errs, fmt.Sprintf("%s: datasource %+v, want prometheus %s", name, p.Datasource, dsVar))
		}
		if len(p.Targets) == 0 {
			errs = append(errs, name+": no queries")
		}
		refs := map[string]bool{}
		for _, q := range p.Targets {
			queries++
			if q.RefID == "" || refs[q.RefID] {
				errs = append(errs, fmt.Sprintf("%s: refId %q empty or repeated", name, q.RefID))
			}
			refs[q.RefID] = true
			if strings.TrimSpace(q.Expr) == "" {
				errs = append(errs, fmt.Sprintf("%s %s: empty expr", name, q.RefID))
			}
			if q.Datasource == nil || q.Datasource.UID != dsVar {
				errs = append(errs, fmt.Sprintf("%s %s: datasource %+v, want %s", name, q.RefID, q.Datasource, dsVar))
			}
		}
	}
	if queries == 0 {
		errs = append(errs, "no queries in the dashboard")
	}
	return errs
}

// dashboardExprs lists every query of every dashboard.
func dashboardExprs(ds map[string]dashboard) []panelExpr {
	var out []panelExpr
	for f, d := range ds {
		for _, p := range d.Panels {
			for _, q := range p.Targets {
				out = append(out, panelExpr{where: fmt.Sprintf("%s panel %d %q %s", f, p.ID, p.Title, q.RefID), expr: q.Expr})
			}
		}
	}
	return out
}

// TestGrafanaDashboards: each dashboard decodes strictly into the model
// above and passes checkDashboard; every metric its queries name is one
// the code exports; the three dashboards the issue names are there.
func TestGrafanaDashboards(t *testing.T) {
	ds, err := readDashboards(t)
	if err != nil {
		t.Fatal(err)
	}
	known := exportedMetrics(t)
	uids := map[string]string{}
	for f, d := range ds {
		for _, e := range checkDashboard(d) {
			t.Errorf("%s: %s", f, e)
		}
		if prev, dup := uids[d.UID]; dup {
			t.Errorf("%s: uid %s also in %s", f, d.UID, prev)
		}
		uids[d.UID] = f
	}
	for _, want := range []string{"auditpipe-pipeline", "auditpipe-access", "auditpipe-jobs"} {
		if uids[want] == "" {
			t.Errorf("no dashboard with uid %s", want)
		}
	}
	n := 0
	for _, q := range dashboardExprs(ds) {
		refs := metricRef.FindAllString(q.expr, -1)
		if len(refs) == 0 {
			t.Errorf("%s: names no auditpipe metric: %s", q.where, q.expr)
		}
		for _, m := range refs {
			n++
			if !known.has(m) {
				t.Errorf("%s: metric %s is not exported by the code", q.where, m)
			}
		}
	}
	t.Logf("%d dashboards, %d queries, %d metric references", len(ds), len(dashboardExprs(ds)), n)
}

// TestCheckDashboardRefuses: the checks above fail on the faults they are
// for (a check that cannot fail checks nothing).
func TestCheckDashboardRefuses(t *testing.T) {
	good, err := os.ReadFile("grafana/auditpipe-pipeline.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"unknown key", `"refresh": "30s"`, `"refresh": "30s", "refrseh": "1m"`, "unknown field"},
		{"unknown panel key", `"gridPos": {`, `"maxDataPoints": 100, "gridPos": {`, "unknown field"},
		{"duplicate id", `"id": 3,`, `"id": 2,`, "id also used"},
		{"fixed datasource", `"uid": "${datasource}"`, `"uid": "P1809F7CD0C75ACF3"`, "datasource"},
		{"no variable", `"type": "datasource"`, `"type": "custom"`, "no datasource variable"},
		{"off grid", `"w": 12, "x": 0`, `"w": 30, "x": 0`, "off the 24-column grid"},
		{"empty expr", `"expr": "sum(rate(auditpipe_collector_records_read_total[5m]))"`, `"expr": " "`, "empty expr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := compactGrid(string(good))
			if !strings.Contains(src, tc.old) {
				t.Fatalf("fixture lacks %q", tc.old)
			}
			bad := strings.Replace(src, tc.old, tc.new, 1)
			d, err := decodeDashboard([]byte(bad))
			msg := ""
			if err != nil {
				msg = err.Error()
			} else {
				msg = strings.Join(checkDashboard(d), "; ")
			}
			if !strings.Contains(msg, tc.want) {
				t.Fatalf("got %q, want an error containing %q", msg, tc.want)
			}
		})
	}
}

// compactGrid puts gridPos objects of the indented file on one line, so
// the cases above can name them.
func compactGrid(s string) string {
	var d any
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		return s
	}
	b, _ := json.Marshal(d)
	r := strings.NewReplacer(`":`, `": `, `,"`, `, "`)
	return r.Replace(string(b))
}
