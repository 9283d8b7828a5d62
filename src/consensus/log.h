/* The log: berth's one path to durability; with the state machine
 * (consensus/fsm.c) the only code that sees raft.h.
 *
 * Everything that changes a host's replicated state (a new ship, a batch of
 * events, a snapshot, a removal) is one entry proposed here. libraft with its
 * libuv backend stores entries in segment files and replicates them; once an
 * entry is committed it is applied, on every host, by the state machine
 * (consensus/fsm.h, which the log is given), and then the proposer's
 * callback runs on the leader. On one host the cluster has one voter, so
 * committed means written and fsynced locally; replication later is a change of
 * membership, not of this interface.
 *
 * Crash-only: libraft (0.15, as measured) stops serving after any I/O error, so
 * the log treats such an error as fatal and calls the fatal callback, which
 * ends the process. A restart replays committed entries into the store, which
 * is why apply must be idempotent (core/record.h). */
#ifndef BERTH_CONSENSUS_LOG_H
#define BERTH_CONSENSUS_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "consensus/fsm.h"
#include "lib/buf.h"

struct log;

/* Called once when the log cannot continue; the host must exit. */
typedef void (*log_fatal_fn)(void *arg, const char *message);

/* Called when the log is ready: this host leads and every entry committed
 * before it started has been applied. */
typedef void (*log_ready_fn)(void *arg);

struct log_config {
    const char *dir;        /* raft's own directory; created if missing */
    uint64_t applied_index; /* the last entry the state machine holds */
    /* The least number of entries between raft snapshots (0: 1024); the
     * fsm waits longer while the store is big (consensus/fsm.h). */
    unsigned snapshot_every;
    struct fsm *fsm; /* what applies entries; outlives the log */
    log_fatal_fn fatal;
    log_ready_fn ready;
    void *arg; /* passed to every callback */
};

/* Called on the leader when a proposed entry has been applied (status 0,
 * result from apply) or has failed (status < 0, e.g. BERTH_ESHUTDOWN). */
typedef void (*log_done_cb)(void *arg, int status, int result);

/* Open the log in cfg->dir on loop, bootstrapping a one-voter cluster the
 * first time, and start it. The ready callback fires later. The log refuses
 * to open, with BERTH_ECORRUPT and a message naming the damage, when its
 * files are damaged in a way that would drop an entry at or below
 * cfg->applied_index, or when it ends below that index: new entries would
 * then take the numbers of entries the state machine already holds
 * (consensus/segments.h). The files are left untouched. On any failure
 * returns a negative code with a message in errmsg. *out is freed by
 * log_close(). */
int log_open(struct log **out, uv_loop_t *loop, const struct log_config *cfg,
             char *errmsg);

/* Propose one entry. On success the log takes ownership of entry's bytes
 * (entry is left empty) and cb runs exactly once later. On failure returns
 * a negative code, cb will not run, and entry is untouched. */
int log_propose(struct log *l, struct buf *entry, log_done_cb cb, void *arg);

/* Ask for a raft snapshot after the next applied entry, with no entry kept
 * behind it, so that the segments holding everything up to it leave the
 * disk (the state machine is synced first, as for every snapshot). Called
 * when something big was deleted, such as a ship; once the snapshot is
 * taken the usual settings return. */
void log_compact(struct log *l);

/* Return the number of proposals whose callback has not run yet. */
unsigned log_pending(const struct log *l);

/* Return the index of the last entry applied on this host. */
uint64_t log_applied_index(const struct log *l);

/* Called when the log has closed. */
typedef void (*log_close_cb)(void *arg);

/* Stop raft, fail pending proposals with BERTH_ESHUTDOWN, free l, then call
 * cb. */
void log_close(struct log *l, log_close_cb cb, void *arg);

#endif
