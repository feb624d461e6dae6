package luapattern

import (
	"errors"
	"strings"
	"testing"
)

func TestFind(t *testing.T) {
	p, err := Compile("(%w+)=(%w+)")
	if err != nil {
		t.Fatal(err)
	}
	src := []byte("x a=1 b=2")
	md, err := p.Find(src, 0, nil)
	if err != nil || md == nil || md.Capture(0) != 2 || md.Capture(1) != 5 || string(src[md.Capture(2):md.Capture(3)]) != "a" {
		t.Fatalf("Find = %+v, %v", md, err)
	}
	if md, _ := p.Find(src, 5, nil); md == nil || md.Capture(0) != 6 {
		t.Fatalf("Find from 5 = %+v", md)
	}
	a, _ := Compile("^b")
	if !a.Anchored {
		t.Fatal("^b not anchored")
	}
	if md, _ := a.Find([]byte("ab"), 0, nil); md != nil {
		t.Fatalf("anchored pattern matched later: %+v", md)
	}
	if _, err := Compile("[a"); err == nil {
		t.Fatal("malformed pattern compiled")
	}
}

// A match whose done channel is closed stops with ErrInterrupted instead
// of backtracking for hours.
func TestFindInterrupted(t *testing.T) {
	p, err := Compile("a*a*a*a*a*b")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	close(done)
	md, err := p.Find([]byte(strings.Repeat("a", 1<<16)), 0, done)
	if !errors.Is(err, ErrInterrupted) || md != nil {
		t.Fatalf("Find = %+v, %v; want ErrInterrupted", md, err)
	}
}

// Too deep a recursion is an error, not a huge Go stack.
func TestFindTooComplex(t *testing.T) {
	p, err := Compile(".*b")
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Find([]byte(strings.Repeat("a", maxRecursionLevel+10)), 0, nil)
	var pe *Error
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "too complex") {
		t.Fatalf("err = %v", err)
	}
}
