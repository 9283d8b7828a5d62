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

#include "core/gate.h"
#include "core/ship.h"
#include "core/alarms.h"
#include "core/registry.h"
#include "lib/hist.h"
#include "http/http.h"
#include "lib/budget.h"
#include "lib/buf.h"
#include "proto/frame.h"
#include "store/store.h"

/* Descriptors kept free for the store, the log and accepting: neither
 * programs nor connections take them. */
#define HOST_FD_RESERVE 256

struct host_config {
    const char *data_dir;
    const char *listen; /* front door HOST:PORT */
    const char *admin;  /* admin HOST:PORT, or NULL for DATA/admin.sock */
    size_t max_body;
    unsigned idle_timeout_ms;   /* idle this long: sleep */
    unsigned freeze_timeout_ms; /* idle this long: freeze; 0: never */
    unsigned event_timeout_ms;
    unsigned snapshot_every; /* events between a ship's snapshots */
    unsigned max_queue;      /* jobs waiting per ship before 503 */
    size_t max_frame;
    uint64_t reserve_bytes;   /* refuse writes when less is free on disk */
    uint64_t max_awake_bytes; /* memory budget of running programs; 0: none */
    unsigned max_awake;       /* running programs at most; 0: what fds allow */
    /* Bytes held for requests, replies and slow clients before programs
     * and clients are held back; 0: no cap. */
    uint64_t max_buffer_bytes;
    unsigned header_timeout_ms;  /* a request's headers must arrive in this */
    unsigned max_conns_per_addr; /* front-door connections per client
                                    address; 0: no cap */
    unsigned max_idle_conns;     /* idle front-door connections; 0: no cap */
};

/* Fill cfg with the defaults of `berth serve`. */
void host_config_defaults(struct host_config *cfg);

/* Run a host until SIGINT or SIGTERM; returns the process exit code. Errors
 * are printed to stderr. */
int host_run(const struct host_config *cfg);

/* --- Internal to the daemon module below this line. --- */

struct host;
struct host_ship;

enum host_job_origin {
    HOST_JOB_FRONT, /* a front-door request: the reply effect is the reply */
    HOST_JOB_ADMIN, /* `berth ship send`: answered with a JSON summary */
    HOST_JOB_ALARM, /* a TIMER event: nobody waits for it */
};

/* What the first event after a wake or a thaw measures. */
enum host_measure {
    HOST_MEASURE_NONE,
    HOST_MEASURE_WAKE, /* asleep to answered */
    HOST_MEASURE_THAW, /* frozen to answered */
};

/* One event for one ship, from arrival to the release of its effects. The
 * gate item comes first so a released gate item is its job. */
struct host_job {
    struct gate_item gate;
    struct host_job *next; /* in the ship's wait queue */
    struct host_ship *ship;
    enum host_job_origin origin;
    struct http_request *req; /* NULL once answered, and for alarms */
    uint8_t kind;
    uint8_t measure;     /* enum host_measure */
    uint64_t arrived_ns; /* monotonic */
    struct buf payload;
    /* The outcome, filled when the program answers or fails. */
    int status;
    char *content_type;
    /* The reply's body: body_len bytes at body, inside reply_mem (owned:
     * the DONE frame's own buffer when it could be taken, else a copy). */
    void *reply_mem;
    const uint8_t *body;
    size_t body_len;
    uint64_t reply_counted; /* bytes of reply_mem counted in the budget */
    /* Bytes of this job (payload and reply) counted in the host's budget;
     * they drain once the job has left its program. */
    uint64_t counted;
    bool counted_draining;
    bool changed;
    bool timed_out;
    uint64_t number;
    uint64_t time_ns;
    uint64_t alarm_ns;  /* the ship's alarm after this event */
    bool alarm_changed; /* the event set the alarm, or consumed it */
    uint8_t entropy[FRAME_ENTROPY_SIZE];
    char error_code[32];
    char *error_message;
};

/* A ship with a process or with work in flight: the part of a ship that
 * lives in memory only while it is needed. An asleep ship with nothing in
 * flight has none, only its registry entry (core/registry.h). */
