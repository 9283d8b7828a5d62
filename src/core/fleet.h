/* The fleet: the lifecycle of every ship a host runs, as pure code.
 *
 * This is the ship state machine of core/ship.h put to work: tiers (awake,
 * frozen, asleep), jobs, wake and replay, the output gate's release, sleep,
 * freeze, admission of wakes and eviction, alarms, crashes, and the two
 * inputs of a cluster: whether this host leads, and how far each ship's
 * events are durable. It does no I/O of its own. Everything outside (a
 * process, a frame to it, the store, the log, timers, the clock, entropy,
 * an answer to a client) goes through an environment (struct fleet_env): a
 * table of function pointers and a void *, as libraft keeps all of its I/O
 * behind struct raft_io. The daemon implements the table with real
 * processes, libuv timers and the store (src/daemon/ship.c); the unit tests
 * implement it in memory with a virtual clock.
 *
 * The fleet reacts to inputs, each a function below named fleet_on_* or
 * fleet_ship_*: a job arrived, a frame arrived from a program, a program
 * exited, a timer fired, an event was held or committed or failed, an entry
 * of the ship's (snapshot, removal) was decided, the host gained or lost
 * the lead. Each input runs to completion and calls environment operations
 * on the way; none of those calls back into the fleet, except that an
 * operation may fail (its return value). A process's exit and a timer are
 * always reported later, as inputs of their own.
 *
 * One request's path, in the order the code runs:
 *   fleet_deliver -> (wake: load, spawn, send BOOT; READY -> replay) ->
 *   dispatch: send EVENT -> fleet_on_frame(DONE) -> propose_event, gate ->
 *   fleet_ship_held -> release -> fleet_ship_committed.
 *
 * Leading. Only a leader wakes ships and releases effects. fleet_lead(f,
 * false) stops every ship with a process at once, answers every job that
 * waits or is held in a gate with 503 leader_changed (nothing held is
 * released), and refuses wakes until fleet_lead(f, true).
 *
 * Acks. Each proposed event is reported twice: held (durable at the ship's
 * ack level: the gate may release its effects) and committed (status 0) or
 * failed (status < 0). Held may come first (ack levels below quorum) or with
 * the commit (quorum, the default). A failure kills the ship's program,
 * whose state is ahead of the log; it wakes again from the store. A failure
 * after its event was released is counted (released_lost). */
#ifndef BERTH_CORE_FLEET_H
#define BERTH_CORE_FLEET_H

#include <stdbool.h>
#include <stdint.h>

#include "core/alarms.h"
#include "core/gate.h"
#include "core/quota.h"
#include "core/record.h"
#include "core/registry.h"
#include "core/reuse.h"
#include "core/ship.h"
#include "lib/budget.h"
#include "lib/buf.h"
#include "lib/hist.h"
#include "proto/frame.h"

/* Wakes in progress at once. Waking is mostly CPU (spawn, boot, replay), so
 * more than a few per core only adds memory and latency. */
#define FLEET_MAX_WAKING 8

/* How long a program may take to exit after STOP before it is killed. */
#define FLEET_STOP_MS 5000

/* Waking must make progress (READY, or the next replayed DONE) within the
 * per-event limit, but never less than this: starting a process depends on
 * the host's load, not on the program. */
#define FLEET_WAKE_MIN_MS 5000

/* The memory sweep ticks this often while a program that is not frozen
 * runs, measuring at most FLEET_MEASURE_MAX programs a tick, each at most
 * every FLEET_MEMORY_EVERY_MS. A measure reads /proc on the loop's thread
 * (tens of microseconds), so the ticks are short and frequent: a request
 * waits behind at most one tick's measures. */
#define FLEET_MEASURE_TICK_MS 50
#define FLEET_MEASURE_MAX 20
#define FLEET_MEMORY_EVERY_MS 750

/* Replies kept for reuse (core/reuse.h) take at most this much of the
 * host's memory, over every ship. */
#define FLEET_REUSE_BYTES (64ULL << 20)

/* An alarm whose TIMER event failed is tried again this much later. */
#define FLEET_ALARM_RETRY_NS (5ULL * 1000 * 1000 * 1000)

