/* Event records and log entries: the bytes that the replicated log carries.
 *
 * An event record is what a ship's log keeps for one state-changing event:
 *
 *     u8 version | u64 sid | u64 number | u8 kind | u8 prev_hash[32] |
 *     u64 alarm_ns | seal of (u64 time_ns | u8 entropy[32] | payload)
 *
 * The seal (crypto/seal.h) is made under the ship's key with the 58 bytes
 * before it as associated data, so the record's identity (ship, number,
 * kind, previous hash, alarm) is readable, for the store to keep its heads
 * and alarms without keys, but cannot be changed, and the event itself is
 * unreadable without the master key. alarm_ns is the ship's alarm as it
 * stands after the event (0: none), so the log alone says when every ship
 * wants to be woken. Versions 1 and 2 (written before sealing) were
 *
 *     u8 version | u64 sid | u64 number | u64 time_ns | u8 entropy[32] |
 *     u8 kind | u8 prev_hash[32] | [u64 alarm_ns] | u32 payload_len | payload
 *
 * (version 1 has no alarm_ns) and are still read.
 *
 * prev_hash is the BLAKE2b-256 hash of the ship's previous record, sealed
 * bytes and all (zeros for its first), so each ship's log is a hash chain
 * that `fsck` can check without keys. Replaying a record gives the program
 * exactly the event it saw the first time: same number, time, entropy and
 * payload.
 *
 * A log entry is one raft command. It starts with u8 version | u8 type and
 * holds one of:
 *   SHIP_NEW     the record of a new ship (its sid is assigned on apply);
 *                written by older versions, still applied
 *   SHIP_BATCH   one or many new ships of one program: u16 program_len |
 *                program | u16 name_len | name | u8 flags | u64 created_ns |
 *                u64 idle_timeout_ms | u64 freeze_timeout_ms | [u8 acks] |
 *                [u64 account] | [u32 args_len | args | u32 env_len | env] |
 * u32 first | u32 count | key | u8 public_key[32] * count. acks is there with
 * RECORD_BATCH_ACKS, account with RECORD_BATCH_ACCOUNT (else the anonymous
 * account). The lists are there only with RECORD_BATCH_ARGS: the program's
 * arguments and added environment, string lists (lib/strlist.h) that every ship
 * of the entry gets. freeze_timeout_ms is 0 for the host's default and
 *                UINT64_MAX for never.
 *                Ship i's secret seed is derived from the 32-byte batch key
 *                and first + i (record_ship_seed), so an entry costs 32
 *                bytes a ship; the public keys are there so that no host
 *                has to derive a key pair to learn a ship's id. With
 *                RECORD_BATCH_SEALED key is a seal of the batch key
 *                (SEAL_USE_BATCH); without, written by older versions, the
 *                batch key itself. Each ship's store row keeps u32 index |
 *                that seal as its secret (record_ship_secret opens it), so
 *                no secret key is ever stored readable. With
 *                RECORD_BATCH_PREFIX ship i is named "<name>-<first + i>",
 *                else name is the one ship's name ("" for none). An entry
 *                creates all its ships or, if any id or name is taken,
 *                none.
 *   EVENTS       u32 n | (u32 len | event record)*, from any number of ships:
 *                one entry per batch is berth's group commit
 *   SNAPSHOT     u64 sid | u64 number | u8 epoch[32] | bytes; written by
 *                older versions, still applied
 *   SNAPSHOT_SEALED  u64 sid | u64 number | u8 epoch[32] | seal of the
 *                bytes, with "snap" | sid | number | epoch as associated data
 *   SHIP_REMOVE  u64 sid
 *   TOKEN        a token of the admin API added or revoked: u8 op, then
 *                for RECORD_TOKEN_ADD u8 scope | u64 account |
 *                u64 created_ns | u8 hash[32] | u16 name_len | name
 *                (only the token's hash; its id derives from it), and for
 *                RECORD_TOKEN_REVOKE u16 id_len | id
 *   ACCOUNT      an account made, disabled, enabled or removed, its
 *                limits and caps set, or anonymous creation turned on
 *                or off (struct record_account)
 *   USAGE        what ships' programs used on the leader (CPU, memory,
 *                wakes, requests) since its last USAGE entry (struct
 *                record_usage_item; record_encode_usage)
 *   KEY_ROTATE   a new master key: u8 old_id[32] (the hex id of the master
 *                key it replaces) | the new master key wrapped under the
 *                old (crypto/keywrap.h, KEYWRAP_SIZE bytes) | u32 count |
 *                data keys 1..count, each wrapped under the new master key
 *                (the last one new, current from then on); the store keeps
 *                the data keys, the host replaces its master key
 *                (docs/security.md, "Key rotation")
 *   SHIP_IMPORT  a ship restored from an export, whole, with the next sid:
 *                core/export.h
 * Applying an entry is idempotent: an event at or below its ship's last
 * number, a snapshot not newer than the stored one, a second SHIP_NEW with
 * the same id and a SHIP_REMOVE of an absent ship change nothing. That makes
 * replay after a crash and a retried proposal safe. */
