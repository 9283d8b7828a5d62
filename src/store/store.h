/* The store: the replicated state machine's tables on local disk.
 *
 * The store holds what the log's entries build: one record per ship, each
 * ship's events by number, each ship's latest snapshot, and a few host-wide
 * counters (the last applied log index among them). It is SQLite in WAL mode
 * with synchronous=NORMAL: a commit does not fsync, because durability comes
 * from the raft log, which is replayed into the store on start; the store
 * only has to stay consistent after a crash, which WAL gives, and to be synced
 * (store_sync) before the log behind it is dropped. docs/design.md explains
 * the choice against LMDB with the figures from bench/store_bench.
 *
 * Event and snapshot bytes are opaque here: core/record.h encodes them.
 * Every function runs on the caller's thread and may block on disk. All
 * functions return 0 or a negative BERTH_E* code; on error the store's
 * message (store_errmsg) says what failed. Writes outside a batch commit
 * one by one.
 *
 * Batches. Applied log entries are not committed one by one: store/apply.c
 * runs each in a savepoint of one open transaction, the batch, and
 * store_flush commits it. An entry is visible to this store's reads at once
 * and reaches the file at the flush. A commit writes every page it touched
 * whole into the WAL, and entries to many ships touch a page or more per
 * event, so one commit for many entries writes a page once where it would
 * have been written once per entry. Nothing is lost in between: until the
 * flush, the entries are in the raft log, which replays them on start; a
 * snapshot, a sync, a compaction, a restore and close flush first. */
#ifndef BERTH_STORE_STORE_H
#define BERTH_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/caps.h"
#include "core/quota.h"
#include "lib/buf.h"

struct store;

#define STORE_ID_MAX 32
#define STORE_NAME_MAX 63
#define STORE_HASH_SIZE 32
#define STORE_SECRET_MAX 80

/* A ship's freeze_timeout_ms that says "never freeze", where 0 says "the
 * host's default". */
#define STORE_TIMEOUT_NEVER UINT64_MAX

/* The record of one ship. Fixed-size fields keep it cheap to copy; program,
 * args and env are owned by the struct and freed by store_ship_clear(). */
struct store_ship {
    uint64_t sid;                  /* host-internal number, never reused */
    char id[STORE_ID_MAX + 1];     /* public id, derived from the key */
    char name[STORE_NAME_MAX + 1]; /* unique; empty when unnamed */
    char *program;                 /* path of the executable */
    /* The program's arguments after argv[0], and the variables ("K=V") added
     * to its environment: string lists (lib/strlist.h), NULL when empty. */
    char *args;
    size_t args_len;
    char *env;
    size_t env_len;
    uint64_t created_ns;
    uint64_t idle_timeout_ms; /* 0: the host's default */
    uint64_t last_event;      /* number of the last committed event */
    uint64_t first_event;     /* lowest event number still in the log */
    uint64_t snapshot_event;  /* event number of the snapshot; 0: none */
    uint8_t last_hash[STORE_HASH_SIZE]; /* hash of the last event record */
    uint8_t public_key[32];
    /* What keeps the ship's secret key: sealed (core/record.h,
     * record_ship_secret) or, for ships made before sealing, the 64-byte
     * key itself. */
    uint8_t secret[STORE_SECRET_MAX];
    size_t secret_len;
    uint64_t alarm_ns; /* when the ship wants a TIMER event; 0: never */
    uint64_t freeze_timeout_ms; /* 0: host's default; STORE_TIMEOUT_NEVER */
    /* The ship's ack level (core/gate.h); GATE_ACKS_DEFAULT (255): the
     * host's. A zeroed struct says 0, the weakest level: set it. */
    uint8_t acks;
    uint64_t account; /* core/account.h; 0: anonymous */
    uint64_t parent;  /* the parent's sid; 0: none */
    uint8_t lifetime; /* proto/frame.h FRAME_LIFETIME_*; 0: the operator's */
    uint64_t lifetime_ms;
    uint32_t spawn_tag; /* the tag of the SPAWN that made it */
    /* The ids of the ships that may send to it (a string list; NULL:
     * those of its own account). */
    char *access;
    size_t access_len;
    /* Its sandbox and budget (core/sandbox.h; NULL: none). */
    uint8_t *sandbox;
    size_t sandbox_len;
};