/* Where a job came from, which says how its outcome is answered. */
enum fleet_origin {
    FLEET_JOB_FRONT, /* a front-door request: the reply effect is the reply */
    FLEET_JOB_ADMIN, /* `berth ship send`: answered with a JSON summary */
    FLEET_JOB_ALARM, /* a TIMER event: nobody waits for it */
    FLEET_JOB_MAIL,  /* mail from the log (CHILD): the environment's own */
    FLEET_JOB_WS,    /* a WebSocket's message or close: nobody waits */
};

/* What the first event after a wake or a thaw measures. */
enum fleet_measure {
    FLEET_MEASURE_NONE,
    FLEET_MEASURE_WAKE, /* asleep to answered */
    FLEET_MEASURE_THAW, /* frozen to answered */
};

/* The timers the fleet arms: one per live ship, whose meaning is its
 * deadline's kind, and two for the whole host. */
enum fleet_timer {
    FLEET_TIMER_SHIP,  /* a ship's deadline */
    FLEET_TIMER_SWEEP, /* the next tick of the memory sweep */
    FLEET_TIMER_ALARM, /* the earliest alarm */
};

/* The kinds of a ship's deadline. */
enum fleet_deadline {
    FLEET_DEADLINE_NONE,
    FLEET_DEADLINE_EVENT,  /* the current job's time limit */
    FLEET_DEADLINE_WAKE,   /* waking must make progress */
    FLEET_DEADLINE_FREEZE, /* idle past this: freeze */
    FLEET_DEADLINE_IDLE,   /* idle past this: sleep */
    FLEET_DEADLINE_STOP,   /* STOP sent: must exit */
};

/* Entries a ship proposes besides its events. */
enum fleet_entry {
    FLEET_ENTRY_SNAPSHOT,
    FLEET_ENTRY_REMOVE,
    FLEET_ENTRY_RESET,
};

/* How an admin request waiting on a ship is answered. */
enum fleet_answer {
    FLEET_ANSWER_SHIP,    /* 200 and the ship's description */
    FLEET_ANSWER_REMOVED, /* 200 {"removed": id} */
    FLEET_ANSWER_ERROR,   /* status, code and message */
};

struct fleet;
struct fleet_ship;

/* One event for one ship, from arrival to the release of its effects. The
 * gate item comes first so a released gate item is its job. Made by
 * fleet_deliver, handed to the environment's release operation when it
 * leaves, and freed with fleet_job_free. */
struct fleet_job {
    struct gate_item gate;
    struct fleet_job *next; /* in the ship's wait queue */
    struct fleet_ship *ship;
    void *req;       /* the environment's request waiting for it; NULL: none */
    uint8_t origin;  /* enum fleet_origin */
    uint8_t kind;    /* FRAME_EVENT_* */
    uint8_t measure; /* enum fleet_measure */
    uint64_t arrived_ns; /* monotonic */
    uint64_t sent_ns;    /* monotonic: sent to the program; 0: not yet */
    uint64_t done_ns;    /* monotonic: the program answered; 0: not yet */
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
    /* Bytes of this job (payload and reply) counted in the budget; they
     * drain once the job has left its program. */
    uint64_t counted;
    bool counted_draining;
    bool changed;
    bool timed_out;
    /* The program marked the reply REUSE (core/reuse.h), computed in the
     * ship's reuse epoch reuse_epoch; the payload is then kept as the
     * entry's key until the job leaves. */
    bool reusable;
    uint64_t reuse_epoch;
    uint64_t number;
    uint64_t time_ns;
    uint64_t alarm_ns;  /* the ship's alarm after this event */
    bool alarm_changed; /* the event set the alarm, or consumed it */
    uint8_t entropy[FRAME_ENTROPY_SIZE];
    /* The per-event CPU limit (fleet_config.event_cpu_ms): the program's
     * CPU time when the event was sent to it, the wall-clock time its
     * deadline still has, and the length of the deadline armed last. */
    uint64_t cpu_start_us;
    uint64_t wall_left_ms, armed_ms;
    bool cpu_known;      /* cpu_start_us was read */
    bool cpu_over;       /* killed for going over the CPU limit */
    char error_code[32]; /* "" when the job succeeded */
    char *error_message;
    bool refused;                 /* failed over a limit: */
    struct quota_refusal refusal; /* which, and the figures */
    uint64_t mail_seq;            /* FLEET_JOB_MAIL: the mail it delivers */
    /* A WEBSOCKET event's connection and what (proto/frame.h), read from
     * its payload on delivery; 0 for other events. */
    uint64_t ws_conn;
    uint8_t ws_what;
    /* The event's WS_SEND and WS_CLOSE effects, as they came (u8 kind |
     * u32 len | bytes, each decoded once): written to the sockets by the
     * environment's release, after the event is durable, unless the job
     * failed. Counted in the budget with the job. */
    struct buf ws_fx;
};

