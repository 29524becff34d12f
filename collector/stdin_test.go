package collector

import (
	"cmp"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/schemas"
)

// failingReader returns r's bytes, then err.
type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(b []byte) (int, error) {
	n, err := f.r.Read(b)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

// TestStdinInput runs the collector on stdin, as an auditd plugin: when
// the stream ends, the event still open (its EOE never came) is sent too
// and Run returns nil; when reading fails, Run returns the error, the
// events before it sent; with no host configured, the events carry the
// machine's hostname.
// Bug (mutants): an ended stream left its open event unsent, or made Run
// return an error; a failed read ended Run without its error; Deps.Stdin
// replaced by os.Stdin; a configured host replaced by the hostname.
func TestStdinInput(t *testing.T) {
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	// 20 events, the last one without its EOE record.
	lines := sessionLines(1, 20)
	lines = lines[:strings.LastIndex(strings.TrimSuffix(lines, "\n"), "\n")+1]
	readErr := errors.New("the pipe broke")
	tests := []struct {
		name    string
		host    string
		stdin   io.Reader
		wantErr error
		want    int // events on the topic
	}{
		{name: "end of stream", host: "testhost", stdin: strings.NewReader(lines), want: 20},
		{name: "end of stream, no host configured", stdin: strings.NewReader(lines), want: 20},
		{name: "read error", host: "testhost", stdin: &failingReader{r: strings.NewReader(sessionLines(1, 10)), err: readErr}, wantErr: readErr, want: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kcfg, _ := kafkatest.Start(t, 1)
			cfg := testConfig(t, kcfg, t.TempDir())
			cfg.Input.Type, cfg.Input.Path = InputStdin, ""
			cfg.Host = tt.host
			cons := newConsumer(t, kcfg, schemas.TopicAudit, 1)
			c, err := New(cfg, Deps{Registry: prometheus.NewRegistry(), Stdin: tt.stdin})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- c.Run(t.Context()) }()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not return at the end of its input")
			}
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Run returned %v, want %v", err, tt.wantErr)
			}
			cons.waitFor(t, "the events", 20*time.Second, atLeast(tt.want))
			cons.drain(t)
			events := decodeAll(t, cons.msgs)
			checkExactlyOnce(t, events, tt.want)
			host := cmp.Or(tt.host, hostname)
			for _, e := range events {
				if e.Host != host {
					t.Fatalf("event %s: host %q, want %q", e.EventID, e.Host, host)
				}
			}
		})
	}
}

// TestStdinQuietPipe: regression test for stdin input holding lines back:
// the reader handed lines over only in chunks of 512 (or at the end of the
// stream), so on a quiet host, auditd's plugin pipe open, the events of
// the last lines waited for more traffic, for ever. Three events written to
// a pipe that stays open reach the topic.
func TestStdinQuietPipe(t *testing.T) {
	kcfg, _ := kafkatest.Start(t, 1)
	cfg := testConfig(t, kcfg, t.TempDir())
	cfg.Input.Type, cfg.Input.Path = InputStdin, ""
	pr, pw := io.Pipe()
	cons := newConsumer(t, kcfg, schemas.TopicAudit, 1)
	c, err := New(cfg, Deps{Registry: prometheus.NewRegistry(), Stdin: pr})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(t.Context()) }()
	if _, err := io.WriteString(pw, sessionLines(1, 3)); err != nil {
		t.Fatal(err)
	}
	cons.waitFor(t, "the events of a pipe left open", 20*time.Second, atLeast(3))
	pw.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v at the end of its input", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return at the end of its input")
	}
	cons.drain(t)
	checkExactlyOnce(t, decodeAll(t, cons.msgs), 3)
}
