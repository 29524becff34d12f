package deploy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/forwarder"
	"github.com/auditpipe/auditpipe/internal/proctest"
	"github.com/auditpipe/auditpipe/internal/siemtest"
	"github.com/auditpipe/auditpipe/internal/testenv"
	"github.com/auditpipe/auditpipe/schemas"
	"github.com/auditpipe/auditpipe/verify"
)

// chainedEvents returns n command events of one host, chained as a
// collector chains them (seq from 1, prev_hash the previous event's hash),
// with raw_data of several lines and SD values that need escaping.
func chainedEvents(n int) []*schemas.Event {
	evs := make([]*schemas.Event, n)
	prev := ""
	for i := range evs {
		ev := &schemas.Event{
			Layer: "HOST", ReqAuthID: "ocid1.accessrequest.oc1..req" + strconv.Itoa(i%2), Event: schemas.KindCommand,
			Title: "ls\x00/", Args: []string{"ls", "/"}, RecID: strconv.Itoa(1000 + i), TTY: "pts/0",
			Host: "cell01.example.com", Time: "Thu Oct 29 03:20:22 2020", LoginID: `830916abb78e4157b9e45b641e34fcf6`,
			RawData: fmt.Sprintf("type=EXECVE msg=audit(10/29/2020 03:20:22.418:%d) : argc=2 a0=ls a1=/ \ntype=CWD msg=audit(10/29/2020 03:20:22.418:%d) : cwd=/root \n", 1000+i, 1000+i),
			EventID: schemas.NewEventID("cell01.example.com", 1603941622, 418, uint64(1000+i)), TS: "2020-10-29T03:20:22.418Z",
			Seq: uint64(i + 1), PrevHash: prev,
		}
		prev = ev.Hash()
		evs[i] = ev
	}
	return evs
}

func jsonLines(evs []*schemas.Event) *bytes.Buffer {
	var b bytes.Buffer
	for _, ev := range evs {
		b.Write(ev.AppendJSON(nil))
		b.WriteByte('\n')
	}
	return &b
}

// receiverCase is one run of a receiver configuration.
type receiverCase struct {
	name string
	// edit changes the configuration for the case (mutual TLS).
	edit func(conf string, peer string) string
	// mutual: the receiver requires a client certificate.
	mutual bool
}

// siemFixture is what a receiver test needs: a CA, the receiver's
// certificate, a client certificate, a free port and a directory.
type siemFixture struct {
	dir, port          string
	ca                 *siemtest.CA
	cert, key          string
	clientCert, client string
}

func newSIEMFixture(t *testing.T) *siemFixture {
	t.Helper()
	dir := t.TempDir()
	f := &siemFixture{dir: dir, port: strconv.Itoa(proctest.FreePorts(t, 1)[0])}
	f.ca = siemtest.NewCA(t, dir, "siem-ca")
	f.cert, f.key = f.ca.Issue(t, dir, "siem", siemtest.CertOptions{})
	f.clientCert, f.client = f.ca.Issue(t, dir, "forwarder", siemtest.CertOptions{Client: true, DNSNames: []string{"forwarder.example.com"}})
	return f
}

