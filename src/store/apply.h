/* Applying committed log entries to the store: the replicated state machine.
 *
 * Every host applies the same entries in the same order, so this code must be
 * deterministic and must not look at the clock, the environment or anything
 * but the entry and the store. It is idempotent (core/record.h says how), so
 * the log can replay entries that the store already holds. */
#ifndef BERTH_STORE_APPLY_H
#define BERTH_STORE_APPLY_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* Told of a ship whose stored records do not fit a committed entry: the
 * entry's records for it (an event whose previous hash or number does not
 * follow the ship's stored head, or a snapshot of an event the store does
 * not hold) are not applied, and the ship should be treated as damaged.
 * number is the event concerned; why is a static phrase. */
typedef void (*store_apply_damaged_fn)(void *arg, uint64_t sid, uint64_t number,
                                       const char *why);

/* Told of ship sid removed by the entry being applied (destroyed, removed
 * by the operator, or with its parent): whatever the caller keeps of it
 * goes. */
typedef void (*store_apply_removed_fn)(void *arg, uint64_t sid);

/* Told that the entry being applied made ships that the caller may want
 * to learn of (spawned children). */
typedef void (*store_apply_added_fn)(void *arg);

/* Told of mail added for ship target by the entry being applied
 * (docs/design.md, "Children and mail"), for the leader to deliver. */
typedef void (*store_apply_mailed_fn)(void *arg, uint64_t target);

/* What store_apply_entry tells its caller about besides the result. */
struct store_apply_hook {
    store_apply_damaged_fn damaged;
    store_apply_removed_fn removed; /* may be NULL */
    store_apply_added_fn added;     /* may be NULL */
    store_apply_mailed_fn mailed;   /* may be NULL */
    void *arg;
};

/* Apply the entry at log position index in the store's batch (store.h:
 * visible at once, in the file after store_flush), recording index as the
 * last applied: an entry at or below it is skipped, so
 * a restart that replays the log's tail costs nothing for what the store has.
 * index 0 means "unknown": the entry is applied (idempotently) and nothing is
 * recorded. A damaged ship's records are left out and reported to hook (which
 * may be NULL), and the rest of the entry applies: one ship's damage does
 * not stop the others. Returns 0 with *result set to 0, or to BERTH_EEXIST
 * when a SHIP_NEW or SHIP_BATCH lost a race for a name or id (the batch then
 * created nothing) or a TOKEN add found its id, hash or name taken, or to
 * BERTH_ENOTFOUND when a TOKEN revoke found no such token or a SHIP_RESIZE
 * no such ship, or to BERTH_EMALFORMED when a SHIP_RESIZE found a sandbox
 * that does not decode (it is kept); or a negative code
 * when the store failed or the entry is corrupt, which is fatal to the host
 * (the entry leaves nothing, and the batch may be gone too: store_entry_end
 * says how). The caller keeps entry and hook. */
int store_apply_entry(struct store *s, uint64_t index, const uint8_t *entry,
                      size_t len, const struct store_apply_hook *hook,
                      int *result);

#endif
