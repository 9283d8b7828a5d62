/* The state machine: what every host applies.
 *
 * Every committed log entry is applied, in order and on every host, into the
 * host's store (store/apply.h): the fsm is libraft's view of that store. A
 * raft snapshot is a consistent copy of the whole store (store_image_*), so
 * a host that is new or far behind catches up by installing one and then
 * the log; restoring replaces the store atomically, and is free when the
 * store already holds the snapshot's index (a host restarting on its own
 * data). docs/design.md, "The state machine and snapshots", says why
 * snapshots are taken when they are.
 *
 * The host learns what was applied through hooks, so that what it keeps in
 * memory (the registry, alarms) follows the store. Every hook runs on the
 * loop thread, from inside raft.
 *
 * raft.h stays inside src/consensus: this header only names raft's types.
 * log.c and the cluster tests hand fsm_raft_fsm() to raft_init and call
 * fsm_attach right after it. */
#ifndef BERTH_CONSENSUS_FSM_H
#define BERTH_CONSENSUS_FSM_H

#include <stddef.h>
#include <stdint.h>

#include "store/apply.h"
#include "store/store.h"

struct fsm;
struct raft;
struct raft_fsm;

/* Called after each entry raft applies, the store's part done, with the
 * entry's log position and its bytes (unframed). Entries the store held
 * already (a replay after a restart) are reported too. A non-zero return is
 * fatal to the host. */
typedef int (*fsm_applied_fn)(void *arg, uint64_t index, const uint8_t *entry,
                              size_t len);

/* Called after a raft snapshot replaced the store's contents: index is the
 * applied index the store now holds. What the host keeps in memory about
 * ships must be loaded again. A non-zero return is fatal to the host. */
typedef int (*fsm_restored_fn)(void *arg, uint64_t index);

/* Called once when the state machine cannot go on (the store failed, or a
 * committed entry does not decode); the host must exit. */
typedef void (*fsm_fatal_fn)(void *arg, const char *message);

/* What the fsm tells its host; any hook may be NULL. */
struct fsm_hooks {
    fsm_applied_fn applied;
    store_apply_damaged_fn damaged; /* a ship's records did not fit */
    store_apply_removed_fn removed; /* a ship was removed */
    store_apply_added_fn added;     /* ships were spawned */
    store_apply_mailed_fn mailed;   /* a ship was given mail */
    fsm_restored_fn restored;
    fsm_fatal_fn fatal;
    void *arg; /* passed to every hook */
};

/* What the fsm has done since it was opened, for tests and stats. */
struct fsm_stats {
    uint64_t snapshots;           /* raft snapshots taken */
    uint64_t restores;            /* snapshots that replaced the store */
    uint64_t restores_kept;       /* snapshots the store held already */
    uint64_t last_snapshot_bytes; /* size of the last image taken */
    uint64_t flushes;             /* commits of the store's batch */
    uint64_t sweeps;              /* store_sweep runs (store/store.h) */
    /* Log index of the last snapshot written (raft then drops the log
     * behind it, but for the trailing entries) or restored. */
    uint64_t snapshot_index;
};

/* Create the fsm over store, which must outlive it. The caller keeps store
 * and hooks (copied). *out is freed by fsm_close(). Returns 0 or
 * BERTH_ENOMEM. */
int fsm_open(struct fsm **out, struct store *store,
             const struct fsm_hooks *hooks);

/* Free f; raft must be closed (or never started) by then. An image still
 * pinned is released. */
void fsm_close(struct fsm *f);

/* Return the struct raft_fsm to pass to raft_init; it lives inside f. */
struct raft_fsm *fsm_raft_fsm(struct fsm *f);

/* Tell f which raft instance drives it, right after raft_init and before
 * raft_start: the fsm reads its applied index and sets its snapshot
 * threshold and trailing. every is the least number of entries between
 * snapshots (0: 1024); the fsm waits longer while the store is big. Every
 * snapshot keeps every / 8 + 1 entries behind it unless fsm_set_trailing
 * says otherwise. */
void fsm_attach(struct fsm *f, struct raft *raft, unsigned every);

/* Take snapshots after percent % of the store's size in log bytes (100 by
 * default) rather than the store's size; 0 leaves only the entry count.
 * Tests use it to get snapshots from a small store. */
void fsm_set_size_percent(struct fsm *f, unsigned percent);

/* Keep trailing entries behind each snapshot (0: every / 8 + 1, the
 * default), so that a follower that far behind catches up from the log
 * rather than by a copy of the store. */
void fsm_set_trailing(struct fsm *f, unsigned trailing);

/* Ask for a raft snapshot after the next applied entry, keeping one entry
 * behind it, then for a second one at least two entries later, so that the
 * segments holding everything before the first leave the disk (the first
 * closes the segment it ends, which only the second, one entry kept behind
 * it, lies wholly after); once both are taken the usual settings return.
 * (None kept behind, the trailing setting libraft treats apart, lost an
 * entry appended while the snapshot was written: the next start found it
 * applied but gone.) Asked again meanwhile, the two start over. */
void fsm_compact(struct fsm *f);

/* Whether a compaction asked for is not over: entries must still be
 * applied for its snapshots. */
bool fsm_compacting(const struct fsm *f);

/* Tell the fsm the time (milliseconds, any monotonic origin): it commits
 * the store's batch of applied entries once the batch is FSM__FLUSH_MS old
 * (fsm.c), so that a host with nothing more to apply has its store current
 * soon, and sweeps marked events once FSM__SWEEP_MS have passed since the
 * last sweep. Called by the log after every loop iteration. */
void fsm_tick(struct fsm *f, uint64_t now_ms);

/* Return whether no other host holds f's log (no other voter or standby):
 * such a host releases an entry's effects only once the store has committed
 * it (fsm_flush), its store then being the proof of what may have been
 * acknowledged (docs/design.md, "A damaged log"). */
bool fsm_alone(const struct fsm *f);

/* Commit the store's batch of applied entries, if any, and return 0; or
 * return the store's error, after which f is fatal (reported through its
 * fatal hook). */
int fsm_flush(struct fsm *f);

/* Return what f has done so far. */
struct fsm_stats fsm_stats(const struct fsm *f);

/* Bytes a log entry of n bytes takes once framed (fsm_frame). */
size_t fsm_framed_len(size_t n);

/* Frame an entry of n bytes into out (fsm_framed_len(n) bytes, zeroed by
 * the caller): raft's segment format wants every entry's length to be a
 * multiple of 8, so an entry is u64 length | bytes | zero padding. */
void fsm_frame(uint8_t *out, const uint8_t *entry, size_t n);

#endif
