/* The host: one `berth serve` process and its data directory.
 *
 * The host owns the loop, the store, the log, the HTTP servers and the table
 * of ships. A ship's request becomes a job; jobs of one ship run one at a
 * time in its program, in arrival order; each job's outcome goes through the
 * ship's output gate (core/gate.h), which releases it only after every
 * state-changing event before it is durable. State-changing events of all
 * ships that finish in one loop iteration are proposed as one log entry:
 * that is the group commit. */
#ifndef BERTH_DAEMON_HOST_H
#define BERTH_DAEMON_HOST_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/caps.h"
#include "core/fleet.h"
#include "core/gate.h"
#include "core/ship.h"
#include "core/alarms.h"
#include "core/auth.h"
#include "core/beat.h"
#include "crypto/master.h"
#include "crypto/seal.h"
#include "store/fsck.h"
#include "core/registry.h"
#include "lib/hist.h"
#include "lib/loglevel.h"
#include "http/forward.h"
#include "http/http.h"
#include "lib/budget.h"
#include "lib/buf.h"
#include "proto/frame.h"
#include "store/store.h"

/* Descriptors kept free for the store, the log and accepting: neither
 * programs nor connections take them. */
#define HOST_FD_RESERVE 256

/* Bytes of an entry's hash, and entries watched at most, for the check of
 * effects that left before commit (see host.c, "Group commit"). */
#define HOST_ENTRY_HASH 16
#define HOST_DIVERGE_WATCH 1024

struct host_config {
    const char *data_dir;
    const char *listen; /* front door HOST:PORT */
    const char *admin;  /* admin HOST:PORT beside DATA/admin.sock, or NULL */
    /* The front door's domain: a request whose Host is <ship>.DOMAIN goes
     * to that ship (daemon/front.c); NULL: routing by path alone. */
    const char *domain;
    /* The front door's TLS listener HOST:PORT and the PEM files of its
     * certificate chain and key; NULL: no TLS. */
    const char *tls_listen;
    const char *tls_cert;
    const char *tls_key;
    size_t max_body;
    unsigned idle_timeout_ms;   /* idle this long: sleep */
    unsigned freeze_timeout_ms; /* idle this long: freeze; 0: never */
    unsigned event_timeout_ms;
    unsigned event_cpu_ms; /* CPU time of one event; 0: no limit */
    /* Every program's caps where its ship and account set smaller ones
     * (core/caps.h); 0: none. */
    struct caps caps;
    unsigned snapshot_every; /* events between a ship's snapshots */
    unsigned max_queue;      /* jobs waiting per ship before 503 */
    size_t max_frame;
    uint64_t reserve_bytes;   /* refuse writes when less is free on disk */
    uint64_t max_awake_bytes; /* memory budget of running programs; 0: none */
    unsigned max_awake;       /* running programs at most; 0: what fds allow */
    /* Bytes held for requests, replies and slow clients before programs
     * and clients are held back; 0: no cap. */
    uint64_t max_buffer_bytes;
    unsigned header_timeout_ms; /* a request's headers must arrive in this */
    /* A request's body must arrive within this of its headers, plus a
     * second for every min_rate bytes received. */
    unsigned body_timeout_ms;
    /* The slowest a client may send a body or read a reply, bytes/s. */
    unsigned min_rate;
    unsigned max_conns_per_addr; /* front-door connections per client
                                    address; 0: no cap */
    unsigned max_idle_conns;     /* idle front-door connections; 0: no cap */
    /* WebSockets (daemon/websocket.c): the largest message from a client,
     * open sockets per ship and per account, a client's messages in
     * flight before its socket is read no more, and the silence before
     * the host pings a client. */
    size_t ws_max_message;
    unsigned ws_per_ship, ws_per_account, ws_inflight, ws_ping_ms;
    const char *peer;      /* peer address (IP:PORT), or NULL: no peer port */
    const char *join;      /* a peer to join through the first time, or NULL */
    unsigned voters;       /* voters the cluster keeps; 0: 3 */
    unsigned heartbeat_ms; /* raft's heartbeat; 0: 100 */
    unsigned election_ms;  /* raft's election timeout; 0: 1000 */
    uint8_t acks;          /* ack level of ships that set none (core/gate.h) */
    /* The operator's secret that seals DATA/master.key (crypto/master.h):
     * a file holding a passphrase, or a key file; NULL both: the
     * passphrase in $BERTH_PASSPHRASE, if set, else none. */
    const char *passphrase_file;
    const char *master_key_file;
    /* Write new records, snapshots and ship secrets unsealed (key_id 0,
     * crypto/seal.h): only to measure what sealing costs. */
    bool unsealed;
    /* Start programs without hardening (proc/harden.h): only to measure
     * what it costs. */
    bool no_harden;
    /* A user name or uid every program runs as, or NULL: the host's. */
    const char *program_user;
    /* "FIRST-LAST": each running program runs as a uid of its own from
     * this range, or NULL (proc/harden.h). */
    const char *program_uids;
    /* A file holding the cluster secret (64 hex digits) for a host that
     * joins, or NULL: $BERTH_CLUSTER_SECRET, if set. */
    const char *cluster_secret_file;
    /* How often the leader proposes what programs used (CPU, memory, wakes,
     * requests) as a USAGE entry, and reads a running program's CPU. */
    unsigned usage_interval_ms;
    /* Each account's limits where it sets none (core/quota.h): the
     * host's defaults; QUOTA_NONE (0): no limit. */
    uint64_t limits[QUOTA__COUNT];
    /* The crawler (daemon/crawler.c): the share of one CPU its walk may
     * take, in percent (0: no crawler), and the rest between passes. */
    unsigned crawl_share;
    unsigned crawl_rest_ms;
    /* The least level of the lines the host writes, programs' stderr
     * lines included (enum loglevel, lib/loglevel.h). */
    int log_level;
    /* The bytes of a ship's program's stderr kept on disk, the most recent
     * (daemon/shiplog.c); 0: none kept. */
    uint64_t ship_log_bytes;
};

