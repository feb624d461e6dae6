package chat_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// TestPageSecurityHeaders checks that every response of the chat page
// (the page, its files, a missing file, a refused method) carries the
// content security policy and the framing, sniffing and referrer headers
// (issue 10.18).
func TestPageSecurityHeaders(t *testing.T) {
	ts := chattest.Start(t, chat.Config{}, nil, nil)
	want := map[string]string{
		"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; " +
			"connect-src 'self'; img-src 'self' data:; object-src 'none'; " +
			"frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
		"X-Frame-Options":        "DENY",
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "no-referrer",
	}
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/", 200},
		{"HEAD", "/", 200},
		{"GET", "/app.js", 200},
		{"GET", "/style.css", 200},
		{"GET", "/nope", 404},
		{"POST", "/", 405},
	} {
		req, err := http.NewRequest(tc.method, ts.HTTP+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
		}
		for k, v := range want {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("%s %s: %s = %q, want %q", tc.method, tc.path, k, got, v)
			}
		}
	}
}

// TestPageHasNoInlineCode checks the markup the server sends against the
// policy: no inline script, no event handler attribute, no style element
// or attribute (the policy would block them, and the page would break).
func TestPageHasNoInlineCode(t *testing.T) {
	ts := chattest.Start(t, chat.Config{}, nil, nil)
	status, body, _ := ts.Get(t, "/")
	if status != 200 {
		t.Fatalf("GET /: %d", status)
	}
	scripts := regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`).FindAllStringSubmatch(body, -1)
	if len(scripts) == 0 {
		t.Error("the page has no script element")
	}
	for _, s := range scripts {
		if !strings.Contains(s[1], "src=") || strings.TrimSpace(s[2]) != "" {
			t.Errorf("the page has an inline script %q, which the content security policy blocks", s[0])
		}
	}
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)\son[a-z]+\s*=`),
		regexp.MustCompile(`(?i)<style\b`),
		regexp.MustCompile(`(?i)\sstyle\s*=`),
		regexp.MustCompile(`(?i)javascript:`),
	} {
		if m := bad.FindString(body); m != "" {
			t.Errorf("the page has %q, which the content security policy blocks", m)
		}
	}
}

// TestPageDefaultRoom checks that the page is told the configured default
// room (issue 10.4), escaped for HTML, and that no template text is left.
func TestPageDefaultRoom(t *testing.T) {
	for _, room := range []string{"lobby", "tea.room_2-b"} {
		t.Run(room, func(t *testing.T) {
			cfg := chat.Config{}
			if room != "lobby" {
				cfg.DefaultRoom = room
			}
			ts := chattest.Start(t, cfg, nil, nil)
			status, body, hdr := ts.Get(t, "/")
			if status != 200 {
				t.Fatalf("GET /: %d", status)
			}
			if !strings.Contains(body, `<meta name="moonchat-default-room" content="`+room+`">`) {
				t.Errorf("GET / does not carry the default room %q in its meta:\n%s", room, body)
			}
			if !strings.Contains(body, `placeholder="`+room+`"`) {
				t.Errorf("the room field's placeholder is not %q", room)
			}
			if strings.Contains(body, "{{") {
				t.Errorf("template text left in the page")
			}
			if cc := hdr.Get("Cache-Control"); cc != "no-cache" {
				t.Errorf("Cache-Control = %q, want no-cache (the page depends on the configuration)", cc)
			}
		})
	}
	// The template escapes what it fills in, whatever a future caller
	// passes (room names are validated, so this is belt and braces).
	b, err := chat.RenderIndex(`x"><script>alert(1)</script>`)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "<script>alert") {
		t.Errorf("renderIndex did not escape the room")
	}
}

// TestPageIndexRedirect checks that /index.html (the template's own name)
// is not served raw: the file server sends it to /.
func TestPageIndexRedirect(t *testing.T) {
	ts := chattest.Start(t, chat.Config{}, nil, nil)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(ts.HTTP + "/index.html")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "./" {
		t.Errorf("/index.html: %d Location %q, want 301 to ./", resp.StatusCode, resp.Header.Get("Location"))
	}
}
