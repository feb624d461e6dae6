package ws

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// The closing handshake (RFC 6455 section 7) and the close codes (7.4),
// for a server connection; ClientConn (client.go) plays the client's part
// with the same codes (checkSendCode) and close frame bodies (closePayload).
//
// How a server connection ends:
//   - We close (Close, a protocol error, Shutdown): our close frame goes
//     out behind the data already queued, and no data frame follows it
//     (section 5.5.1). Close waits up to CloseTimeout for the peer's
//     answer; after a protocol error TCP is closed right after the close
//     frame, without processing further input (section 7.1.7).
//   - The peer closes: we echo its code and reason (section 5.5.1) unless
//     our own close frame is already out.
//   - Either way, once our close frame is written the server closes TCP
//     first (section 7.1.1): it shuts down the write side and discards
//     input until the peer's FIN, bounded by CloseTimeout, so that unread
//     input cannot turn the close into a reset that destroys the close
//     frame in flight.
//   - The TCP connection ends without a close frame: 1006 (section 7.1.5).
//
// Invariants of the data close.go owns (guarded by mu):
//   - closeErr is how the connection ended, as OnClose will report it: set
//     once, by the first cause (our close, the peer's, a protocol error, a
//     slow consumer, a failed write, a timeout); later causes never
//     replace it. report fills in 1006 when there was none.
//   - deadline is non-zero once a closing handshake is under way: tick
//     tears the connection down (1006 "close timeout") when it passes.
//   - fSentClose is set with our close frame queued, at most one per
//     connection; fGotClose once the peer's close frame arrived.
//   - fFlushClose then fLinger: the write side is shut down only after the
//     queue, which ends with our close frame, has been written.

// StatusCode is a close status code (RFC 6455 section 7.4).
type StatusCode uint16

// Status codes registered by RFC 6455 section 7.4.1 and the IANA registry.
const (
	StatusNormalClosure           StatusCode = 1000
	StatusGoingAway               StatusCode = 1001
	StatusProtocolError           StatusCode = 1002
	StatusUnsupportedData         StatusCode = 1003
	StatusNoStatusRcvd            StatusCode = 1005
	StatusAbnormalClosure         StatusCode = 1006
	StatusInvalidFramePayloadData StatusCode = 1007
	StatusPolicyViolation         StatusCode = 1008
	StatusMessageTooBig           StatusCode = 1009
	StatusMandatoryExtension      StatusCode = 1010
	StatusInternalError           StatusCode = 1011
	StatusTryAgainLater           StatusCode = 1013
)

