package cluster

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/moonchat/moonchat/core/chat"
)

// Subjects. A room's records (its message batches and its redactions) are
// on one subject, <stream>.room.<token>; a conversation's (chat.
// ConversationKey) on <stream>.dm.<token>. The token is the key in
// unpadded base64url (RFC 4648 §5): only A–Z a–z 0–9 '-' '_', so any room
// name ('.', '*', '>', spaces and non-ASCII included) and any
// conversation key makes exactly one valid NATS subject token, and the
// token decodes back to the key.
const (
	kindRoom = "room"
	kindDM   = "dm"
)

// maxKeyBytes bounds a key: its subject (4/3 as long) must fit in the
// NATS protocol's control line (4096 bytes by default) with the reply
// subject and the sizes. Room names are far shorter (chat.ValidRoomName);
// a conversation key is as long as its two account ids.
const maxKeyBytes = 2048

// subjectFor returns the subject of key's records in stream.
func subjectFor(stream, key string) (string, error) {
	if key == "" || len(key) > maxKeyBytes {
		return "", fmt.Errorf("%w: %d bytes (1 to %d)", ErrBadKey, len(key), maxKeyBytes)
	}
	kind := kindRoom
	if chat.IsConversation(key) {
		kind = kindDM
	}
	return stream + "." + kind + "." + base64.RawURLEncoding.EncodeToString([]byte(key)), nil
}

// keyOf returns the key of a subject of stream, or an error wrapping
// ErrCorrupt for a subject this package does not write (a record published
// by something else onto the stream's subjects).
func keyOf(stream, subject string) (string, error) {
	rest, ok := strings.CutPrefix(subject, stream+".")
	if !ok {
		return "", fmt.Errorf("%w: subject %q is not in stream %q", ErrCorrupt, subject, stream)
	}
	kind, token, ok := strings.Cut(rest, ".")
	if !ok || (kind != kindRoom && kind != kindDM) {
		return "", fmt.Errorf("%w: subject %q", ErrCorrupt, subject)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(b) == 0 || (kind == kindDM) != chat.IsConversation(string(b)) {
		return "", fmt.Errorf("%w: subject %q", ErrCorrupt, subject)
	}
	return string(b), nil
}

// streamSubjects are the subjects the stream captures.
func streamSubjects(stream string) []string {
	return []string{stream + "." + kindRoom + ".>", stream + "." + kindDM + ".>"}
}