#ifndef BERTH_CORE_RECORD_H
#define BERTH_CORE_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/caps.h"
#include "core/quota.h"
#include "crypto/seal.h"
#include "lib/buf.h"
#include "proto/frame.h"

#define RECORD_VERSION 3
#define RECORD_HASH_SIZE 32
/* The readable part of an event record, the seal's associated data. */
#define RECORD_HEAD_SIZE (1 + 8 + 8 + 1 + 32 + 8)
/* What a record adds to its payload, sealed. */
#define RECORD_HEADER_SIZE                                                     \
    (RECORD_HEAD_SIZE + SEAL_OVERHEAD + 8 + FRAME_ENTROPY_SIZE)

/* One event record; payload points into memory the caller keeps. */
struct record_event {
    uint64_t sid;
    uint64_t number;
    uint64_t time_ns;
    uint8_t entropy[FRAME_ENTROPY_SIZE];
    uint8_t kind;
    uint8_t prev_hash[RECORD_HASH_SIZE];
    uint64_t alarm_ns;
    const uint8_t *payload;
    size_t payload_len;
    /* Set by record_decode_event when time_ns, entropy and payload are
     * sealed (then zero and NULL): record_open_event reads them. */
    bool sealed;
};

/* Append the record rec to out, sealed under keys (NULL: unsealed) and
 * own, the ship's own key (crypto/seal.h; NULL for a ship made before
 * ships had one), with nonce (SEAL_NONCE_SIZE random bytes; unread when
 * unsealed). The caller keeps every pointer. 0 or BERTH_ENOMEM. */
int record_encode_event(struct buf *out, const struct record_event *rec,
                        const struct seal_keys *keys, const uint8_t *own,
                        const uint8_t *nonce);

/* Decode an event record without keys: everything but a sealed record's
 * time, entropy and payload, for which rec->sealed is set. payload points
 * into p. 0 or BERTH_EMALFORMED. */
int record_decode_event(const uint8_t *p, size_t len, struct record_event *rec);

/* Decode an event record whole, opening its seal with keys and own (as
 * for record_encode_event) into plain
 * (emptied first; the caller owns it), where payload then points. Returns
 * 0, BERTH_EMALFORMED, BERTH_ECORRUPT when the seal does not open (the
 * record was altered, or keys lack its key) or BERTH_ENOMEM. */
int record_open_event(const uint8_t *p, size_t len,
                      const struct seal_keys *keys, const uint8_t *own,
                      struct buf *plain, struct record_event *rec);

/* Hash encoded record bytes into out (RECORD_HASH_SIZE bytes). */
void record_hash(const uint8_t *p, size_t len, uint8_t *out);

/* Compute the checksum of a ship's stored snapshot into out
 * (RECORD_HASH_SIZE bytes): BLAKE2b-256 over a label (one for sealed
 * bytes, one for plain), the ship's sid, the number of the last event the
 * snapshot stands for, the epoch, chain (the hash of that event's record,
 * which the next record's prev_hash holds) and the snapshot's bytes. A
 * snapshot whose bytes, place or link to the log were changed fails it. */
void record_snapshot_sum(uint64_t sid, uint64_t number, const uint8_t *epoch,
                         const uint8_t *chain, bool sealed, const uint8_t *data,
                         size_t len, uint8_t *out);

enum record_entry_type {
    RECORD_ENTRY_SHIP_NEW = 1,
    RECORD_ENTRY_EVENTS = 2,
    RECORD_ENTRY_SNAPSHOT = 3,
    RECORD_ENTRY_SHIP_REMOVE = 4,
    RECORD_ENTRY_SHIP_BATCH = 5,
    RECORD_ENTRY_SNAPSHOT_SEALED = 6,
    RECORD_ENTRY_TOKEN = 7,
    RECORD_ENTRY_KEY_ROTATE = 8,
    RECORD_ENTRY_ACCOUNT = 9,
    RECORD_ENTRY_USAGE = 10,
    RECORD_ENTRY_SHIP_DESTROY = 11,
    RECORD_ENTRY_MAIL = 12,
    RECORD_ENTRY_SHIP_RESET = 13,
    RECORD_ENTRY_SHIP_SEEDS = 14,
    RECORD_ENTRY_SHIP_RESIZE = 15,
    RECORD_ENTRY_SHIP_BLOCK = 17,
    /* A ship restored from an export (core/export.h). */
    RECORD_ENTRY_SHIP_IMPORT = 18,
};

