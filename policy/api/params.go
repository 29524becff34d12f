package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/auditpipe/auditpipe/policy"
)

// decode reads the request's JSON body into v strictly: an unknown field,
// a second value after the first, or a body over the bound is refused.
// An empty body is the zero value when optional.
func (a *API) decode(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.opts.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeRequestTooLarge, Message: fmt.Sprintf("the body is over %d bytes", mbe.Limit)}
		}
		return &Error{Status: http.StatusBadRequest, Code: CodeCannotParseRequest, Message: "reading the body: " + err.Error()}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return nil
		}
		return &Error{Status: http.StatusBadRequest, Code: CodeCannotParseRequest, Message: "the operation takes a JSON body"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &Error{Status: http.StatusBadRequest, Code: CodeCannotParseRequest, Message: "the body is not the JSON this operation takes: " + err.Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &Error{Status: http.StatusBadRequest, Code: CodeCannotParseRequest, Message: "the body holds more than one JSON value"}
	}
	return nil
}

// ifMatch returns the version the if-match header names (0 when absent:
// no check). The etag is the object's version, quoted or not.
func ifMatch(r *http.Request) (int64, error) {
	h := strings.TrimSpace(r.Header.Get(HeaderIfMatch))
	if h == "" || h == "*" {
		return 0, nil
	}
	v, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(h, "W/"), `"`), 10, 64)
	if err != nil || v < 1 {
		return 0, invalidParam(HeaderIfMatch, fmt.Sprintf("%q is not an etag this API gave (a positive version)", h))
	}
	return v, nil
}

// etag is the header value of a version.
func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// writeObject writes an object with its etag.
func writeObject(w http.ResponseWriter, r *http.Request, version int64, v any) error {
	w.Header().Set(HeaderETag, etag(version))
	writeJSON(w, r, http.StatusOK, v)
	return nil
}

// collection is a list's body (OCI's *Collection).
type collection[T any] struct {
	Items []T `json:"items"`
}

// writeList writes a page of items and, when there is one, the cursor of
// the next in opc-next-page.
func writeList[T any](w http.ResponseWriter, r *http.Request, items []T, next string) error {
	if items == nil {
		items = []T{}
	}
	if next != "" {
		w.Header().Set(HeaderNextPage, next)
	}
	writeJSON(w, r, http.StatusOK, collection[T]{Items: items})
	return nil
}

// query reads a list's parameters, refusing any it does not know.
type query struct {
	v    map[string][]string
	errs []*Error
}

func newQuery(r *http.Request, known ...string) *query {
	q := &query{v: r.URL.Query()}
	for name := range q.v {
		if !slices.Contains(known, name) {
			q.errs = append(q.errs, invalidParam(name, "is not a parameter of this operation"))
		}
	}
	return q
}

// newListQuery is newQuery for a list: known and the paging parameters.
func newListQuery(r *http.Request, known ...string) *query {
	return newQuery(r, append(known, "limit", "page", "sortBy", "sortOrder")...)
}

func (q *query) str(name string) string {
	vs := q.v[name]
	if len(vs) > 1 {
		q.errs = append(q.errs, invalidParam(name, "is given more than once"))
	}
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

func (q *query) oneOf(name string, allowed []string) string {
	v := q.str(name)
	if v == "" {
		return ""
	}
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	q.errs = append(q.errs, invalidParam(name, fmt.Sprintf("%q is not one of %s", v, strings.Join(allowed, ", "))))
	return ""
}

func (q *query) boolean(name string) bool {
	switch v := q.str(name); v {
	case "", "false":
		return false
	case "true":
		return true
	default:
		q.errs = append(q.errs, invalidParam(name, fmt.Sprintf("%q is not true or false", v)))
		return false
	}
}

// Sort orders a list may take: the store lists newest first only, so
// sortBy=timeCreated and sortOrder=DESC are all there is (OCI's
// parameters, with the one value this API serves).
const (
	SortByTimeCreated = "timeCreated"
	SortOrderDesc     = "DESC"
	// MaxLimit bounds limit (the store's bound).
	MaxLimit = 1000
)

// page reads limit, page, sortBy and sortOrder.
func (q *query) page() policy.Page {
	var p policy.Page
	if s := q.str("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			q.errs = append(q.errs, invalidParam("limit", fmt.Sprintf("%q is not between 1 and %d", s, MaxLimit)))
		}
		p.Limit = n
	}
	p.After = q.str("page")
	q.oneOf("sortBy", []string{SortByTimeCreated})
	q.oneOf("sortOrder", []string{SortOrderDesc})
	return p
}

// err returns the first problem, with every problem listed.
func (q *query) err() error {
	if len(q.errs) == 0 {
		return nil
	}
	e := *q.errs[0]
	e.Problems = nil
	for _, x := range q.errs {
		e.Problems = append(e.Problems, x.Problems...)
	}
	if len(q.errs) > 1 {
		e.Message = fmt.Sprintf("%s (and %d more)", e.Message, len(q.errs)-1)
	}
	return &e
}

// stateNames returns states as strings, for oneOf.
func stateNames[S ~string](states []S) []string {
	out := make([]string, len(states))
	for i, s := range states {
		out[i] = string(s)
	}
	return out
}