/* An admin request waiting for a ship's state to settle. */
struct fleet_waiter {
    void *req;
    bool wake; /* it asked for a wake: an error unless the ship is awake */
};

/* A ship with a process or with work in flight: the part of a ship that
 * lives in memory only while it is needed. The environment allocates it
 * (ship_alloc, possibly inside a larger object of its own) and the fleet
 * fills it. */
struct fleet_ship {
    struct fleet *fleet;
    uint32_t slot; /* in the registry */
    uint64_t sid;
    char id[REGISTRY_ID_LEN + 1];
    uint64_t idle_timeout_ms;   /* 0: the host's default */
    uint64_t freeze_timeout_ms; /* 0: the host's default */
    uint64_t created_ns;
    uint8_t acks; /* ack level in force (core/gate.h), default resolved */
    enum ship_state state;
    uint64_t last_event;     /* last committed event */
    uint64_t next_number;    /* number for the next state-changing event */
    uint64_t snapshot_event; /* last durable snapshot */
    uint64_t first_event;
    uint64_t alarm_ns; /* the alarm after the last computed event */
    uint8_t head_hash[RECORD_HASH_SIZE]; /* hash of the last computed record */
    uint64_t since_snapshot;
    uint64_t released; /* the highest logged event whose effects left */
    uint8_t epoch[RECORD_HASH_SIZE];
    /* The ship's own key, which its records and snapshots are sealed
     * under with the data key (crypto/seal.h); set by each wake's load.
     * A ship made before ships had keys of their own has none. */
    bool own;
    uint8_t own_key[SEAL_OWN_KEY_SIZE];
    bool proc;    /* a program runs (or is being killed) */
    bool killed;  /* the program was told to die; its exit follows */
    bool deposed; /* killed because the host lost the lead */
    struct fleet_job *current; /* sent to the program, not answered */
    struct fleet_job *wait_head, *wait_tail;
    unsigned n_waiting;
    struct gate gate;
    unsigned inflight;      /* proposals not yet committed or failed */
    uint8_t deadline;       /* enum fleet_deadline of the armed timer */
    bool held;              /* held back by the host's buffer budget */
    uint64_t deadline_ms;   /* monotonic ms when the deadline falls */
    uint64_t deadline_left; /* while held: what the deadline had left */
    bool sleep_wanted;
    bool snapshot_pending; /* a SNAP_REQ is out */
    bool stop_sent;
    bool removing;
    bool gone; /* removed by a committed entry (fleet_ship_gone) */
    bool wake_wanted;
    bool queued_to_wake;   /* in the fleet's wake queue */
    bool closing;          /* freed: no longer in the registry */
    uint8_t measure_next;  /* enum fleet_measure for the next dispatch */
    char sleep_reason[24]; /* why the current sleep began */
    uint64_t memory;       /* the program's memory when last measured */
    uint64_t memory_ms;    /* monotonic ms of that measure; 0: never */
    struct fleet_ship *lru_prev, *lru_next; /* ships with a process */
    struct fleet_ship *wake_next;           /* in the wake queue */
    uint64_t replay_last; /* while waking: the last event to replay */
    uint64_t replay_next; /* while waking: the next DONE expected; 0: READY */
    uint8_t replay_chain[RECORD_HASH_SIZE]; /* the snapshot's link */
    bool early;      /* while waking: the first job went with BOOT */
    bool rewake;     /* killed to be woken again, without an early job */
    bool boot_plain; /* the program refused a snapshot: no early jobs */
    struct fleet_waiter *waiters;
    unsigned n_waiters;
    void *remove_req;       /* the request of a removal in progress */
    char last_failure[300]; /* why the program last ended badly */
    struct reuse reuse;     /* replies given again while awake */
};