/* What a SHIP_RESIZE entry changes (its which). */
#define RECORD_RESIZE_MEMORY 0x01
#define RECORD_RESIZE_CPU 0x02
#define RECORD_RESIZE_PIDS 0x04
#define RECORD_RESIZE_STORAGE 0x08
#define RECORD_RESIZE_ALL 0x0f

/* A SHIP_RESIZE entry: u64 sid | u8 which | u64 memory_bytes |
 * u32 cpu_millis | u32 pids | u64 storage_bytes. It rewrites the ship's
 * own caps in its sandbox (core/sandbox.h: memory, CPU, pids, and its
 * storage budget), each only where which says so (0: none of its own);
 * the others stay. A ship that is gone is left alone. The leader then
 * puts the caps in force on the running program (core/caps.h). */
struct record_resize {
    uint64_t sid;
    uint8_t which; /* RECORD_RESIZE_* */
    uint64_t memory_bytes;
    uint32_t cpu_millis;
    uint32_t pids;
    uint64_t storage_bytes;
};

/* Append a SHIP_RESIZE entry; 0 or BERTH_ENOMEM. */
int record_encode_ship_resize(struct buf *out, const struct record_resize *r);

/* Decode a SHIP_RESIZE entry; 0 or BERTH_EMALFORMED (also for an unknown
 * bit in which). */
int record_decode_ship_resize(const uint8_t *p, size_t len,
                              struct record_resize *r);

/* A SHIP_RESET entry: u64 sid | u64 last_event. The ship's state returns to
 * empty (a resetting lifetime came due): its events, snapshots and alarm
 * go, and its log starts again from event 1. It applies only while the
 * ship's last event is still last_event, so an event that came in between
 * keeps the state, on every host alike. */
int record_encode_ship_reset(struct buf *out, uint64_t sid,
                             uint64_t last_event);

/* Decode a SHIP_RESET entry; 0 or BERTH_EMALFORMED. */
int record_decode_ship_reset(const uint8_t *p, size_t len, uint64_t *sid,
                             uint64_t *last_event);

/* A SHIP_BLOCK entry: u64 sid | u8 blocked (1 or 0). The operator cuts a
 * ship off, or lets it back: while blocked, the front door answers its
 * requests 403 and no message reaches it or leaves it. */
int record_encode_ship_block(struct buf *out, uint64_t sid, bool blocked);

/* Decode a SHIP_BLOCK entry; 0 or BERTH_EMALFORMED. */
int record_decode_ship_block(const uint8_t *p, size_t len, uint64_t *sid,
                             bool *blocked);

/* An event's durable effects (docs/design.md, "Children and mail").
 *
 * What an event does beyond its own ship (a child made, a ship destroyed,
 * mail for a ship) must happen if and only if the event is logged, on every
 * host alike. So the leader puts these effects in the same EVENTS entry as
 * the event's record, right behind it, as an effects item:
 *
 *     u8 RECORD_EFFECTS_MARK | u64 sid | u64 number | u64 mail_taken |
 *     (u32 len | entry)* (rest)
 *
 * where each entry is a whole log entry of type SHIP_BATCH (a child, with
 * RECORD_BATCH_PARENT), SHIP_DESTROY or MAIL. The mark cannot start an event
 * record (versions 1 to 3). Applying an EVENTS entry applies an effects item
 * only when the record of ship sid's event number just before it was
 * applied then (not one applied before: a retried proposal does nothing
 * twice); mail_taken (0: none) is the mail that event delivered, which the
 * apply deletes. An item with number 0 stands alone: it drops mail
 * mail_taken that its ship's program refused, and applies only when that
 * mail is still there. */
#define RECORD_EFFECTS_MARK 0xE0

/* Return whether an EVENTS entry holds an effects item (which makes its
 * apply all or nothing). */
bool record_events_have_effects(const uint8_t *p, size_t len);

/* A decoded effects item; its entries are walked with record_effects_next. */
struct record_effects {
    uint64_t sid;
    uint64_t number;
    uint64_t mail_taken;
    const uint8_t *entries;
    size_t entries_len;
};

/* Append an effects item to out: the header, then entries_len bytes of
 * entries (each u32 len | entry, as record_effects_add makes them). 0,
 * BERTH_ENOMEM. The caller keeps entries. */
int record_encode_effects(struct buf *out, const struct record_effects *fx);

/* Append one entry (len bytes at entry) to a list of effects entries in
 * out; 0, BERTH_ENOMEM or BERTH_ETOOBIG. */