/* Free the owned fields of ship and zero it. */
void store_ship_clear(struct store_ship *ship);

/* Open or create the store at path (":memory:" for tests). On success *out
 * is set and must be closed with store_close(). On failure returns a
 * negative code and writes a message to errmsg (ERRMSG_SIZE bytes). */
int store_open(struct store **out, const char *path, char *errmsg);

/* Sweep (store_sweep), flush, close the store and free it. */
void store_close(struct store *s);

/* Return the message of the last failure. */
const char *store_errmsg(const struct store *s);

/* Return the bytes SQLite's page cache holds now (at most its cache_size,
 * 16 MiB, whatever the number of ships). */
uint64_t store_cache_bytes(struct store *s);

/* Set the store's message to the formatted text and return rv: how the
 * store module's other files (apply.c) report their own failures. */
int store_set_error(struct store *s, int rv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Start one entry's changes: in the open batch, or in a new one. Only an
 * undoable entry can be undone; it costs a savepoint, which copies every
 * page the entry changes (a third of applying an event). An entry that is
 * not undoable must be one whose partial changes are harmless: a failure
 * stops the host, and applying it again completes it. */
int store_entry_begin(struct store *s, bool undoable);

/* Undo the changes since store_entry_begin of an undoable entry; the entry
 * stays open. Returns BERTH_EINVAL for an entry that is not undoable. */
int store_entry_undo(struct store *s);

/* End the entry: its changes join the batch. On an error from an entry's
 * writes, store_entry_undo and store_entry_end leave the batch as it was
 * before the entry, unless SQLite rolled the whole batch back (a full disk,
 * an I/O error): then they return a negative code, and the entries since the
 * last flush are gone from the store (never from the log). */
int store_entry_end(struct store *s);

/* Commit the batch, if one is open. On failure its entries are gone from the
 * store, which is then behind the log: the caller must stop and let the next
 * start replay them. */
int store_flush(struct store *s);

/* Return the number of entries in the open batch (0: none). */
unsigned store_unflushed(const struct store *s);

/* Write what the OS holds of the WAL of the store at path (the database's
 * path, as given to store_open) to disk: it starts the writes
 * (sync_file_range) and neither waits for them nor flushes the disk's
 * cache. Commits do not sync the WAL; SQLite's checkpoint does, first, on
 * the thread that commits, and by then the WAL may hold tens of MB never
 * written: a 60-100 ms stall. Called every few milliseconds off the loop
 * thread, this leaves a checkpoint little to wait for. It opens the WAL by name
 * and never touches a struct store, so it may run on any thread at any time
 * (never on the database file itself: closing a descriptor of it would drop
 * SQLite's lock). Returns 0 (also when there is no WAL) or BERTH_EIO. */
int store_wal_writeback(const char *path);

/* Flush, then make every committed transaction durable in the database
 * file (checkpoint + fsync): the WAL is written again from its start (its
 * file keeps its size, but is emptied after a store_compact), and the
 * pages store_compact gave back leave the database file. */
int store_sync(struct store *s);

/* Give the database's free pages (what removed ships and swept events held)
 * back to the file system: they leave the file at the next store_sync. It
 * sweeps (store_sweep) and flushes the batch first. */
int store_compact(struct store *s);

/* Read or write a host-wide counter by name; a missing one reads as 0. */
int store_meta_get(struct store *s, const char *key, uint64_t *value);
int store_meta_put(struct store *s, const char *key, uint64_t value);

/* Insert or replace the record of ship->sid. Returns BERTH_EEXIST if another
 * ship has the same id or a non-empty name. The caller keeps ship. */
int store_ship_put(struct store *s, const struct store_ship *ship);

/* Find a ship by id, or else by name. Returns 0 and fills out (the caller
 * frees it with store_ship_clear), or BERTH_ENOTFOUND. */
int store_ship_get(struct store *s, const char *id_or_name,
                   struct store_ship *out);

/* Find a ship by sid; as store_ship_get. */
int store_ship_get_sid(struct store *s, uint64_t sid, struct store_ship *out);

/* Mark ship sid blocked by the operator, or not (a SHIP_BLOCK entry's
 * apply). Returns 0, BERTH_ENOTFOUND for no such ship, or a code. */
int store_ship_block(struct store *s, uint64_t sid, bool blocked);

/* Read only what applying an event needs: the ship's last event number,
 * the hash of its last record and its alarm. BERTH_ENOTFOUND if absent. */
int store_ship_head_get(struct store *s, uint64_t sid, uint64_t *last_event,
                        uint8_t *last_hash, uint64_t *alarm_ns);

/* Write the ship's last event number, record hash and alarm, nothing else. */
int store_ship_head_put(struct store *s, uint64_t sid, uint64_t last_event,
                        const uint8_t *last_hash, uint64_t alarm_ns,
                        uint64_t bytes, uint64_t events);

/* Delete a ship's events and snapshots (latest and prior), keeping its
 * record: for a copy of them from another host to replace them
 * (store/shipcopy.h). */
int store_ship_data_clear(struct store *s, uint64_t sid);

/* Delete a ship with its events, snapshots and mail; its children that stay
 * (root ones) have no parent from then on. BERTH_ENOTFOUND if absent. */
int store_ship_delete(struct store *s, uint64_t sid);

/* One child of a ship. */
struct store_child {
    uint64_t sid;
    uint8_t lifetime; /* proto/frame.h FRAME_LIFETIME_* */
};

/* Set *out to a new array (the caller frees it with mem_free; NULL when
 * none) of the children of parent in sid order, and *n to their count.
 * 0, BERTH_ENOMEM or a store failure. */
int store_ship_children(struct store *s, uint64_t parent,
                        struct store_child **out, size_t *n);

/* One piece of mail: an event for ship target that the log made
 * (docs/design.md, "Mail"). */
struct store_mail {
    uint64_t seq;
    uint64_t target;
    uint8_t kind;  /* proto/frame.h FRAME_EVENT_* */
    uint8_t *body; /* owned; NULL when empty */
    size_t len;
};

/* Free m's body and zero it. */
void store_mail_clear(struct store_mail *m);

/* Add mail for ship target of kind with the len bytes at body (the caller
 * keeps them), numbered from the meta counter next_mail into *seq (may be
 * NULL). 0 or a store failure. */
int store_mail_put(struct store *s, uint64_t target, uint8_t kind,
                   const void *body, size_t len, uint64_t *seq);

/* Delete mail seq of ship target: 0, or BERTH_ENOTFOUND when there is none
 * (delivered already, or its ship gone). */
int store_mail_take(struct store *s, uint64_t target, uint64_t seq);

/* Fill *out (store_mail_clear frees it) with ship target's first mail after
 * seq after: 0, BERTH_ENOTFOUND for none, BERTH_ENOMEM or a failure. */
int store_mail_next(struct store *s, uint64_t target, uint64_t after,
                    struct store_mail *out);

/* A ship whose lifetime takes a time (proto/frame.h, FRAME_LIFETIME_*). */
struct store_timed {
    uint64_t sid;
    uint8_t lifetime;
    uint64_t lifetime_ms;
    uint64_t last_event;
    uint64_t parent;
};

/* Set *out to a new array (mem_free; NULL when none) of the ships whose
 * lifetime takes a time, in sid order, and *n to their count (an index
 * keeps this from reading the other ships). */
int store_ship_timed(struct store *s, struct store_timed **out, size_t *n);

/* Set *out to a new array (mem_free; NULL when none) of the ships that have
 * mail, in sid order, and *n to their count. */
int store_mail_targets(struct store *s, uint64_t **out, size_t *n);

/* Called for each ship; ship is valid only during the call. Returning
 * non-zero stops the walk and is returned by store_ship_foreach. */
typedef int (*store_ship_cb)(const struct store_ship *ship, void *arg);

/* Walk all ships in sid order. */
int store_ship_foreach(struct store *s, store_ship_cb cb, void *arg);

/* The few fields of a ship that a host keeps in memory; the strings are
 * valid only during the callback. */
struct store_ship_brief {
    uint64_t sid;
    const char *id;
    const char *name; /* "" when unnamed */
    const char *program;
    uint64_t alarm_ns;
    uint64_t account; /* core/account.h */
    bool hidden;      /* its sandbox keeps it from the front door */
    bool blocked;     /* the operator cut it off (store_ship_block) */
};

/* Called for each ship of store_ship_brief_foreach; non-zero stops the walk
 * and is returned. */
typedef int (*store_ship_brief_cb)(const struct store_ship_brief *ship,
                                   void *arg);

/* Walk the ships with sid > after_sid in sid order, reading only the brief
 * fields: what a host loads at start and after ships are created. */
int store_ship_brief_foreach(struct store *s, uint64_t after_sid,
                             store_ship_brief_cb cb, void *arg);

/* Return the number of ships. */
int store_ship_count(struct store *s, uint64_t *count);

/* Store the encoded event record number of ship sid. Putting the same
 * (sid, number) again replaces it, which keeps re-applying idempotent. */
int store_event_put(struct store *s, uint64_t sid, uint64_t number,
                    const void *rec, size_t len);

/* Called for each event; rec is valid only during the call. Non-zero stops
 * the walk and is returned. */
typedef int (*store_event_cb)(uint64_t number, const void *rec, size_t len,
                              void *arg);

/* Walk ship sid's events with number >= from, in order, checking each
 * record's place in the ship's hash chain before passing it on: numbers
 * follow one another from `from`, each record decodes and names this ship
 * and its number, each holds the hash of the record before it (prev_hash,
 * RECORD_HASH_SIZE bytes, for the first: the snapshot's chain hash, or zeros
 * from event 1; NULL to take the first as it is), and a walk that reaches
 * the end stops at the ship's last event with the hash the ship's record
 * holds, so a walk with nothing to read checks prev_hash against it.
 * Returns 0, a callback's non-zero value, BERTH_ENOTFOUND for an unknown
 * ship, or BERTH_ECORRUPT with a message naming the event. */
int store_event_foreach(struct store *s, uint64_t sid, uint64_t from,
                        const uint8_t *prev_hash, store_event_cb cb, void *arg);

/* Append the record of ship sid's event number to out (the caller's);
 * BERTH_ENOTFOUND when the store does not hold it. */
int store_event_get(struct store *s, uint64_t sid, uint64_t number,
                    struct buf *out);

/* Hash the record of ship sid's event number into out (STORE_HASH_SIZE
 * bytes); BERTH_ENOTFOUND when the store does not hold it. */
int store_event_hash(struct store *s, uint64_t sid, uint64_t number,
                     uint8_t *out);

/* Mark ship sid's events with number <= upto, which a snapshot stands for,
 * for deletion, in the open transaction; store_sweep deletes them. Until
 * then they stay readable, below the ship's first_event. */
int store_event_truncate(struct store *s, uint64_t sid, uint64_t upto);

/* Whether marks may be waiting for store_sweep: after a mark, and after
 * the store is opened or restored (a crash or an image may leave some). */
bool store_marked(const struct store *s);

/* The most ships whose marked events one store_sweep deletes: a sweep runs
 * on the loop thread, and a burst of snapshots (many ships put to sleep at
 * once) must not make one sweep hold it for long. */
#define STORE_SWEEP_SHIPS 256

/* Delete the events store_event_truncate marked, of up to
 * STORE_SWEEP_SHIPS ships, and their marks, in the batch's transaction
 * (opened if none is), which store_flush commits: deleting many ships'
 * marked events at once writes each shared page once (store/store.c).
 * store_marked stays true when more marks may be left. No-op when nothing
 * is marked. */
int store_sweep(struct store *s);

/* A ship's snapshot, without its bytes. */
struct store_snapshot {
    uint64_t number;                /* the last event it stands for */
    uint8_t epoch[STORE_HASH_SIZE]; /* the program that made it */
    uint8_t chain[STORE_HASH_SIZE]; /* the hash of event number's record */
    bool sealed;                    /* the bytes are a seal (core/record.h) */
};

/* Replace ship sid's snapshot with snap and its bytes; the store keeps a
 * checksum of them all (core/record.h, record_snapshot_sum). The caller
 * keeps snap and data. */
int store_snapshot_put(struct store *s, uint64_t sid,
                       const struct store_snapshot *snap, const void *data,
                       size_t len);

/* Read ship sid's snapshot into *out and append its bytes to data, after
 * checking its checksum: BERTH_ECORRUPT, with a message naming the event,
 * when the bytes, the numbers or the link fail it (data is then
 * untouched). BERTH_ENOTFOUND when the ship has none. */
int store_snapshot_get(struct store *s, uint64_t sid,
                       struct store_snapshot *out, struct buf *data);

/* Read ship sid's prior snapshot, the one its latest replaced, as
 * store_snapshot_get reads the latest. The store keeps it, and every event
 * after it, until the next snapshot: so a ship's program can be run from it
 * through its events and its state compared with the latest snapshot's
 * (fsck --replay), at the cost of one snapshot interval more on disk. */
int store_prior_snapshot_get(struct store *s, uint64_t sid,
                             struct store_snapshot *out, struct buf *data);

/* --- Tokens of the admin API (core/auth.h). --- */

#define STORE_TOKEN_ID_MAX 32

/* One token: its hash only, never the token. */
struct store_token {
    char id[STORE_TOKEN_ID_MAX + 1]; /* public, from the hash */
    uint8_t hash[STORE_HASH_SIZE];   /* core/auth.h, auth_token_hash */
    uint8_t scope;                   /* enum auth_scope */
    char name[STORE_NAME_MAX + 1];   /* unique; empty when unnamed */
    uint64_t account;                /* 0: none, the operator's */
    uint64_t created_ns;
};

/* Add token t. Returns BERTH_EEXIST when another token has its id, hash
 * or non-empty name. The caller keeps t. */
int store_token_put(struct store *s, const struct store_token *t);

/* Find a token by id, or else by name, into *out (the caller's).
 * BERTH_ENOTFOUND when there is none. The caller keeps id_or_name. */
int store_token_get(struct store *s, const char *id_or_name,
                    struct store_token *out);

/* Delete the token with this id; BERTH_ENOTFOUND when there is none. The
 * caller keeps id. */
int store_token_delete(struct store *s, const char *id);

/* Called for each token, valid only during the call; non-zero stops the
 * walk and is returned by store_token_foreach. */
typedef int (*store_token_cb)(const struct store_token *t, void *arg);

/* Walk every token, oldest first. */
int store_token_foreach(struct store *s, store_token_cb cb, void *arg);

/* --- Wrapped data keys (crypto/keywrap.h; docs/security.md). --- */

/* Replace every data key with count wrapped keys of size bytes each, at
 * wrapped (the caller's), as keys 1..count. */
int store_data_keys_put(struct store *s, const uint8_t *wrapped, size_t size,
                        uint32_t count);

/* Read the wrapped data keys, in key id order, into out (the caller's, max
 * keys of size bytes); *count gets how many (0: none, before any key
 * rotation). BERTH_ECORRUPT when the table holds other than keys 1..n of
 * size bytes, or more than max. */
int store_data_keys_get(struct store *s, uint8_t *out, size_t size,
                        uint32_t max, uint32_t *count);

/* --- Images: a consistent copy of the whole store, for raft snapshots. ---
 *
 * An image is a 64-byte header followed by the bytes of the SQLite database
 * file:
 *
 *     magic u64 | format u32 | header sum u32 | applied index u64 |
 *     file bytes u64 | BLAKE2b-256 of the first 32 header bytes and the
 *     file bytes
 *
 * (little-endian; the header sum is the first 4 bytes of BLAKE2b over the
 * header's other fields, so that its index can be trusted without hashing
 * the whole image). Taking one is split in three, so that the part that costs
 * the store's size can run off the loop thread: store_image_begin syncs the
 * store (its WAL is checkpointed into the file and emptied) and pins it:
 * until store_image_end no checkpoint runs, so every later commit stays in
 * the WAL and the database file holds exactly the state at the pin. Then
 * store_image_read copies the file with plain reads, on any thread, while
 * the store goes on applying. */

#define STORE_IMAGE_HEADER 64
#define STORE_IMAGE_MAGIC 0x67616d6968747262ULL /* "brthimag" */
#define STORE_IMAGE_FORMAT 1

/* A pinned store being copied. Filled by store_image_begin. */
struct store_image {
    int fd;         /* the store's descriptor of its file, read-only */
    uint64_t index; /* the applied index the copy holds */
    uint64_t size;  /* bytes of the database file */
};

/* Sync and pin the store (see above) and fill img. On the store's thread,
 * outside a transaction; one image at a time (BERTH_EBUSY otherwise), and
 * not for a ":memory:" store (BERTH_EINVAL). Every success is followed by
 * store_image_end. It flushes the batch first. */
int store_image_begin(struct store *s, struct store_image *img);

/* Copy img into out, which holds STORE_IMAGE_HEADER + img->size bytes (the
 * caller allocates and frees it), header included. Touches no SQLite state,
 * so it may run on another thread while the store applies. Returns 0, or
 * BERTH_EIO when the file cannot be read whole. */
int store_image_read(const struct store_image *img, uint8_t *out);

/* Unpin the store and close img's file; on the store's thread. */
void store_image_end(struct store *s, struct store_image *img);

/* Check an image's header and checksum without touching any store; on
 * success *index is the applied index it holds. Returns 0 or
 * BERTH_ECORRUPT. */
int store_image_check(const uint8_t *image, size_t len, uint64_t *index);

/* Check an image's header only (magic, format, length, header sum) and set
 * *index: cheap, for deciding whether the image is needed at all. Returns 0
 * or BERTH_ECORRUPT. */
int store_image_index(const uint8_t *image, size_t len, uint64_t *index);

/* Replace the store's contents with image, atomically: the image is checked
 * (BERTH_ECORRUPT, store untouched: the header always, the checksum over
 * the whole image when it is used), written to a file next to the store,
 * fsynced, renamed over it (the directory fsynced) and reopened; s stays
 * the same pointer. When the store already holds the image's applied index
 * or a later one nothing is done and *replaced is false: a host restarting
 * on its own data is given its latest raft snapshot, which must not cost a
 * copy of the store. A failure before the rename (BERTH_EIO, e.g. a full
 * disk) leaves the old store as it was and usable; one after it (the new
 * file cannot be opened) leaves s unusable, and the host must stop;
 * *replaced says whether s holds the image's contents, error or not. On the
 * store's thread, not while pinned (BERTH_EBUSY); the batch is flushed
 * first. The caller keeps image. */
int store_image_restore(struct store *s, const uint8_t *image, size_t len,
                        bool *replaced);

/* Set *bytes to the size of the store's data (pages in use times the page
 * size): what a snapshot of it costs. */
int store_bytes(struct store *s, uint64_t *bytes);

/* --- Accounts (core/account.h). --- */

/* --- Recorded usage (docs/store.md, "Usage"). --- */

/* The bytes a ship's row counts for besides its program, name, arguments
 * and environment. */
#define STORE_USAGE_ROW 128

/* The usage figures of a ship or an account, as recorded. */
struct store_usage {
    uint64_t ships; /* an account's ships now; 1 for a ship */
    uint64_t storage_bytes;
    uint64_t events; /* events committed */
    uint64_t cpu_us;
    uint64_t memory_peak_bytes;
    uint64_t memory_byte_seconds;
    uint64_t wakes;
    uint64_t requests;
};

/* What a ship's programs used, as a USAGE entry reports it. */
struct store_measured {
    uint64_t sid;
    uint64_t cpu_us, memory_peak_bytes, memory_byte_seconds;
    uint64_t wakes, requests;
};

/* Turn the recording of usage on (the default) or off: off, every
 * store_usage_* call and the storage a head carries change nothing, and
 * store_accounting() says so to callers that count what they would add.
 * Only to measure what accounting costs (BERTH_ACCOUNTING=off). */
void store_set_accounting(struct store *s, bool on);

/* Return whether usage is recorded (store_set_accounting). */
bool store_accounting(const struct store *s);

/* Add bytes (negative: take away) to ship sid's storage and its account's;
 * BERTH_ENOTFOUND when there is no such ship. */
int store_usage_add(struct store *s, uint64_t sid, int64_t bytes);

/* Add ships, bytes and events to account's recorded figures. */
int store_usage_ships(struct store *s, uint64_t account, int64_t ships,
                      int64_t bytes, uint64_t events);

/* Add m's measures to its ship and the ship's account (the peaks are
 * maxima); a ship that is gone is no error. */
int store_usage_measured(struct store *s, const struct store_measured *m);

/* Take ship sid, about to be removed, out of its account's ships and
 * storage; no such ship is no error. */
int store_usage_ship_gone(struct store *s, uint64_t sid);

/* Set *bytes to the sum of the sizes of ship sid's stored events from
 * number from to number to. */
int store_event_bytes(struct store *s, uint64_t sid, uint64_t from, uint64_t to,
                      uint64_t *bytes);

/* Set the sizes of ship sid's latest and prior snapshots (0: none). */
int store_snapshot_bytes(struct store *s, uint64_t sid, uint64_t *latest,
                         uint64_t *prior);

/* Count ship sid's storage bytes from what the store holds now, as schema
 * 13 filled them in, into *bytes: what the recorded figure should be. */
int store_usage_recount(struct store *s, uint64_t sid, uint64_t *bytes);

/* Read ship sid's recorded usage into *out (the caller's);
 * BERTH_ENOTFOUND when there is no such ship. */
int store_ship_usage(struct store *s, uint64_t sid, struct store_usage *out);

/* One account. */
struct store_account {
    uint64_t id;
    char name[STORE_NAME_MAX + 1];
    bool disabled;
    uint64_t created_ns;
    struct store_usage usage; /* its recorded figures */
    /* Its limits by enum quota_limit: a limit, QUOTA_NONE, or QUOTA_DEFAULT
     * (NULL in the store) for the host's default. */
    uint64_t limits[QUOTA__COUNT];
    /* Its caps on its ships' programs (core/caps.h; 0: none). */
    struct caps caps;
};

/* Set account id's limits (core/quota.h) to limits, leaving those that
 * are QUOTA_KEEP; BERTH_ENOTFOUND when there is no such account. */
int store_account_set_limits(struct store *s, uint64_t id,
                             const uint64_t *limits);

/* Set those of account id's caps that which names (core/record.h's
 * RECORD_ACCOUNT_CAPS_* bits) to caps' (0: none), leaving the others;
 * BERTH_ENOTFOUND when there is no such account. The caller keeps caps. */
int store_account_set_caps(struct store *s, uint64_t id, uint8_t which,
                           const struct caps *caps);

/* Read account id's caps into *out (the caller's), and nothing else of
 * it: a wake reads them. BERTH_ENOTFOUND when there is no such account. */
int store_account_caps(struct store *s, uint64_t id, struct caps *out);

/* Count the accounts with any limit of their own into *n. */
int store_account_limited_count(struct store *s, uint64_t *n);

/* Add an account named name, its id into *id: one above the last given
 * (meta "last_account"), never one given before. Returns BERTH_EEXIST when
 * the name is taken. The caller keeps name. */
int store_account_new(struct store *s, const char *name, uint64_t created_ns,
                      uint64_t *id);

/* Find an account by name, or by id, into *out (the caller's);
 * BERTH_ENOTFOUND when there is none. The caller keeps name. */
int store_account_get(struct store *s, const char *name,
                      struct store_account *out);
int store_account_get_id(struct store *s, uint64_t id,
                         struct store_account *out);

/* Mark account id disabled or not; BERTH_ENOTFOUND when there is none. */
int store_account_set_disabled(struct store *s, uint64_t id, bool disabled);

/* Delete account id and its tokens (not its ships); BERTH_ENOTFOUND when
 * there is none, BERTH_EINVAL for the anonymous account, 0. */
int store_account_delete(struct store *s, uint64_t id);

/* Called for each account, valid only during the call; non-zero stops the
 * walk and is returned by store_account_foreach. */
typedef int (*store_account_cb)(const struct store_account *a, void *arg);

/* Walk every account in id order. */
int store_account_foreach(struct store *s, store_account_cb cb, void *arg);

/* Count the disabled accounts into *n. */
int store_account_disabled_count(struct store *s, uint64_t *n);

/* Count the ships of account into *n. */
int store_account_ship_count(struct store *s, uint64_t account, uint64_t *n);

/* Read the account of ship sid into *account; BERTH_ENOTFOUND when there
 * is no such ship. */
int store_ship_account(struct store *s, uint64_t sid, uint64_t *account);

/* Called for each ship of store_account_ships with its sid and alarm;
 * non-zero stops the walk and is returned. */
typedef int (*store_account_ship_cb)(uint64_t sid, uint64_t alarm_ns,
                                     void *arg);

/* Walk the ships of account with sid > after_sid, in sid order. */
int store_account_ships(struct store *s, uint64_t account, uint64_t after_sid,
                        store_account_ship_cb cb, void *arg);

/* --- The crawler's walk (docs/store.md, "The crawler"). ---
 *
 * The recorded storage of a ship and of an account is added to as entries
 * apply; a walk recomputes it from what the store holds and corrects what
 * drifted. It walks the ships in sid order, a few at a time (the caller
 * paces it), and for each compares its recorded storage with the sum of its
 * rows and sets it right (the ship alone: an account's figure is checked at
 * the end). It adds up each account's ships and their (corrected) storage
 * as it goes; a ship behind the walk whose storage changes, or that is
 * removed, while the pass runs changes those sums too (the store sees
 * every such change), and ships are made only ahead of it (sids only grow),
 * so that at the end of a pass the sums are each account's figures at that
 * instant, and an account whose recorded figures differ is set right. A
 * pass resumed after a restart (from a cursor the caller kept) has no sums
 * for what it walked before, and checks ships only. */

/* One account's figures at the end of a pass. */
struct store_crawl_account {
    uint64_t account;
    uint64_t ships, storage_bytes;                   /* counted */
    uint64_t recorded_ships, recorded_storage_bytes; /* before correction */
};

/* What a pass found and did. */
struct store_crawl_report {
    uint64_t ships_walked;
    uint64_t ships_fixed;  /* ships whose recorded storage was wrong */
    int64_t bytes_fixed;   /* what was added to them, in all */
    bool accounts_checked; /* false for a pass resumed after a restart */
    size_t n_accounts;     /* entries of accounts */
    struct store_crawl_account *accounts; /* owned by the store until the
                                             next store_crawl_begin */
};

/* Start a pass at the first ship after sid after (0: a whole pass, whose
 * accounts are checked at its end). Any pass under way is dropped. Returns
 * 0, or BERTH_ENOMEM. */
int store_crawl_begin(struct store *s, uint64_t after);

/* Walk at most max ships of the pass, or until budget_ns of the thread's
 * time have passed, correcting each; *cursor is the last sid walked,
 * *walked how many this step walked, and *done says the pass reached the
 * last ship. Returns 0 or a negative code with store_errmsg(). */
int store_crawl_step(struct store *s, unsigned max, uint64_t budget_ns,
                     uint64_t *cursor, unsigned *walked, bool *done);

/* End a pass that is done: check (when it was whole) and correct every
 * account's recorded ships and storage, and fill *report (valid until the
 * next store_crawl_begin). Returns 0 or a negative code. */
int store_crawl_finish(struct store *s, struct store_crawl_report *report);

/* Keep what a whole pass found of account a, at passed_ns (wall clock),
 * in place of the last. Returns 0 or a negative code. */
int store_crawl_result_put(struct store *s, const struct store_crawl_account *a,
                           uint64_t passed_ns);

/* Read what the last whole pass found of account into *out and *passed_ns;
 * BERTH_ENOTFOUND when none has. */
int store_crawl_result_get(struct store *s, uint64_t account,
                           struct store_crawl_account *out,
                           uint64_t *passed_ns);

#endif
