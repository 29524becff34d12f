package forwarder

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/siemtest"
	"github.com/auditpipe/auditpipe/schemas"
)

// siem is a test SIEM: rsyslog with a CA and server certificate made for
// the test.
type siem struct {
	dir string
	ca  *siemtest.CA
	rs  *siemtest.Rsyslog
}

func startSIEM(t *testing.T, o siemtest.RsyslogOptions) *siem {
	t.Helper()
	siemtest.Binary(t)
	dir := t.TempDir()
	ca := siemtest.NewCA(t, dir, "siem-ca")
	cert, key := ca.Issue(t, dir, "siem", siemtest.CertOptions{})
	o.CA, o.CertFile, o.KeyFile = ca, cert, key
	return &siem{dir: dir, ca: ca, rs: siemtest.StartRsyslog(t, o)}
}

func (s *siem) destination() Destination {
	return Destination{Name: "siem", Address: s.rs.Addr, TLS: TLS{CAFile: s.ca.CertPEM}, Settle: 100 * time.Millisecond,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 500 * time.Millisecond, CloseTimeout: 5 * time.Second}
}

// testEvent returns event i of a stream: a command with content that needs
// escaping in the SD and multi-line raw_data.
func testEvent(i int) *schemas.Event {
	host := fmt.Sprintf("host%d", i%3)
	return &schemas.Event{
		Layer: "HOST", ReqAuthID: fmt.Sprintf("req-%d", i%5), Event: schemas.KindCommand,
		Title: "ls\x00/", Args: []string{"ls", "/"}, RecID: fmt.Sprint(1000 + i), TTY: "pts/0",
		Host: host, Time: "Thu Oct 29 03:20:22 2020", LoginID: `op"er]a\tor`,
		RawData: fmt.Sprintf("type=EXECVE msg=audit(10/29/2020 03:20:29.418:%d) : argc=2 a0=ls a1=/ \ntype=CWD cwd=/root \n", 1000+i),
		EventID: schemas.NewEventID(host, 1603941622, 418, uint64(i)), TS: "2020-10-29T03:20:22.418Z", Seq: uint64(i),
	}
}

// testEvents returns events from to from+n-1 of the stream of testEvent.
func testEvents(from, n int) []*schemas.Event {
	evs := make([]*schemas.Event, n)
	for i := range evs {
		evs[i] = testEvent(from + i)
	}
	return evs
}

func jsonLines(t *testing.T, evs []*schemas.Event) io.Reader {
	t.Helper()
	var b bytes.Buffer
	for _, ev := range evs {
		b.Write(ev.AppendJSON(nil))
		b.WriteByte('\n')
	}
	return &b
}

// expected renders the messages the SIEM must receive for evs, unframed.
func expected(t *testing.T, d Destination, evs []*schemas.Event) []string {
	t.Helper()
	fm, err := newFormatter(d.WithDefaults().format())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range evs {
		frames, err := fm.frames(ev)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range frames {
			out = append(out, string(unframe(t, f)))
		}
	}
	return out
}

func TestSendToRsyslog(t *testing.T) {
	s := startSIEM(t, siemtest.RsyslogOptions{})
	evs := testEvents(0, 500)
	d := s.destination()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := Send(ctx, d, jsonLines(t, evs), SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != 500 || st.Messages != 500 {
		t.Fatalf("stats %+v", st)
	}
	want := expected(t, d, evs)
	got := s.rs.WaitMessages(t, len(want), 10*time.Second)
	if len(got) != len(want) {
		t.Fatalf("rsyslog received %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("message %d:\n got %q\nwant %q", i, got[i], want[i])
		}
		m := parse(t, []byte(got[i]))
		if sd := (*m.StructuredData)["opctl@32473"]; sd["event_id"] != evs[i].EventID || sd["loginid"] != evs[i].LoginID {
			t.Fatalf("message %d: SD %v", i, sd)
		}
		if raw := mustReassemble(t, received(t, []byte(got[i]))); raw != evs[i].RawData {
			t.Fatalf("message %d: MSG %q gives back %q", i, *m.Message, raw)
		}
	}
}

func TestOversizeToRsyslog(t *testing.T) {
	// rsyslog at its default maxMessageSize (8k) takes the parts whole.
	s := startSIEM(t, siemtest.RsyslogOptions{})
	ev := testEvent(1)
	var b strings.Builder
	for i := 0; b.Len() < 50000; i++ {
		fmt.Fprintf(&b, "type=EXECVE msg=audit(10/29/2020 03:20:29.418:%d) : argc=3 a0=echo a1=日本語 a2=%d \n", i, i)
	}
	ev.RawData = b.String()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := Send(ctx, s.destination(), jsonLines(t, []*schemas.Event{ev}), SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages < 7 {
		t.Fatalf("%d messages for a 50 kB event, want at least 7 parts", st.Messages)
	}
	got := s.rs.WaitMessages(t, st.Messages, 10*time.Second)
	if len(got) != st.Messages {
		t.Fatalf("rsyslog received %d parts, want %d", len(got), st.Messages)
	}
	frames := make([][]byte, len(got))
	for i, g := range got {
		frames[i] = []byte(fmt.Sprintf("%d %s", len(g), g))
	}
	msg, id := reassemble(t, DefaultMaxMessageSize, frames)
	if msg != ev.RawData || id != ev.EventID {
		t.Fatalf("reassembled %d bytes (event_id %s), want %d bytes (%s)", len(msg), id, len(ev.RawData), ev.EventID)
	}
	// The json is whole in part 1, beside the MSG's first piece.
	msgs := make([]Received, len(got))
	for i, g := range got {
		msgs[i] = received(t, []byte(g))
	}
	if _, ok := msgs[1].Params["json"]; ok || msgs[0].Params["json_offset"] != "0" || msgs[0].MSG == "" {
		t.Errorf("json not whole in part 1 beside the MSG: part 1 %v, part 2 %v", msgs[0].Params, msgs[1].Params)
	}
	checkEventJSON(t, ev, msgs)
}

// recordingProxy forwards TCP to target and records what the client sent.
type recordingProxy struct {
	ln  net.Listener
	mu  sync.Mutex
	buf bytes.Buffer
	wg  sync.WaitGroup
}

func newRecordingProxy(t *testing.T, target string) *recordingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.wg.Add(2)
			go func() {
				defer p.wg.Done()
				_, _ = io.Copy(up, io.TeeReader(c, p))
				up.Close()
			}()
			go func() {
				defer p.wg.Done()
				_, _ = io.Copy(c, up)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *recordingProxy) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.Write(b)
}

func (p *recordingProxy) sent() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.buf.Bytes())
}

