package web

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

func TestFSHasPageFiles(t *testing.T) {
	for _, name := range []string{"index.html", "app.js", "direct.js", "style.css"} {
		t.Run(name, func(t *testing.T) {
			b, err := fs.ReadFile(FS, name)
			if err != nil {
				t.Fatalf("read %s from FS: %v", name, err)
			}
			if len(b) == 0 {
				t.Fatalf("%s is empty", name)
			}
		})
	}
}

// attrRE finds the values of attributes that make a browser fetch something.
var attrRE = regexp.MustCompile(`(?i)\b(src|href|action|srcset|poster|data)\s*=\s*["']([^"']*)["']`)

func TestIndexUsesOnlyLocalAssets(t *testing.T) {
	b, err := fs.ReadFile(FS, "index.html")
	if err != nil {
		t.Fatalf("read index.html: %v", err)
	}
	html := string(b)
	if m := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`).FindString(html); m != "" {
		t.Errorf("index.html mentions a remote URL %q; the page must work offline from the binary", m)
	}
	refs := attrRE.FindAllStringSubmatch(html, -1)
	if len(refs) == 0 {
		t.Fatal("index.html references no assets at all; expected app.js and style.css")
	}
	seen := map[string]bool{}
	for _, r := range refs {
		v := r[2]
		seen[v] = true
		switch {
		case strings.HasPrefix(v, "data:"):
			// inline, fetched from nowhere
		case strings.Contains(v, ":"), strings.HasPrefix(v, "//"):
			t.Errorf("%s=%q is not a local asset", r[1], v)
		default:
			if _, err := fs.Stat(FS, strings.TrimPrefix(v, "/")); err != nil {
				t.Errorf("%s=%q: not in FS: %v", r[1], v, err)
			}
		}
	}
	for _, want := range []string{"app.js", "style.css"} {
		if !seen[want] {
			t.Errorf("index.html does not reference %s", want)
		}
	}
}

func TestScriptNeverUsesInnerHTML(t *testing.T) {
	// The page renders user data; the XSS rule is "textContent only", in
	// every script of the page.
	scripts, err := fs.Glob(FS, "*.js")
	if err != nil || len(scripts) < 2 {
		t.Fatalf("the page's scripts: %q, %v (want app.js and direct.js at least)", scripts, err)
	}
	for _, name := range scripts {
		b, err := fs.ReadFile(FS, name)
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s uses %s", name, bad)
			}
		}
	}
}
