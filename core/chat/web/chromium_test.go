package web_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's chromium, the browser CI installs.
const chromiumPath = "/usr/bin/chromium"

// stepTimeout bounds one browser step ("bob's page shows alice's message").
// It is generous because the test machine has 2 loaded cores.
const stepTimeout = 20 * time.Second

// artifactDir receives screenshots for a human (or a reviewer) to look at.
const artifactDir = "testdata/artifacts"

// newBrowser starts a headless chromium for the test and returns a context
// for its first tab. The browser is killed when the test ends. Without
// chromium the test is skipped, unless CI is set (then the missing browser
// is a failure: CI must run the browser tests).
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath
	if _, err := os.Stat(path); err != nil {
		p, lerr := exec.LookPath("chromium")
		if lerr != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("chromium not found at %s or in PATH (CI is set, so browser tests must run)", chromiumPath)
			}
			t.Skipf("chromium not found at %s or in PATH; skipping browser test", chromiumPath)
		}
		path = p
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		// Two pages chat with each other; neither may be throttled as a
		// background tab while the other one is in front.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.WindowSize(1100, 720),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first Run starts the browser; it must not carry a step timeout,
	// or the timeout would end the browser (chromedp ties them together).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// newPage opens a tab in its own browser context (separate cookies and
// storage: another user), or in the default one when isolated is false.
func newPage(t *testing.T, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open tab: %v", err)
	}
	return ctx
}

// step runs actions on page with the step timeout.
func step(t *testing.T, page context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(page, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression on page and decodes its value.
func eval[T any](t *testing.T, page context.Context, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(page, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript predicate on page until it is truthy; on
// timeout the test fails with what and a dump of the page's state.
func waitFor(t *testing.T, page context.Context, what, predicate string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(page, stepTimeout+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](predicate,
		chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(stepTimeout)))
	if err != nil {
		dctx, dcancel := context.WithTimeout(page, 5*time.Second)
		defer dcancel()
		state, _ := chromedp.Run(dctx, chromedp.Evaluate[string](pageStateJS))
		t.Fatalf("waiting for %s: %v\npage state: %s", what, err, state)
	}
}

// pageStateJS summarises what a page shows, for failure messages.
const pageStateJS = `JSON.stringify({
	status: document.getElementById('status').textContent,
	me: document.getElementById('me-name').textContent,
	view: document.getElementById('app').dataset.view,
	presence: [...document.querySelectorAll('#presence .name')].map(e => e.textContent),
	items: [...document.querySelectorAll('#messages li')].slice(-12).map(li => li.textContent),
})`

// screenshot writes a PNG of page's viewport to testdata/artifacts/name.
func screenshot(t *testing.T, page context.Context, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(page, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(artifactDir, 0o755); err != nil {
		t.Fatalf("create %s: %v", artifactDir, err)
	}
	path := filepath.Join(artifactDir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("write screenshot: %v", err)
	}
	t.Logf("screenshot: %s", path)
}

// colorScheme makes page's CSS see prefers-color-scheme: scheme
// ("light" or "dark").
func colorScheme(scheme string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	})
}
