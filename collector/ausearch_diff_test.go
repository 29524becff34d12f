package collector

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/collector/builder"
	"github.com/auditpipe/auditpipe/internal/testenv"
	"github.com/auditpipe/auditpipe/schemas"
)

// ausearchPath finds auditd's ausearch (Debian's auditd 3.0.9,
// scripts/deps.d/50-host-agent.sh), or skips or fails.
func ausearchPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("ausearch")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/ausearch"); serr != nil {
			testenv.SkipOrFail(t, testenv.Ausearch, "ausearch not found (apt-get install auditd; make deps)")
		}
		p = "/usr/sbin/ausearch"
	}
	return p
}

// runAusearch runs `ausearch -i --input log` as ausearch would print the
// records on a host with the given passwd and group files: in a private
// mount namespace (unshare -m, root only) with both files bind-mounted over
// /etc/passwd and /etc/group, TZ=UTC and LC_ALL=C.UTF-8. ausearch resolves
// ids through NSS only, so the bind mounts are the way to give it the
// fixtures' names. The host's files are untouched: the mounts die with the
// namespace.
func runAusearch(t *testing.T, log, passwd, group string) []byte {
	t.Helper()
	testenv.RequireRoot(t, "ausearch runs in a private mount namespace with the fixtures' passwd/group bind-mounted")
	bin := ausearchPath(t)
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c",
		`mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/group && exec "$3" -i --input "$4"`,
		"sh", abs(passwd), abs(group), bin, abs(log))
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TZ=UTC", "LC_ALL=C.UTF-8"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		// ausearch exits 1 when nothing matched; a log without any event is
		// not a fixture we compare.
		t.Fatalf("ausearch -i --input %s: %v\n%s", log, err, stderr.Bytes())
	}
	return out
}

// ausearchEvents splits ausearch's output into events (separated by
// "----" lines), keyed by the first record's node and msg=audit(…) stamp.
func ausearchEvents(out []byte) map[string][]string {
	events := map[string][]string{}
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			events[recordKey(cur[0])] = cur
		}
		cur = nil
	}
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case line == "----":
			flush()
		case line == "":
		default:
			cur = append(cur, line)
		}
	}
	flush()
	return events
}

// recordKey is a record's node= prefix and its msg=audit(…) stamp without
// the date.
func recordKey(rec string) string {
	node := ""
	if strings.HasPrefix(rec, "node=") {
		node, _, _ = strings.Cut(rec[len("node="):], " ")
	}
	_, rest, ok := strings.Cut(rec, "msg=audit(")
	if !ok {
		return node + " ?"
	}
	stamp, _, _ := strings.Cut(rest, ")")
	// The date is left out: its form depends on the locale (see
	// ausearchDifferences).
	if _, clock, ok := strings.Cut(stamp, " "); ok {
		stamp = clock
	}
	return node + " " + stamp
}

// splitRawData splits raw_data into its records: each ends in " \n" and
// the next one starts with type= or node=.
func splitRawData(raw string) []string {
	var recs []string
	for raw != "" {
		end := len(raw)
		for i := 0; i+2 <= len(raw); i++ {
			if raw[i] == ' ' && raw[i+1] == '\n' {
				rest := raw[i+2:]
				if rest == "" || strings.HasPrefix(rest, "type=") || strings.HasPrefix(rest, "node=") {
					end = i + 2
					break
				}
			}
		}
		recs = append(recs, strings.TrimSuffix(raw[:end], "\n"))
		raw = raw[end:]
	}
	return recs
}

