/* Repairing a ship's stored data from a replica.
 *
 * Every host of a cluster holds every ship's data. When one host's copy
 * fails its checks (a flipped bit, a torn write), repair_start asks the
 * other members in turn for theirs (the peer port's "ship copy",
 * store/shipcopy.h), installs it in one undoable step, checks it as fsck
 * does, and keeps it only when it checks out and is not behind this host's
 * copy; a ship marked corrupt then wakes again. Two callers: `berth fsck
 * --repair`, and the host itself: repair_tick, every REPAIR_TICK_MS, tries
 * each ship marked corrupt up to REPAIR_TRIES times. */
#ifndef BERTH_DAEMON_REPAIR_H
#define BERTH_DAEMON_REPAIR_H

#include <stdbool.h>
#include <stdint.h>

struct host;

/* How often the host looks for ships to repair, and how many times it
 * tries each one on its own. */
#define REPAIR_TICK_MS 2000
#define REPAIR_TRIES 3

/* Called once when a repair ends: repaired, and from which peer address,
 * or why not (valid during the call only). */
typedef void (*repair_done_cb)(void *arg, bool repaired, const char *detail);

/* Repair the data of the ship in slot of host h; done is called once,
 * later (never from within this call), with arg. Returns 0, BERTH_EBUSY
 * when the ship has a program running (its state would not match the
 * copy), BERTH_ENOTFOUND when no other member exists or takes the ask,
 * or BERTH_ENOMEM;
 * done is then never called. */
int repair_start(struct host *h, uint32_t slot, repair_done_cb done, void *arg);

/* Start a repair of one ship marked corrupt on this host that has tries
 * left and no program running, if none is under way. */
void repair_tick(struct host *h);

#endif
