// Package utf8 validates UTF-8 incrementally: a text message arrives in
// fragments and frames split across reads, and RFC 6455 section 8.1 wants
// the connection failed (1007) as soon as the bytes can no longer form valid
// UTF-8, not when the message is complete (Autobahn case 6.4.x sends a bad
// byte and then waits).
//
// The validator is a deterministic automaton over byte classes that accepts
// exactly the well-formed sequences of Unicode table 3-7: it rejects
// overlong forms (C0, C1, E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and
// code points above U+10FFFF (F4 90.., F5..FF) at the first byte that rules
// them out. Complete code points in the middle of a piece are checked with
// unicode/utf8.Valid (which has an ASCII fast path of 8 bytes at a time).
package utf8

import "unicode/utf8"

// Automaton states. accept is also the zero value: a fresh Validator is at
// a code point boundary.
const (
	accept uint8 = iota
	reject
	need1 // one continuation byte 80..BF to go
	need2
	need3
	afterE0 // next must be A0..BF (no overlong 3-byte forms)
	afterED // next must be 80..9F (no surrogates)
	afterF0 // next must be 90..BF (no overlong 4-byte forms)
	afterF4 // next must be 80..8F (nothing above U+10FFFF)
	numStates
)

// Byte classes.
const (
	cASCII = iota // 00..7F
	c80           // 80..8F
	c90           // 90..9F
	cA0           // A0..BF
	cBad          // C0, C1, F5..FF: never valid
	cLead2        // C2..DF
	cE0
	cLead3 // E1..EC, EE, EF
	cED
	cF0
	cLead4 // F1..F3
	cF4
	numClasses
)

// class maps a byte to its class. Read-only after initialisation.
var class = func() (t [256]uint8) {
	for b := 0; b < 256; b++ {
		var c uint8
		switch {
		case b < 0x80:
			c = cASCII
		case b < 0x90:
			c = c80
		case b < 0xA0:
			c = c90
		case b < 0xC0:
			c = cA0
		case b < 0xC2:
			c = cBad
		case b < 0xE0:
			c = cLead2
		case b == 0xE0:
			c = cE0
		case b == 0xED:
			c = cED
		case b < 0xF0:
			c = cLead3
		case b == 0xF0:
			c = cF0
		case b < 0xF4:
			c = cLead4
		case b == 0xF4:
			c = cF4
		default:
			c = cBad
		}
		t[b] = c
	}
	return t
}()

// next is the transition table, indexed by state*numClasses+class. Read-only
// after initialisation.
var next = func() (t [numStates * numClasses]uint8) {
	for i := range t {
		t[i] = reject
	}
	set := func(s uint8, to uint8, classes ...int) {
		for _, c := range classes {
			t[int(s)*numClasses+c] = to
		}
	}
	set(accept, accept, cASCII)
	set(accept, need1, cLead2)
	set(accept, afterE0, cE0)
	set(accept, need2, cLead3)
	set(accept, afterED, cED)
	set(accept, afterF0, cF0)
	set(accept, need3, cLead4)
	set(accept, afterF4, cF4)
	set(need1, accept, c80, c90, cA0)
	set(need2, need1, c80, c90, cA0)
	set(need3, need2, c80, c90, cA0)
	set(afterE0, need1, cA0)
	set(afterED, need1, c80, c90)
	set(afterF0, need2, c90, cA0)
	set(afterF4, need2, c80)
	return t
}()

// step is the automaton on raw bytes: step[state<<8|b]. Read-only after
// initialisation.
var step = func() (t [int(numStates) << 8]uint8) {
	for st := 0; st < int(numStates); st++ {
		for b := 0; b < 256; b++ {
			t[st<<8|b] = next[st*numClasses+int(class[b])]
		}
	}
	return t
}()

// Validator checks a byte stream piece by piece. The zero value is ready.
type Validator struct {
	state uint8
}

// Write feeds p and reports whether the stream so far can still be (or
// become) valid UTF-8. Once it has returned false it keeps returning false.
//
// The automaton only runs where a code point straddles a boundary: to
// finish a sequence left open by the previous call, and on an incomplete
// sequence at the end of p. The complete code points in between go to
// unicode/utf8.Valid, which is exact and much faster per byte. Either way p
// is judged as a whole, so a bad byte anywhere in it fails this call.
func (v *Validator) Write(p []byte) bool {
	s := v.state
	for s != accept && len(p) > 0 {
		if s == reject {
			return false
		}
		s = step[int(s)<<8|int(p[0])]
		p = p[1:]
	}
	if s == reject {
		v.state = reject
		return false
	}
	if len(p) == 0 {
		v.state = s
		return true
	}
	body, tail := splitTail(p)
	if !utf8.Valid(body) {
		v.state = reject
		return false
	}
	for _, b := range tail {
		s = step[int(s)<<8|int(b)]
	}
	v.state = s
	return s != reject
}

// splitTail splits p before a trailing lead byte whose sequence p does not
// complete (a code point has at most 4 bytes, so the lead is among the last
// 3). Whatever precedes it is complete code points, or invalid.
func splitTail(p []byte) (body, tail []byte) {
	for i := len(p) - 1; i >= 0 && i >= len(p)-3; i-- {
		b := p[i]
		if b < 0x80 {
			return p, nil
		}
		if b >= 0xC0 {
			need := 4
			switch {
			case b < 0xE0:
				need = 2
			case b < 0xF0:
				need = 3
			}
			if len(p)-i < need {
				return p[:i], p[i:]
			}
			return p, nil
		}
	}
	return p, nil
}

// Complete reports whether the stream so far is valid UTF-8 that ends on a
// code point boundary (the state a text message must end in).
func (v *Validator) Complete() bool { return v.state == accept }

// Reset returns v to its initial state.
func (v *Validator) Reset() { v.state = accept }

// Valid reports whether p is complete, valid UTF-8.
func Valid(p []byte) bool {
	var v Validator
	return v.Write(p) && v.Complete()
}