int record_effects_add(struct buf *out, const uint8_t *entry, size_t len);

/* Decode an effects item (an item of an EVENTS entry that starts with
 * RECORD_EFFECTS_MARK), checking that its entries split whole; 0 or
 * BERTH_EMALFORMED. */
int record_decode_effects(const uint8_t *p, size_t len,
                          struct record_effects *fx);

/* Walk the entries of a decoded effects item: 0 with *entry and *len set,
 * 1 at the end, or BERTH_EMALFORMED. *off starts at 0. */
int record_effects_next(const struct record_effects *fx, size_t *off,
                        const uint8_t **entry, size_t *len);

/* Who destroys a ship, and so whose key signs a SHIP_DESTROY. */
enum record_destroy_by {
    RECORD_DESTROY_SELF = 1,     /* the ship itself: its own key */
    RECORD_DESTROY_PARENT = 2,   /* its parent: the parent's key */
    RECORD_DESTROY_RELEASED = 3, /* its parent let an ephemeral child go */
};

/* Bytes of a destroy's signature (ed25519). */
#define RECORD_SIGNATURE_SIZE 64

/* A SHIP_DESTROY entry: u64 sid | u8 by | u8 signature[64], the signature
 * by the key that by names of record_destroy_message for the ship's id. */
struct record_destroy {
    uint64_t sid;
    uint8_t by; /* enum record_destroy_by */
    uint8_t signature[RECORD_SIGNATURE_SIZE];
};

/* Append a SHIP_DESTROY entry to out; 0 or BERTH_ENOMEM. */
int record_encode_destroy(struct buf *out, const struct record_destroy *d);

/* Decode a SHIP_DESTROY entry; 0 or BERTH_EMALFORMED (also for an unknown
 * by). */
int record_decode_destroy(const uint8_t *p, size_t len,
                          struct record_destroy *d);

/* Write to out (at least RECORD_DESTROY_MESSAGE_MAX bytes) the message a
 * destroy of the ship with id (NUL-terminated) signs, and return its
 * length. */
#define RECORD_DESTROY_MESSAGE_MAX 96
size_t record_destroy_message(const char *id, uint8_t *out);

/* A MAIL entry: u64 target | u8 kind | body (rest): an event for ship
 * target (a FRAME_EVENT_* kind) that the leader delivers once; body is the
 * event's payload as a seal (record_seal_mail). The decoder points body
 * into the entry. */
struct record_mail {
    uint64_t target;
    uint8_t kind;
    const uint8_t *body;
    size_t len;
};

/* Append to out the body of mail of kind for ship target: the len bytes
 * at p sealed under the target's key (keys and own, the target's own key
 * or NULL, as for record_encode_event; keys NULL: unsealed, as the apply
 * of an entry makes mail, having no keys) with nonce (SEAL_NONCE_SIZE
 * bytes; unread when unsealed) and "berth mail" | kind as associated data.
 * 0 or BERTH_ENOMEM. */
int record_seal_mail(struct buf *out, const struct seal_keys *keys,
                     const uint8_t *own, uint64_t target, uint8_t kind,
                     const uint8_t *nonce, const uint8_t *p, size_t len);

/* Append to out the payload of a mail body (len bytes at p) of kind for
 * ship target, whose own key is own (or NULL); 0, BERTH_ECORRUPT when it does
 * not open, BERTH_EMALFORMED or BERTH_ENOMEM. */
int record_open_mail(struct buf *out, const struct seal_keys *keys,
                     const uint8_t *own, uint64_t target, uint8_t kind,
                     const uint8_t *p, size_t len);

/* Append a MAIL entry to out; 0 or BERTH_ENOMEM. The caller keeps m. */
int record_encode_mail(struct buf *out, const struct record_mail *m);

/* Decode a MAIL entry; 0 or BERTH_EMALFORMED. */
int record_decode_mail(const uint8_t *p, size_t len, struct record_mail *m);

/* One ship's measures in a USAGE entry: what its programs used on the
 * leader since the last USAGE entry (docs/design.md, "Usage"). */
struct record_usage_item {
    uint64_t sid;
    uint64_t cpu_us;              /* CPU time of its programs, microseconds */
    uint64_t memory_peak_bytes;   /* the most memory measured */
    uint64_t memory_byte_seconds; /* memory held while running, integrated */
    uint32_t wakes;               /* programs started */
    uint32_t requests;            /* requests answered */
};

/* The bytes of one item in a USAGE entry. */
#define RECORD_USAGE_ITEM_SIZE (8 * 4 + 4 * 2)

/* The most items one USAGE entry carries. */
#define RECORD_USAGE_MAX 4096