/* Make jansson allocate through lib/mem.h, so that tests can fail its
 * allocations too; main calls it once, before any JSON value is made. */
void host_install_json_heap(void);

/* Fill cfg with the defaults of `berth serve`. */
void host_config_defaults(struct host_config *cfg);

/* Run a host until SIGINT or SIGTERM; returns the process exit code. Errors
 * are printed to stderr. */
int host_run(const struct host_config *cfg);

/* --- Internal to the daemon module below this line. --- */

struct host;
struct host_ship;
struct proc;

/* Where a job came from (core/fleet.h's enum fleet_origin). */
enum host_job_origin {
    HOST_JOB_FRONT = FLEET_JOB_FRONT, /* the reply effect is the reply */
    HOST_JOB_ADMIN = FLEET_JOB_ADMIN, /* answered with a JSON summary */
    HOST_JOB_ALARM = FLEET_JOB_ALARM, /* a TIMER event: nobody waits */
    HOST_JOB_WS = FLEET_JOB_WS,       /* a WebSocket's: nobody waits */
};

struct host_wsconn;
struct host_wscount;
struct host_wsclosed;

/* The front door's WebSockets (daemon/websocket.c): every open or opening
 * connection by id, counts per ship and per account, and their figures. */
struct host_websockets {
    struct host_wsconn **conns; /* hash buckets */
    unsigned n_buckets, n;
    struct host_wscount **counts; /* hash buckets */
    unsigned n_count_buckets, n_counts;
    uint32_t run;  /* the high 32 bits of this run's ids */
    uint32_t next; /* the low 32 bits of the last id given */
    uint64_t open; /* of n, open (the rest are opening) */
    uint64_t opened, messages_in, messages_out;
    uint64_t dropped; /* WS_SEND and WS_CLOSE effects to no open conn */
    uint64_t refused; /* upgrades refused over a limit (429) */
    /* CLOSED events to deliver once the current release is done. */
    struct host_wsclosed *closed;
    uv_timer_t closed_timer;
    bool started; /* closed_timer is made (host_ws_start) */
};

/* A ship's live object in the daemon: the fleet's part (core/fleet.h)
 * first, so that the registry's live pointer is both, and what only the
 * daemon needs around it: the process, the timer, and the links of the
 * ships the buffer budget holds back. */
struct host_ship {
    struct fleet_ship core;
    struct host *host;
    struct proc *proc;
    uv_timer_t timer; /* the fleet's FLEET_TIMER_SHIP */
    /* Taken from the store's record by the fleet's load operation and
     * freed by spawn: the program's arguments and environment live in the
     * store, not in memory (string lists, lib/strlist.h). */
    char *args, *env;
    size_t args_len, env_len;
    bool network; /* its sandbox lets its program use the network */
    bool held;    /* in the host's list of ships held back */
    struct host_ship *held_prev, *held_next;
    /* Usage of its program (daemon/usage.c), from the wake on. */
    uint64_t account;     /* its account, read by the wake's load */
    uint64_t cpu_seen_us; /* the program's CPU time already counted */
    uint64_t cpu_ms;      /* monotonic ms of the last CPU reading */
    uint64_t mem_bytes;   /* its memory at the last measure */
    uint64_t mem_ms;      /* monotonic ms since which memory is counted */
    /* The caps of its program, resolved by the wake's load (host's,
     * account's, ship's sandbox), and whether the sandbox said them. */
    struct caps caps;
    /* Its mail (daemon/children.c): a piece is on its way to the program;
     * the last one taken, under the lead of mail_epoch. */
    bool mail_busy;
    uint64_t mail_last, mail_epoch;
    /* Its sandbox's cap on events a second (core/sandbox.h; 0: none), read
     * by the wake's load, and the bucket it draws from. */
    uint32_t events_per_s;
    struct quota_bucket events;
    bool log_failed; /* its stderr could not be kept: said once */
};

/* A leased ship on the leader (daemon/children.c): when its lease was last
 * renewed, and when its holder was last asked (0: not since). */
struct host_lease {
    uint64_t sid;
    uint64_t renewed_ns, asked_ns;
};

/* What ships' programs used on this host since the last USAGE entry it
 * proposed (daemon/usage.c): one slot per ship, by sid. */
struct host_usage_slot {
    uint64_t sid; /* 0: empty */
    uint64_t cpu_us, memory_peak_bytes, memory_byte_ms;
    uint32_t wakes, requests;
};

struct host_usage {
    struct host_usage_slot *slots;
    size_t cap; /* a power of two, or 0 */
    size_t n;
    uv_timer_t timer;  /* the next USAGE entry */
    uint64_t proposed; /* USAGE entries proposed since start */
    /* BERTH_ACCOUNTING=off: nothing measured, recorded or crawled (to
     * measure what accounting costs; host.c). */
    bool off;
};

