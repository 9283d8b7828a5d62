/* fsck --replay: whether a ship's program is deterministic, checked from
 * what the store keeps.
 *
 * The store keeps a ship's latest snapshot, the one before it, and every
 * event after that prior one (store_prior_snapshot_get). A replay starts
 * the ship's program apart from the ship (a process of its own, whatever
 * state the ship is in), boots it from the prior snapshot (or from nothing,
 * when the log still starts at event 1), sends it every event up to the
 * latest snapshot's, exactly as logged, asks it for a snapshot there, and
 * compares that with the stored one byte for byte. A program whose state
 * depends on anything but its events (its own clock or random numbers, a
 * file, the order of a hash table) shows up as different. */
#ifndef BERTH_DAEMON_REPLAY_H
#define BERTH_DAEMON_REPLAY_H

#include <stdint.h>

struct host;

/* How a replay ended. */
enum replay_verdict {
    REPLAY_SAME = 0,  /* the program made the stored snapshot again */
    REPLAY_DIFFERENT, /* it made another one: not deterministic */
    REPLAY_SKIPPED,   /* nothing to compare, or another program made it */
    REPLAY_FAILED,    /* it refused, rejected, crashed or took too long */
};

/* Called once when a replay ends, with a sentence saying what was found
 * (valid only during the call). */
typedef void (*replay_done_cb)(void *arg, enum replay_verdict verdict,
                               const char *detail);

/* The longest a replay may take, in ms, before it counts as failed. */
#define REPLAY_TIMEOUT_MS 60000

/* Replay the ship in registry slot of host h; done is called once, later
 * (never from within this call), with arg. Returns 0, or BERTH_ENOMEM (then
 * done is never called). */
int replay_start(struct host *h, uint32_t slot, replay_done_cb done, void *arg);

/* Stop every replay under way on h (the host stops): each ends as failed,
 * once its program is gone. */
void replay_stop_all(struct host *h);

/* Return the name of verdict: "same", "different", "skipped" or
 * "failed". */
const char *replay_verdict_name(enum replay_verdict verdict);

#endif