/* Append a USAGE entry of n items (1 to RECORD_USAGE_MAX) to out:
 * u32 n | (u64 sid | u64 cpu_us | u64 memory_peak_bytes |
 * u64 memory_byte_seconds | u32 wakes | u32 requests) * n. 0,
 * BERTH_ENOMEM, or BERTH_EINVAL for a count out of range. The caller keeps
 * items. */
int record_encode_usage(struct buf *out, const struct record_usage_item *items,
                        size_t n);

/* Check a USAGE entry and set *n to its item count; 0 or BERTH_EMALFORMED.
 * Its items are then read with record_usage_item. */
int record_decode_usage(const uint8_t *p, size_t len, size_t *n);

/* Read item i (below the count record_decode_usage gave) of a USAGE entry
 * that decoded into *out. */
void record_usage_item(const uint8_t *p, size_t i,
                       struct record_usage_item *out);

/* What the caps part of an ACCOUNT entry's LIMIT changes (its caps_which). */
#define RECORD_ACCOUNT_CAPS_MEMORY 0x01
#define RECORD_ACCOUNT_CAPS_CPU 0x02
#define RECORD_ACCOUNT_CAPS_PIDS 0x04
#define RECORD_ACCOUNT_CAPS_ALL 0x07

/* The fields of an ACCOUNT entry (core/account.h): u8 op | u64 account |
 * u8 value | u64 created_ns | u8 hash[32] | u16 name_len | name, and for
 * LIMIT u64 limits[QUOTA__COUNT] (core/quota.h: a limit, QUOTA_NONE,
 * QUOTA_DEFAULT for the host's, or QUOTA_KEEP to leave it), then, when
 * the entry sets any of the account's caps (core/caps.h), u8 caps_which |
 * u64 memory_bytes | u32 cpu_millis | u32 pids: the caps named in
 * caps_which (RECORD_ACCOUNT_CAPS_*, never 0 when there) take the values
 * (0: none), the others stay. A LIMIT without that part, as every LIMIT
 * was before accounts had caps, leaves the caps as they are, and one that
 * changes no cap is written without it, byte for byte as before. NEW
 * carries the name, the time and the hash of the account's token (its id
 * is assigned on apply, one above the last given, never reused); DISABLE,
 * ENABLE and REMOVE the account's id; ANONYMOUS the value (1: anonymous
 * creation on). The decoder points name into the entry, unterminated. */
struct record_account {
    uint8_t op; /* enum account_op */
    uint64_t account;
    uint8_t value;
    uint64_t created_ns;
    uint8_t hash[32];
    const char *name; /* "" for none */
    size_t name_len;
    uint64_t limits[QUOTA__COUNT]; /* LIMIT only */
    uint8_t caps_which;            /* LIMIT only: RECORD_ACCOUNT_CAPS_* */
    struct caps caps;              /* LIMIT only: those of caps_which */
};

/* Append an ACCOUNT entry of a to out; 0, BERTH_ENOMEM, or BERTH_EINVAL
 * for an unknown op, a name over 65535 bytes, or an unknown bit in
 * caps_which. The caller keeps a. */
int record_encode_account(struct buf *out, const struct record_account *a);

/* Decode an ACCOUNT entry into *a, whose name points into p; 0 or
 * BERTH_EMALFORMED (also for an unknown op, or a caps part with no or an
 * unknown bit in caps_which). The caller keeps p. */
int record_decode_account(const uint8_t *p, size_t len,
                          struct record_account *a);

/* The length of a master key's id in a KEY_ROTATE entry: its hex, as
 * crypto/master.h's master_key_id writes it. */
#define RECORD_KEY_ID_SIZE 32

/* The fields of a KEY_ROTATE entry; the decoder points master and keys
 * into the entry. */
struct record_key_rotate {
    char old_id[RECORD_KEY_ID_SIZE]; /* the rotated master key's id */
    const uint8_t *master;           /* the new master key, wrapped under
                                        the old (KEYWRAP_SIZE bytes) */
    uint32_t count;                  /* data keys 1..count, the last new */
    const uint8_t *keys; /* count wrapped data keys, under the new master */
};

/* Append a KEY_ROTATE entry of r to out; 0, BERTH_ENOMEM, or BERTH_EINVAL
 * for a count of 0 or over SEAL_KEYS_MAX. The caller keeps r. */
int record_encode_key_rotate(struct buf *out,
                             const struct record_key_rotate *r);

/* Decode a KEY_ROTATE entry into *r, whose pointers point into p; 0 or
 * BERTH_EMALFORMED (also for a count of 0 or over SEAL_KEYS_MAX). */
int record_decode_key_rotate(const uint8_t *p, size_t len,
                             struct record_key_rotate *r);