// send sends evs with the forwarder's sink (auditpipe forward's Send) to
// the receiver, with the client certificate when withCert.
func (f *siemFixture) send(t *testing.T, evs []*schemas.Event, withCert bool) (forwarder.SendStats, error) {
	t.Helper()
	d := forwarder.Destination{Name: "siem", Address: "127.0.0.1:" + f.port}
	d.TLS.CAFile = f.ca.CertPEM
	if withCert {
		d.TLS.CertFile, d.TLS.KeyFile = f.clientCert, f.client
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return forwarder.Send(ctx, d, jsonLines(evs), forwarder.SendOptions{MaxAttempts: 2})
}

// checkFile reads the receiver's file as `auditpipe verify --from-syslog`
// does and requires every event, each once, the host's chain intact.
func checkFile(t *testing.T, path string, evs []*schemas.Event) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs, finds, st, err := verify.LoadSyslog(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != len(evs) || len(recs) != len(evs) || len(finds) > 0 {
		t.Fatalf("the file holds %d messages, %d events, findings %v; want %d events\n%s", st.Messages, len(recs), finds, len(evs), b)
	}
	for i, r := range recs {
		if r.Event.EventID != evs[i].EventID || !r.ContentChecked || r.Hash != evs[i].Hash() {
			t.Fatalf("line %d: event %s (hash %s, checked %v), want %s (hash %s)\ngot  %q\nwant %q", i+1, r.Event.EventID, r.Hash, r.ContentChecked, evs[i].EventID, evs[i].Hash(), r.Event.AppendJSON(nil), evs[i].AppendJSON(nil))
		}
	}
	rep := verify.Check(recs, nil, verify.Options{FileOrder: true})
	if len(rep.Hosts) != 1 || !rep.Intact() {
		var b bytes.Buffer
		_ = rep.Write(&b)
		t.Errorf("verify: not one intact host:\n%s", b.String())
	}
}

// waitFile waits until path holds n lines (the receiver wrote them).
func waitFile(t *testing.T, path string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if bytes.Count(b, []byte("\n")) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d lines after 30 s, want %d:\n%s", path, bytes.Count(b, []byte("\n")), n, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// substitute replaces the configuration's example paths and port with the
// test's, and fails when one is not in the file (the file drifted from the
// test).
func substitute(t *testing.T, conf string, repl map[string]string) string {
	t.Helper()
	for from, to := range repl {
		if !strings.Contains(conf, from) {
			t.Fatalf("the configuration no longer contains %q", from)
		}
		conf = strings.ReplaceAll(conf, from, to)
	}
	return conf
}

// refused sends without a client certificate to a receiver that requires
// one: the send fails and nothing is written.
func refused(t *testing.T, f *siemFixture, out string) {
	t.Helper()
	if _, err := f.send(t, chainedEvents(1), false); err == nil {
		t.Errorf("a forwarder without a client certificate was accepted")
	}
	if b, _ := os.ReadFile(out); len(b) > 0 {
		t.Errorf("written from a forwarder without a client certificate:\n%s", b)
	}
}

// TestRsyslogReceiver starts rsyslogd with deploy/siem/rsyslog-auditpipe.conf
// (included from a main file as /etc/rsyslog.conf includes rsyslog.d; paths
// and port substituted), sends it the forwarder's messages over TLS, and
// reads its file back as verify does; then the same with the mutual-TLS
// line the file documents, refusing a forwarder without a certificate.
func TestRsyslogReceiver(t *testing.T) {
	bin := siemtest.Binary(t)
	src, err := os.ReadFile("siem/rsyslog-auditpipe.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []receiverCase{
		{name: "tls"},
		{name: "mutual-tls", mutual: true, edit: func(conf, peer string) string {
			return substitute(t, conf, map[string]string{`streamDriver.authMode="anon"`: `streamDriver.authMode="x509/name" permittedPeer=["` + peer + `"]`})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSIEMFixture(t)
			out := filepath.Join(f.dir, "log", "audit.log")
			conf := substitute(t, string(src), map[string]string{
				`port="6514"`:                  `address="127.0.0.1" port="` + f.port + `"`,
				"/etc/rsyslog.d/tls/ca.pem":    f.ca.CertPEM,
				"/etc/rsyslog.d/tls/siem.crt":  f.cert,
				"/etc/rsyslog.d/tls/siem.key":  f.key,
				"/var/log/auditpipe/audit.log": out,
			})
			if tc.edit != nil {
				conf = tc.edit(conf, "forwarder.example.com")
			}
			dropIn := filepath.Join(f.dir, "50-auditpipe.conf")
			if err := os.WriteFile(dropIn, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			internal := filepath.Join(f.dir, "internal.log")
			main := fmt.Sprintf("global(workDirectory=%q processInternalMessages=\"on\")\ninclude(file=%q)\naction(type=\"omfile\" file=%q)\n", f.dir, dropIn, internal)
			mainPath := filepath.Join(f.dir, "rsyslog.conf")
			if err := os.WriteFile(mainPath, []byte(main), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(bin, "-N1", "-f", mainPath).CombinedOutput(); err != nil {
				t.Fatalf("rsyslogd -N1 (config check): %v\n%s", err, out)
			}
			logPath := filepath.Join(f.dir, "rsyslogd.log")
			logf := proctest.LogFile(t, logPath, "rsyslogd")
			cmd := exec.Command(bin, "-n", "-f", mainPath, "-i", filepath.Join(f.dir, "rsyslogd.pid"))
			cmd.Stdout, cmd.Stderr, cmd.Dir = logf, logf, f.dir
			proctest.Start(t, "rsyslogd", cmd, proctest.Dials("127.0.0.1:"+f.port), 20*time.Second, logPath)
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("rsyslog internal log:\n%s", proctest.Tail(internal))
				}
			})

			if tc.mutual {
				refused(t, f, out)
			}
			evs := chainedEvents(20)
			st, err := f.send(t, evs, tc.mutual)
			if err != nil || st.Events != len(evs) {
				t.Fatalf("send: %+v, %v", st, err)
			}
			waitFile(t, out, len(evs))
			checkFile(t, out, evs)
		})
	}
}

// TestSyslogNGReceiver starts syslog-ng (unpacked by make deps) with
// deploy/siem/syslog-ng-auditpipe.conf (paths and address substituted),
// sends it the forwarder's messages over TLS and reads its file back as
// verify does; then with peer-verify(required-trusted), the mutual TLS the
// file documents, refusing a forwarder without a certificate.
func TestSyslogNGReceiver(t *testing.T) {
	root := siemtest.SyslogNGDir()
	bin := filepath.Join(root, "usr/sbin/syslog-ng")
	if _, err := os.Stat(bin); err != nil {
		testenv.SkipOrFail(t, testenv.SyslogNG, "syslog-ng not unpacked at %s (scripts/deps.d/25-syslog-ng.sh); run `make deps`", bin)
	}
	src, err := os.ReadFile("siem/syslog-ng-auditpipe.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []receiverCase{
		{name: "tls"},
		{name: "mutual-tls", mutual: true, edit: func(conf, _ string) string {
			return substitute(t, conf, map[string]string{"peer-verify(optional-untrusted)": "peer-verify(required-trusted)"})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSIEMFixture(t)
			out := filepath.Join(f.dir, "log", "audit.log")
			conf := substitute(t, string(src), map[string]string{
				`ip("0.0.0.0")`:                `ip("127.0.0.1")`,
				"port(6514)":                   "port(" + f.port + ")",
				"/etc/syslog-ng/tls/ca.pem":    f.ca.CertPEM,
				"/etc/syslog-ng/tls/siem.crt":  f.cert,
				"/etc/syslog-ng/tls/siem.key":  f.key,
				"/var/log/auditpipe/audit.log": out,
			})
			if tc.edit != nil {
				conf = tc.edit(conf, "")
			}
			confPath := filepath.Join(f.dir, "auditpipe.conf")
			mainPath := filepath.Join(f.dir, "syslog-ng.conf")
			if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			main := fmt.Sprintf("@version: 3.38\noptions { stats_freq(0); };\n@include %q\n", confPath)
			if err := os.WriteFile(mainPath, []byte(main), 0o600); err != nil {
				t.Fatal(err)
			}
			libs := filepath.Join(root, "usr/lib/syslog-ng") + ":" + filepath.Join(root, "usr/lib/x86_64-linux-gnu") + ":" + filepath.Join(root, "lib/x86_64-linux-gnu")
			args := []string{"-f", mainPath,
				"--module-path=" + filepath.Join(root, "usr/lib/syslog-ng/3.38"),
				"--persist-file=" + filepath.Join(f.dir, "syslog-ng.persist"),
				"--pidfile=" + filepath.Join(f.dir, "syslog-ng.pid"),
				"--control=" + filepath.Join(f.dir, "syslog-ng.ctl"),
				"--no-caps"}
			check := exec.Command(bin, append([]string{"--syntax-only"}, args...)...)
			check.Env = append(os.Environ(), "LD_LIBRARY_PATH="+libs)
			if out, err := check.CombinedOutput(); err != nil {
				t.Fatalf("syslog-ng --syntax-only: %v\n%s", err, out)
			}
			logPath := filepath.Join(f.dir, "syslog-ng.log")
			logf := proctest.LogFile(t, logPath, "syslog-ng")
			cmd := exec.Command(bin, append([]string{"-F", "--stderr"}, args...)...)
			cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+libs)
			cmd.Stdout, cmd.Stderr, cmd.Dir = logf, logf, f.dir
			proctest.Start(t, "syslog-ng", cmd, proctest.Dials("127.0.0.1:"+f.port), 20*time.Second, logPath)

			if tc.mutual {
				refused(t, f, out)
			}
			evs := chainedEvents(20)
			st, err := f.send(t, evs, tc.mutual)
			if err != nil || st.Events != len(evs) {
				t.Fatalf("send: %+v, %v", st, err)
			}
			waitFile(t, out, len(evs))
			checkFile(t, out, evs)
		})
	}
}