// TestAusearchDifferential feeds every seed and fixture log (and the live
// captures in testdata/live, when there are any) to `ausearch -i` and
// compares each event's raw_data with the records ausearch prints for the
// same event, record by record in raw_data's order (the seed's, which is
// ausearch's). The differences collector/README.md lists as deliberate
// readings are applied to ausearch's records first (deliberateReadings);
// anything else that differs fails.
func TestAusearchDifferential(t *testing.T) {
	type input struct{ name, log, passwd, group string }
	var inputs []input
	for _, dir := range []string{"testdata/seed", "testdata/fixtures", "testdata/live"} {
		// A directory's own passwd/group (a live capture's host) or the
		// seed's.
		passwd, group := "testdata/seed/passwd", "testdata/seed/group"
		if _, err := os.Stat(filepath.Join(dir, "passwd")); err == nil {
			passwd, group = filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
		}
		logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		for _, l := range logs {
			name := filepath.Base(dir) + "/" + strings.TrimSuffix(filepath.Base(l), ".log")
			inputs = append(inputs, input{name, l, passwd, group})
		}
	}
	used := map[string]int{}
	ran := 0
	for _, in := range inputs {
		t.Run(in.name, func(t *testing.T) {
			cfg := fixtureConfig(t)
			cfg.AllUsers = true
			names, err := builder.LoadNames(in.passwd, in.group)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Names = names // the same users as ausearch sees
			lines, _, _ := decodeFile(t, in.log, cfg)
			want := ausearchEvents(runAusearch(t, in.log, in.passwd, in.group))
			ran++
			evs := decodeEvents(t, lines)
			if len(evs) == 0 {
				t.Fatal("no event to compare")
			}
			for _, e := range evs {
				raw := e.RawData
				for _, f := range e.Escaped {
					if f == "raw_data" {
						raw = schemas.UnescapeInvalidUTF8(raw)
					}
				}
				ours := splitRawData(raw)
				theirs, ok := want[recordKey(ours[0])]
				if !ok {
					t.Errorf("event %s: ausearch printed no such event", recordKey(ours[0]))
					continue
				}
				theirs = applyReadings(theirs, used)
				for i := 0; i < max(len(ours), len(theirs)); i++ {
					var o, a string
					if i < len(ours) {
						o = ours[i]
					}
					if i < len(theirs) {
						a = theirs[i]
					}
					if o != a {
						t.Errorf("record %d of %s:\n ours     %q\n ausearch %q", i, recordKey(ours[0]), o, a)
					}
				}
			}
		})
	}
	if ran != len(inputs) {
		return // a -run filter or a skip: not every input was compared
	}
	for _, r := range deliberateReadings {
		if used[r.name] == 0 {
			t.Errorf("deliberate reading %q (collector/README.md) no longer occurs: drop it from the README and the test", r.name)
		}
	}
}