/* What a TOKEN entry does. */
#define RECORD_TOKEN_ADD 1
#define RECORD_TOKEN_REVOKE 2

/* The fields of a TOKEN entry. The encoder takes the strings with their
 * lengths; the decoder points them into the entry, unterminated. */
struct record_token {
    uint8_t op;          /* RECORD_TOKEN_ADD or RECORD_TOKEN_REVOKE */
    uint8_t scope;       /* add: enum auth_scope (core/auth.h) */
    uint64_t account;    /* add: 0 for none (the operator's token) */
    uint64_t created_ns; /* add */
    uint8_t hash[32];    /* add: the token's hash */
    const char *name;    /* add: "" for none; revoke: the token's id */
    size_t name_len;
};

/* Append a TOKEN entry to out; 0, BERTH_ENOMEM, or BERTH_EINVAL for an
 * unknown op or a name over 65535 bytes. The caller keeps t. */
int record_encode_token(struct buf *out, const struct record_token *t);

/* Decode a TOKEN entry into *t, whose name points into p; 0 or
 * BERTH_EMALFORMED. The caller keeps p. */
int record_decode_token(const uint8_t *p, size_t len, struct record_token *t);

/* Flags of a SHIP_BATCH entry. */
#define RECORD_BATCH_PREFIX 0x01
#define RECORD_BATCH_ARGS                                                      \
    0x02 /* set by the encoder when there are args or                          \
            env */

/* Set by the caller when the entry carries the ships' ack level (u8, right
 * after freeze_timeout_ms; core/gate.h); without it they take the host's
 * default. */
#define RECORD_BATCH_ACKS 0x04

/* Set by the encoder: the batch key is sealed (always, since sealing). */
#define RECORD_BATCH_SEALED 0x08

/* Set by the encoder when the ships belong to an account other than the
 * anonymous one: u64 account, right after the ack level's place. */
#define RECORD_BATCH_ACCOUNT 0x10

/* Set by the encoder for a spawned child (one ship): u64 parent (its sid) |
 * u8 lifetime | u64 lifetime_ms | u32 tag, right after the account's place.
 * The child is made only while its parent exists, and the parent gets a
 * CHILD event saying what came of it. */
#define RECORD_BATCH_PARENT 0x20

/* Set by the encoder when the ships have an access list (the ids of the
 * ships that may send to them, a string list): u32 access_len | access,
 * right after the parent's place. */
#define RECORD_BATCH_ACCESS 0x40

/* Set by the encoder when the ships have a sandbox (core/sandbox.h): u32
 * sandbox_len | sandbox, right after the access list's place. */
#define RECORD_BATCH_SANDBOX 0x80

/* The most bytes of a ship's stored secret: u32 index | a sealed key. */
#define RECORD_SECRET_MAX (4 + SEAL_OVERHEAD + 32)

/* The index of a stored secret whose seal holds the ship's own seed
 * rather than a batch key (record_ship_batch_secret), under the batch-key
 * key; and of one whose seal holds it under its parent's ship key (a child
 * that cannot outlive its parent: only its parent's key opens it). */
#define RECORD_SECRET_OWN UINT32_MAX
#define RECORD_SECRET_PARENT (UINT32_MAX - 1)

/* The most bytes of args and of env a SHIP_BATCH entry takes, each. */
#define RECORD_LIST_MAX (1024 * 1024)

/* The fields of a SHIP_BATCH entry; the decoder points the strings and the
 * public keys into the entry. */
struct record_ship_batch {
    const char *program;
    size_t program_len;
    const char *name;
    size_t name_len;
    uint8_t flags;
    uint64_t created_ns;
    uint64_t idle_timeout_ms;
    uint64_t freeze_timeout_ms;
    uint8_t acks;     /* with RECORD_BATCH_ACKS; else decoded as the default */
    uint64_t account; /* core/account.h; 0, anonymous, when not in the entry */
    uint64_t parent;  /* a spawned child's parent; 0: none */
    uint8_t lifetime; /* with a parent: proto/frame.h FRAME_LIFETIME_* */
    uint64_t lifetime_ms;
    uint32_t tag;
    const char *access; /* string list of ship ids; NULL or empty: none */
    size_t access_len;
    const uint8_t *sandbox; /* its blob (core/sandbox.h); NULL: none */
    size_t sandbox_len;
    const char *args; /* string list; NULL or empty when none */
    size_t args_len;
    const char *env; /* string list of "K=V"; NULL or empty when none */
    size_t env_len;
    uint32_t first;
    uint32_t count;
    uint8_t key[32]; /* the batch key: given to the encoder without seeds;
                        decoded only from an entry without
                        RECORD_BATCH_SEALED */
    const uint8_t *key_seal; /* decoded: the seal of the batch key */
    size_t key_seal_len;
    /* Given to the encoder: count * 32 bytes, each ship's own seed, which
     * makes the entry a SHIP_SEEDS one; NULL: one batch key. */
    const uint8_t *seeds;
    /* Given to the encoder with seeds for a child: its parent's own key,
     * under which (with the parent's sid) its seed is sealed; NULL: under
     * the batch-key key. Decoded: whether the seeds are sealed so. */
    const uint8_t *parent_own;
    bool in_parent;
    /* Decoded from a SHIP_SEEDS entry: count seals of seed_seal_len bytes,
     * each of one ship's seed; NULL for a SHIP_BATCH entry. */
    const uint8_t *seed_seals;
    size_t seed_seal_len;
    const uint8_t *public_keys; /* count * 32 bytes */
};