func TestTLSRefused(t *testing.T) {
	siemtest.Binary(t)
	dir := t.TempDir()
	goodCA := siemtest.NewCA(t, dir, "good-ca")
	otherCA := siemtest.NewCA(t, dir, "other-ca")
	tests := []struct {
		name     string
		cert     siemtest.CertOptions
		clientCA *siemtest.CA
		wantHint string
	}{
		{name: "wrong CA", clientCA: otherCA, wantHint: "not signed by a CA in the configured CA file"},
		{name: "expired certificate", clientCA: goodCA,
			cert:     siemtest.CertOptions{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)},
			wantHint: "not now"},
		{name: "wrong host name", clientCA: goodCA,
			cert:     siemtest.CertOptions{DNSNames: []string{"siem.example.org"}},
			wantHint: `not valid for the name "127.0.0.1"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cert, key := goodCA.Issue(t, dir, strings.ReplaceAll(tc.name, " ", "-"), tc.cert)
			rs := siemtest.StartRsyslog(t, siemtest.RsyslogOptions{CA: goodCA, CertFile: cert, KeyFile: key})
			proxy := newRecordingProxy(t, rs.Addr)
			d := Destination{Address: proxy.ln.Addr().String(), TLS: TLS{CAFile: tc.clientCA.CertPEM}, BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			var out bytes.Buffer
			err := Check(ctx, d, &out)
			if err == nil || !strings.Contains(err.Error(), tc.wantHint) {
				t.Fatalf("check: error %v, want one explaining %q\noutput:\n%s", err, tc.wantHint, out.String())
			}
			if !strings.Contains(out.String(), "cert[0]") {
				t.Errorf("check did not show the certificate chain:\n%s", out.String())
			}
			_, err = Send(ctx, d, jsonLines(t, []*schemas.Event{testEvent(7)}), SendOptions{MaxAttempts: 2})
			if err == nil || !strings.Contains(err.Error(), tc.wantHint) {
				t.Fatalf("send: error %v, want one explaining %q", err, tc.wantHint)
			}
			time.Sleep(200 * time.Millisecond)
			if got := rs.Messages(t); len(got) != 0 {
				t.Fatalf("rsyslog received %d messages over a refused connection", len(got))
			}
			sent := proxy.sent()
			if len(sent) == 0 || sent[0] != 0x16 {
				t.Fatalf("client sent %q, want only TLS handshake records", sent[:min(len(sent), 32)])
			}
			for _, secret := range []string{"EXECVE", testEvent(7).EventID, "opctl", "check"} {
				if bytes.Contains(sent, []byte(secret)) {
					t.Fatalf("client sent %q in clear", secret)
				}
			}
		})
	}
}

func TestMutualTLS(t *testing.T) {
	s := startSIEM(t, siemtest.RsyslogOptions{ClientAuth: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	d := s.destination()
	// Without a client certificate rsyslog refuses the session; TLS 1.3
	// reports that only when the client reads, so Check, which waits for
	// the SIEM to confirm, must fail.
	var out bytes.Buffer
	if err := Check(ctx, d, &out); err == nil {
		t.Fatalf("check without a client certificate succeeded:\n%s", out.String())
	}

	cert, key := s.ca.Issue(t, s.dir, "forwarder", siemtest.CertOptions{Client: true, DNSNames: []string{"forwarder"}})
	d.TLS.CertFile, d.TLS.KeyFile = cert, key
	out.Reset()
	if err := Check(ctx, d, &out); err != nil {
		t.Fatalf("check with a client certificate: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "client certificate sent") {
		t.Errorf("check output does not mention the client certificate:\n%s", out.String())
	}
	evs := []*schemas.Event{testEvent(1), testEvent(2)}
	if _, err := Send(ctx, d, jsonLines(t, evs), SendOptions{}); err != nil {
		t.Fatal(err)
	}
	got := s.rs.WaitMessages(t, 3, 10*time.Second) // the check message and two events
	want := expected(t, d, evs)
	if len(got) != 3 || got[1] != want[0] || got[2] != want[1] {
		t.Fatalf("rsyslog received %q", got)
	}
}
