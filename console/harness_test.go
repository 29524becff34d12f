package console

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/indexer"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/proctest"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/internal/testenv"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/api"
	"github.com/auditpipe/auditpipe/policy/auditreport"
	"github.com/auditpipe/auditpipe/policy/scheduler"
	"github.com/auditpipe/auditpipe/schemas"
)

var screenshots = flag.Bool("screenshots", false, "write the pages' screenshots to docs/console/")

// The identities of the tests.
var (
	idApprover  = auth.Identity{Name: "alice", Role: auth.RoleApprover, Groups: []string{"EXPLICIT_APPROVED_POLICY_USERS"}}
	idOperator  = auth.Identity{Name: "oracle-op-1", Role: auth.RoleOperator}
	idOperator2 = auth.Identity{Name: "oracle-op-2", Role: auth.RoleOperator}
	idAuditor   = auth.Identity{Name: "audrey", Role: auth.RoleAuditor}
	idAdmin     = auth.Identity{Name: "root-admin", Role: auth.RoleAdmin}
)

const cellID = "ocid1.exadatainfrastructure.oc1..cell01"

// harness is the policy module as the process mounts it: a real SQLite
// store and service, the API under /v1/ behind the real authentication,
// the console under /console/, and chDB as the audit store.
type harness struct {
	t      *testing.T
	ctx    context.Context
	svc    *policy.Service
	pstore *policy.Store
	sched  *scheduler.Service
	store  *clickhouse.Embedded
	srv    *httptest.Server
	tokens map[string]string
	authn  *auth.Authenticator
	toks   []auth.Token // what authn was made with
	api    *api.API
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	ctx := context.Background()
	eng := clickhousetest.OpenEmbedded(t, "")
	if _, err := clickhouse.Migrate(ctx, eng, 0, nil); err != nil {
		t.Fatal(err)
	}
	cfg := policy.DefaultStoreConfig()
	cfg.Path = filepath.Join(t.TempDir(), "policy.db")
	st, err := policy.OpenStore(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cat, err := policy.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := sign.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := policy.NewService(st, cat, signer, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	seed, err := policy.LoadSeed(filepath.Join("testdata", "seed.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := policy.ApplySeed(ctx, svc, seed); err != nil {
		t.Fatal(err)
	}
	sched, err := scheduler.New(svc, signer, scheduler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, ctx: ctx, svc: svc, pstore: st, sched: sched, store: eng, tokens: map[string]string{}}
	var toks []auth.Token
	for _, id := range []auth.Identity{idApprover, idOperator, idOperator2, idAuditor, idAdmin} {
		tok, entry, err := auth.NewToken(id.Name, id.Role)
		if err != nil {
			t.Fatal(err)
		}
		entry.Groups = id.Groups
		toks = append(toks, entry)
		h.tokens[id.Name] = tok
	}
	authn, err := auth.New(toks, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.authn, h.toks = authn, toks
	allow := func(*http.Request, string) error { return nil }
	a, err := api.New(svc, api.Options{Scheduler: sched, Report: auditreport.NewHandler(eng, allow, nil, auditreport.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	h.api = a
	c, err := New(Deps{Service: svc, API: a, Auth: authn, Store: eng, Scheduler: sched}, Options{TrailPoll: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", authn.Require(a, auth.Roles()...))
	mux.Handle(Prefix+"/", c)
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	return h
}

// request makes an access request as who, through the service.
func (h *harness) request(who auth.Identity, actions ...string) policy.AccessRequest {
	h.t.Helper()
	r, err := h.svc.CreateRequest(h.ctx, who, policy.RequestInput{ResourceID: cellID, ActionRequests: actions,
		Reason: "Cell disk latency alerts (SR 3-" + who.Name + ")", Severity: policy.SeverityS2, DurationHours: 8})
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

func (h *harness) state(id string) policy.RequestState {
	h.t.Helper()
	r, err := h.svc.GetRequest(h.ctx, id)
	if err != nil {
		h.t.Fatal(err)
	}
	return r.LifecycleState
}

// events are an operator's session on the cell under request r: a login,
// then commands (one through sudo), as the collector writes them.
func events(r policy.AccessRequest, base time.Time, cmds ...[]string) []schemas.Event {
	var out []schemas.Event
	add := func(kind schemas.Kind, pid, ppid, euid string, args []string) {
		t := base.Add(time.Duration(len(out)) * time.Second)
		serial := uint64(7000 + len(out))
		e := schemas.Event{Layer: "CELL", ReqAuthID: r.ID, Event: kind, PID: pid, PPID: ppid, EUID: euid, RecID: fmt.Sprint(serial),
			TTY: "pts1", Host: "cell01.example.com", Time: t.UTC().Format(schemas.CtimeLayout), LoginID: r.UserID, Ses: "501",
			EventID: schemas.NewEventID("cell01.example.com", t.Unix(), t.Nanosecond()/1e6, serial), TS: t.UTC().Format(schemas.TSLayout),
			Seq: serial, Res: "success", Args: args}
		e.RawData = fmt.Sprintf("type=SYSCALL msg=audit(%s:%d) : pid=%s uid=%s \n", t.Format("01/02/2006 15:04:05.000"), serial, pid, r.UserID)
		if kind == schemas.KindLogin {
			e.SrcHost, e.DestHost = "bastion", "10.0.0.5"
		} else {
			e.Exe, e.Cwd, e.Title = "/usr/bin/"+args[0], "/root", strings.Join(args, "\x00")
			if strings.HasPrefix(args[0], "/") {
				e.Exe = args[0]
			}
		}
		out = append(out, e)
	}
	add(schemas.KindLogin, "7001", "", "", nil)
	// A command given as an absolute path is the child of the one before
	// it (what sudo ran), as root.
	for i, c := range cmds {
		euid, ppid := r.UserID, "7001"
		if c[0] == "sudo" || strings.HasPrefix(c[0], "/") {
			euid = "root"
		}
		if strings.HasPrefix(c[0], "/") {
			ppid = fmt.Sprint(7010 + i - 1)
		}
		add(schemas.KindCommand, fmt.Sprint(7010+i), ppid, euid, c)
	}
	return out
}

// client is a signed-in HTTP client of the console (no browser).
func (h *harness) client(who auth.Identity) (*http.Client, string) {
	h.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	body := h.get(c, Prefix+"/signin", http.StatusOK)
	pre := hiddenValue(h.t, body, "csrf")
	resp, err := c.PostForm(h.srv.URL+Prefix+"/signin", url.Values{"csrf": {pre}, "token": {h.tokens[who.Name]}})
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		h.t.Fatalf("sign-in as %s: %s", who.Name, resp.Status)
	}
	return c, hiddenValue(h.t, h.get(c, Prefix+"/", http.StatusOK), "csrf")
}

func (h *harness) get(c *http.Client, path string, want int) string {
	h.t.Helper()
	resp, err := c.Get(h.srv.URL + path)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		h.t.Fatalf("GET %s: %s, want %d\n%s", path, resp.Status, want, b)
	}
	return string(b)
}

var hiddenRE = regexp.MustCompile(`name="([a-z_]+)" value="([^"]*)"`)

func hiddenValue(t *testing.T, body, name string) string {
	t.Helper()
	for _, m := range hiddenRE.FindAllStringSubmatch(body, -1) {
		if m[1] == name {
			return m[2]
		}
	}
	t.Fatalf("no hidden field %q in the page:\n%s", name, body)
	return ""
}

// browser is a headless Chromium tab that records the page's errors.
type browser struct {
	t    *testing.T
	ctx  context.Context
	mu   sync.Mutex
	errs []string
}

var axeSource = sync.OnceValues(func() ([]byte, error) { return os.ReadFile(filepath.Join("testdata", "axe", "axe.min.js")) })

// actionTimeout bounds one step of a test in the browser.
const actionTimeout = 90 * time.Second

// chromium is the test binary's one Chromium process (started by the
// first browser test, stopped by TestMain); each test gets a browser
// context of its own in it (its own cookies and storage: an incognito
// window), so tests share the start-up cost and nothing else.
var chromium struct {
	once   sync.Once
	ctx    context.Context // the first tab's: its cancellation stops the process
	cancel func()
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if chromium.cancel != nil {
		chromium.cancel()
	}
	auditpipe.Remove()
	os.Exit(code)
}

// startChromium starts the shared browser.
func startChromium(path, userData string) {
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(userData), chromedp.WindowSize(1200, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	chromium.ctx = ctx
	chromium.cancel = func() { cancelB(); cancelA(); _ = os.RemoveAll(userData) }
	chromium.err = chromedp.Do(ctx) // starts the browser
}

// sharedChromium starts the shared browser once, in a temporary profile
// directory, and says whether it runs.
func sharedChromium(path string) error {
	chromium.once.Do(func() {
		dir, err := os.MkdirTemp("", "console-chromium-")
		if err != nil {
			chromium.err = err
			return
		}
		startChromium(path, dir)
	})
	return chromium.err
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		testenv.SkipOrFail(t, testenv.Chromium, "no chromium on PATH (make deps installs Debian's): %v", err)
	}
	if err := sharedChromium(path); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	ctx, cancel := chromedp.NewContext(chromium.ctx, chromedp.WithNewBrowserContext())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1200, 900)); err != nil { // opens the tab
		t.Fatal(err)
	}
	b := &browser{t: t, ctx: ctx}
	msgs := chromedp.Console(ctx)
	wg.Go(func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			switch m.Type {
			case chromedp.ConsoleError, chromedp.ConsoleWarning, chromedp.ConsoleException:
				b.mu.Lock()
				b.errs = append(b.errs, fmt.Sprintf("%s: %s (%s)", m.Type, m, m.URL))
				b.mu.Unlock()
			}
		}
	})
	return b
}

func (b *browser) run(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatal(err)
	}
}

// value runs one action and returns its value.
func value[T any](b *browser, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatal(err)
	}
	return v
}

// errors returns and clears what the page reported.
func (b *browser) errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.errs
	b.errs = nil
	return e
}

// check fails the test for any console error since the last check and
// for any axe-core violation (WCAG 2.1 A and AA, and axe's best
// practices) on the current page, and when the page is wider than the
// window. axe is injected by the test: the console never serves it.
func (b *browser) check(page string) {
	b.t.Helper()
	for _, v := range b.axe() {
		b.t.Errorf("%s: axe: %s", page, v)
	}
	if value(b, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`)) {
		b.t.Errorf("%s: the page is wider than the window", page)
	}
	for _, e := range b.errors() {
		b.t.Errorf("%s: the browser reported: %s", page, e)
	}
}

// axe injects axe-core into the page and returns its violations.
func (b *browser) axe() []string {
	b.t.Helper()
	src, err := axeSource()
	if err != nil {
		b.t.Fatal(err)
	}
	b.run(chromedp.Evaluate[chromedp.Void](string(src)))
	return value(b, chromedp.Evaluate[[]string](`axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})
		.then(r => r.violations.map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at ' + v.nodes.map(n => n.target.join(' ')).join(', ')))`,
		chromedp.EvalAwaitPromise))
}

