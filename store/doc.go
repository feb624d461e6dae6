// Package store keeps moonchat's chat history and the Lua scripts' key-value
// data in one bbolt file (go.etcd.io/bbolt). *DB implements chat.History for
// the chat server (with chat.RoomLister for GET /api/rooms,
// chat.NameOwners for the names accounts own, chat.ModerationStore for
// bans, mutes, room settings and the audit log, and chat.ConversationLister
// for the direct conversations of accounts) and scripting.KV
// for the Lua layer without importing scripting: store depends on core/chat
// only, and cmd/moonchat wires it into the scripts (and checks that it fits)
// and uses the query API below for `moonchat history` and the HTTP API.
//
// # Durability
//
// Append returns only after the messages are committed and fsynced, so a
// message the chat server broadcasts survives kill -9 and power loss.
// Commits are grouped: a committer goroutine owned by the DB writes every
// request that arrived while the previous commit was running in ONE bbolt
// transaction with ONE fsync, so throughput grows with the number of
// concurrent senders instead of being capped at one fsync per message.
// KV Set and Delete, SetNameOwner and the moderation writes go through
// the same committer.
//
// # Opening
//
//	db, err := store.Open("data/moonchat.db", store.Options{MaxPerRoom: 10000})
//	defer db.Close() // flushes pending appends, stops the committer and pruner
//
// Open creates the directory (0700) and file (0600) on first run. The CLI
// inspects a stopped server's file with OpenReadOnly (which never creates
// anything). Open errors name the file and wrap a named error value:
// ErrLocked (another process, normally the running server, holds the file),
// ErrCorrupt (not a readable bbolt/moonchat file: garbage, truncated, bbolt
// panicked while reading it), ErrFormat (written by a newer moonchat),
// ErrUnwritable (permission denied, read-only file system, a path under a
// regular file), ErrNotExist (OpenReadOnly of a missing file) and
// ErrReplica (a cluster replica opened writable as a single node; see
// Replica mode). Test with errors.Is.
//
// A new file is 32 KiB and grows as needed (bbolt's mapping doubles, then
// the file grows in 16 MiB steps once it is past 16 MiB).
//
// # Queries for the CLI and the HTTP API
//
// Every result slice is ordered oldest first (ascending ID within a room).
//
//	db.Recent(room, n)             // the n newest messages (join replay)
//	db.Before(room, id, n)         // the n newest with ID < id (paging back)
//	db.After(room, id, n)          // the n oldest with ID > id (resume);
//	                               // complete=false → report a gap
//	db.Query(store.Query{Room: "lobby", User: "bob", Grep: "deploy",
//	        Since: t, Before: id, Limit: 100}) // filtered; more=true when
//	                               // further matches exist beyond Limit
//	db.Rooms()                     // every room: message count, first/last ID
//	db.RoomStats()                 // the same as []chat.RoomStat (chat.RoomLister), rooms only
//	db.Conversations(account)      // account's direct conversations, newest first
//	db.Redact(room, id)            // delete one message; reports whether it existed
//	db.DeleteUser(name)            // delete every message of a user; returns the count
//	db.Prune(now)                  // apply retention now; returns the count
//	db.Check()                     // full consistency check (slow: reads everything)
//	db.Verify(ctx, report)         // the same, every problem to report (history -verify)
//	db.CorruptRecords()            // corrupt records the reads skipped since Open
//	db.Describe(ch); db.Collect(ch) // the store's /metrics series (prometheus.Collector)
//	db.NameOwners()                // account id → owned name (chat.NameOwners)
//	db.SetNameOwner(id, name)      // durably; replaces the account's previous name
//	db.Restrictions()              // every ban and mute (chat.ModerationStore)
//	db.PutRestriction(r)           // durably; replaces the same kind, room and target
//	db.DeleteRestriction(k, room, t) // durably; reports whether there was one
//	db.RoomSettings()              // room → topic, slow mode
//	db.PutRoomSettings(room, s)    // durably; the zero value deletes
//	db.AppendAudit(e)              // durably, to the audit log
//	db.Audit(room, since, n)       // the n newest entries at or after since, oldest first
//
// Recent, Before and After seek with a cursor and touch only the pages they
// return, whatever the room's size (about 20 µs for 50 messages in a room of
// a million). Recent and Before do not say whether older messages exist: ask
// for n+1 and drop the extra one. Query scans one room backwards (or
// forwards from After), rejecting most records on their raw bytes without
// decoding them, and stops as soon as Limit+1 matches are found or at the
// first message older than Since; a filter that matches nothing reads the
// whole room (about 50 ms per million messages). Before == 0 in Before and
// Query means "no bound".
//
// Maintenance (Redact, DeleteUser, Prune) reads in read transactions and
// deletes in write transactions of at most 2000 records, and only where
// there is something to delete, so it never holds bbolt's single writer
// lock — which the committer needs — for more than a few milliseconds.
//
// # Corrupt records
//
// Every message record written carries a CRC-32C. A record that fails it —
// or does not decode, or whose ID or room disagree with its key and bucket
// — is never served, and does not take its room down either: Recent,
// Before, After, Query, retention and DeleteUser skip it and go on, and
// report it: an error log line naming the file, room and ID, and the
// counter moonchat_store_corrupt_records_total (Collect), once per
// record per process. After reports a skipped record right after `after`
// as a gap (complete = false). DeleteUser deletes the rest, then returns an
// error wrapping ErrCorrupt (a record it cannot read may be the user's).
// Open reads each room's first and last record and treats a bad one the
// same way: the server starts. Damage to bbolt's own pages (branch pages,
// page headers) cannot be skipped: reads then fail with ErrCorrupt. Verify
// (`moonchat history -verify`) reads everything and reports every problem;
// a bad record as a *CorruptRecord, whose error wraps ErrChecksum when its
// checksum did not match. Version 1 records (written before checksums)
// are read as before; only damage that breaks their decoding is found.
// Owned-name and moderation entries carry a CRC-32C too (over their key
// and bytes); a bad one is left out by the reads (logged, counted in the
// same series) and reported by Verify. A bad restriction left out is a
// ban or mute not enforced until it is made again: the log line names it.
//
// # Direct conversations
//
// The direct conversation of two accounts (issue 14) is stored exactly like
// a room, under its chat.ConversationKey ("@dm:" and the two escaped ids,
// which no room name can be): the same buckets, records, ids and
// invariants, so Append, the reads, Redact, retention, DeleteUser and
// Verify cover conversations too (retention applies to them as to rooms).
// Append refuses a malformed "@dm:" key. Rooms lists them with the rooms;
// RoomStats (GET /api/rooms) and Query over every room (Room "") leave
// them out: only a Query, Recent, Before or After naming the key reads one.
// Conversations lists an account's (direct.go; it reads the meta of every
// conversation on the server, not the rooms).
//
// # Replica mode (cluster)
//
// In cluster mode (issue 15, docs/cluster.md) ids are assigned by the
// cluster's log (package cluster) and each node's file is a replica of
// it (replica.go). Open it with Options{Replica: true}; the node's
// consumer then hands every log record to ApplyBatch or Apply, in log
// order:
//
//	db.ApplyBatch(recs)            // the records queued up, in one transaction
//	db.Apply(seq, key, msgs, 0)    // a batch, stored with the ids it carries
//	db.Apply(seq, key, nil, id)    // a redaction (of an absent id: a no-op)
//	db.Applied()                   // the log position of the last record applied
//	db.LastID(key)                 // the room's highest id ever (cluster.Config.Floor)
//
// Both go through the group committer: the records and the last one's
// position are one fsynced transaction (all of a batch or none of it),
// so a kill -9 loses nothing applied, and a record at or below Applied
// (a consumer repeating itself after a crash) is a no-op. An id past
// the room's LastID+1 leaves a hole that After reports as a gap
// (recorded as pruned when the room holds no record); an id at or below
// LastID is refused with ErrDiverged, applying nothing of its batch.
// Append on a replica fails with ErrReplica: only the log numbers
// messages, so a wiring mistake cannot fork the ids. Retention, Redact
// and DeleteUser work on a replica as on any file, on this node's copy
// only (a redaction meant for every node goes through the log).
//
// A replica file opened writable without Options.Replica (a node whose
// [cluster] section went missing) is refused with ErrReplica before
// anything is written: taking posts on its own would fork the cluster's
// ids. Options.Detach opens it as a single-node history on purpose, for
// good (its ids go on from its own; logged as a warning). Read-only
// opens (`moonchat history`) read a replica file as any other. A
// single-node file opened with Options.Replica becomes a replica, its
// rooms keeping their ids (the log numbers after them through Floor).
//
// # Moderation
//
// Restrictions, room settings and the audit log (moderation.go) are read
// once by the chat server and written through. A writable Open removes
// the restrictions whose expiry has passed (and logs how many); between
// Opens the chat server ignores expired ones itself. The audit log is
// never pruned. Every string field is bounded (MaxAddrLen, MaxByLen,
// MaxReasonLen, MaxTopicLen, MaxActionLen, MaxAuditTargetLen, and
// MaxAccountIDLen, MaxOwnedNameLen for targets), as is slow mode
// (MaxSlow); writes beyond them fail with ErrInvalidRestriction,
// ErrInvalidRoomSettings or ErrInvalidAudit.
//
// # File layout (format 4, and 5 for a replica)
//
// The bbolt file holds nine top-level buckets:
//
//	"meta"                      "format" → uint32 big-endian, the layout version
//	                            (4; 5 for a replica of the cluster's log)
//	                            "applied" → uint64 big-endian, the log position
//	                            of the last record applied (format 5 only;
//	                            0 = none yet)
//	"rooms"/<room>              one nested bucket per room (or direct
//	                            conversation: see above):
//	                            8-byte big-endian ID → message record
//	"roommeta"                  <room> → room meta record
//	"kv"/<script>               one nested bucket per script (e.g. "karma.lua"):
//	                            key → value, both raw bytes
//	"names"                     account id → owned-name entry (chat.NameOwners;
//	                            layout and invariants at type nameOwners, names.go)
//	"restrictions"              kind, room, target → ban or mute entry
//	"roomsettings"              room → topic and slow mode entry
//	"audit"                     time + sequence → audit entry (the three:
//	                            chat.ModerationStore; layouts and invariants
//	                            at bucketRestrictions, moderation.go)
//	"ignores"                   account id → its ignore list (chat.IgnoreStore;
//	                            layout and invariants at bucketIgnores,
//	                            ignores.go). Only added, so no new format:
//	                            Open adds it to any file it opens for
//	                            writing; a file without it has no lists.
//
// Format 2 is format 1 whose rooms may also hold version 2 records; format
// 3 is format 2 whose rooms may also hold version 3 records, plus the
// "names" bucket; format 4 is format 3 plus the three moderation buckets;
// format 5 is format 4 plus meta/"applied": a replica (see Replica mode).
// Only a replica file is format 5 (a single-node file stays 4, and Detach
// makes a replica 4 again, deleting "applied"), so that a moonchat
// without replicas refuses a replica file with ErrFormat rather than
// appending to it as a single node. "applied" is present if and only if
// the format is 5, 8 bytes long (Open and Verify check it: ErrCorrupt).
// This moonchat reads all five; opening a format 1 to 3 file for writing
// rewrites only the marker and adds the buckets it lacks (old records
// stay as they are), so that an older moonchat refuses the file with
// ErrFormat rather than calling newer records corrupt or dropping bans.
// Nothing else changed: an older file opened read-only reads as it is
// (format 1 and 2 own no names; formats 1 to 3 hold no moderation data).
//
// Message record, version 3 (written since moonchat stores the sender's
// account; all integers big-endian; uvarint as in encoding/binary):
//
//	offset  size    field
//	0       1       record version = 3
//	1       8       ID (equals the key)
//	9       8       Time: Unix nanoseconds (int64), UTC
//	17      1       flags: bit 0 = Action (a /me action), bit 1 = Account
//	                (the sender has an account: the account fields follow
//	                Text); bits 2-7 are 0
//	18      uvarint len(Room), then Room (equals the bucket name)
//	...     uvarint len(User), then User
//	...     uvarint len(Text), then Text
//	...     only with flag bit 1 (chat.Message.Account; a guest has none):
//	        uvarint len(ID), then ID     0 to MaxAccountIDLen bytes (empty:
//	                                     a guest whose session was granted roles)
//	        uvarint number of roles      0 to MaxRoles
//	        per role: uvarint len(role), then the role (1 to MaxRoleLen bytes)
//	end-4   4       CRC-32C (Castagnoli) of every byte before it; nothing follows
//
// A guest's version 3 record is its version 2 record with version 3 (and
// its checksum). Roles read back in the order stored; no roles read back
// as a nil slice.
//
// Message record, version 2 (read, never written since version 3; Account
// is nil): version 3 without the account fields, with record version = 2
// and flag bits 1-7 all 0.
//
// Message record, version 1 (read, never written; no checksum, Action is
// false):
//
//	offset  size    field
//	0       1       record version = 1
//	1       8       ID (equals the key)
//	9       8       Time: Unix nanoseconds (int64), UTC
//	17      uvarint len(Room), then Room (equals the bucket name)
//	...     uvarint len(User), then User
//	...     uvarint len(Text), then Text; nothing may follow
//
// Room meta record, version 1:
//
//	0       1       meta version = 1
//	1       8       LastID: the highest ID ever assigned in the room
//	9       8       Pruned: the highest ID removed by retention (0 = none)
//	17      8       Count: the number of records in the room's bucket
//
// Invariants (Check verifies them; every write transaction keeps them):
//
//  1. "rooms"/R exists if and only if "roommeta"/R exists.
//  2. Every key k in "rooms"/R is 8 bytes and Pruned < k <= LastID; its
//     record's ID is k and its Room is R, and a version 2 or 3 record's
//     checksum matches. (A record breaking only the second half is a
//     corrupt record, skipped by reads; a key outside (Pruned, LastID]
//     means a damaged room: Open refuses the file when its spot check
//     meets one, as new IDs could overwrite stored messages.)
//  3. Count is the number of keys in "rooms"/R.
//  4. LastID never decreases: Append assigns LastID+1, LastID+2, ... in the
//     same transaction that stores the records, so IDs keep increasing across
//     restarts even after the newest messages were redacted or pruned. In a
//     replica, Apply stores only ids above LastID (with holes where the log
//     dropped records) and raises LastID to the highest.
//  5. Pruned never decreases; retention removes records only from the oldest
//     end, so every ID <= Pruned is gone for good.
//
// Readers accept every record version they know and reject others with
// ErrCorrupt; a writer only ever writes the newest version. A new field means
// a new record version, never a reinterpretation of an old one.
package store