/* The epoch of each program, by registry program index: the hash of its
 * executable, recomputed only when the file changes. */
struct host_program {
    uint64_t file_id[4]; /* device, inode, size, change time */
    uint8_t epoch[STORE_HASH_SIZE];
};

struct replay;

/* The crawler's state on a host (daemon/crawler.c). */
struct host_crawler {
    uv_timer_t timer;
    bool walking;           /* a pass is under way */
    uint64_t cursor;        /* the last sid walked; 0: a pass starts whole */
    uint64_t ticks_unsaved; /* steps since the cursor was last kept */
    uint64_t pass_cpu_ns;   /* the walk's CPU time in this pass */
    uint64_t pass_start_ns; /* loop time the pass started */
    /* Counters for stats. */
    uint64_t passes, ships_walked, ships_fixed, accounts_fixed;
    uint64_t cpu_ns;       /* the walk's CPU time, all passes */
    uint64_t last_pass_ms; /* the last whole pass's length, loop time */
    uint64_t last_pass_cpu_ns;
    uint64_t last_pass_ships;
};

/* Start the crawler on h, when h->cfg.crawl_share is not 0. */
void host_crawler_start(struct host *h);

/* Drop a pass under way (the store was replaced); the next step starts a
 * whole one. */
void host_crawler_reset(struct host *h);

/* Stop it; a pass under way resumes at the next start from its cursor. */
void host_crawler_stop(struct host *h);

/* Heartbeats (daemon/beats.c; docs/cluster.md, "Heartbeats"): every
 * HOST_BEAT_MS each host tells every other host of the cluster that it is
 * alive and how loaded it is, over the peer port; each keeps the last one
 * of every host, in memory only, and says how old it is. Nothing of it is
 * in the log: liveness is now, not history. */
#define HOST_BEAT_MS 1000
#define HOST_BEATS_MAX 64

/* A host's last heartbeat, as it sent it (core/beat.h), and when. */
struct host_beat {
    uint64_t id;          /* its raft id; 0: an empty slot */
    uint64_t received_ms; /* loop time it arrived here */
    struct beat said;
};

struct host_beats {
    struct host_beat beat[HOST_BEATS_MAX];
    unsigned n;
    uv_timer_t timer;
    uint64_t sent, received; /* heartbeats since start */
};

/* Start sending heartbeats; stop. */
void host_beats_start(struct host *h);
void host_beats_stop(struct host *h);

/* The log's beat callback (arg is the host): keep sender's heartbeat. */
void host_beat_received(void *arg, uint64_t sender, const uint8_t *body,
                        size_t len);

/* Return the last heartbeat of host id (this host's own, made now, for
 * its own id), or NULL when none came since start. */
const struct host_beat *host_beat_of(struct host *h, uint64_t id);

/* Add what a heartbeat says to o: {"heartbeat": {"age_ms", "rss_bytes",
 * "programs", "live", "fds", "load1", "cpus", "leading"}}, or
 * {"heartbeat": null} for none. */
void host_beat_json(struct host *h, uint64_t id, json_t *o);

/* --- Ships' logs (daemon/shiplog.c): programs' stderr, kept per ship. */

/* The most bytes one answer of GET /v1/ships/ID/logs carries, and the
 * longest it waits for more. */
#define HOST_SHIPLOG_READ_MAX (1u << 20)
#define HOST_SHIPLOG_WAIT_MAX_MS 10000

struct host_logwait;

/* Make DATA/logs and remove the logs of ships the registry no longer has;
 * once the registry is loaded. */
void host_shiplog_start(struct host *h);

/* Answer every request waiting for a log: the host stops. */
void host_shiplog_stop(struct host *h);

/* s's program wrote n bytes at data to its stderr: keep them in its ring,
 * and answer the requests that wait for them. */
void host_shiplog_append(struct host_ship *s, const uint8_t *data, size_t n);

/* Remove ship sid's log: the ship is removed. */
void host_shiplog_remove(struct host *h, uint64_t sid);

/* Answer req with the log of the ship in slot: its bytes from offset
 * after on (UINT64_MAX: the last ones), at most max; when there are none
 * after it yet and wait_ms is not 0, once the program writes or wait_ms
 * has passed. */
void host_shiplog_get(struct host *h, struct http_request *req, uint32_t slot,
                      uint64_t after, size_t max, unsigned wait_ms);

/* Serve GET /metrics: Prometheus text (daemon/metrics.c;
 * docs/metrics.md). */
void host_metrics_handle(struct host *h, struct http_request *req);