/* Append a SHIP_BATCH entry to out, its batch key sealed under keys (NULL:
 * unsealed) with nonce (SEAL_NONCE_SIZE random bytes); the caller keeps
 * every pointer. 0, BERTH_ENOMEM, BERTH_EINVAL (b->parent_own without a
 * parent) or BERTH_ETOOBIG (a string over its length
 * field, or args or env over RECORD_LIST_MAX).
 *
 * With b->seeds, the entry is a SHIP_SEEDS one: the same fields, then, in
 * place of the batch key's seal, u8 under (0: the batch-key key; 1: the
 * parent's ship key, b->parent_own) and count seals (each of one ship's
 * 32-byte seed, under that key, with "berth ship seed" and the ship's
 * public key as associated data, and a nonce derived from nonce and the
 * ship's place), then the public keys. Every ship made since ships have
 * keys of their own comes from one: its seed is its alone, so destroying
 * its row shreds it (crypto/seal.h). */
int record_encode_ship_batch(struct buf *out, const struct record_ship_batch *b,
                             const struct seal_keys *keys,
                             const uint8_t *nonce);

/* Decode a SHIP_BATCH or SHIP_SEEDS entry; 0 or BERTH_EMALFORMED, also
 * when args or env is not a string list. */
int record_decode_ship_batch(const uint8_t *p, size_t len,
                             struct record_ship_batch *b);

/* Write to out (RECORD_SECRET_MAX bytes) what the store keeps as the
 * secret of ship i (0-based) of batch b: u32 RECORD_SECRET_OWN | the seal
 * of its seed, from a SHIP_SEEDS entry; u32 index | the batch key's seal;
 * or, for an entry without RECORD_BATCH_SEALED, the 64-byte secret key.
 * Returns the number of bytes written. */
size_t record_ship_batch_secret(const struct record_ship_batch *b, uint32_t i,
                                uint8_t *out);

/* Recover a ship's 64-byte secret key (libsodium's: seed, then public key)
 * into sk from its stored secret (len bytes) and public_key (32), opening
 * the seal with keys. Returns 0, BERTH_ECORRUPT when it does not open or
 * does not make public_key's pair, or BERTH_EMALFORMED. */
int record_ship_secret(const struct seal_keys *keys, const uint8_t *secret,
                       size_t len, const uint8_t *public_key, uint8_t *sk);

/* Derive a ship's own key (crypto/seal.h, SEAL_OWN_KEY_SIZE bytes) into own
 * from its stored secret (len bytes) and public_key, as record_ship_secret
 * opens it. Returns 0; BERTH_ENOTFOUND for a ship made before ships had
 * keys of their own (seal its data with own NULL); or BERTH_ECORRUPT or
 * BERTH_EMALFORMED, as record_ship_secret. */
int record_ship_own_key(const struct seal_keys *keys, const uint8_t *secret,
                        size_t len, const uint8_t *public_key, uint8_t *own);

/* Write to out (RECORD_SECRET_MAX bytes) a stored secret that holds seed,
 * the key-pair seed of the ship of public_key, sealed under keys' batch-key
 * key with nonce (SEAL_NONCE_SIZE bytes), as a SHIP_SEEDS entry of a ship
 * without a parent seals it. Returns the bytes written, or 0 when out of
 * memory. The caller keeps every pointer. */
size_t record_ship_own_secret(const struct seal_keys *keys, const uint8_t *seed,
                              const uint8_t *public_key, const uint8_t *nonce,
                              uint8_t *out);

/* Whether a stored secret is sealed under the ship's parent's key. */
bool record_ship_secret_in_parent(const uint8_t *secret, size_t len);