/* What a wake reads of a ship before its program starts. */
struct fleet_load {
    uint64_t last_event, snapshot_event, first_event;
    uint64_t idle_timeout_ms, freeze_timeout_ms, created_ns, alarm_ns;
    uint8_t acks;
    uint8_t head_hash[RECORD_HASH_SIZE]; /* of the last stored record */
    uint8_t epoch[RECORD_HASH_SIZE];     /* of the program's executable */
    uint8_t chain[RECORD_HASH_SIZE];     /* the snapshot's link to the log */
    uint64_t snapshot_number; /* the event the snapshot's own row names */
    struct buf snapshot;      /* the snapshot's bytes (snapshot_event > 0) */
    bool snapshot_sealed;     /* they are a seal (core/record.h) */
    struct quota_refusal refusal; /* why, when load says BERTH_ELIMIT */
    uint8_t snapshot_epoch[RECORD_HASH_SIZE]; /* of the program that made it */
    bool own; /* the ship has a key of its own (crypto/seal.h): own_key */
    uint8_t own_key[SEAL_OWN_KEY_SIZE];
};

/* Called by the environment's replay operation for each logged event after
 * the snapshot, in order; a nonzero return stops the walk. */
typedef int (*fleet_replay_cb)(void *arg, uint64_t number, const uint8_t *rec,
                               size_t len);

/* The environment: every effect of the fleet on the world. data is passed
 * to each operation. Operations never call fleet input functions. */
