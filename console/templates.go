package console

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

// pages are the templates beside the layout, one per page.
var pages = []string{"signin", "inbox", "request", "new", "controls", "control", "assignment", "newjob", "search", "jobs", "job", "workrequest", "compliance", "error"}

func (c *Console) parseTemplates() error {
	funcs := template.FuncMap{
		"join": strings.Join,
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04:05 UTC")
		},
		"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"add": func(a, b int) int { return a + b },
		"dict": func(kv ...any) (map[string]any, error) {
			if len(kv)%2 != 0 {
				return nil, fmt.Errorf("dict: odd number of arguments")
			}
			m := make(map[string]any, len(kv)/2)
			for i := 0; i < len(kv); i += 2 {
				k, ok := kv[i].(string)
				if !ok {
					return nil, fmt.Errorf("dict: key %v is not a string", kv[i])
				}
				m[k] = kv[i+1]
			}
			return m, nil
		},
	}
	c.tmpl = map[string]*template.Template{}
	for _, p := range pages {
		t, err := template.New(p).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/decide.html", "templates/jobparts.html", "templates/"+p+".html")
		if err != nil {
			return fmt.Errorf("console: template %s: %w", p, err)
		}
		c.tmpl[p] = t
	}
	return nil
}