struct host_ship {
    struct host *host;
    uint32_t slot; /* in the registry */
    uint64_t sid;
    char id[STORE_ID_MAX + 1];
    char name[STORE_NAME_MAX + 1];
    const char *program; /* owned by the registry */
    uint32_t program_index;
    uint64_t idle_timeout_ms;   /* 0: the host's default */
    uint64_t freeze_timeout_ms; /* 0: the host's default */
    uint64_t created_ns;
    enum ship_state state;
    uint64_t last_event;     /* last durable event */
    uint64_t next_number;    /* number for the next state-changing event */
    uint64_t snapshot_event; /* last durable snapshot */
    uint64_t first_event;
    uint64_t alarm_ns; /* the alarm after the last computed event */
    uint8_t head_hash[STORE_HASH_SIZE]; /* hash of the last computed record */
    uint64_t since_snapshot;
    struct proc *proc;
    uint8_t epoch[STORE_HASH_SIZE];
    struct host_job *current; /* sent to the program, not answered */
    struct host_job *wait_head, *wait_tail;
    unsigned n_waiting;
    struct gate gate;
    unsigned inflight; /* proposals not yet applied */
    uv_timer_t timer;  /* the current deadline: event, wake, idle or stop */
    int timer_kind;
    bool sleep_wanted;
    bool snapshot_pending; /* a SNAP_REQ is out */
    bool stop_sent;
    bool removing;
    bool wake_wanted;
    bool queued_to_wake;   /* in the host's wake queue */
    bool closing;          /* being freed: no longer in the registry */
    uint8_t measure_next;  /* enum host_measure for the next dispatch */
    char sleep_reason[24]; /* why the current sleep began */
    uint64_t memory;       /* the program's memory when last measured */
    uint64_t memory_ms;    /* loop time of that measure; 0: never */
    struct host_ship *lru_prev, *lru_next; /* ships with a process */
    struct host_ship *wake_next;           /* in the host's wake queue */
    uint64_t replay_last; /* while waking: the last event to replay */
    uint64_t replay_next; /* while waking: the next DONE expected */
    uint8_t replay_chain[STORE_HASH_SIZE]; /* while waking: the snapshot's
                                              link to the log */
    struct http_request **waiters; /* admin requests awaiting a settled state */
    char last_failure[300];        /* why the program last ended badly */
    unsigned n_waiters;
    struct http_request *remove_req;
    /* Held back by the host's buffer budget: its program's output is not
     * read, no event is sent, and its event, wake and stop deadlines wait
     * (the program is not the one that is slow). */
    bool held;
    uint64_t timer_left_ms; /* while held: what its deadline had left */
    struct host_ship *held_prev, *held_next; /* the host's held ships */
};

/* The epoch of each program, by registry program index: the hash of its
 * executable, recomputed only when the file changes. */
struct host_program {
    uint64_t file_id[4]; /* device, inode, size, change time */
    uint8_t epoch[STORE_HASH_SIZE];
};

/* A ship whose stored data failed its checks, and why. Damage is rare, so
 * the host keeps these in a short list. */
struct host_damage {
    uint32_t slot;
    char detail[200];
};

struct host {
    struct host_config cfg;
    uv_loop_t loop;
    struct store *store;
    struct log *log;
    struct fsm *fsm; /* applies the log into store; outlives log */
    struct http_server *front;
    struct http_server *admin;
    bool ready;
    bool stopping;
    int exit_code;
    struct registry reg;  /* every ship, compact */
    struct alarms alarms; /* durable alarms by slot */
    uv_timer_t alarm_timer;
    uv_timer_t measure_timer; /* the memory sweep, while programs run */
    struct host_program *programs;
    uint32_t n_programs;
    unsigned n_live;                       /* live ship objects */
    unsigned n_procs;                      /* running programs */
    unsigned tiers[SHIP__STATE_COUNT];     /* live ships per state */
    struct host_ship *lru_head, *lru_tail; /* oldest first */
    struct host_ship *wake_head, *wake_tail;
    unsigned n_wake_queue;
    uint64_t awake_memory; /* sum of the programs' last measured memory,
                              each with what it started */
    unsigned max_awake;    /* the cap in force */
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
    uv_check_t flush;
    uv_signal_t sigint, sigterm;
    char admin_path[4096];
    uint64_t events_committed, batches_committed, wakes, thaws, evictions;
    uint64_t alarms_fired;
    struct hist wake_latency, thaw_latency; /* ns, since start */
    uint64_t ready_ns; /* monotonic time from start to ready */
    uint64_t started_ns;
    uint64_t disk_checked_ms;
    bool disk_ok;
    struct host_damage *damaged; /* ships marked REGISTRY_CORRUPT */
    unsigned n_damaged;
};

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

/* Create one ship, or spec.count ships, from a JSON object (program, name,
 * count, idle_timeout_ms, freeze_timeout_ms) and answer req when they are
 * durable. */
void host_ship_create(struct host *h, json_t *spec, struct http_request *req);

/* Describe the ship in slot as a new JSON object; the caller frees it. */
json_t *host_ship_json(struct host *h, uint32_t slot);

/* Ask a ship to sleep (or wake) and answer req once its state settles. */
void host_ship_sleep(struct host_ship *s, struct http_request *req);
void host_ship_wake(struct host_ship *s, struct http_request *req);

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
void host_admin_handle(struct http_request *req, void *arg);

/* Add the store's ships with a sid above the registry's largest to the
 * registry, with their alarms; 0 or a negative code. */
int host_registry_sync(struct host *h);

/* Arm the alarm timer for the earliest alarm, once the host is ready. */
void host_alarms_start(struct host *h);

/* Tell a ship that its proposal up to number was applied (status 0) or
 * failed. */
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

/* Return what was found wrong with a ship marked corrupt ("" if nothing is
 * known); valid until the next mark. */
const char *host_ship_corrupt_detail(const struct host *h, uint32_t slot);

/* Kill a ship's program and fail its queued jobs: the host is stopping. */
void host_ship_shutdown(struct host_ship *s);

/* Shut every live ship down. */
void host_ships_shutdown(struct host *h);

/* Free every live ship once the loop has stopped; closes their timers. */
void host_ships_free(struct host *h);

/* Add one encoded event record of ship s to the next group commit. */
int host_propose_event(struct host *h, struct host_ship *s, uint64_t number,
                       const uint8_t *rec, size_t len);

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

/* Write one structured log line to stderr: level, message, then key=value
 * pairs given as alternating strings and ending with NULL. */
void host_log(const char *level, const char *msg, ...);

#endif
