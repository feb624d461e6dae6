package ws

import (
	"errors"
	"strconv"
)

// Opcode is a WebSocket frame opcode (RFC 6455 section 5.2).
type Opcode byte

// Opcodes defined by RFC 6455 section 11.8.
const (
	OpContinuation Opcode = 0
	OpText         Opcode = 1
	OpBinary       Opcode = 2
	OpClose        Opcode = 8
	OpPing         Opcode = 9
	OpPong         Opcode = 10
)

// String returns the opcode's name.
func (op Opcode) String() string {
	switch op {
	case OpContinuation:
		return "continuation"
	case OpText:
		return "text"
	case OpBinary:
		return "binary"
	case OpClose:
		return "close"
	case OpPing:
		return "ping"
	case OpPong:
		return "pong"
	}
	return "opcode(" + strconv.Itoa(int(op)) + ")"
}

// isControl reports whether op is a control opcode (section 5.5).
func (op Opcode) isControl() bool { return op&0x8 != 0 }

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

var (
	// ErrClosed is returned when writing to a closed or closing connection.
	ErrClosed = errors.New("websocket: connection closed")
	// ErrSlowConsumer is returned when the write queue exceeded MaxQueueBytes
	// or made no progress for WriteTimeout; the engine has closed the
	// connection (1008 "slow consumer") and logged it.
	ErrSlowConsumer = errors.New("websocket: slow consumer")
	// ErrServerClosed is returned by Upgrade after Shutdown or Close.
	ErrServerClosed = errors.New("websocket: server closed")
)