struct fleet_env {
    void *data;
    /* Allocate a zeroed live object for the ship in slot (the environment
     * may embed it in a larger one); NULL when out of memory. */
    struct fleet_ship *(*ship_alloc)(void *data, uint32_t slot);
    /* The fleet is done with s; the environment frees it when it likes (it
     * is no longer in the registry). */
    void (*ship_free)(void *data, struct fleet_ship *s);
    /* Read what waking s needs from the store into out (out->snapshot is
     * initialized and the fleet frees it). Returns 0, BERTH_ECORRUPT when the
     * stored data fails its checks, BERTH_EDISABLED when the ship's account
     * is disabled (what waits for the wake is answered 403,
     * account_disabled), BERTH_ELIMIT when the wake would take its account
     * over a limit (out->refusal says which; answered as core/quota.h
     * says), or another code; errmsg says why. */
    int (*load)(void *data, struct fleet_ship *s, struct fleet_load *out,
                char *errmsg);
    /* Start s's program with boot, its BOOT frame, waiting in its stdin;
     * 0, taking boot's bytes (left empty), or a code with errmsg, boot
     * left to the caller. *held says whether the host's buffer budget
     * holds the new program back from the start (see fleet_ship_hold). */
    int (*spawn)(void *data, struct fleet_ship *s, struct buf *boot, bool *held,
                 char *errmsg);
    /* Walk s's logged events from number start on, checking the hash chain
     * from chain to the ship's head; 0, BERTH_ECORRUPT (errmsg says
     * where), or the callback's or another code. */
    int (*replay)(void *data, struct fleet_ship *s, uint64_t start,
                  const uint8_t *chain, fleet_replay_cb cb, void *arg,
                  char *errmsg);
    /* Send a frame to s's program, taking frame's bytes (left empty); 0 or
     * a code. */
    int (*send)(void *data, struct fleet_ship *s, struct buf *frame);
    /* Kill s's program, saying why; its exit is reported later
     * (fleet_on_exit). */
    void (*kill)(void *data, struct fleet_ship *s, const char *why);
    /* Whether s's program still runs (is not dying). */
    bool (*running)(void *data, struct fleet_ship *s);
    /* Freeze or thaw s's program; 0 or a code. */
    int (*freeze)(void *data, struct fleet_ship *s);
    int (*thaw)(void *data, struct fleet_ship *s);
    /* Set *usec to the CPU time s's program and what it started have used
     * so far; 0 or a code. NULL: no per-event CPU limit. */
    int (*cpu)(void *data, struct fleet_ship *s, uint64_t *usec);
    /* Measure the memory of s's program and what it started. */
    int (*measure)(void *data, struct fleet_ship *s, uint64_t *bytes);
    /* Take the buffer of the frame being delivered, if it has one of its
     * own, and set *counted to the bytes counted for it in the budget; the
     * caller frees it with mem_free. NULL when the frame sits in a shared
     * buffer. */
    void *(*take_frame)(void *data, struct fleet_ship *s, uint64_t *counted);
    /* Add an encoded event record to the next proposal, followed by its
     * effects item (fx_len bytes at fx; none when fx_len is 0; core/record.h,
     * "An event's durable effects"); 0 or a code. Its fate is reported by
     * fleet_ship_held and fleet_ship_committed. */
    int (*propose_event)(void *data, struct fleet_ship *s, uint64_t number,
                         const uint8_t *rec, size_t len, const uint8_t *fx,
                         size_t fx_len);
    /* Turn an effect of j's event that acts beyond s's program (SPAWN,
     * SEND, RELEASE, DESTROY: len bytes at p, already decoded once) into the
     * log entry that carries it out, appended to out with record_effects_add;
     * an effect the host refuses appends the CHILD mail that says so, or
     * nothing. 0, or a code that fails the event. */
    int (*effect_entry)(void *data, struct fleet_ship *s,
                        const struct fleet_job *j, uint8_t kind,
                        const uint8_t *p, size_t len, struct buf *out);
    /* The program answered j, mail, with its reply in j: append to out
     * (record_effects_add) what the answer does (a MESSAGE's RECEIPT for
     * its sender; a LEASE not renewed destroys the child). 0, or a code
     * that fails the event. */
    int (*receipt_entry)(void *data, struct fleet_ship *s,
                         const struct fleet_job *j, struct buf *out);
    /* Propose an entry of s's own (snapshot at number, or removal), after
     * every event proposed before it, taking entry's bytes on success; its
     * fate is reported by fleet_ship_entry_done. */
    int (*propose_entry)(void *data, struct fleet_ship *s,
                         enum fleet_entry kind, uint64_t number,
                         struct buf *entry);
    /* Whether the disk has room for state changes. */
    bool (*disk_ok)(void *data);
    /* Whether s may commit one more event under its account's limits
     * (core/quota.h), taking it from the account's rate; when not, *why
     * says which limit. NULL: no limits. */
    bool (*write_ok)(void *data, struct fleet_ship *s,
                     struct quota_refusal *why);
    /* Whether descriptors allow one more program beside procs running
     * ones; with make, first free what can be freed (idle connections). */
    bool (*fds_room)(void *data, unsigned procs, bool make);
    /* Arm timer which (of s for FLEET_TIMER_SHIP, else s is NULL) to fire
     * once after ms, replacing any earlier arming; fleet_on_timer follows. */
    void (*timer_start)(void *data, enum fleet_timer which,
                        struct fleet_ship *s, uint64_t ms);
    /* Disarm a timer; nothing follows. */
    void (*timer_stop)(void *data, enum fleet_timer which,
                       struct fleet_ship *s);
    /* The wall clock and a monotonic clock, in nanoseconds. */
    uint64_t (*now_ns)(void *data);
    uint64_t (*mono_ns)(void *data);
    /* Fill out with n random bytes. */
    void (*entropy)(void *data, uint8_t *out, size_t n);
    /* A job leaves: answer its request (if any) with its outcome, and free
     * it with fleet_job_free. */
    void (*release)(void *data, struct fleet_job *j);
    /* Answer an admin request about s (see enum fleet_answer). */
    void (*answer)(void *data, struct fleet_ship *s, void *req,
                   enum fleet_answer what, int status, const char *code,
                   const char *message);
    /* Write a log line: level, message, the ship's id, and up to two
     * key/value pairs (NULL keys are left out). */
    void (*log)(void *data, const char *level, const char *msg,
                const char *ship, const char *k1, const char *v1,
                const char *k2, const char *v2);
    /* s moved from tier from to tier to (s->state is to already); the
     * environment says so in its log. NULL: nothing is said. */
    void (*tier)(void *data, struct fleet_ship *s, enum ship_state from,
                 enum ship_state to);
};

/* The fleet's policy knobs. */
struct fleet_config {
    uint64_t idle_timeout_ms;   /* idle this long: sleep */
    uint64_t freeze_timeout_ms; /* idle this long: freeze; 0: never */
    uint64_t event_timeout_ms;
    /* CPU time one event may take, what the program started included;
     * past it the program is killed and the event answered 504 cpu_limit.
     * 0: none. Checked when the time could have been used (a program
     * with one thread uses at most the wall-clock time), so a program
     * with threads may overrun it by their number. */
    uint64_t event_cpu_ms;
    uint64_t snapshot_every;  /* events between a ship's snapshots */
    unsigned max_queue;       /* jobs waiting per ship before 503 */
    uint64_t max_awake_bytes; /* memory budget of running programs; 0: none */
    /* The keys that seal the ships' records and snapshots and open them
     * (borrowed, kept by the caller while the fleet lives); NULL: new ones
     * are unsealed, and only unsealed ones open. */
    const struct seal_keys *keys;
};