struct host {
    struct host_config cfg;
    uint8_t master_key[MASTER_KEY_SIZE]; /* crypto/master.h */
    enum master_how key_how;             /* how DATA/master.key keeps it */
    /* The data keys: wrapped in the store's data_keys table under the
     * master key, or, before any rotation, key 1 derived from it. */
    struct seal_keys keys;
    /* How DATA/master.key keeps the key, without the operator's secret:
     * the wrapping key the secret made (crypto/master.h). A host that
     * joins, or applies a key rotation, seals its new master key with it. */
    struct master_wrap wrap;
    /* The store's applied index at start: a KEY_ROTATE entry at or below it
     * is in the store's data keys already. */
    uint64_t start_applied;
    bool rotating; /* a key rotation proposed here is not applied yet */
    /* The cluster secret peers prove (DATA/cluster.key, sealed under the
     * master key), when the host has a peer port. */
    uint8_t cluster_secret[32];
    bool cluster_key_write; /* DATA/cluster.key is to be written */
    uv_loop_t loop;
    struct store *store;
    struct log *log;
    struct fsm *fsm; /* applies the log into store; outlives log */
    struct http_server *front;
    struct http_server *admin;     /* DATA/admin.sock */
    struct http_server *admin_tcp; /* --admin, or NULL */
    /* Failed token attempts on admin_tcp, by client address. */
    struct auth_limiter limiter;
    /* The ids of the accounts disabled now (daemon/accounts.c), owned:
     * while there are none, no request reads a ship's account. */
    uint64_t *disabled;
    uint64_t n_disabled;
    uint64_t n_limited; /* accounts with limits of their own */
    /* Accounts with caps of their own: while there are none, a wake reads
     * no account's caps. */
    uint64_t n_capped;
    /* Running programs that kept their old caps at the last change of an
     * account's caps because the kernel refused the new ones: what the
     * change's answer warns of. */
    unsigned caps_refused;
    /* Rates of the accounts whose limits were checked (daemon/quota.c). */
    struct host_quota *quota;
    size_t n_quota;
    bool ready;
    bool leading;   /* this host leads: it runs ships and lets effects out */
    uint64_t leads; /* times it started leading */
    /* The store's applied index when the registry was loaded, and whether
     * events applied since without this host leading may have changed
     * alarms the heap does not have. */
    uint64_t loaded_index;
    bool alarms_stale;
    bool stopping;
    bool repairing;          /* a repair of its own under way */
    struct replay *replays;  /* fsck's replays under way (daemon/replay.c) */
    uv_timer_t repair_timer; /* repair_tick, every REPAIR_TICK_MS */
    /* Mail (daemon/children.c): ships given mail by the entry being
     * applied, delivered once it is; a retry of what could not be; which
     * lead this is. */
    uint64_t *mail_due;
    size_t n_mail_due, cap_mail_due;
    uv_timer_t mail_retry;
    uint64_t mail_epoch;
    uv_timer_t lifetimes;      /* the timed lifetimes' tick, while leading */
    struct host_lease *leases; /* leased ships this leader has seen */
    size_t n_leases, cap_leases;
    uint64_t lead_since_ns;      /* wall clock when this host came to lead */
    bool registry_stale;         /* an applied entry spawned ships */
    bool removed_pending;        /* an applied entry removed ships */
    struct host_crawler crawler; /* daemon/crawler.c */
    struct host_usage usage;     /* what programs used, not yet proposed */
    int exit_code;
    struct registry reg;  /* every ship, compact */
    struct alarms alarms; /* durable alarms by slot */
    uv_timer_t alarm_timer;
    uv_timer_t measure_timer; /* the memory sweep, while programs run */
    /* The store's WAL written back off the loop (store_wal_writeback). */
    uv_timer_t writeback_timer;
    uv_work_t writeback;
    bool writeback_busy;
    uint64_t writeback_commits; /* the store's commits at the last tick */
    char store_path[4096];
    struct host_program *programs;
    uint32_t n_programs;
    /* The ships' lifecycle: tiers, jobs, wakes, admission, eviction,
     * alarms (core/fleet.h), over the environment of src/daemon/ship.c. */
    struct fleet fleet;
    unsigned max_awake; /* the cap in force */
    unsigned fd_limit, fd_base;
    /* Descriptors guaranteed to programs and to connections: neither side
     * may take the other's floor (see host__room, host_front_max_conns). */
    unsigned fd_programs_floor, fd_conns_floor;
    /* Bytes held for requests and replies, against --max-buffer-mb, and
     * what holds back programs and clients while it is over. */
    struct budget budget;
    uv_idle_t budget_idle;       /* re-plan once, after the budget changed */
    uv_timer_t budget_timer;     /* re-plan now and then while over */
    struct host_ship *holder;    /* the one ship let on while nothing drains */
    struct host_ship *held_head; /* ships held back */
    unsigned n_held;
    /* The entry being built for the next group commit. */
    struct buf batch;
    struct host__ref *refs;
    unsigned n_refs, cap_refs;
    /* Proposed batches with events whose ack level is not quorum. */
    struct host__batch *batches;
    /* Events whose effects left before their entry committed; and, of the
     * entries that then failed, which this host later applied unchanged
     * (survived), changed (lost) or could not watch. */
    uint64_t released_early;
    struct {
        uint64_t index;
        uint8_t hash[HOST_ENTRY_HASH];
    } watch[HOST_DIVERGE_WATCH];
    unsigned n_watch;
    uint64_t diverge_survived, diverge_lost, diverge_unknown;
    uv_check_t flush;
    uv_signal_t sigint, sigterm;
    uv_signal_t sighup;    /* reloads the TLS certificate */
    struct http_tls *tls;  /* the front door's certificate, or NULL */
    uv_timer_t stop_timer; /* bounds a stopping leader's hand-over, then
                              paces the drain */
    uint64_t drain_until;  /* when a stopping host stops waiting for the
                              requests it passed on */
    unsigned forwards;     /* requests passed to the leader, unanswered */
    bool forward_stopped;  /* no request waits for a leader any more */
    char rejoin[256];      /* the peer a cluster join goes through */
    /* Requests waiting for a leader to be known (daemon/forward.c). */
    struct forward__parked *parked;
    uv_timer_t park_timer;
    char admin_path[4096];
    uint64_t events_committed, batches_committed;
    uint64_t ready_ns; /* monotonic time from start to ready */
    uint64_t started_ns;
    uint64_t disk_checked_ms;
    bool disk_ok;
    struct host_beats beats; /* daemon/beats.c */
    /* Requests waiting for a ship's log to grow (daemon/shiplog.c), and
     * the tick that answers those whose time is up. */
    struct host_logwait *logwaits;
    uv_timer_t logwait_timer;
    /* The service manager (daemon/service.c): the watchdog's pings, and
     * the last STATUS sent, sent again only when it changes. */
    uv_timer_t watchdog;
    bool watchdog_on;
    bool service_ready; /* READY=1 was sent */
    /* The front door's socket as a service manager passed it (socket
     * activation, lib/notify.h), or -1: it then outlives this process, so
     * that a restart refuses no connection. */
    int front_fd;
    int tls_fd; /* the TLS door's socket from the service manager, or -1 */
    char service_status[160];
    struct host_websockets ws; /* daemon/websocket.c */
};

