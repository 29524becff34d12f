package main

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/schemas"
)

// plainSIEM accepts one plain-TCP connection, reads it to the end, closes
// it (the confirmation forward waits for) and returns what it read.
func plainSIEM(t *testing.T) (addr string, received func() string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	done := make(chan string, 1)
	go func() {
		var b bytes.Buffer
		c, err := ln.Accept()
		if err == nil {
			_, _ = io.Copy(&b, c)
			c.Close()
		}
		done <- b.String()
	}()
	return ln.Addr().String(), func() string { return <-done }
}

// TestForwardPriorityFlags: --facility, --severity, --enterprise-id and
// --sd-name reach the wire; without --severity the severity is the event
// class's (a failed login is a warning).
func TestForwardPriorityFlags(t *testing.T) {
	ev := schemas.Event{
		Layer: "CPS", ReqAuthID: "req-1", Event: schemas.KindLogin, Res: "failed", Host: "h1", RecID: "7", TTY: "pts/0",
		Time: "Mon Apr 12 07:38:05 2021", RawData: "type=USER_LOGIN msg=audit(04/12/2021 07:38:05.752:7) : res=failed \n",
		LoginID: "op", EventID: schemas.NewEventID("h1", 1618213085, 752, 7), TS: "2021-04-12T07:38:05.752Z",
	}
	line := string(ev.AppendJSON(nil)) + "\n"
	tests := []struct {
		name  string
		flags []string
		want  string // the start of the message, after the frame length
	}{
		{"defaults: authpriv, warning, documentation PEN", nil, "<84>1 2021-04-12T07:38:05.752Z h1 opctl - login [opctl@32473 "},
		{"customer's PEN and name", []string{"--enterprise-id", "53311", "--sd-name", "acme"}, "<84>1 2021-04-12T07:38:05.752Z h1 opctl - login [acme@53311 "},
		{"facility local4", []string{"--facility", "20"}, "<164>1 "},
		{"one severity for all", []string{"--severity", "6"}, "<86>1 "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, received := plainSIEM(t)
			args := append([]string{"forward", "--siem", addr, "--plain-tcp"}, tc.flags...)
			code, _, errOut := runCmd(t, line, append(args, "-")...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			got := received()
			_, msg, _ := strings.Cut(got, " ")
			if !strings.HasPrefix(msg, tc.want) {
				t.Fatalf("received %q, want it to start with %q", got, tc.want)
			}
		})
	}
	t.Run("severity out of range", func(t *testing.T) {
		code, _, errOut := runCmd(t, line, "forward", "--siem", "127.0.0.1:1", "--plain-tcp", "--severity", "8", "-")
		if code == 0 || !strings.Contains(errOut, "severities") {
			t.Fatalf("exit %d, stderr %q: want a refusal naming the severity", code, errOut)
		}
	})
}
