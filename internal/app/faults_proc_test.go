//go:build faults

package app

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/proctest"
)

// writeConfigFile writes cfg as the YAML file a process reads, with the
// Kafka password moved into a password file (a Secret marshals as its
// redaction, never its value), and checks that the file decodes back into
// cfg: a field lost on the way would make the process run another
// configuration than the test means.
func writeConfigFile(t *testing.T, dir, name string, cfg Config) string {
	t.Helper()
	if cfg.Kafka.SASL.Password != "" {
		pw := filepath.Join(dir, name+".kafka-password")
		if err := os.WriteFile(pw, []byte(cfg.Kafka.SASL.Password.Reveal()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.Kafka.SASL.Password, cfg.Kafka.SASL.PasswordFile = "", pw
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	back := DefaultConfig()
	if err := config.Load(path, &back); err != nil {
		t.Fatalf("the configuration written for %s does not load: %v", name, err)
	}
	if !reflect.DeepEqual(back, cfg) {
		t.Fatalf("the configuration written for %s does not decode to the one meant:\n%s", name, b)
	}
	return path
}

// targetProc is a target of the built binary run as its own process
// (`auditpipe run --config FILE`), killed and restarted by the test. Its
// output, over every start, goes to one log file.
type targetProc struct {
	name, bin, cfg, logPath string
	log                     *os.File
	proc                    *proctest.Proc
	// url is the base URL of the running process's HTTP listener.
	url    string
	starts int
}

// listeningRe is the line with the address the process's HTTP listener
// bound (its port is 0 in the configuration).
var listeningRe = regexp.MustCompile(`msg="http listening" addr=(\S+)`)

func newTargetProc(t *testing.T, dir, name, bin string, cfg Config) *targetProc {
	t.Helper()
	p := &targetProc{name: name, bin: bin, cfg: writeConfigFile(t, dir, name, cfg), logPath: filepath.Join(dir, name+".log")}
	p.log = proctest.LogFile(t, p.logPath, name)
	t.Cleanup(func() {
		if p.proc != nil {
			p.proc.Stop(syscall.SIGKILL, time.Minute)
		}
	})
	return p
}

// start starts the process and waits until its HTTP listener is up (its
// modules' inits ran by then).
func (p *targetProc) start(t *testing.T) {
	t.Helper()
	p.starts++
	fmt.Fprintf(p.log, "=== faults: start %d of %s\n", p.starts, p.name)
	off, err := p.log.Seek(0, io.SeekCurrent)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(p.bin, "run", "--config", p.cfg)
	cmd.Stdout, cmd.Stderr = p.log, p.log
	p.proc = proctest.Start(t, p.name, cmd, func() error {
		b, err := os.ReadFile(p.logPath)
		if err != nil {
			return err
		}
		m := listeningRe.FindSubmatch(b[min(off, int64(len(b))):])
		if m == nil {
			return fmt.Errorf("%s: not listening yet", p.name)
		}
		p.url = "http://" + string(m[1]) + "/"
		return nil
	}, 3*time.Minute, p.logPath)
}

// kill is kill -9.
func (p *targetProc) kill() {
	p.proc.Stop(syscall.SIGKILL, time.Minute)
	p.proc = nil
}

// stop is SIGTERM: the process must end cleanly within a minute.
func (p *targetProc) stop(t *testing.T) {
	t.Helper()
	if p.proc == nil {
		return
	}
	p.proc.Stop(syscall.SIGTERM, time.Minute)
	code := p.proc.ExitCode()
	p.proc = nil
	if code != 0 {
		t.Errorf("%s exited with %d after SIGTERM", p.name, code)
	}
}

// metric reads a gauge or counter without labels from the process's
// /metrics (open_metrics on).
func (p *targetProc) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get(p.url + "metrics")
	if err != nil {
		t.Fatalf("%s metrics: %v", p.name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s metrics: %v", p.name, err)
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Fatalf("%s: %s = %q", p.name, name, f[1])
			}
			return v
		}
	}
	t.Fatalf("%s: no metric %s", p.name, name)
	return 0
}