/* A ship whose stored data failed its checks, and why. */
struct fleet_damage {
    uint32_t slot;
    uint8_t repairs; /* repairs the host tried on its own (daemon/repair.h) */
    char detail[200];
};

struct fleet {
    struct fleet_env env;
    struct fleet_config cfg;
    struct registry *reg;  /* every ship; live objects hang from it */
    struct alarms *alarms; /* durable alarms by slot */
    struct budget *budget; /* bytes held for clients and programs */
    unsigned max_awake;    /* running programs at most */
    bool leading;
    bool stopping;
    bool sweeping;                          /* the sweep timer is armed */
    unsigned n_live;                        /* live ship objects */
    unsigned n_procs;                       /* running programs */
    unsigned tiers[SHIP__STATE_COUNT];      /* live ships per state */
    struct fleet_ship *lru_head, *lru_tail; /* oldest first */
    struct fleet_ship *wake_head, *wake_tail;
    unsigned n_wake_queue;
    uint64_t awake_memory; /* the programs' last measured memory */
    uint64_t wakes, thaws, evictions, alarms_fired;
    uint64_t kills;         /* programs the operator killed (fleet_ship_kill) */
    uint64_t released_lost; /* events released, then not committed */
    struct reuse_pool reuse; /* every ship's kept replies; its hits */
    struct hist wake_latency, thaw_latency; /* ns */
    /* A logged event's life, in ns: waiting for its ship (arrival to the
     * program), computing (to the program's answer), and waiting for its
     * ack level (to its release). */
    struct hist queue_latency, compute_latency, durable_latency;
    struct fleet_damage *damaged;
    unsigned n_damaged;
    struct buf plain;  /* a replayed record, opened */
    uint64_t unopened; /* the replayed event whose seal did not open */
};

/* Initialize a fleet over a registry, alarms and budget (kept, not owned)
 * with env and cfg (copied). It does not lead until fleet_lead. */
void fleet_init(struct fleet *f, const struct fleet_env *env,
                const struct fleet_config *cfg, struct registry *reg,
                struct alarms *alarms, struct budget *budget);

/* Free what the fleet holds itself (not the live ships: see
 * fleet_free_ships). */
void fleet_close(struct fleet *f);

/* Return the live object of the ship in slot, making it if the ship has
 * none; NULL when out of memory. A live object with nothing to do frees
 * itself at the next input that touches it, so call an input on it. */
struct fleet_ship *fleet_ship_live(struct fleet *f, uint32_t slot);

/* Input: the host leads (true) or not. Losing the lead stops every ship
 * with a process and fails waiting and held jobs with leader_changed. */
void fleet_lead(struct fleet *f, bool leading);

/* Input: a job for s. Makes a job of origin and kind for req (which the
 * environment's release answers), taking payload's bytes (left empty).
 * Returns 0, or BERTH_ENOMEM when not even the job could be made (payload
 * is freed, and req must be answered by the caller). */
int fleet_deliver(struct fleet_ship *s, enum fleet_origin origin, void *req,
                  uint8_t kind, struct buf *payload);

/* Input: mail seq of kind for s (docs/design.md, "Children and mail"), as
 * fleet_deliver with origin FLEET_JOB_MAIL and no request; the event is
 * logged whatever the program says of it, and its effects item takes the
 * mail. */
int fleet_deliver_mail(struct fleet_ship *s, uint64_t seq, uint8_t kind,
                       struct buf *payload);

/* Input: s's resetting lifetime came due, last_event being its last
 * committed event: an idle program is put to sleep, and while the ship is
 * asleep with nothing in flight or waiting, its state returns to empty by
 * a SHIP_RESET entry (a wake waits for it).
 * Returns 0 when proposed, BERTH_EBUSY when the ship is busy (ask again
 * later), or another code. */
int fleet_ship_reset(struct fleet_ship *s, uint64_t last_event);

/* Input: s was removed by a committed entry (destroyed, or with its
 * parent): its program is killed, what waits fails with 404, and it leaves
 * the registry once nothing of it is in flight. */
