package api

import (
	"strings"
	"testing"
)

// TestRoutesMatchDocument: every route the API serves is an operation of
// policy/openapi.yaml with the same operationId, and every operation of
// the document is a route.
func TestRoutesMatchDocument(t *testing.T) {
	doc := loadDocument(t)
	s := newServer(t, serverOptions{})
	served := map[string]string{}
	for _, rt := range s.api.Routes() {
		key := rt.Method + " " + rt.Pattern
		if _, dup := served[key]; dup {
			t.Errorf("route %s twice", key)
		}
		served[key] = rt.OperationID
	}
	documented := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			documented[strings.ToUpper(method)+" "+path] = op.OperationID
		}
	}
	for key, op := range served {
		switch d, ok := documented[key]; {
		case !ok:
			t.Errorf("served but not in openapi.yaml: %s (%s)", key, op)
		case d != op:
			t.Errorf("%s: operationId %s in openapi.yaml, %s served", key, d, op)
		}
	}
	for key, op := range documented {
		if _, ok := served[key]; !ok {
			t.Errorf("in openapi.yaml but not served: %s (%s)", key, op)
		}
	}
	// Every operation names its errors: the caller's role (403) and
	// credential (401) everywhere.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for _, code := range []string{"401", "403", "500"} {
				if op.Responses.Value(code) == nil {
					t.Errorf("%s %s: no %s response", method, path, code)
				}
			}
		}
	}
}