/* Prepare the WebSocket table, drawing this run's number (no handle on
 * the loop yet). */
void host_ws_init(struct host *h);

/* Make the WebSocket table's timer, once the host is ready to serve. */
void host_ws_start(struct host *h);

/* Free the WebSocket table (the sockets are the server's, closed with
 * it). */
void host_ws_free(struct host *h);

/* Open a WebSocket to the ship in slot for req, a valid opening handshake
 * (its HTTP payload, as the program sees it, in http_payload, kept by the
 * caller): refused with 429 over a limit, else an OPEN event whose
 * release answers req. */
void host_ws_open(struct host *h, uint32_t slot, struct http_request *req,
                  const struct buf *http_payload);

/* A job leaves (the fleet's release): an OPEN's 101 opens its socket, a
 * message's release lets its socket be read again, and the event's
 * WS_SEND and WS_CLOSE effects are written unless it failed. May take
 * j->req (then NULL); the caller answers what is left. */
void host_ws_released(struct host *h, struct fleet_job *j);

/* Close every open WebSocket with 1001 and reason (the host stops, or no
 * longer leads). */
void host_ws_close_all(struct host *h, const char *reason);

/* Close the open WebSockets of the ship sid with code and reason. */
void host_ws_close_ship(struct host *h, uint64_t sid, uint16_t code,
                        const char *reason);

/* Close with 1008 the open WebSockets of ships of disabled accounts. */
void host_ws_close_disabled(struct host *h);

/* On a host that does not lead: pass req, a WebSocket's opening
 * handshake, to the leader's front door and relay bytes both ways until
 * either side closes (daemon/tunnel.c); answered 503 leader_changed when
 * no leader's front door is known. */
void host_tunnel(struct host *h, struct http_request *req);

/* Return the registry slot of the ship with this id or name, or
 * REGISTRY_NONE. */
uint32_t host_ship_lookup(struct host *h, const char *id_or_name);

/* Return the live object of the ship in slot, making it if the ship has
 * none; NULL when out of memory. A live object that ends up with nothing to
 * do frees itself, so call one of the operations below on it at once. */
struct host_ship *host_ship_live(struct host *h, uint32_t slot);

/* Deliver an event of the given kind to a ship on behalf of req (NULL for
 * an alarm), starting the ship if needed. The ship takes payload's bytes
 * (payload is left empty) and answers req in every case, out of memory
 * included. */
void host_ship_deliver(struct host_ship *s, enum host_job_origin origin,
                       struct http_request *req, uint8_t kind,
                       struct buf *payload);

/* Create one ship, or count ships, as the JSON body of req asks
 * (daemon/body.h) and answer req when they are durable, or at once when
 * the body or the host refuses. */
void host_ship_create(struct host *h, struct http_request *req);

/* POST /v1/ships/ID/resize for the ship in slot (daemon/resize.c):
 * propose its new caps, answer with the ship once committed, and put them
 * on its running program. */
void host_ship_resize(struct host *h, struct http_request *req, uint32_t slot);

/* Set *out to the caps in force for a ship of account whose sandbox sets
 * own (core/caps.h: the smallest of the host's, the account's and own),
 * *from (may be NULL) to the level each comes from, and *acct (may be
 * NULL) to the account's own caps (read from the store only while some
 * account has caps; none when it cannot be read). */
void host_caps_in_force(struct host *h, uint64_t account,
                        const struct caps *own, struct caps *out,
                        struct caps_origin *from, struct caps *acct);

/* Resolve the caps of s from its stored sandbox and account again and put
 * them on its running program; returns what the kernel said (0 when
 * nothing runs) or a store error (daemon/resize.c). */
int host_caps_refresh(struct host *h, struct host_ship *s);

/* Account's caps changed: on the leader, put the caps now in force on
 * every running program of its ships, and set h->caps_refused to how many
 * the kernel refused them (daemon/resize.c). */
void host_caps_account_changed(struct host *h, uint64_t account);

