/* The log: berth's one path to durability; with the state machine
 * (consensus/fsm.c) the only code that sees raft.h.
 *
 * Everything that changes a host's replicated state (a new ship, a batch of
 * events, a snapshot, a removal) is one entry proposed here. libraft with its
 * libuv backend stores entries in segment files and replicates them; once an
 * entry is committed it is applied, on every host, by the state machine
 * (consensus/fsm.h, which the log is given), and then the proposer's
 * callback runs on the leader. On one host the cluster has one voter, so
 * committed means written and fsynced locally; in a cluster it means held by
 * a majority of voters. Hosts reach each other through the peer transport
 * (consensus/transport.h); the leader keeps the voters' number and the roles
 * (docs/cluster.md).
 *
 * Crash-only: libraft (0.15 and 0.22, as measured) cannot be trusted to go
 * on after an I/O error, so the log treats such an error as fatal and calls
 * the fatal callback, which ends the process. A restart replays committed
 * entries into the store, which is why apply must be idempotent
 * (core/record.h). */
#ifndef BERTH_CONSENSUS_LOG_H
#define BERTH_CONSENSUS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "consensus/fsm.h"
#include "consensus/identity.h"
#include "lib/buf.h"

struct log;

/* Called once when the log cannot continue; the host must exit. */
typedef void (*log_fatal_fn)(void *arg, const char *message);

/* Called with true when this host starts leading and every entry committed
 * before has been applied here (a barrier of its own term committed), and
 * with false the moment it learns that it no longer leads. Only a leading
 * host may let effects out. */
typedef void (*log_lead_fn)(void *arg, bool leading);

/* Called on the leader once per loop iteration, after I/O: proposed
 * entries may be held by more hosts than before (see log_held). */
typedef void (*log_progress_fn)(void *arg);

/* Called for something worth a line in the host's log; detail may be
 * NULL. */
typedef void (*log_note_fn)(void *arg, const char *level, const char *message,
                            const char *detail);

/* A request forwarded from another host of the cluster, waiting for
 * log_forward_reply(). */
struct log_call;

/* Called on this host for each request another host forwarded to it with
 * log_forward(); body is valid until log_forward_reply() is called on
 * call, which must happen exactly once. */
typedef void (*log_forwarded_fn)(void *arg, struct log_call *call,
                                 const uint8_t *body, size_t len);

/* Called on this host when another asks for its copy of ship sid's stored
 * data (log_ship_copy), to answer with log_forward_reply() exactly once. */
typedef void (*log_ship_copy_fn)(void *arg, struct log_call *call,
                                 uint64_t sid);

/* Called on this host for each heartbeat another host of the cluster sent
 * with log_beat(): sender is its raft id, body (len bytes) what it sent,
 * valid during the call only. */
typedef void (*log_beat_fn)(void *arg, uint64_t sender, const uint8_t *body,
                            size_t len);

#define LOG_CLUSTER_SECRET_SIZE 32
#define LOG_MASTER_KEY_SIZE 32

/* Called once on a host that joins a cluster, inside log_open(), with the
 * master key the cluster gave it (LOG_MASTER_KEY_SIZE bytes, valid during
 * the call, wiped after it). Returns 0, or a negative code with a message
 * in errmsg to fail log_open(). */
typedef int (*log_joined_fn)(void *arg, const uint8_t *master_key,
                             char *errmsg);

struct log_config {
    const char *dir;        /* raft's own directory; created if missing */
    uint64_t applied_index; /* the last entry the state machine holds */
    /* The least number of entries between raft snapshots (0: 1024); the
     * fsm waits longer while the store is big (consensus/fsm.h). */
    unsigned snapshot_every;
    /* The address this host's peers reach it at (IP literal and port),
     * bound for the peer port; NULL: one host with no peer port. */
    const char *peer;
    /* The first time only: a peer of the cluster to join, instead of
     * starting a cluster of one. NULL: none. */
    const char *join;
    unsigned voters; /* voters the cluster keeps when it can; 0: 3 */
    /* raft's heartbeat and election timeouts in ms; 0: 100 and 1000. */
    unsigned heartbeat_ms, election_ms;
    /* What this host tells peers that probe it (its HTTP addresses, say);
     * copied. NULL: nothing. */
    const char *info;
    struct fsm *fsm; /* what applies entries; outlives the log */
    log_fatal_fn fatal;
    log_lead_fn lead;
    log_progress_fn progress;   /* NULL: not needed */
    log_note_fn note;           /* NULL: notes go to stderr */
    log_forwarded_fn forwarded; /* NULL: forwarded requests are refused */
    log_ship_copy_fn ship_copy; /* NULL: asks for copies are refused */
    log_beat_fn beat;           /* NULL: heartbeats are dropped */
    /* The cluster secret every peer connection proves
     * (LOG_CLUSTER_SECRET_SIZE bytes, copied); NULL: no peer connects. */
    const uint8_t *cluster_secret;
    /* Peer connections without encryption, for measuring its cost only. */
    bool peer_plaintext;
    /* The master key (LOG_MASTER_KEY_SIZE bytes, borrowed; outlives the
     * log) that this host gives the hosts that join through it; NULL:
     * zeros. */
    const uint8_t *master_key;
    log_joined_fn joined; /* NULL: the master key a join brings is dropped */
    /* A host that joins its cluster again after its log was damaged, from
     * an empty directory: who it was and whom to ask (log_check_dir;
     * borrowed for log_open). NULL: none. */
    const struct identity_rejoin *rejoin;
    void *arg; /* passed to every callback */
};