// deliberateReadings are the differences from ausearch -i that
// collector/README.md lists ("raw_data and ausearch -i"), by the same
// names. Each rewrites ausearch's records of one event into what raw_data
// holds; any other difference fails the test, and a reading that no longer
// occurs fails it too (so the README stays true).
var deliberateReadings = []struct {
	name  string
	apply func(recs []string) ([]string, bool)
}{
	{"four-digit-year", func(recs []string) ([]string, bool) {
		// ausearch formats the date with strftime's %x: MM/DD/YY in
		// C.UTF-8; the seed's raw_data has MM/DD/YYYY.
		hit := false
		out := make([]string, len(recs))
		for i, r := range recs {
			out[i] = r
			head, rest, ok := strings.Cut(r, "msg=audit(")
			if ok && len(rest) > 9 && rest[2] == '/' && rest[5] == '/' && rest[8] == ' ' {
				out[i] = head + "msg=audit(" + rest[:6] + "20" + rest[6:]
				hit = true
			}
		}
		return out, hit
	}},
	{"keys-tty-only", func(recs []string) ([]string, bool) {
		// The kernel writes a session's TTY record with the serial of
		// the shell's exit_group (SYSCALL, PROCTITLE); ausearch prints
		// them as one event. A keys event's raw_data holds the TTY record
		// only: the exit of the shell is not a command the operator ran.
		tty := -1
		for i, r := range recs {
			if t := recordType(r); t == "TTY" || t == "USER_TTY" {
				tty = i
			}
		}
		if tty < 0 || len(recs) == 1 {
			return recs, false
		}
		var out []string
		for _, r := range recs {
			if t := recordType(r); t == "TTY" || t == "USER_TTY" || t == "EOE" {
				out = append(out, r)
			}
		}
		return out, len(out) != len(recs)
	}},
	{"no-eoe", func(recs []string) ([]string, bool) {
		// ausearch prints the EOE record; the seed's raw_data leaves it out.
		var out []string
		hit := false
		for _, r := range recs {
			if t := recordType(r); t == "EOE" {
				hit = true
				continue
			}
			out = append(out, r)
		}
		return out, hit
	}},
	{"header-without-colon", func(recs []string) ([]string, bool) {
		// A record written without the colon after msg=audit(…) is
		// printed by ausearch without " :" too (msg=audit(…)  arch=…);
		// raw_data gives every record the one header form " : ".
		hit := false
		out := make([]string, len(recs))
		for i, r := range recs {
			out[i] = r
			k := strings.Index(r, "msg=audit(")
			if k < 0 {
				continue
			}
			end := strings.IndexByte(r[k:], ')')
			if end < 0 {
				continue
			}
			end += k + 1
			if rest := r[end:]; !strings.HasPrefix(rest, " : ") && !strings.HasPrefix(rest, " :") {
				out[i] = r[:end] + " :" + rest
				hit = true
			}
		}
		return out, hit
	}},
	{"single-spaces", func(recs []string) ([]string, bool) {
		// ausearch keeps the spaces between fields as the record had them
		// (msg=audit(…) :  arch=x86_64  syscall=…); raw_data separates
		// fields with one space, as the kernel and auditd write them.
		hit := false
		out := make([]string, len(recs))
		for i, r := range recs {
			var b strings.Builder
			for j := 0; j < len(r); j++ {
				if r[j] == ' ' && j+1 < len(r) && r[j+1] == ' ' && startsField(r[j+1:]) {
					hit = true
					continue
				}
				b.WriteByte(r[j])
			}
			out[i] = b.String()
		}
		return out, hit
	}},
	{"tty-trailing-space", func(recs []string) ([]string, bool) {
		// ausearch ends a TTY record after its data without the space it
		// writes after every other record's last field; raw_data ends
		// every record in " \n" (DESIGN.md).
		hit := false
		out := make([]string, len(recs))
		for i, r := range recs {
			out[i] = r
			if recordType(r) == "TTY" && !strings.HasSuffix(r, " ") {
				out[i] = r + " "
				hit = true
			}
		}
		return out, hit
	}},
	{"space-after-quoted-nested-value", func(recs []string) ([]string, bool) {
		// Inside a user-space record's msg='…', ausearch drops the space
		// after a double-quoted value it prints as it is
		// (data="sudo su -"terminal=pts/0); raw_data keeps the fields
		// apart.
		hit := false
		out := make([]string, len(recs))
		for i, r := range recs {
			head, nested, ok := strings.Cut(r, " msg='")
			if !ok {
				out[i] = r
				continue
			}
			var b strings.Builder
			inQuote := false
			for j := 0; j < len(nested); j++ {
				c := nested[j]
				b.WriteByte(c)
				if c != '"' {
					continue
				}
				if !inQuote && j > 0 && nested[j-1] == '=' {
					inQuote = true
					continue
				}
				if inQuote {
					inQuote = false
					if j+1 < len(nested) && nested[j+1] != ' ' && nested[j+1] != '\'' {
						b.WriteByte(' ')
						hit = true
					}
				}
			}
			out[i] = head + " msg='" + b.String()
		}
		return out, hit
	}},
}

// startsField reports whether s is spaces and then a key= field.
func startsField(s string) bool {
	s = strings.TrimLeft(s, " ")
	k, _, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}

func applyReadings(recs []string, used map[string]int) []string {
	for _, r := range deliberateReadings {
		var hit bool
		recs, hit = r.apply(recs)
		if hit {
			used[r.name]++
		}
	}
	return recs
}

// recordType is the type= word of a record.
func recordType(rec string) string {
	_, rest, ok := strings.Cut(rec, "type=")
	if !ok {
		return ""
	}
	typ, _, _ := strings.Cut(rest, " ")
	return typ
}
