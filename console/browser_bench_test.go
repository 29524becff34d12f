package console

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"testing"

	"github.com/chromedp/chromedp"
)

// BenchmarkBrowser compares what a browser test pays for its browser: a
// Chromium process of its own (what each test started before) against a
// browser context in the shared process (what newBrowser gives now), each
// up to a page loaded. Run: go test ./console/ -run '^$' -bench Browser
// -benchtime 5x.
func BenchmarkBrowser(b *testing.B) {
	path, err := exec.LookPath("chromium")
	if err != nil {
		b.Skip("no chromium on PATH")
	}
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `<!doctype html><title>t</title><main>ok</main>`)
	}))
	defer page.Close()
	load := func(ctx context.Context) error {
		return chromedp.Do(ctx, chromedp.Navigate(page.URL), chromedp.WaitVisible(chromedp.CSS(`main`)))
	}
	b.Run("process", func(b *testing.B) {
		for b.Loop() {
			actx, cancelA := chromedp.NewExecAllocator(context.Background(), chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox,
				chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.UserDataDir(b.TempDir()))
			ctx, cancelB := chromedp.NewContext(actx)
			if err := load(ctx); err != nil {
				b.Fatal(err)
			}
			cancelB()
			cancelA()
		}
	})
	b.Run("context", func(b *testing.B) {
		if err := sharedChromium(path); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			ctx, cancel := chromedp.NewContext(chromium.ctx, chromedp.WithNewBrowserContext())
			if err := load(ctx); err != nil {
				b.Fatal(err)
			}
			cancel()
		}
	})
}