/* Called on the leader when a proposed entry has been applied (status 0,
 * result from apply) or has failed (status < 0, e.g. BERTH_ESHUTDOWN). */
typedef void (*log_done_cb)(void *arg, int status, int result);

/* Open the log in cfg->dir on loop and start it. The first time, either
 * bootstrap a cluster of this host alone, or (cfg->join) ask the cluster to
 * add this host, running loop until it answers. The lead callback fires
 * later. The log refuses
 * to open, with BERTH_ECORRUPT and a message naming the damage, when its
 * files are damaged in a way that would drop an entry at or below
 * cfg->applied_index, or when it ends below that index: new entries would
 * then take the numbers of entries the state machine already holds
 * (consensus/segments.h). The files are left untouched. BERTH_EBUSY says
 * the peer port could not be bound, BERTH_EINVAL a setting that does not
 * fit the data directory, BERTH_ETIMEOUT a join that got no answer. On any
 * failure returns a negative code with a message in errmsg. *out is freed by
 * log_close(). */
int log_open(struct log **out, uv_loop_t *loop, const struct log_config *cfg,
             char *errmsg);

/* Check the raft directory dir as log_open() will, against applied, before
 * anything opens it: 0 when it can be loaded as it is; BERTH_ECORRUPT with
 * a message naming the damage when it cannot, and then *rejoin says whether
 * this host can join its cluster again instead (rejoin->replaces != 0:
 * the host was a member with a peer address and knows the addresses of
 * other members, from the members file the log keeps); another negative
 * code when the files cannot be read. Reads only. */
int log_check_dir(const char *dir, uint64_t applied,
                  struct identity_rejoin *rejoin, char *errmsg);

/* Propose one entry. On success the log takes ownership of entry's bytes
 * (entry is left empty), sets *index (when not NULL) to the entry's
 * position, and cb runs exactly once later: status 0 once committed and
 * applied; BERTH_ENOTLEADER if leadership was lost first (the entry may
 * still commit later, under another leader); BERTH_ESHUTDOWN when closing.
 * On failure returns a negative code (BERTH_ENOTLEADER when this host does
 * not lead), cb will not run, and entry is untouched. */
int log_propose(struct log *l, struct buf *entry, log_done_cb cb, void *arg,
                uint64_t *index);

/* Return how many hosts hold the entry at index durably (this leader's own
 * fsync counts as one), or 0 when this host does not lead. */
unsigned log_held(const struct log *l, uint64_t index);

/* Return the number of voters in the current configuration. */
unsigned log_voters(const struct log *l);

/* Return whether this host leads and may let effects out. */
bool log_leading(const struct log *l);

/* Return the id of the host that leads as far as this one knows (its own
 * when it leads), or 0 when it knows none. */
uint64_t log_leader(const struct log *l);

/* Copy the peer address of host id, as the configuration has it, into out
 * (size bytes, the caller's); 0, or BERTH_ENOTFOUND when id is not in the
 * configuration (or its address does not fit). */
int log_peer_address(const struct log *l, uint64_t id, char *out, size_t size);

/* Called once with a forwarded request's outcome: status 0 and the
 * leader's answer, or a negative code (BERTH_ENOTLEADER: no leader is
 * known or it stopped leading; BERTH_ENOCONNECT: the leader could not be
 * reached and the request was not sent; BERTH_EIO, BERTH_ETIMEOUT). body is
 * valid during the call only. */
typedef void (*log_forward_cb)(void *arg, int status, const uint8_t *body,
                               size_t len);

/* The most bytes a forwarded request, and its answer, may carry. */
#define LOG_FORWARD_MAX (16u * 1024 * 1024)

