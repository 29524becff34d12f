package verify

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/auditpipe/auditpipe/schemas"
)

// RequestReport lists, per host, the commands of one access request from
// its first login to its last logout (to the end when it never logged
// out), and the findings of that host within that seq range: a command in
// the range was removed or changed exactly when one is listed.
type RequestReport struct {
	Request string
	Hosts   []RequestHost
}

// RequestHost is one host's part of a RequestReport.
type RequestHost struct {
	Host     string
	Login    uint64 // seq of the first login, 0 when none is stored
	Logout   uint64 // seq of the last logout, 0 when none is stored
	Commands []schemas.Event
	Findings []Finding
}

// requestHost is what the records of one host, checked in hr, hold of
// request req: its login and logout, the commands and the findings
// between them; nil when none of them is the request's.
func requestHost(recs []*Record, hr *HostReport, req string) *RequestHost {
	var h *RequestHost
	seen := map[string]bool{}
	for _, r := range recs {
		e := &r.Event
		if e.ReqAuthID != req || seen[e.EventID] {
			continue
		}
		seen[e.EventID] = true
		if h == nil {
			h = &RequestHost{Host: e.Host}
		}
		switch e.Event {
		case schemas.KindLogin:
			if h.Login == 0 || e.Seq < h.Login {
				h.Login = e.Seq
			}
		case schemas.KindLogout:
			h.Logout = max(h.Logout, e.Seq)
		case schemas.KindCommand:
			h.Commands = append(h.Commands, *e)
		}
	}
	if h == nil {
		return nil
	}
	sort.Slice(h.Commands, func(i, j int) bool { return h.Commands[i].Seq < h.Commands[j].Seq })
	for _, f := range hr.Findings {
		if f.Seq >= h.Login && (h.Logout == 0 || f.Seq <= h.Logout) {
			h.Findings = append(h.Findings, f)
		}
	}
	return h
}

func (rr *RequestReport) write(w io.Writer) {
	fmt.Fprintf(w, "request %s:\n", rr.Request)
	if len(rr.Hosts) == 0 {
		fmt.Fprintf(w, "  no event of this request is stored\n")
	}
	for _, h := range rr.Hosts {
		end := "no logout stored: to the end"
		if h.Logout > 0 {
			end = fmt.Sprintf("logout seq %d", h.Logout)
		}
		state := "chain intact over the session"
		if len(h.Findings) > 0 {
			state = fmt.Sprintf("%d findings over the session", len(h.Findings))
		}
		fmt.Fprintf(w, "  host %s: login seq %d, %s: %d commands; %s\n", h.Host, h.Login, end, len(h.Commands), state)
		for _, c := range h.Commands {
			fmt.Fprintf(w, "    seq %d %s %s %q (%s)\n", c.Seq, c.TS, c.LoginID, strings.ReplaceAll(c.Title, "\x00", " "), c.Res)
		}
		for _, f := range h.Findings {
			fmt.Fprintf(w, "    %s\n", f)
		}
	}
}
