/* Ship heads held in memory while a batch of entries is applied.
 *
 * Applying an event reads its ship's head (last event number, hash of the
 * last record, alarm) and writes it back. In SQLite that is a SELECT and an
 * UPDATE of the ship's row per event, each journaled by the entry's
 * savepoint: about half of an event's apply. While a batch's transaction is
 * open the store keeps the heads it read or changed here instead, and
 * writes the changed ones to their rows once, before the batch commits or
 * before any other statement reads a ship's row.
 *
 * An entry's changes can be undone like its savepoint: between
 * heads_entry_begin and heads_entry_end every change first records the
 * head as it was, and heads_entry_undo puts those back.
 *
 * A plain open-addressing table keyed by sid (never 0) with linear probing;
 * no SQLite and no I/O, so that it is tested on its own. */
#ifndef BERTH_STORE_HEADS_H
#define BERTH_STORE_HEADS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HEADS_HASH_SIZE 32

/* One ship's head; dirty when it is newer than the ship's row. */
struct heads_entry {
    uint64_t sid; /* 0: an empty slot */
    uint64_t last_event;
    uint64_t alarm_ns;
    uint8_t hash[HEADS_HASH_SIZE];
    uint64_t bytes;  /* event bytes applied since the row was written */
    uint64_t events; /* events applied since the row was written */
    bool dirty;
};

/* A head as it was before an entry changed it. */
struct heads__undo {
    bool had; /* false: the sid was not in the table */
    struct heads_entry old;
};

struct heads {
    struct heads_entry *slots;
    size_t cap; /* a power of two, or 0 */
    size_t n;   /* used slots */
    struct heads__undo *undo;
    size_t undo_n, undo_cap;
    bool in_entry; /* changes are recorded for heads_entry_undo */
};

/* Initialize an empty table. */
void heads_init(struct heads *h);

/* Free what the table holds. */
void heads_close(struct heads *h);

/* Return the head of sid, or NULL when the table does not hold it. The
 * pointer is the table's and is valid until the next change. */
const struct heads_entry *heads_find(const struct heads *h, uint64_t sid);

/* Insert or replace the head of e->sid (not 0) with a copy of *e. Returns
 * 0, or BERTH_ENOMEM with the table unchanged. */
int heads_set(struct heads *h, const struct heads_entry *e);

/* Remove the head of sid, if held. Returns 0, or BERTH_ENOMEM (recording
 * the change failed) with the table unchanged. */
int heads_remove(struct heads *h, uint64_t sid);

/* Call cb with a copy of each dirty head, in no order, until it returns
 * non-zero (then returned); the heads are left as they are. */
int heads_foreach_dirty(const struct heads *h,
                        int (*cb)(const struct heads_entry *e, void *arg),
                        void *arg);

/* Mark every head clean, as changes (recorded within an entry). Returns 0,
 * or BERTH_ENOMEM with some heads possibly still dirty. */
int heads_mark_clean(struct heads *h);

/* Start recording changes, for heads_entry_undo. */
void heads_entry_begin(struct heads *h);

/* Stop recording: the entry's changes stay. */
void heads_entry_end(struct heads *h);

/* Put back every head the entry changed, as it was at heads_entry_begin,
 * and stop recording. */
void heads_entry_undo(struct heads *h);

/* Forget every head (the batch committed, or was lost); the memory stays
 * for the next batch. */
void heads_clear(struct heads *h);

#endif