/* Send body to the leader's forwarded callback and wait at most timeout_ms
 * for its answer. Returns 0 and cb runs once later, or a negative code
 * (BERTH_ENOTLEADER when no other host is known to lead, BERTH_ETOOBIG
 * when len is over LOG_FORWARD_MAX). body is copied. */
int log_forward(struct log *l, const void *body, size_t len,
                unsigned timeout_ms, log_forward_cb cb, void *arg);

/* Ask the host at peer address (a member, say from log_member) for its copy
 * of ship sid's stored data (store/shipcopy.h) and wait at most timeout_ms:
 * cb runs once later, as for log_forward. Returns 0, or a negative code.
 * address is copied. */
int log_ship_copy(struct log *l, const char *address, uint64_t sid,
                  unsigned timeout_ms, log_forward_cb cb, void *arg);

/* Return the peer address of the i-th member of the cluster other than
 * this host (0-based), or NULL past the last; valid until the
 * configuration changes. */
const char *log_member(const struct log *l, unsigned i);

/* Answer a forwarded request: status 0 with body (copied; at most
 * LOG_FORWARD_MAX bytes, or the host that forwarded it sees BERTH_EIO), or
 * a negative code. call is freed by this function. */
void log_forward_reply(struct log_call *call, int status, const void *body,
                       size_t len);

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

/* Return this host's raft id. */
uint64_t log_id(const struct log *l);

/* The most bytes a heartbeat may carry. */
#define LOG_BEAT_MAX 1024

/* Send body (len bytes, copied; at most LOG_BEAT_MAX) to every other host
 * of the configuration as a heartbeat, for its beat callback; nothing is
 * waited for, and a host that does not answer is not told again. Returns
 * how many hosts it was sent to, or a negative code. */
int log_beat(struct log *l, const void *body, size_t len);

/* Return the raft term this host is in. */
uint64_t log_term(const struct log *l);

/* Return the index of the last entry in this host's log. */
uint64_t log_last_index(const struct log *l);

/* Set *id to the raft id of the i-th host of the configuration (0-based)
 * and, on the leader, *match to the last entry the leader knows that host
 * holds (its match index; the leader's own last index for itself).
 * Returns 0; BERTH_ENOTLEADER, *id set, when this host does not lead;
 * BERTH_ENOTFOUND past the last host. */
int log_match(const struct log *l, unsigned i, uint64_t *id, uint64_t *match);

/* One host of the cluster, as log_cluster() describes it. */
struct log_host {
    uint64_t id;
    const char *peer; /* its peer address */
    const char *role; /* "voter", "standby" or "spare" */
    bool leader;
    bool online;      /* it answered a probe just now (or is this host) */
    uint64_t applied; /* the last entry it applied, as it said */
    uint64_t lag;     /* entries behind the most advanced host */
    const char *info; /* what it tells probes (its HTTP addresses), or NULL */
};

/* The cluster as this host sees it. */
struct log_cluster {
    uint64_t self, leader, term, last_index;
    uint8_t cluster[16];
    uint64_t refused; /* peer connections refused since start */
    struct log_host *hosts;
    unsigned n_hosts;
};

/* Called once with the cluster's description; c and everything it points
 * to are valid during the call only. */
typedef void (*log_cluster_cb)(void *arg, int status,
                               const struct log_cluster *c);

/* Probe every host of the configuration and describe the cluster. Returns
 * 0 and cb runs once later, or a negative code. */
int log_cluster(struct log *l, log_cluster_cb cb, void *arg);

/* Start removing host id from the cluster (on the leader only: else
 * BERTH_ENOTLEADER). Returns 0 once the change is proposed, or a negative
 * code with a message in errmsg. */
int log_remove(struct log *l, uint64_t id, char *errmsg);

/* Return whether address is a peer address the log can dial: an IPv4 or
 * [IPv6] literal and a port. */
bool log_address_valid(const char *address);

/* Return the number of hosts in the configuration. */
unsigned log_hosts(const struct log *l);

/* Return the id of the host whose peer address is peer, or 0. */
uint64_t log_host_by_peer(const struct log *l, const char *peer);

/* Called when a hand-off has ended, whether or not another host leads. */
typedef void (*log_handoff_cb)(void *arg);

/* Hand leadership to the most caught-up voter, for a graceful stop.
 * Returns 0 and cb runs once later, or BERTH_ENOTLEADER when this host
 * does not lead or no other voter exists. */
int log_handoff(struct log *l, log_handoff_cb cb, void *arg);

/* Called when the log has closed. */
typedef void (*log_close_cb)(void *arg);

/* Stop raft, fail pending proposals with BERTH_ESHUTDOWN, free l, then call
 * cb. */
void log_close(struct log *l, log_close_cb cb, void *arg);

#endif