/* Describe the ship in slot as a new JSON object; the caller frees it. */
json_t *host_ship_json(struct host *h, uint32_t slot);

/* Ask a ship to sleep (or wake) and answer req once its state settles. */
void host_ship_sleep(struct host_ship *s, struct http_request *req);

/* Kill a ship's program now and put it to sleep (fleet_ship_kill); req is
 * answered once it is asleep. */
void host_ship_kill(struct host_ship *s, struct http_request *req);
void host_ship_wake(struct host_ship *s, struct http_request *req);

/* Start waking or thawing s for a request on its way, answering no one
 * (core/fleet.h, fleet_ship_prewake). */
void host_ship_prewake(struct host_ship *s);

/* Remove a ship and answer req once the removal is durable. */
void host_ship_remove(struct host_ship *s, struct http_request *req);

/* Answer an HTTP request with a JSON value, which is freed. */
void host_reply_json(struct http_request *req, int status, json_t *body);

/* Answer with {"error": {"code": code, "message": message}}. */
void host_reply_error(struct http_request *req, int status, const char *code,
                      const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* HTTP handlers of the front door and of the admin API. */
void host_front_handle(struct http_request *req, void *arg);

/* The front door's hooks (http_server_config; arg is the host): a
 * request whose headers are in and whose body still comes, and the
 * server name of a TLS handshake under way, start waking their ship;
 * host_front_server_name_wakes says whether the name's ship would wake
 * (it is servable here and neither awake nor waking). */
void host_front_headers(const struct http_request *req, void *arg);
void host_front_server_name(const char *name, void *arg);
bool host_front_server_name_wakes(const char *name, void *arg);

/* Load the front door's certificate and key again from their files
 * (SIGHUP, POST /v1/tls/reload). Returns 0, BERTH_ENOTFOUND when the
 * host serves no TLS, or BERTH_EINVAL with the reason in errmsg
 * (ERRMSG_SIZE bytes), the certificate loaded before still serving;
 * either way it is logged. */
int host_tls_reload(struct host *h, char *errmsg);
void host_admin_handle(struct http_request *req, void *arg);

/* The admin API's handler on TCP (arg is the host): answers 429 to an
 * address with too many failed attempts, 401 to a request without a known
 * token, 403 to one whose token's scope is below its route's
 * (core/auth.h), and passes the others, their Authorization header
 * removed, to host_admin_handle. */
void host_admin_handle_tcp(struct http_request *req, void *arg);

/* Serve /v1/tokens and /v1/tokens/ID (path, without its query; the
 * caller keeps it) on the host that leads: make, list and revoke tokens.
 * The token's text is in the answer to its making only. */
void host_tokens_handle(struct host *h, struct http_request *req,
                        const char *path);

/* Serve /v1/accounts, /v1/accounts/NAME[/disable|/enable] and
 * /v1/anonymous (path, without its query; the caller keeps it) on the host
 * that leads (daemon/accounts.c). */
void host_accounts_handle(struct host *h, struct http_request *req,
                          const char *path);

/* Read the scope of req (core/account.h, ACCOUNT_HEADER) into *scope;
 * false, having answered 400, when the header is not an account id. */
bool host_request_scope(struct http_request *req, uint64_t *scope);

/* Return whether scope sees the ship in slot: the operator's every ship,
 * an account's only its own (a ship that cannot be read counts as not
 * seen). */
bool host_ship_visible(struct host *h, uint64_t scope, uint32_t slot);

/* Return whether ships may be made in the anonymous account (a store that
 * cannot be read says they may). */
bool host_anonymous_open(struct host *h);

/* Return whether account is disabled; false at once when no account is. */
bool host_account_disabled(struct host *h, uint64_t account);

/* Return whether the ship in slot belongs to a disabled account; false at
 * once when no account is disabled. */
bool host_ship_disabled(struct host *h, uint32_t slot);

/* Read the disabled accounts again (at start, after a raft snapshot and
 * after an ACCOUNT entry); 0, BERTH_ENOMEM or a store error. */
int host_accounts_load(struct host *h);

/* An ACCOUNT entry was applied: count disabled accounts again and, on the
 * leader, put a disabled account's ships to sleep and take their alarms
 * out of the heap, or give an enabled account's back. */
void host_accounts_applied(struct host *h, const uint8_t *entry, size_t len);

/* Answer every request still waiting for a leader with 503 and stop
 * waiting: the host is stopping. */
void host_forward_stop(struct host *h);

/* Return how long a request waits for a leader to be known before 503:
 * five election timeouts. */
unsigned host_forward_wait_ms(const struct host *h);

/* Serve req, which came in on server, through the leader: on a host that
 * does not lead, send it to the leader and answer it with the leader's
 * answer, or with 503 leader_changed when no leader is known, it cannot
 * be reached, or it stops leading first (see daemon/forward.c). */
void host_forward(struct host *h, struct http_request *req,
                  enum http_forward_server server);

/* Return whether an admin request for path (no query) is answered by the
 * host that gets it, leader or not, rather than forwarded. */
bool host_admin_local(const char *method, const char *path);

struct log_call;

/* The log's forwarded callback (arg is the host): serve a request another
 * host forwarded, as if it had come in directly, and send the answer back
 * with log_forward_reply(). */
void host_forwarded(void *arg, struct log_call *call, const uint8_t *body,
                    size_t len);

/* Add the store's ships with a sid above the registry's largest to the
 * registry, with their alarms; 0 or a negative code. */
int host_registry_sync(struct host *h);

/* This host leads: ships may wake, effects leave, the alarm timer is armed
 * for the earliest alarm (fleet_lead). */
void host_alarms_start(struct host *h);

/* Set up the fleet of h (core/fleet.h) over the daemon's environment. */
void host_ships_init(struct host *h);

/* Let a ship's effects out up to event number: it is held at the ship's
 * ack level, below quorum, before it commits. */
void host_ship_held(struct host_ship *s, uint64_t number);

/* Tell a ship that its proposal up to number was applied (status 0) and is
 * held at its ack level, or failed. */
void host_ship_durable(struct host_ship *s, uint64_t number, int status);

/* Hold back or let on programs and clients after the host's buffer
 * budget changed: over the cap, no program's output and no new request is
 * read, except one ship's (or, failing that, one client's) when nothing
 * else would free memory. Called from the loop, never from inside a
 * budget update. */
void host_budget_plan(struct host *h);

/* The budget's change callback (arg is the host): plans anew once the
 * loop comes back. */
void host_budget_changed(void *arg);

/* Make the loop handles that budget planning uses; stop them when the
 * host stops. */
void host_budget_start(struct host *h);
void host_budget_stop(struct host *h);

/* Return how many front-door connections the host allows now: the
 * descriptors not used by programs or kept for them and for the admin
 * API (an http_server_config max_conns callback; arg is the host). */
unsigned host_front_max_conns(void *arg);
/* Mark the ship in slot corrupt: its stored data failed a check, described
 * by detail (copied; it names the event). Its program is killed, its
 * pending and later events are answered 502 corrupt, and it is not woken
 * again until the host restarts and its data checks. Other ships are not
 * touched. */
void host_ship_mark_corrupt(struct host *h, uint32_t slot, const char *detail);

/* Write the epoch (STORE_HASH_SIZE bytes: the hash of its executable as it
 * is now) of the program of the ship in slot to epoch. Returns 0,
 * BERTH_ENOTFOUND when the program cannot be read, BERTH_EIO or
 * BERTH_ENOMEM. */
int host_ship_epoch(struct host *h, uint32_t slot, uint8_t *epoch);

/* Return the own key of ship sid (crypto/seal.h) as the seals of its data
 * want it: written to own (SEAL_OWN_KEY_SIZE bytes, the caller's) and
 * returned, or NULL for a ship made before ships had keys of their own, a
 * ship that is gone, or one whose key does not open (its seals then do not
 * open either, which is where the damage shows). */
const uint8_t *host_ship_own_key(struct host *h, uint64_t sid, uint8_t *own);

/* Return one ship's fsck result as the admin API's JSON (the caller owns
 * it), as POST /v1/fsck answers it. */
json_t *host_fsck_json(const struct fsck_result *r);

/* fsck on a data directory no host has open: cfg's data directory, the
 * master key opened as `berth serve` opens it (cfg's passphrase or key
 * file, else $BERTH_PASSPHRASE), every ship of the store, or the n named
 * (ids or names; borrowed), checked with fsck_ship. On success returns 0
 * and *out is the answer POST /v1/fsck would give (the caller frees it);
 * BERTH_EBUSY when a host holds the directory, BERTH_ENOTFOUND for no
 * store or a ship not found, or another code; errmsg says why. */
int host_fsck_offline(const struct host_config *cfg, const char *const *names,
                      int n, json_t **out, char *errmsg);

/* Return what was found wrong with a ship marked corrupt ("" if nothing is
 * known); valid until the next mark. */
const char *host_ship_corrupt_detail(const struct host *h, uint32_t slot);

/* Stop every live ship with 503 leader_changed: this host stopped
 * leading, and only the leader runs ships (fleet_lead). */
void host_ships_step_down(struct host *h);

/* Return whether requests can be served through this host: it is ready,
 * and it leads or knows another host that does. */
bool host_serving(const struct host *h);

/* Shut every live ship down. */
void host_ships_shutdown(struct host *h);

/* Free every live ship once the loop has stopped; closes their timers. */
void host_ships_free(struct host *h);

/* Add one encoded event record of ship s to the next group commit, with
 * its effects item (fx_len bytes at fx, none when 0) right behind it; on
 * failure neither is added. */
int host_propose_event(struct host *h, struct host_ship *s, uint64_t number,
                       const uint8_t *rec, size_t len, const uint8_t *fx,
                       size_t fx_len);

/* --- Children and mail (daemon/children.c). --- */

/* The fleet's effect_entry for ship s: the log entry a SPAWN, SEND,
 * RELEASE or DESTROY effect (len bytes at p) of job j becomes, appended to
 * out with record_effects_add. 0 or a code. */
int host_children_effect_entry(struct host *h, struct host_ship *s,
                               const struct fleet_job *j, uint8_t kind,
                               const uint8_t *p, size_t len, struct buf *out);

/* The fleet's receipt_entry for ship s: the sender's RECEIPT of the
 * message j delivered, with j's reply, appended to out. 0 or a code. */
int host_children_receipt_entry(struct host *h, struct host_ship *s,
                                const struct fleet_job *j, struct buf *out);

/* Note that the entry being applied gave ship target mail; it is delivered
 * by host_mail_flush once the entry is applied, if this host leads. */
void host_mail_due(struct host *h, uint64_t target);

/* Deliver the mail noted by host_mail_due. */
void host_mail_flush(struct host *h);

/* Deliver every ship's waiting mail: the host has come to lead, or retries
 * what could not be delivered. */
void host_mail_start(struct host *h);

/* A FLEET_JOB_MAIL job left: the next piece follows, refused mail is
 * dropped, and what could not be delivered is tried again later. */
void host_mail_released(struct host *h, const struct fleet_job *j);

/* --- Limits (daemon/quota.c; docs/api.md, "Limits"). --- */

/* One account's rates, on the leader. */
struct host_quota {
    uint64_t account;
    struct quota_bucket events, cpu;
};

/* Whether any account may be held to a limit: a host default, or an
 * account's own; when not, nothing is read to check one. */
bool host_quota_active(const struct host *h);

/* Fill limits (QUOTA__COUNT) with account a's limits in force. */
void host_quota_limits(const struct host *h, const struct store_account *a,
                       uint64_t *limits);

/* Return whether count ships may be made in account; when not, *why. */
bool host_quota_create_ok(struct host *h, uint64_t account, uint64_t count,
                          struct quota_refusal *why);

/* Return whether a ship of account may wake; when not, *why. */
bool host_quota_wake_ok(struct host *h, uint64_t account,
                        struct quota_refusal *why);

/* Return whether a ship of account may commit an event, taking it from
 * the account's rate; when not, *why. */
bool host_quota_write_ok(struct host *h, uint64_t account,
                         struct quota_refusal *why);

/* Charge usec of CPU time to account's hourly CPU. */
void host_quota_cpu(struct host *h, uint64_t account, uint64_t usec);

/* Answer a refusal over a limit: its status and code, with the limit and
 * the figure that reached it ({"error": {"code", "message", "limit",
 * "used"}}). */
void host_reply_limit(struct http_request *req, const char *message,
                      const struct quota_refusal *why);

/* Describe a's limits: {"limits": {NAME: in force}, "limits_set": {NAME:
 * its own, for those it sets}} added to o. */
void host_quota_json(const struct host *h, const struct store_account *a,
                     json_t *o);

/* Free the rates. */
void host_quota_free(struct host *h);

/* --- Export and import (daemon/export.c; core/export.h). --- */

/* Answer req with the export file of the ship in slot (200,
 * application/octet-stream), after checking its stored data as fsck does. */
void host_ship_export(struct host *h, struct http_request *req, uint32_t slot);

/* Make the ship in the export file that is req's body, through the log:
 * 201 with the ship, or an error that says why nothing changed. */
void host_ship_import(struct host *h, struct http_request *req);

/* --- The service manager (daemon/service.c; lib/notify.h). --- */

/* The host listens and its store and log are open: tell the service
 * manager READY=1 with a STATUS, and start the watchdog's pings from the
 * loop when it asks for them. */
void host_service_ready(struct host *h);

/* Send STATUS again if what it says changed (leadership, ships). */
void host_service_status(struct host *h);

/* The host begins to stop: STOPPING=1. The pings go on until the loop
 * ends, since the drain still runs in it. */
void host_service_stopping(struct host *h);

/* Stop the watchdog's timer, before the loop closes. */
void host_service_stop(struct host *h);

/* --- Usage (daemon/usage.c; docs/design.md, "Usage"). --- */

/* Start the usage timer; the table starts empty. */
void host_usage_start(struct host *h);

/* Stop the timer and free the table. */
void host_usage_stop(struct host *h);

/* A ship's program started: count a wake, and count its CPU and memory
 * from now. */
void host_usage_woke(struct host_ship *s);

/* A request to ship sid was answered. */
void host_usage_request(struct host *h, uint64_t sid);

/* s's program measured bytes of memory: count the memory held since the
 * last measure, the peak, and, once an interval has passed, its CPU. */
void host_usage_measured(struct host_ship *s, uint64_t bytes);

/* s's program p is gone: count its memory to now and the rest of its CPU. */
void host_usage_exited(struct host_ship *s, struct proc *p);

/* Describe usage u as a new JSON object; for an account (account true) with
 * its ships and ships_awake, the programs of its running now. */
json_t *host_usage_json(const struct store_usage *u, bool account,
                        uint64_t ships_awake);

/* Return how many of account's ships have a running program. */
uint64_t host_usage_awake(struct host *h, uint64_t account);

/* Propose an entry of its own after flushing the pending group commit, so
 * that it lands after every event computed before it. Takes entry's bytes on
 * success. */
int host_propose_entry(struct host *h, struct buf *entry,
                       void (*cb)(void *, int, int), void *arg);

/* Return whether the data directory's disk has more than the reserve free;
 * the answer is cached for 100 ms. When it is false, state changes are
 * refused (507) so that the log never meets a full disk. */
bool host_disk_ok(struct host *h);

/* Return the wall-clock time in nanoseconds. */
uint64_t host_now_ns(void);

/* Return whether a line of level (a name as host_log takes it) is written
 * at the level in force. */
bool host_log_enabled(const char *level);

/* Write one structured log line to stderr, when its level is at or above
 * the one in force: time, level, message, then key=value pairs given as
 * alternating strings and ending with NULL. */
void host_log(const char *level, const char *msg, ...);

#endif
