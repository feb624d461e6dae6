// Package auth turns credentials into an identity for moonchat.
//
// It owns three things and nothing else:
//
//   - Verifying JSON Web Tokens (RFC 7519) issued by the application that
//     embeds the chat: [Verifier], built from a [Config] naming the keys
//     that are trusted. Each key admits only the signing algorithms of its
//     own type (RFC 7518 section 3.1; RFC 8037 for EdDSA), so a token can
//     never choose "none", an HMAC keyed with a public key, or a curve other
//     than the key's. The result is an [Identity] or a named refusal error.
//   - Finding the token in an HTTP request ([TokenFromRequest]): the
//     "token" query parameter (browsers cannot set headers on a WebSocket
//     handshake) or an "Authorization: Bearer" header (RFC 6750).
//   - Minting short-lived HS256 tokens for moonchat's own login flow
//     ([Minter]), signed with the configured secret or with a key the
//     server generates once and keeps in a file ([LoadOrCreateSecret]).
//
// The package does not decide who may do what in a room, does not talk to
// Lua and does not know about connections: core/chat asks an Authenticator
// seam, and cmd/moonchat wires this package behind it.
//
// Tokens are credentials. No error, log line or Identity produced here
// contains a token or any part of one; callers must keep it that way
// (never log a URL that may carry ?token=).
package auth
