package forwarder

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/siemtest"
)

// TestSendFlushesWhenInputPauses: Send batches writes while input keeps
// coming, but an event followed by a pause in the input reaches the SIEM
// without waiting for more input or for its end (bounded latency).
func TestSendFlushesWhenInputPauses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		line, _ := br.ReadString(' ') // the frame's length: the first bytes of the first message
		got <- line
		_, _ = io.Copy(io.Discard, br)
	}()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		d := Destination{Name: "siem", Address: ln.Addr().String(), PlainTCP: true}
		_, err := Send(ctx, d, pr, SendOptions{})
		done <- err
	}()
	if _, err := pw.Write(append(testEvent(1).AppendJSON(nil), '\n')); err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-got:
		if l == "" {
			t.Fatal("the SIEM read nothing")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an event followed by a pause in the input did not reach the SIEM within 5s")
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestSendRejectsBadLines: `auditpipe forward` sends the valid events of
// its input and rejects, by line number, a line that is not JSON and one
// that decodes but is not a valid event (no event_id). Bugs (issue 15,
// mutants that lived): an event that decoded was never validated, and
// the line numbers of the rejections counted down.
func TestSendRejectsBadLines(t *testing.T) {
	s := startSIEM(t, siemtest.RsyslogOptions{})
	good := testEvents(0, 2)
	invalid := *testEvent(2)
	invalid.EventID = ""
	var in bytes.Buffer
	in.Write(good[0].AppendJSON(nil))
	in.WriteString("\nnot json\n")
	in.Write(invalid.AppendJSON(nil))
	in.WriteByte('\n')
	in.Write(good[1].AppendJSON(nil))
	in.WriteByte('\n')
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := Send(ctx, s.destination(), &in, SendOptions{})
	if st.Events != 2 || st.Rejected != 2 {
		t.Errorf("sent %d events, rejected %d lines; want 2 and 2", st.Events, st.Rejected)
	}
	for _, want := range []string{"2 input lines rejected", "line 2:", "line 3:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Send: %v; want an error with %q", err, want)
		}
	}
	if got := s.rs.WaitMessages(t, 2, 10*time.Second); len(got) != 2 {
		t.Errorf("rsyslog received %d messages, want the 2 valid events", len(got))
	}
}