/* Open a ship's stored secret (len bytes) of public_key, whatever its
 * kind: its signing key into sk (64 bytes; NULL: not wanted, which for a
 * ship with a seed of its own saves making the key pair) and, for a ship
 * with a seed of its own, its own key into own (SEAL_OWN_KEY_SIZE bytes),
 * setting *has_own. A secret sealed under the parent's key needs parent,
 * the parent's sid, and parent_own, its own key; other kinds ignore both.
 * Returns 0; BERTH_EINVAL when the secret is sealed under the parent's key
 * and parent_own is NULL; BERTH_ECORRUPT when it does not open or does not
 * make public_key's pair; or BERTH_EMALFORMED. The caller keeps every
 * pointer. */
int record_ship_open(const struct seal_keys *keys, const uint8_t *secret,
                     size_t len, const uint8_t *public_key, uint64_t parent,
                     const uint8_t *parent_own, uint8_t *sk, uint8_t *own,
                     bool *has_own);

/* Derive the 32-byte key pair seed of ship `index` of a batch from the
 * batch's 32-byte key. */
void record_ship_seed(const uint8_t *key, uint32_t index, uint8_t *seed);

/* Write the name of ship i (0-based) of batch b to out; 0, or BERTH_ETOOBIG
 * when it does not fit in size bytes. */
int record_ship_batch_name(const struct record_ship_batch *b, uint32_t i,
                           char *out, size_t size);

/* The fields of a SHIP_NEW entry. The encoder reads the strings as
 * NUL-terminated; the decoder points them into the entry, unterminated, and
 * sets the lengths. */
struct record_ship_new {
    const char *id;
    size_t id_len;
    const char *name; /* "" when unnamed */
    size_t name_len;
    const char *program;
    size_t program_len;
    uint64_t created_ns;
    uint64_t idle_timeout_ms;
    uint8_t public_key[32];
    uint8_t secret_key[64];
};

struct record_snapshot {
    uint64_t sid;
    uint64_t number;
    uint8_t epoch[RECORD_HASH_SIZE];
    const uint8_t *data;
    size_t len;
    bool sealed; /* decoded: data is a seal (record_open_snapshot) */
};

/* Append a whole entry to out; 0 or BERTH_ENOMEM. */
int record_encode_ship_new(struct buf *out, const struct record_ship_new *s);
int record_encode_ship_remove(struct buf *out, uint64_t sid);

/* Append a SNAPSHOT_SEALED entry of s (s->sealed unread) to out, sealed
 * under keys (NULL: unsealed) and own (as for record_encode_event) with
 * nonce (SEAL_NONCE_SIZE random bytes); the caller keeps every pointer. 0
 * or BERTH_ENOMEM. */
int record_encode_snapshot(struct buf *out, const struct record_snapshot *s,
                           const struct seal_keys *keys, const uint8_t *own,
                           const uint8_t *nonce);

/* Append to out the bytes of ship sid's snapshot at number, made by the
 * program of epoch, from its stored seal (len bytes at p), own being the
 * ship's own key or NULL. Returns 0,
 * BERTH_ECORRUPT when it does not open, BERTH_EMALFORMED or BERTH_ENOMEM. */
int record_open_snapshot(struct buf *out, const struct seal_keys *keys,
                         const uint8_t *own, uint64_t sid, uint64_t number,
                         const uint8_t *epoch, const uint8_t *p, size_t len);
/* Start an EVENTS entry in an empty out; add records with
 * record_events_add, which keeps the count in the header up to date. */
int record_events_begin(struct buf *out);
int record_events_add(struct buf *out, const uint8_t *rec, size_t len);

/* Cut an EVENTS entry built in out back to its first mark bytes, holding
 * count items, as it was before the items added since. */
void record_events_cut(struct buf *out, size_t mark, uint32_t count);

/* Return the number of records in an EVENTS entry built in out. */
uint32_t record_events_count(const struct buf *out);

/* Read the type of an entry: 0 and *type set, or BERTH_EMALFORMED. */
int record_entry_type(const uint8_t *p, size_t len, uint8_t *type);

/* Decode entries; pointers point into p. 0 or BERTH_EMALFORMED. A
 * snapshot decodes from a SNAPSHOT or a SNAPSHOT_SEALED entry. */
int record_decode_ship_new(const uint8_t *p, size_t len,
                           struct record_ship_new *s);
int record_decode_snapshot(const uint8_t *p, size_t len,
                           struct record_snapshot *s);
int record_decode_ship_remove(const uint8_t *p, size_t len, uint64_t *sid);

/* Walk the records of an EVENTS entry: *off starts at 0; returns 0 with
 * rec/rec_len set, 1 at the end, or BERTH_EMALFORMED. */
int record_events_next(const uint8_t *p, size_t len, size_t *off,
                       const uint8_t **rec, size_t *rec_len);

#endif
