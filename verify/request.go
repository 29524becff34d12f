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

func requestReport(records []Record, rep *Report, req string) *RequestReport {
	rr := &RequestReport{Request: req}
	byHost := map[string]*RequestHost{}
	seen := map[string]bool{}
	for i := range records {
		e := &records[i].Event
		if e.ReqAuthID != req || seen[e.EventID] {
			continue
		}
		seen[e.EventID] = true
		h := byHost[e.Host]
		if h == nil {
			h = &RequestHost{Host: e.Host}
			byHost[e.Host] = h
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
	for _, h := range byHost {
		sort.Slice(h.Commands, func(i, j int) bool { return h.Commands[i].Seq < h.Commands[j].Seq })
		for _, hr := range rep.Hosts {
			if hr.Host != h.Host {
				continue
			}
			for _, f := range hr.Findings {
				if f.Seq >= h.Login && (h.Logout == 0 || f.Seq <= h.Logout) {
					h.Findings = append(h.Findings, f)
				}
			}
		}
		rr.Hosts = append(rr.Hosts, *h)
	}
	sort.Slice(rr.Hosts, func(i, j int) bool { return rr.Hosts[i].Host < rr.Hosts[j].Host })
	return rr
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
