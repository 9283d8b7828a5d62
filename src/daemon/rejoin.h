/* A host whose raft log is damaged joins its cluster again.
 *
 * A damaged raft segment cannot be mended in place: the entries in it are
 * every ship's, and a member that lost entries it acknowledged must not
 * vote or make a quorum as if it still held them (docs/design.md, "A
 * damaged log"). So a host that is a member of a cluster, and knows the
 * other members' addresses (the log keeps them in raft's directory), sets
 * its whole copy aside, raft's directory and the store, in
 * DATA/damaged-<time>/, and joins again as a new member in place of its
 * old one: the leader removes the old member, adds the new one, and sends
 * it the state as it sends it to any new host. A host alone, or one that
 * cannot tell who else holds the log, refuses to start, its files
 * untouched.
 *
 * The steps are crash-safe: DATA/rejoin (consensus/identity.h) is written
 * before anything is moved and removed only once the host has joined; a
 * host that finds it at start sets aside what is there and joins again. */
#ifndef BERTH_DAEMON_REJOIN_H
#define BERTH_DAEMON_REJOIN_H

#include <stdbool.h>
#include <stdint.h>

#include "consensus/identity.h"

/* Decide, before the log opens, whether the host in data_dir (whose store
 * has applied entries up to applied) must join its cluster again. Returns
 * 0 with *rejoining false when its log loads as it is; 0 with *rejoining
 * true and *out filled when it must (DATA/rejoin then exists: written now,
 * or found from a start cut short); a negative code with a message in
 * errmsg when the log is damaged and cannot be repaired this way
 * (BERTH_ECORRUPT), or the files cannot be read or written. */
int rejoin_prepare(const char *data_dir, uint64_t applied,
                   struct identity_rejoin *out, bool *rejoining, char *errmsg);

/* Move raft's directory and the store's files (store.db and its -wal and
 * -shm, which must be closed) of data_dir, as far as they exist, into a new
 * DATA/damaged-<time>/, written into where (size bytes). Returns 0, or
 * BERTH_EIO with a message in errmsg. */
int rejoin_set_aside(const char *data_dir, char *where, size_t size,
                     char *errmsg);

/* Remove DATA/rejoin once the host has joined again. Returns 0, or
 * BERTH_EIO with a message in errmsg. */
int rejoin_done(const char *data_dir, char *errmsg);

#endif
