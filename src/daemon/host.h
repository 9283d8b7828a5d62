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
#include "daemon/table.h"
#include "http/http.h"
#include "lib/buf.h"
#include "proto/frame.h"
#include "store/store.h"

struct host_config {
    const char *data_dir;
    const char *listen; /* front door HOST:PORT */
    const char *admin;  /* admin HOST:PORT, or NULL for DATA/admin.sock */
    size_t max_body;
    unsigned idle_timeout_ms;
    unsigned event_timeout_ms;
    unsigned snapshot_every; /* events between a ship's snapshots */
    unsigned max_queue;      /* jobs waiting per ship before 503 */
    size_t max_frame;
    uint64_t reserve_bytes; /* refuse writes when less is free on disk */
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
};

/* One event for one ship, from arrival to the release of its effects. The
 * gate item comes first so a released gate item is its job. */
struct host_job {
    struct gate_item gate;
    struct host_job *next; /* in the ship's wait queue */
    struct host_ship *ship;
    enum host_job_origin origin;
    struct http_request *req; /* NULL once answered */
    uint8_t kind;
    struct buf payload;
    /* The outcome, filled when the program answers or fails. */
    int status;
    char *content_type;
    struct buf body;
    bool changed;
    bool timed_out;
    uint64_t number;
    uint64_t time_ns;
    uint8_t entropy[FRAME_ENTROPY_SIZE];
    char error_code[32];
    char *error_message;
};

struct host_ship {
    struct host *host;
    uint64_t sid;
    char id[STORE_ID_MAX + 1];
    char name[STORE_NAME_MAX + 1];
    char *program;
    uint64_t idle_timeout_ms;
    uint64_t created_ns;
    enum ship_state state;
    uint64_t last_event;     /* last durable event */
    uint64_t next_number;    /* number for the next state-changing event */
    uint64_t snapshot_event; /* last durable snapshot */
    uint64_t first_event;
    uint8_t head_hash[STORE_HASH_SIZE]; /* hash of the last computed record */
    uint64_t since_snapshot;
    uint64_t wake_count;
    uint64_t last_active_ns;
    struct proc *proc;
    uint8_t epoch[STORE_HASH_SIZE];
    uint64_t program_id[4]; /* identity of the file epoch was hashed from */
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
    uint64_t replay_last; /* while waking: the last event to replay */
    uint64_t replay_next; /* while waking: the next DONE expected */
    struct http_request **waiters; /* admin requests awaiting a settled state */
    char last_failure[300];        /* why the program last ended badly */
    unsigned n_waiters;
    struct http_request *remove_req;
};

struct host {
    struct host_config cfg;
    uv_loop_t loop;
    struct store *store;
    struct log *log;
    struct http_server *front;
    struct http_server *admin;
    bool ready;
    bool stopping;
    int exit_code;
    struct table ships; /* id and name -> struct host_ship */
    unsigned n_ships;
    /* The entry being built for the next group commit. */
    struct buf batch;
    struct host__ref *refs;
    unsigned n_refs, cap_refs;
    uv_check_t flush;
    uv_signal_t sigint, sigterm;
    char admin_path[4096];
    uint64_t events_committed, batches_committed, wakes;
    uint64_t disk_checked_ms;
    bool disk_ok;
};

/* Find a ship by id or name, or NULL. */
struct host_ship *host_ship_find(struct host *h, const char *id_or_name);

/* Deliver an event of the given kind to a ship on behalf of req, starting
 * the ship if needed. The ship takes payload's bytes (payload is left empty)
 * and answers req in every case, out of memory included. */
void host_ship_deliver(struct host_ship *s, enum host_job_origin origin,
                       struct http_request *req, uint8_t kind,
                       struct buf *payload);

/* Create a ship from a JSON object (program, name, idle_timeout_ms) and
 * answer req when it is durable. */
void host_ship_create(struct host *h, json_t *spec, struct http_request *req);

/* Describe a ship as a new JSON object; the caller frees it. */
json_t *host_ship_json(const struct host_ship *s);

/* Ask a ship to sleep (or wake) and answer req once its state settles. */
void host_ship_sleep(struct host_ship *s, struct http_request *req);
void host_ship_wake(struct host_ship *s, struct http_request *req);

/* Remove a ship and answer req once the removal is durable. */
void host_ship_remove(struct host_ship *s, struct http_request *req);

/* Answer an HTTP request with a JSON value, which is freed. */
void host_reply_json(struct http_request *req, int status, json_t *body);

/* Answer with {"error": {"code": code, "message": message}}. */
void host_reply_error(struct http_request *req, int status, const char *code,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* HTTP handlers of the front door and of the admin API. */
void host_front_handle(struct http_request *req, void *arg);
void host_admin_handle(struct http_request *req, void *arg);

/* Build the in-memory ship for a store record and add it to the tables;
 * NULL when out of memory. */
struct host_ship *host_ship_add(struct host *h, const struct store_ship *rec);

/* Tell a ship that its proposal up to number was applied (status 0) or
 * failed. */
void host_ship_durable(struct host_ship *s, uint64_t number, int status);

/* Kill a ship's program and fail its queued jobs: the host is stopping. */
void host_ship_shutdown(struct host_ship *s);

/* Free every ship once the loop has stopped; closes their timers. */
void host_ships_free(struct host *h);

/* Add one encoded event record of ship s to the next group commit. */
int host_propose_event(struct host *h, struct host_ship *s, uint64_t number,
                       const uint8_t *rec, size_t len);

/* Propose an entry of its own after flushing the pending group commit, so
 * that it lands after every event computed before it. Takes entry's bytes on
 * success. */
int host_propose_entry(struct host *h, struct buf *entry, void (*cb)(void *,
                       int, int), void *arg);

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