// shot saves a screenshot of the page as docs/console/name.png when
// -screenshots is set.
func (b *browser) shot(name string) {
	b.t.Helper()
	if !*screenshots {
		return
	}
	png := value(b, chromedp.FullScreenshot(100)) // quality 100: PNG
	dir := filepath.Join("..", "docs", "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// signIn signs who in through the sign-in page.
func (b *browser) signIn(h *harness, who auth.Identity) {
	b.t.Helper()
	b.run(chromedp.Navigate(h.srv.URL+Prefix+"/"), chromedp.WaitVisible(chromedp.CSS(`#token`)))
	b.check("sign-in")
	b.shot("signin")
	b.run(chromedp.SendKeys(chromedp.CSS(`#token`), h.tokens[who.Name]), chromedp.Submit(chromedp.CSS(`#token`)),
		chromedp.WaitVisible(chromedp.CSS(`form.signout`)))
}

// count returns how many elements match the CSS selector sel.
func (b *browser) count(sel string) int {
	b.t.Helper()
	q, _ := json.Marshal(sel)
	return value(b, chromedp.Evaluate[int](`document.querySelectorAll(`+string(q)+`).length`))
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	return value(b, chromedp.Text(chromedp.CSS(sel)))
}

// pipeline runs what carries the policy's changes into ClickHouse, as
// the all-in-one does: an in-process Kafka broker, and the indexer
// reading opctl.lifecycle.v1 into the harness's chDB. It returns the
// outbox relay, whose Flush publishes the changes made so far.
func (h *harness) pipeline() *policy.Relay {
	h.t.Helper()
	kc, _ := kafkatest.Start(h.t, 1)
	relay, err := policy.NewRelay(h.pstore, kc, policy.DefaultConfig().Relay, policy.RelayDeps{})
	if err != nil {
		h.t.Fatal(err)
	}
	cfg := indexer.DefaultConfig()
	cfg.Kafka, cfg.Group, cfg.Topics = kc, "console-test", []string{schemas.TopicLifecycle}
	cfg.Batch.MaxWait = 100 * time.Millisecond
	cfg.Store.RetentionDays = 0 // as the harness migrated it
	ix, err := indexer.New(cfg, indexer.Deps{Engine: h.store})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan error, 1)
	go func() { done <- ix.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("indexer: %v", err)
		}
	})
	return relay
}

// auditpipe is the auditpipe binary, built once per test binary (by the
// first test that runs it; TestMain removes it).
var auditpipe = proctest.Binary{Pkg: "github.com/auditpipe/auditpipe/cmd/auditpipe"}

// cli runs the built auditpipe binary as who against the harness's API
// and returns its standard output.
func (h *harness) cli(who auth.Identity, args ...string) []byte {
	h.t.Helper()
	bin := auditpipe.Path(h.t)
	tok := filepath.Join(h.t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte(h.tokens[who.Name]+"\n"), 0o600); err != nil {
		h.t.Fatal(err)
	}
	// The policy subcommands take --server and --token-file after the
	// subcommand's name.
	args = append(args, "--server", h.srv.URL, "--token-file", tok)
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		h.t.Fatalf("auditpipe %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}