// validWireCode reports whether code may appear in a close frame on the wire
// (section 7.4). 1005, 1006 and 1015 are reserved for reporting locally, 1004
// is reserved, 0-999 are unused; 1012-1014 are registered with IANA (service
// restart, try again later, bad gateway) and Autobahn 7.7.x expects them to be
// accepted; 1016-2999 are reserved for future protocol use and 3000-4999 are
// for libraries, frameworks and applications.
func validWireCode(code StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003:
		return true
	case code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// checkSendCode refuses a close code that may not be sent (section 7.4.1:
// 1005, 1006 and 1015 are for reporting locally, the rest outside the
// ranges validWireCode accepts is reserved or unused). StatusNoStatusRcvd
// is accepted as "no code": a close frame without a body. Conn.Close and
// ClientConn.Close share it, so both sides put the same codes on the wire.
func checkSendCode(code StatusCode) error {
	if code != StatusNoStatusRcvd && !validWireCode(code) {
		return fmt.Errorf("websocket: close code %d may not be sent", code)
	}
	return nil
}

// CloseError is how a connection ended: the code and reason the peer sent,
// or the code we sent (1002/1007/1009/...), or StatusAbnormalClosure (1006)
// when TCP dropped without a close frame.
type CloseError struct {
	Code   StatusCode
	Reason string
}

// Error implements error.
func (e *CloseError) Error() string {
	if e.Reason == "" {
		return "websocket closed: " + strconv.Itoa(int(e.Code))
	}
	return "websocket closed: " + strconv.Itoa(int(e.Code)) + " " + e.Reason
}

// ErrClosed is returned when writing to a closed or closing connection.
var ErrClosed = errors.New("websocket: connection closed")

// closePayload builds a close frame body: the code in network byte order
// followed by the UTF-8 reason, truncated (on a rune boundary) so that the
// frame stays within the 125-byte control frame limit. StatusNoStatusRcvd
// means "no code": an empty body.
func closePayload(code StatusCode, reason string) []byte {
	if code == StatusNoStatusRcvd || code == 0 {
		return nil
	}
	if len(reason) > maxControlPayload-2 {
		reason = reason[:maxControlPayload-2]
		for len(reason) > 0 && !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	b := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(b, uint16(code))
	return append(b, reason...)
}

// Close starts the closing handshake (RFC 6455 section 7.1.2): it queues a
// close frame with code and reason (after the data already queued), stops
// delivering messages, and waits up to CloseTimeout for the peer's close
// frame; the server then closes the TCP connection and OnClose follows. It
// returns ErrClosed when the connection is already closing.
func (c *Conn) Close(code StatusCode, reason string) error {
	if err := checkSendCode(code); err != nil {
		return err
	}
	c.mu.Lock()
	fl := c.flags.Load()
	if fl&(fDead|fSentClose) != 0 {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.closeErr == nil {
		c.closeErr = &CloseError{Code: code, Reason: reason}
	}
	err := c.sendCloseLocked(code, reason)
	c.deadline = c.srv.now() + int64(c.srv.cfg.CloseTimeout)
	// The reply must be read even if the handler paused reading.
	c.setFlagLocked(fPaused, false)
	c.updateInterestLocked()
	c.mu.Unlock()
	c.notifyOwner()
	if errors.Is(err, ErrSlowConsumer) {
		return err
	}
	return nil
}

// sendCloseLocked queues our close frame and marks fSentClose.
func (c *Conn) sendCloseLocked(code StatusCode, reason string) error {
	var err error
	if c.flags.Load()&fHixie != 0 {
		c.whdr[0], c.whdr[1] = 0xFF, 0x00
		err = c.sendLocked(c.whdr[:2], nil, nil, false, true)
	} else {
		err = c.sendFrameLocked(OpClose, closePayload(code, reason), true)
	}
	c.setFlagLocked(fSentClose, true)
	return err
}

// closeAfterFlushLocked arranges for the TCP connection to end once the
// queue (ending with our close frame) is written: the write side is shut
// down (FIN) and input is discarded until the peer closes too, so that
// unread input cannot turn our close into a reset that destroys the close
// frame in flight. CloseTimeout bounds the whole thing.
func (c *Conn) closeAfterFlushLocked() {
	if c.flags.Load()&fFlushClose != 0 {
		return
	}
	c.setFlagLocked(fFlushClose, true)
	c.setFlagLocked(fPaused, false)
	c.deadline = c.srv.now() + int64(c.srv.cfg.CloseTimeout)
	if c.qBytes == 0 {
		c.shutdownWriteLocked()
	}
	c.updateInterestLocked()
}

// shutdownWriteLocked half-closes the socket after the final flush.
func (c *Conn) shutdownWriteLocked() {
	c.setFlagLocked(fLinger, true)
	if c.lp != nil {
		c.epShutdownWriteLocked()
	} else {
		c.fb.shutdownWrite()
	}
}

// protocolError fails the connection (section 7.1.7): send a close frame
// with the error's code, then close TCP without reading further input.
func (c *Conn) protocolError(ce *CloseError) {
	c.srv.log.Debug("websocket: protocol error", "remote", c.addr, "code", int(ce.Code), "reason", ce.Reason)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeErr == nil {
		c.closeErr = ce
	}
	if c.flags.Load()&fSentClose == 0 {
		_ = c.sendCloseLocked(ce.Code, ce.Reason)
	}
	c.closeAfterFlushLocked()
}

// onClose handles the peer's close frame (section 5.5.1): echo it unless we
// started the handshake, then close TCP (the server closes first, 7.1.1).
// It is the decoder's sink for close frames (read.go has the others).
func (c *Conn) onClose(code StatusCode, reason []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setFlagLocked(fGotClose, true)
	if c.flags.Load()&fSentClose == 0 {
		if c.closeErr == nil {
			c.closeErr = &CloseError{Code: code, Reason: string(reason)}
		}
		_ = c.sendCloseLocked(code, string(reason))
	}
	c.closeAfterFlushLocked()
}

// peerGone handles EOF or a read error on the owner goroutine.
func (c *Conn) peerGone(err error) {
	c.mu.Lock()
	if c.closeErr == nil {
		reason := ""
		if err != nil {
			reason = err.Error()
		}
		c.closeErr = &CloseError{Code: StatusAbnormalClosure, Reason: reason}
	}
	c.mu.Unlock()
	c.finalize()
}

// abort sends a best-effort close frame (only if it fits in the socket
// right now) and tears the connection down.
func (c *Conn) abort() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.flags.Load()&(fSentClose|fDead) == 0 && c.qBytes == 0 && c.lp != nil {
		_ = c.sendCloseLocked(StatusGoingAway, "server closed")
	}
	c.killLocked(&CloseError{Code: StatusAbnormalClosure, Reason: "server closed"})
}