void fleet_ship_gone(struct fleet_ship *s);

/* Free a job that left the fleet (in the release operation). */
void fleet_job_free(struct fleet *f, struct fleet_job *j);

/* Input: a frame from s's program; f and its body are valid for the call. */
void fleet_on_frame(struct fleet_ship *s, const struct frame *fr);

/* Input: s's program is gone; clean when it exited by itself with status
 * 0; why says how it ended; over_memory when the kernel killed in it for
 * going over its memory cap (the event in flight is answered 503
 * memory_limit, and the ship wakes from its last committed state on its
 * next event). */
void fleet_on_exit(struct fleet_ship *s, const char *why, bool clean,
                   bool over_memory);

/* Input: a timer fired (s is the ship for FLEET_TIMER_SHIP, else NULL). */
void fleet_on_timer(struct fleet *f, enum fleet_timer which,
                    struct fleet_ship *s);

/* Input: s's events up to number are durable at its ack level: their
 * effects may leave. */
void fleet_ship_held(struct fleet_ship *s, uint64_t number);

/* Input: s's proposed event number was committed (status 0) or will never
 * be (status < 0). */
void fleet_ship_committed(struct fleet_ship *s, uint64_t number, int status);

/* Input: an entry of s's (fleet_env.propose_entry) was committed or
 * failed. */
void fleet_ship_entry_done(struct fleet_ship *s, enum fleet_entry kind,
                           uint64_t number, int status);

/* Input: the host's budget holds s back (held true: no event is sent and
 * its progress deadlines wait, keeping the time they had left) or lets it
 * on. The environment stops and resumes reading the program itself. */
void fleet_ship_hold(struct fleet_ship *s, bool held);

/* Return whether s can make progress if let on: its program owes a frame,
 * or it has events to send. */
bool fleet_ship_has_work(const struct fleet_ship *s);

/* Input: an admin request asks s to sleep (or wake); req is answered once
 * its state settles (a NULL req: by nothing; the environment's answer gets
 * NULL). */
void fleet_ship_sleep(struct fleet_ship *s, void *req);
void fleet_ship_wake(struct fleet_ship *s, void *req);

/* Input: a request for s is on its way (its headers are in, its body
 * still comes, or a TLS handshake names it): start waking or thawing s
 * now, with no one to answer, so that the request finds it awake. Does
 * nothing on a host that does not lead. */
void fleet_ship_prewake(struct fleet_ship *s);

/* Input: the operator kills s's program now (SIGKILL, no snapshot): what
 * waits for it is failed 503 (killed), the event it was computing fails
 * and its effects never leave, and the ship is asleep until its next
 * message, from its last committed state. req (NULL: none) is answered
 * once it is asleep, as for fleet_ship_sleep. */
void fleet_ship_kill(struct fleet_ship *s, void *req);

/* Input: remove s; req is answered once the removal is durable, or with
 * 409 when one is in progress. */
void fleet_ship_remove(struct fleet_ship *s, void *req);

/* Input: the ship in slot failed a check of its stored data (detail is
 * copied): its program is killed and it is not woken again. */
void fleet_mark_corrupt(struct fleet *f, uint32_t slot, const char *detail);

/* Return what was found wrong with a ship marked corrupt. */
const char *fleet_corrupt_detail(const struct fleet *f, uint32_t slot);

/* Input: the stored data of the ship in slot, marked corrupt, was repaired
 * (store/shipcopy.h): it wakes again on its next event. No-op for a ship
 * not marked. */
void fleet_clear_corrupt(struct fleet *f, uint32_t slot);

/* Input: the alarms may have changed (loaded, applied): arm the alarm timer
 * for the earliest. */
void fleet_alarms_rearm(struct fleet *f);

/* Input: the host stops: kill every program and fail waiting jobs. */
void fleet_shutdown(struct fleet *f);

/* Answer what every live ship still holds with 503 and hand each to
 * ship_free; the fleet is unusable afterwards but for fleet_close. */
void fleet_free_ships(struct fleet *f);

/* The freeze timeout in force for a ship's own setting own: the host's for
 * 0, never (0) for STORE_TIMEOUT_NEVER (UINT64_MAX). */
uint64_t fleet_freeze_ms(const struct fleet_config *cfg, uint64_t own);

#endif
