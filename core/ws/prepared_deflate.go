package ws

// Compressed Prepared messages: a broadcast is compressed once, not once
// per member. The server never takes its compression context over
// (deflate.go), so a message's compressed frame does not depend on the
// connection: every member that negotiated the same parameters gets the
// very same bytes, by reference, as with uncompressed Prepared messages.
//
// Invariants:
//   - A Prepared's compressed framings (z) are built on first use, one per
//     deflateParams value that a connection asked for (in practice one:
//     the server's threshold with an unlimited window; a client that
//     offered server_max_window_bits adds one for its window), and never
//     change once published: readers load z without a lock.
//   - Each message is framed on its own, compressed (RSV1 set on its
//     only frame, RFC 7692 section 6) when the parameters want it and
//     compression made it smaller, uncompressed otherwise. When no
//     message is compressed the framing is the plain frames themselves,
//     shared rather than copied.

// zframes is the compressed framing of a Prepared for one set of
// parameters.
type zframes struct {
	key    deflateParams
	frames []byte
}

// framesFor returns p's frames for a connection that negotiated z, using
// fp's compressors when they must be built.
func (p *Prepared) framesFor(z *deflateParams, fp *flatePools) []byte {
	if z == nil {
		return p.frames
	}
	if l := p.z.Load(); l != nil {
		for i := range *l {
			if (*l)[i].key == *z {
				return (*l)[i].frames
			}
		}
	}
	p.zmu.Lock()
	defer p.zmu.Unlock()
	var list []zframes
	if l := p.z.Load(); l != nil {
		for i := range *l {
			if (*l)[i].key == *z {
				return (*l)[i].frames // built while we waited for zmu
			}
		}
		list = *l
	}
	frames := p.deflate(z, fp)
	// Copy on write: readers may hold the old list.
	next := make([]zframes, len(list), len(list)+1)
	copy(next, list)
	next = append(next, zframes{key: *z, frames: frames})
	p.z.Store(&next)
	return frames
}

// deflate frames p's messages for parameters z.
func (p *Prepared) deflate(z *deflateParams, fp *flatePools) []byte {
	some := false
	eachPayload(p.frames, func(m []byte) { some = some || z.wants(len(m)) })
	if !some {
		return p.frames
	}
	d := fp.getDeflater()
	defer fp.putDeflater(d)
	var (
		out     []byte
		scratch []byte
		saved   bool
	)
	eachPayload(p.frames, func(m []byte) {
		if z.wants(len(m)) {
			c, ok := d.compress(scratch[:0], m)
			scratch = c
			if ok {
				var h [10]byte
				n := putHeader(h[:], p.op, len(c))
				h[0] |= rsv1Bit
				out = append(append(out, h[:n]...), c...)
				saved = true
				return
			}
		}
		out = appendFrame(out, p.op, m)
	})
	if !saved {
		return p.frames // compression gained nothing: share the plain frames
	}
	// out grew by appends: give it its exact size, since the Prepared
	// keeps it as long as any queue refers to it.
	return append([]byte(nil), out...)
}
