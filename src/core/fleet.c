/* The fleet: ships' lifecycle behind an environment (see core/fleet.h).
 *
 * A ship runs at most one job in its program at a time; the next job is
 * sent as soon as the program answers, while the log commits the previous
 * one. Every answered job enters the ship's gate and leaves it (its
 * environment's release operation answers it) only once every
 * state-changing event before it is held. A single timer per live ship holds
 * whichever deadline applies.
 *
 * Tiers. A ship that is idle (see fleet__busy) past its freeze timeout is
 * frozen; past its idle timeout it sleeps: snapshot, STOP, no process. A
 * live object exists only while a ship has a process or work in flight; an
 * asleep, quiet ship is only its registry entry.
 *
 * Admission. Waking takes a process, descriptors and memory, so wakes are
 * admitted one by one (see fleet__can_wake): at most FLEET_MAX_WAKING at
 * once, within the cap on running programs, the descriptors the environment
 * has room for, and the memory budget. A ship that cannot wake yet waits in
 * a FIFO wake queue with its requests held, and the least recently used
 * idle ships are put to sleep to make room: a storm of wakes queues, it
 * does not fail. */
#include "core/fleet.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/mem.h"

static void fleet__pump(struct fleet_ship *s);
static void fleet__release(struct fleet_ship *s);
static void fleet__remove_step(struct fleet_ship *s);
static void fleet__pump_wakes(struct fleet *f);
static void fleet__evict(struct fleet *f);
static void fleet__begin_sleep(struct fleet_ship *s, const char *why);
static void fleet__alarm_rearm(struct fleet *f);
static void fleet__send_early(struct fleet_ship *s);
static void fleet__dispatch(struct fleet_ship *s);

/* --- Small helpers over the environment. --- */

static uint64_t fleet__mono_ms(const struct fleet *f)
{
    return f->env.mono_ns(f->env.data) / 1000000;
}

static uint64_t fleet__wake_ms(const struct fleet *f)
{
    return f->cfg.event_timeout_ms > FLEET_WAKE_MIN_MS ? f->cfg.event_timeout_ms
                                                       : FLEET_WAKE_MIN_MS;
}

static void fleet__log(struct fleet_ship *s, const char *level, const char *msg,
                       const char *k1, const char *v1, const char *k2,
                       const char *v2)
{
    struct fleet *f = s->fleet;
    f->env.log(f->env.data, level, msg, s->id, k1, v1, k2, v2);
}

/* The ship's own key for its seals, or NULL for a ship without one. */
static const uint8_t *fleet__own(const struct fleet_ship *s)
{
    return s->own ? s->own_key : NULL;
}

static struct registry_ship *fleet__entry(const struct fleet_ship *s)
{
    return registry_get(s->fleet->reg, s->slot);
}

static bool fleet__corrupt(const struct fleet_ship *s)
{
    return (fleet__entry(s)->flags & REGISTRY_CORRUPT) != 0;
}

/* Kill s's program, once; its exit comes back as fleet_on_exit. */
static void fleet__kill(struct fleet_ship *s, const char *why)
{
    struct fleet *f = s->fleet;
    if (!s->proc) {
        return;
    }
    s->killed = true;
    f->env.kill(f->env.data, s, why);
}

static bool fleet__running(const struct fleet_ship *s)
{
    struct fleet *f = s->fleet;
    return s->proc && !s->killed &&
           f->env.running(f->env.data, (struct fleet_ship *)s);
}

static void fleet__set_state(struct fleet_ship *s, enum ship_state next)
{
    enum ship_state prev = s->state;
    if (ship_state_set(&s->state, next) != 0) {
        fleet__log(s, "error", "ship state machine refused a transition",
                   "from", ship_state_name(prev), "to", ship_state_name(next));
        abort();
    }
    s->fleet->tiers[prev]--;
    s->fleet->tiers[next]++;
    if (s->fleet->env.tier != NULL) {
        s->fleet->env.tier(s->fleet->env.data, s, prev, next);
    }
    if (next != SHIP_AWAKE) {
        /* Replies are given again only by a running program's host: a
         * frozen or sleeping ship keeps no memory for them. */
        reuse_clear(&s->reuse, &s->fleet->reuse);
    }
}

/* --- A ship's one deadline. --- */

/* Whether a deadline of this kind waits for the program to make progress,
 * and so must wait while the host holds the program back. */
static bool fleet__progress(int kind)
{
    return kind == FLEET_DEADLINE_EVENT || kind == FLEET_DEADLINE_WAKE ||
           kind == FLEET_DEADLINE_STOP;
}

static void fleet__arm(struct fleet_ship *s, enum fleet_deadline kind,
                       uint64_t ms)
{
    struct fleet *f = s->fleet;
    s->deadline = (uint8_t)kind;
    if (s->held && fleet__progress(kind)) {
        f->env.timer_stop(f->env.data, FLEET_TIMER_SHIP, s);
        s->deadline_left = ms; /* runs once the ship is let on */
        return;
    }
    s->deadline_ms = fleet__mono_ms(f) + ms;
    f->env.timer_start(f->env.data, FLEET_TIMER_SHIP, s, ms);
}

static void fleet__disarm(struct fleet_ship *s)
{
    struct fleet *f = s->fleet;
    s->deadline = FLEET_DEADLINE_NONE;
    f->env.timer_stop(f->env.data, FLEET_TIMER_SHIP, s);
}

/* Arm the deadline of s's current job: its wall-clock limit, or, with a
 * CPU limit, the earlier of what is left of it and of the CPU time (a
 * program cannot use more CPU than wall-clock time with one thread). */
static void fleet__arm_event(struct fleet_ship *s, uint64_t cpu_left_ms)
{
    struct fleet *f = s->fleet;
    struct fleet_job *j = s->current;
    uint64_t ms = j->wall_left_ms;
    if (f->cfg.event_cpu_ms > 0 && j->cpu_known && cpu_left_ms < ms) {
        ms = cpu_left_ms > 0 ? cpu_left_ms : 1;
    }
    j->armed_ms = ms;
    fleet__arm(s, FLEET_DEADLINE_EVENT, ms);
}

/* Start the deadline of s's current job, just sent to the program. */
static void fleet__start_event(struct fleet_ship *s)
{
    struct fleet *f = s->fleet;
    struct fleet_job *j = s->current;
    j->wall_left_ms = f->cfg.event_timeout_ms;
    j->cpu_known = f->cfg.event_cpu_ms > 0 && f->env.cpu != NULL &&
                   f->env.cpu(f->env.data, s, &j->cpu_start_us) == 0;
    fleet__arm_event(s, f->cfg.event_cpu_ms);
}

/* --- Live objects: made when a ship is touched, freed when it is quiet. --- */

void fleet_init(struct fleet *f, const struct fleet_env *env,
                const struct fleet_config *cfg, struct registry *reg,
                struct alarms *alarms, struct budget *budget)
{
    memset(f, 0, sizeof *f);
    f->env = *env;
    f->cfg = *cfg;
    f->reg = reg;
    f->alarms = alarms;
    f->budget = budget;
    f->max_awake = UINT32_MAX;
    hist_init(&f->wake_latency);
    hist_init(&f->thaw_latency);
    hist_init(&f->queue_latency);
    hist_init(&f->compute_latency);
    hist_init(&f->durable_latency);
    reuse_pool_init(&f->reuse, FLEET_REUSE_BYTES);
}

void fleet_close(struct fleet *f)
{
    mem_free(f->damaged);
    f->damaged = NULL;
    f->n_damaged = 0;
    if (f->plain.data != NULL) {
        sodium_memzero(f->plain.data, f->plain.cap);
    }
    buf_free(&f->plain);
}

struct fleet_ship *fleet_ship_live(struct fleet *f, uint32_t slot)
{
    struct registry_ship *e = registry_get(f->reg, slot);
    if (e->live != NULL) {
        return e->live;
    }
    struct fleet_ship *s = f->env.ship_alloc(f->env.data, slot);
    if (s == NULL) {
        return NULL;
    }
    s->fleet = f;
    s->slot = slot;
    s->sid = e->sid;
    registry_id(f->reg, slot, s->id);
    s->acks = GATE_ACKS_QUORUM;
    s->state = SHIP_ASLEEP;
    gate_init(&s->gate);
    reuse_init(&s->reuse);
    e->live = s;
    f->n_live++;
    f->tiers[SHIP_ASLEEP]++;
    return s;
}

static bool fleet__quiet(const struct fleet_ship *s)
{
    return (s->state == SHIP_ASLEEP || s->state == SHIP_REMOVED) && !s->proc &&
           s->current == NULL && s->n_waiting == 0 && s->gate.head == NULL &&
           s->inflight == 0 && s->n_waiters == 0 && s->remove_req == NULL &&
           !s->wake_wanted && !s->queued_to_wake &&
           (!s->removing || s->state == SHIP_REMOVED);
}

/* Hand the live object of a quiet ship back to the environment; its
 * registry entry stays (unless the ship was removed). The environment
 * frees it later, so a caller up the stack may still read s. */
static void fleet__maybe_free(struct fleet_ship *s)
{
    struct fleet *f = s->fleet;
    if (s->closing || f->stopping || !fleet__quiet(s)) {
        return;
    }
    s->closing = true;
    struct registry_ship *e = fleet__entry(s);
    if (e->live == s) {
        e->live = NULL;
    }
    f->tiers[s->state]--;
    f->n_live--;
    fleet__disarm(s);
    f->env.ship_free(f->env.data, s);
}

/* --- The LRU of ships with a process, and their memory. --- */

static void fleet__lru_remove(struct fleet *f, struct fleet_ship *s)
{
    if (s->lru_prev != NULL) {
        s->lru_prev->lru_next = s->lru_next;
    } else if (f->lru_head == s) {
        f->lru_head = s->lru_next;
    } else {
        return; /* not in the list */
    }
    if (s->lru_next != NULL) {
        s->lru_next->lru_prev = s->lru_prev;
    } else {
        f->lru_tail = s->lru_prev;
    }
    s->lru_prev = s->lru_next = NULL;
}

/* Make s the most recently used. */
static void fleet__lru_touch(struct fleet *f, struct fleet_ship *s)
{
    if (f->lru_tail == s) {
        return;
    }
    fleet__lru_remove(f, s);
    s->lru_prev = f->lru_tail;
    if (f->lru_tail != NULL) {
        f->lru_tail->lru_next = s;
    } else {
        f->lru_head = s;
    }
    f->lru_tail = s;
}

static void fleet__measure(struct fleet_ship *s)
{
    struct fleet *f = s->fleet;
    uint64_t bytes;
    if (!s->proc || f->env.measure(f->env.data, s, &bytes) != 0) {
        return;
    }
    uint64_t now = fleet__mono_ms(f);
    f->awake_memory = f->awake_memory - s->memory + bytes;
    s->memory = bytes;
    s->memory_ms = now ? now : 1;
}

static bool fleet__crowded(const struct fleet *f);

/* One tick of the memory sweep: measure the running programs that are due,
 * least recently used first, then put idle ships to sleep if the budget is
 * exceeded, and start queued wakes if measures came out lower. A frozen
 * program was measured as it froze and cannot grow; one that is leaving
 * (SLEEPING) keeps its last measure. The sweep stops when nothing is left
 * to measure, and a wake or a thaw starts it again. */
static void fleet__sweep(struct fleet *f)
{
    uint64_t now = fleet__mono_ms(f);
    unsigned measured = 0;
    bool running = false;
    f->sweeping = false;
    for (struct fleet_ship *s = f->lru_head; s != NULL; s = s->lru_next) {
        if (!s->proc || s->state == SHIP_FROZEN || s->state == SHIP_SLEEPING) {
            continue;
        }
        running = true;
        if (measured < FLEET_MEASURE_MAX &&
            (s->memory_ms == 0 ||
             now - s->memory_ms >= FLEET_MEMORY_EVERY_MS)) {
            fleet__measure(s);
            measured++;
        }
    }
    if (f->stopping) {
        return;
    }
    if (running) {
        f->sweeping = true;
        f->env.timer_start(f->env.data, FLEET_TIMER_SWEEP, NULL,
                           FLEET_MEASURE_TICK_MS);
    }
    if (fleet__crowded(f)) {
        fleet__evict(f);
    }
    fleet__pump_wakes(f);
}

/* A program runs (again): make sure the sweep measures it. */
static void fleet__sweep_start(struct fleet *f)
{
    if (!f->sweeping) {
        f->sweeping = true;
        f->env.timer_start(f->env.data, FLEET_TIMER_SWEEP, NULL,
                           FLEET_MEASURE_TICK_MS);
    }
}

static void fleet__forget_memory(struct fleet_ship *s)
{
    s->fleet->awake_memory -= s->memory;
    s->memory = 0;
    s->memory_ms = 0;
}

/* --- Admission of wakes. --- */

/* Return whether one more program may start beside procs running ones. */
static bool fleet__room(const struct fleet *f, unsigned procs, bool make)
{
    if (procs == 0) {
        return true; /* always room for one, whatever the budget */
    }
    if (procs >= f->max_awake) {
        return false;
    }
    if (!f->env.fds_room(f->env.data, procs, make)) {
        return false;
    }
    return f->cfg.max_awake_bytes == 0 ||
           f->awake_memory < f->cfg.max_awake_bytes;
}

static bool fleet__can_wake(struct fleet *f)
{
    if (f->tiers[SHIP_WAKING] >= FLEET_MAX_WAKING) {
        return false;
    }
    return fleet__room(f, f->n_procs, true);
}

static void fleet__enqueue_wake(struct fleet *f, struct fleet_ship *s)
{
    s->queued_to_wake = true;
    s->wake_next = NULL;
    if (f->wake_tail != NULL) {
        f->wake_tail->wake_next = s;
    } else {
        f->wake_head = s;
    }
    f->wake_tail = s;
    f->n_wake_queue++;
}

static void fleet__dequeue_wake(struct fleet *f, struct fleet_ship *s)
{
    struct fleet_ship **pp = &f->wake_head, *prev = NULL;
    if (!s->queued_to_wake) {
        return;
    }
    while (*pp != NULL && *pp != s) {
        prev = *pp;
        pp = &(*pp)->wake_next;
    }
    if (*pp == s) {
        *pp = s->wake_next;
        if (f->wake_tail == s) {
            f->wake_tail = prev;
        }
        f->n_wake_queue--;
    }
    s->queued_to_wake = false;
    s->wake_next = NULL;
}

static void fleet__wake(struct fleet_ship *s);

/* Events still being committed must land before the log is read back into
 * a new process, and only a leader runs programs. */
static bool fleet__wants_wake(const struct fleet_ship *s)
{
    return s->state == SHIP_ASLEEP && (s->n_waiting > 0 || s->wake_wanted) &&
           s->inflight == 0 && !s->proc && !s->removing &&
           !s->fleet->stopping && s->fleet->leading;
}

/* Start queued wakes while there is room. */
static void fleet__pump_wakes(struct fleet *f)
{
    while (f->wake_head != NULL && fleet__can_wake(f)) {
        struct fleet_ship *s = f->wake_head;
        f->wake_head = s->wake_next;
        if (f->wake_head == NULL) {
            f->wake_tail = NULL;
        }
        f->n_wake_queue--;
        s->queued_to_wake = false;
        s->wake_next = NULL;
        if (fleet__wants_wake(s)) {
            s->wake_wanted = false;
            fleet__wake(s);
        } else {
            fleet__pump(s);
        }
    }
}

/* Whether s is doing or owes anything: an event in the program, events
 * waiting, replies held by the gate, proposals not yet decided, or a
 * snapshot on its way. Such a ship is never frozen, put to sleep by its
 * timeouts or evicted. */
static bool fleet__busy(const struct fleet_ship *s)
{
    return s->current != NULL || s->n_waiting > 0 || s->gate.head != NULL ||
           s->inflight > 0 || s->snapshot_pending || s->wake_wanted;
}

/* Whether the programs that are not already stopping exceed what is
 * allowed: the memory budget, or the room that queued wakes need. Room is
 * made for as many wakes as may run at once, not one at a time: an eviction
 * takes a snapshot and a process exit, and a storm of wakes would otherwise
 * wait for them one by one. */
static bool fleet__crowded(const struct fleet *f)
{
    unsigned procs = f->n_procs;
    unsigned leaving = f->tiers[SHIP_SLEEPING];
    unsigned staying = procs > leaving ? procs - leaving : 0;
    if (f->cfg.max_awake_bytes != 0 &&
        f->awake_memory > f->cfg.max_awake_bytes && staying > 0) {
        return true;
    }
    unsigned want =
        f->n_wake_queue < FLEET_MAX_WAKING ? f->n_wake_queue : FLEET_MAX_WAKING;
    return want > 0 && !fleet__room(f, staying + want - 1, false);
}

/* Put the least recently used idle ships to sleep while the host is
 * crowded. A ship leaving frees its room only when its process exits, so
 * ships already SLEEPING count as gone. */
static void fleet__evict(struct fleet *f)
{
    struct fleet_ship *s = f->lru_head;
    while (s != NULL && fleet__crowded(f)) {
        struct fleet_ship *next = s->lru_next;
        if ((s->state == SHIP_AWAKE || s->state == SHIP_FROZEN) &&
            !fleet__busy(s) && !s->sleep_wanted) {
            uint64_t freed = s->memory;
            const char *why =
                f->wake_head != NULL ? "room for a wake" : "memory budget";
            f->evictions++;
            fleet__log(s, "info", "ship evicted", "why", why, NULL, NULL);
            fleet__begin_sleep(s, why);
            /* Its memory is as good as freed for the budget's sake. */
            f->awake_memory -= freed;
            s->memory = 0;
        }
        s = next;
    }
}

/* --- Held back by the buffer budget. --- */

bool fleet_ship_has_work(const struct fleet_ship *s)
{
    return fleet__running(s) &&
           (s->current != NULL || s->state == SHIP_WAKING ||
            s->snapshot_pending || s->stop_sent || s->n_waiting > 0);
}

void fleet_ship_hold(struct fleet_ship *s, bool held)
{
    struct fleet *f = s->fleet;
    if (held == s->held) {
        return;
    }
    s->held = held;
    if (!fleet__progress(s->deadline)) {
        if (!held) {
            fleet__pump(s);
        }
        return;
    }
    if (held) {
        uint64_t now = fleet__mono_ms(f);
        s->deadline_left = s->deadline_ms > now ? s->deadline_ms - now : 0;
        f->env.timer_stop(f->env.data, FLEET_TIMER_SHIP, s);
        return;
    }
    /* The deadline goes on with the time it had left: the wait was the
     * host's doing, not the program's. */
    fleet__arm(s, s->deadline, s->deadline_left);
    fleet__pump(s);
}

/* --- Jobs. --- */

void fleet_job_free(struct fleet *f, struct fleet_job *j)
{
    budget_sub(f->budget, j->counted, j->counted_draining);
    buf_free(&j->payload);
    buf_free(&j->ws_fx);
    mem_free(j->reply_mem);
    mem_free(j->content_type);
    mem_free(j->error_message);
    mem_free(j);
}

/* Record a failure as the job's outcome. */
static void fleet__job_fail(struct fleet_job *j, int status, const char *code,
                            const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fleet__job_fail(struct fleet_job *j, int status, const char *code,
                            const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    j->status = status;
    snprintf(j->error_code, sizeof j->error_code, "%s", code);
    mem_free(j->error_message);
    j->error_message = mem_strdup(msg);
}

/* Record a refusal over an account's limit as the job's outcome. */
static void fleet__job_refuse(struct fleet_job *j,
                              const struct quota_refusal *why, const char *what)
{
    fleet__job_fail(j, quota_status(why->which), quota_code(why->which),
                    "%s: the %s's %s limit is %llu, and it has %llu", what,
                    why->ship ? "ship's sandbox" : "account",
                    quota_name(why->which), (unsigned long long)why->limit,
                    (unsigned long long)why->used);
    j->refused = true;
    j->refusal = *why;
}

/* A job leaves: its logged alarm takes effect, a failed TIMER event is
 * tried again later, and the environment answers its request. */
static void fleet__answer(struct fleet_job *j)
{
    struct fleet_ship *s = j->ship;
    struct fleet *f = s->fleet;
    bool removed = fleet__entry(s)->flags & REGISTRY_REMOVED;
    if (!removed && j->error_code[0] == '\0' && j->gate.needs_log &&
        j->alarm_changed) {
        /* Effects leave only once durable, the alarm among them. Events
         * that did not touch the alarm leave the heap alone: the one due
         * may be firing right now. */
        if (alarms_get(f->alarms, s->slot) != j->alarm_ns) {
            alarms_set(f->alarms, s->slot, j->alarm_ns);
            fleet__alarm_rearm(f);
        }
    } else if (!removed && j->origin == FLEET_JOB_ALARM &&
               alarms_get(f->alarms, s->slot) == 0) {
        /* The alarm was not consumed: try again, not at once, so that a
         * broken program does not spin. */
        alarms_set(f->alarms, s->slot,
                   f->env.now_ns(f->env.data) + FLEET_ALARM_RETRY_NS);
        fleet__alarm_rearm(f);
    }
    if (j->gate.needs_log && j->error_code[0] == '\0' &&
        j->number > s->released) {
        s->released = j->number;
    }
    if (j->reusable && j->error_code[0] == '\0' && j->status != 0 &&
        !f->stopping && s->state == SHIP_AWAKE) {
        /* Out of the gate, so what it reveals is durable; reuse_put keeps
         * it only if the state has not changed since it was computed. */
        (void)reuse_put(&s->reuse, &f->reuse, j->reuse_epoch, j->payload.data,
                        j->payload.len, j->status, j->content_type, j->body,
                        j->body_len);
    }
    if (j->gate.needs_log && j->error_code[0] == '\0' && j->done_ns != 0) {
        hist_record(&f->queue_latency, j->sent_ns - j->arrived_ns);
        hist_record(&f->compute_latency, j->done_ns - j->sent_ns);
        hist_record(&f->durable_latency,
                    f->env.mono_ns(f->env.data) - j->done_ns);
    }
    f->env.release(f->env.data, j);
}

/* Jobs that never reached the program leave at once: they reveal nothing
 * about state, so the gate has nothing to hold them for. */
static void fleet__fail_waiting(struct fleet_ship *s, int status,
                                const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fleet__fail_waiting(struct fleet_ship *s, int status,
                                const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    while (s->wait_head != NULL) {
        struct fleet_job *j = s->wait_head;
        s->wait_head = j->next;
        s->n_waiting--;
        fleet__job_fail(j, status, code, "%s", msg);
        fleet__answer(j);
    }
    s->wait_tail = NULL;
    s->n_waiting = 0;
}

/* Answer the admin requests waiting for the ship to settle: awake, or
 * asleep with nothing of it still being committed (so that a ship reported
 * asleep has its snapshot recorded). */
static void fleet__answer_waiters(struct fleet_ship *s)
{
    struct fleet *f = s->fleet;
    bool settled = s->state == SHIP_AWAKE ||
                   (s->state == SHIP_ASLEEP && s->inflight == 0 &&
                    !s->queued_to_wake && !s->wake_wanted) ||
                   s->state == SHIP_REMOVED;
    if (!settled || s->n_waiters == 0) {
        return;
    }
    struct fleet_waiter *waiters = s->waiters;
    unsigned n = s->n_waiters;
    s->waiters = NULL;
    s->n_waiters = 0;
    for (unsigned i = 0; i < n; i++) {
        if (waiters[i].wake && s->state != SHIP_AWAKE) {
            char msg[400];
            snprintf(msg, sizeof msg, "ship %s did not wake: %s", s->id,
                     s->last_failure[0] ? s->last_failure : "unknown reason");
            f->env.answer(f->env.data, s, waiters[i].req, FLEET_ANSWER_ERROR,
                          502, "wake_failed", msg);
        } else {
            f->env.answer(f->env.data, s, waiters[i].req, FLEET_ANSWER_SHIP,
                          200, NULL, NULL);
        }
    }
    mem_free(waiters);
}

static void fleet__add_waiter(struct fleet_ship *s, void *req, bool wake)
{
    struct fleet *f = s->fleet;
    struct fleet_waiter *w =
        mem_realloc(s->waiters, (s->n_waiters + 1) * sizeof *w);
    if (w == NULL) {
        f->env.answer(f->env.data, s, req, FLEET_ANSWER_ERROR, 503,
                      "unavailable", "out of memory");
        return;
    }
    s->waiters = w;
    s->waiters[s->n_waiters].req = req;
    s->waiters[s->n_waiters].wake = wake;
    s->n_waiters++;
}

/* Answer a front-door request with a reply kept for it (core/reuse.h),
 * without the program, and return true; or return false. A kept reply
 * reveals only durable state, and none of the ship's state has changed
 * since it was computed, so it may pass requests that wait for the program:
 * they have not been answered, and a write among them has not taken effect
 * for anyone. */
static bool fleet__reuse(struct fleet_ship *s, struct fleet_job *j)
{
    struct fleet *f = s->fleet;
    if (s->state != SHIP_AWAKE || j->origin != FLEET_JOB_FRONT ||
        j->kind != FRAME_EVENT_HTTP || s->reuse.head == NULL) {
        return false;
    }
    const struct reuse_entry *e =
        reuse_find(&s->reuse, j->payload.data, j->payload.len);
    if (e == NULL) {
        return false;
    }
    if (e->content_type != NULL) {
        j->content_type = mem_strdup(e->content_type);
        if (j->content_type == NULL) {
            return false;
        }
    }
    /* Borrowed: the release copies the body before anything can clear
     * the entry. */
    j->status = e->status;
    j->body = e->body;
    j->body_len = e->body_len;
    f->reuse.hits++;
    fleet__lru_touch(f, s); /* used, as by any event: last to be evicted */
    fleet__answer(j);
    /* As after any answer: the idle deadline starts again. */
    fleet__pump(s);
    return true;
}

static void fleet__submit(struct fleet_ship *s, struct fleet_job *job)
{
    struct fleet *f = s->fleet;
    fleet__entry(s)->last_active_ns = f->env.now_ns(f->env.data);
    if (s->removing || s->state == SHIP_REMOVED) {
        fleet__job_fail(job, 404, "not_found", "ship %s is being removed",
                        s->id);
        fleet__answer(job);
        fleet__maybe_free(s);
        return;
    }
    if (f->stopping) {
        fleet__job_fail(job, 503, "unavailable", "host is stopping");
        fleet__answer(job);
        return;
    }
    if (!f->leading) {
        fleet__job_fail(job, 503, "leader_changed",
                        "this host does not lead; try again");
        fleet__answer(job);
        fleet__maybe_free(s);
        return;
    }
    if (fleet__corrupt(s)) {
        fleet__job_fail(job, 502, "corrupt", "ship %s: %s", s->id,
                        fleet_corrupt_detail(f, s->slot));
        fleet__answer(job);
        fleet__maybe_free(s);
        return;
    }
    if (fleet__reuse(s, job)) {
        return;
    }
    if (s->n_waiting >= f->cfg.max_queue) {
        fleet__job_fail(job, 503, "busy",
                        "ship %s has %u requests waiting; try again", s->id,
                        s->n_waiting);
        fleet__answer(job);
        return;
    }
    job->next = NULL;
    if (s->wait_tail != NULL) {
        s->wait_tail->next = job;
    } else {
        s->wait_head = job;
    }
    s->wait_tail = job;
    s->n_waiting++;
    fleet__pump(s);
}

static int fleet__deliver(struct fleet_ship *s, enum fleet_origin origin,
                          void *req, uint8_t kind, struct buf *payload,
                          uint64_t mail_seq)
{
    struct fleet *f = s->fleet;
    struct fleet_job *j = mem_calloc(1, sizeof *j);
    if (j == NULL) {
        buf_free(payload);
        fleet__maybe_free(s);
        return BERTH_ENOMEM;
    }
    j->ship = s;
    j->origin = (uint8_t)origin;
    j->req = req;
    j->kind = kind;
    j->arrived_ns = f->env.mono_ns(f->env.data);
    j->payload = *payload;
    buf_init(payload);
    j->counted = j->payload.cap;
    j->mail_seq = mail_seq;
    struct frame_websocket ws;
    if (kind == FRAME_EVENT_WEBSOCKET &&
        frame_decode_websocket(j->payload.data, j->payload.len, &ws) == 0) {
        j->ws_conn = ws.conn;
        j->ws_what = ws.what;
    }
    budget_add(f->budget, j->counted, false);
    fleet__submit(s, j);
    return 0;
}

int fleet_deliver(struct fleet_ship *s, enum fleet_origin origin, void *req,
                  uint8_t kind, struct buf *payload)
{
    return fleet__deliver(s, origin, req, kind, payload, 0);
}

int fleet_deliver_mail(struct fleet_ship *s, uint64_t seq, uint8_t kind,
                       struct buf *payload)
{
    return fleet__deliver(s, FLEET_JOB_MAIL, NULL, kind, payload, seq);
}

/* --- Talking to the program. --- */

static int fleet__send(struct fleet_ship *s, struct buf *frame)
{
    struct fleet *f = s->fleet;
    int rv = f->env.send(f->env.data, s, frame);
    buf_free(frame);
    return rv;
}

static int fleet__send_event(struct fleet_ship *s, const struct frame_event *ev)
{
    struct buf fr;
    buf_init(&fr);
    /* Sized once: the frame may be as big as the request it carries. */
    int rv = buf_reserve_exact(&fr, FRAME_HEADER_SIZE + 64 + ev->payload_len);
    if (rv == 0) {
        rv = frame_encode_event(&fr, ev);
    }
    if (rv != 0) {
        buf_free(&fr);
        return rv;
    }
    return fleet__send(s, &fr);
}

/* Fail the events waiting for a wake that did not happen: 502 corrupt when
 * the ship's data failed its checks, else 502 wake_failed. */
static void fleet__fail_wake(struct fleet_ship *s, int rv, const char *why,
                             const struct quota_refusal *refusal)
{
    if (rv == BERTH_ELIMIT) {
        while (s->wait_head != NULL) {
            struct fleet_job *j = s->wait_head;
            s->wait_head = j->next;
            s->n_waiting--;
            fleet__job_refuse(j, refusal, "the ship cannot wake");
            fleet__answer(j);
        }
        s->wait_tail = NULL;
    } else if (rv == BERTH_EDISABLED) {
        fleet__fail_waiting(s, 403, "account_disabled", "ship %s: %s", s->id,
                            why);
    } else if (fleet__corrupt(s)) {
        fleet__fail_waiting(s, 502, "corrupt", "ship %s: %s", s->id,
                            fleet_corrupt_detail(s->fleet, s->slot));
    } else {
        fleet__fail_waiting(s, 502, "wake_failed", "ship %s failed to wake: %s",
                            s->id, why);
    }
}

/* Wake s: read it from the store, start its program and boot it from its
 * snapshot; READY then starts the replay of the log's tail. */
static void fleet__wake(struct fleet_ship *s)
{
    struct fleet *f = s->fleet;
    struct fleet_load ld;
    char errmsg[ERRMSG_SIZE];
    int rv;

    fleet__set_state(s, SHIP_WAKING);
    fleet__entry(s)->wake_count++;
    fleet__entry(s)->flags &= ~REGISTRY_KILLED;
    f->wakes++;
    s->measure_next = FLEET_MEASURE_WAKE;
    memset(&ld, 0, sizeof ld);
    buf_init(&ld.snapshot);
    errmsg[0] = '\0';
    rv = f->env.load(f->env.data, s, &ld, errmsg);
    if (rv == BERTH_ECORRUPT) {
        fleet_mark_corrupt(f, s->slot, errmsg);
    }
    if (rv != 0) {
        goto err_after_load;
    }
    s->last_event = ld.last_event;
    s->snapshot_event = ld.snapshot_event;
    s->first_event = ld.first_event;
    s->idle_timeout_ms = ld.idle_timeout_ms;
    s->freeze_timeout_ms = ld.freeze_timeout_ms;
    s->created_ns = ld.created_ns;
    s->alarm_ns = ld.alarm_ns;
    s->acks = ld.acks;
    s->released = ld.last_event;
    memcpy(s->head_hash, ld.head_hash, sizeof s->head_hash);
    memcpy(s->epoch, ld.epoch, sizeof s->epoch);
    s->own = ld.own;
    memcpy(s->own_key, ld.own_key, sizeof s->own_key);
    memset(ld.own_key, 0, sizeof ld.own_key);
    /* Replay from event 1 follows from nothing: zeros. */
    memset(s->replay_chain, 0, sizeof s->replay_chain);
    if (s->snapshot_event > 0) {
        memcpy(s->replay_chain, ld.chain, sizeof s->replay_chain);
    }

    /* The BOOT frame is ready before the program starts, so that the
     * program finds it as soon as it has loaded. */
    struct buf fr, snap;
    buf_init(&fr);
    buf_init(&snap);
    if (s->snapshot_event > 0 && ld.snapshot_sealed) {
        rv = record_open_snapshot(&snap, f->cfg.keys, fleet__own(s), s->sid,
                                  ld.snapshot_number, ld.snapshot_epoch,
                                  ld.snapshot.data, ld.snapshot.len);
        if (rv != 0) {
            snprintf(errmsg, ERRMSG_SIZE,
                     "the snapshot at event %llu does not open: %s",
                     (unsigned long long)ld.snapshot_number,
                     rv == BERTH_ENOMEM ? "out of memory"
                                        : "altered, or sealed under a key "
                                          "this host does not have");
            if (rv != BERTH_ENOMEM) {
                fleet_mark_corrupt(f, s->slot, errmsg);
                rv = BERTH_ECORRUPT;
            }
            goto err_after_boot;
        }
    } else if (s->snapshot_event > 0 &&
               (rv = buf_append(&snap, ld.snapshot.data, ld.snapshot.len)) !=
                   0) {
        snprintf(errmsg, ERRMSG_SIZE, "out of memory for the snapshot");
        goto err_after_boot;
    }
    buf_free(&ld.snapshot);
    struct frame_boot boot = {
        .id = s->id,
        .id_len = strlen(s->id),
        .snapshot_event = s->snapshot_event > 0 ? ld.snapshot_number : 0,
        .snapshot = snap.data,
        .snapshot_len = snap.len,
    };
    rv = frame_encode_boot(&fr, &boot);
    if (snap.data != NULL) {
        sodium_memzero(snap.data, snap.len);
    }
    buf_free(&snap);
    if (rv != 0) {
        snprintf(errmsg, ERRMSG_SIZE, "out of memory for the boot frame");
        rv = BERTH_ENOMEM;
        goto err_after_boot;
    }
    bool held = false;
    rv = f->env.spawn(f->env.data, s, &fr, &held, errmsg);
    if (rv != 0) {
        goto err_after_boot;
    }
    buf_free(&fr);
    s->held = held;
    s->proc = true;
    s->killed = false;
    s->deposed = false;
    f->n_procs++;
    fleet__lru_touch(f, s);
    fleet__sweep_start(f);
    s->replay_next = 0;
    fleet__arm(s, FLEET_DEADLINE_WAKE, fleet__wake_ms(f));
    fleet__send_early(s);
    return;

err_after_boot:
    buf_free(&snap);
    buf_free(&fr);
err_after_load:
    buf_free(&ld.snapshot);
    fleet__log(s, "warn", "ship failed to wake", "error", errmsg, NULL, NULL);
    snprintf(s->last_failure, sizeof s->last_failure, "%s", errmsg);
    fleet__set_state(s, SHIP_ASLEEP);
    s->measure_next = FLEET_MEASURE_NONE;
    fleet__fail_wake(s, rv, errmsg, &ld.refusal);
    fleet__answer_waiters(s);
    fleet__pump_wakes(f);
    fleet__maybe_free(s);
}

static void fleet__awake(struct fleet_ship *s)
{
    fleet__set_state(s, SHIP_AWAKE);
    s->wake_wanted = false;
    s->next_number = s->last_event + 1;
    s->since_snapshot = s->last_event - s->snapshot_event;
    fleet__disarm(s);
    if (s->current != NULL) {
        /* The early job (fleet__send_early) is the program's now. */
        fleet__start_event(s);
    }
    fleet__answer_waiters(s);
    fleet__pump_wakes(s->fleet);
    fleet__pump(s);
}

/* Send one logged event to a waking program; the store has checked its
 * place in the ship's hash chain. */
static int fleet__replay_one(void *arg, uint64_t number, const uint8_t *rec,
                             size_t len)
{
    struct fleet_ship *s = arg;
    struct fleet *f = s->fleet;
    struct record_event ev;
    int rv =
        record_open_event(rec, len, f->cfg.keys, fleet__own(s), &f->plain, &ev);
    if (rv == BERTH_ENOMEM) {
        return rv;
    }
    if (rv != 0) {
        f->unopened = number;
        return BERTH_ECORRUPT;
    }
    struct frame_event fe = {
        .number = ev.number,
        .time_ns = ev.time_ns,
        .kind = ev.kind,
        .payload = ev.payload,
        .payload_len = ev.payload_len,
    };
    memcpy(fe.entropy, ev.entropy, sizeof fe.entropy);
    return fleet__send_event(s, &fe) != 0 ? BERTH_ESHUTDOWN : 0;
}

/* Walk the log's tail from event start, sending each event to the waking
 * program. The store checks every record's place in the hash chain, from
 * the snapshot's link (or from nothing at event 1) to the ship's head,
 * also when there is nothing to replay. Returns 0, or non-zero when the
 * ship was marked corrupt or its program killed. */
static int fleet__replay(struct fleet_ship *s, uint64_t start)
{
    struct fleet *f = s->fleet;
    char errmsg[ERRMSG_SIZE];
    uint8_t zeros[RECORD_HASH_SIZE] = {0};
    errmsg[0] = '\0';
    f->unopened = 0;
    int rv = f->env.replay(f->env.data, s, start,
                           start == 1 ? zeros : s->replay_chain,
                           fleet__replay_one, s, errmsg);
    if (rv == BERTH_ECORRUPT && f->unopened != 0) {
        snprintf(errmsg, ERRMSG_SIZE,
                 "event %llu does not open: altered, or sealed under a key "
                 "this host does not have",
                 (unsigned long long)f->unopened);
    }
    if (rv == BERTH_ECORRUPT) {
        fleet_mark_corrupt(f, s->slot, errmsg);
    } else if (rv != 0) {
        fleet__kill(s, "cannot replay the log");
    }
    return rv;
}

/* When nothing is left to replay after the snapshot, the job that woke the
 * ship need not wait for READY: it is written right behind BOOT, while the
 * program is still starting, once the log's tail has been checked, and the
 * program reads it as soon as it has sent READY. That saves a round trip
 * through the host's loop on every wake. A program that refuses the
 * snapshot has the job already, after a READY that asked for the whole
 * log: it is killed, and woken again the usual way when the log is whole
 * (fleet__on_ready). */
static void fleet__send_early(struct fleet_ship *s)
{
    if (s->boot_plain || s->n_waiting == 0 || s->held || s->current != NULL ||
        s->last_event != s->snapshot_event) {
        return;
    }
    if (fleet__replay(s, s->snapshot_event + 1) != 0) {
        return;
    }
    s->early = true;
    s->next_number = s->last_event + 1;
    fleet__dispatch(s);
    if (s->current != NULL) {
        /* Until READY, the wake's deadline, not the event's. */
        fleet__arm(s, FLEET_DEADLINE_WAKE, fleet__wake_ms(s->fleet));
    }
}

/* Put the early job back at the head of the queue, as if never sent: the
 * program never got past BOOT, and nothing was logged for it. */
static void fleet__requeue_early(struct fleet_ship *s)
{
    struct fleet_job *j = s->current;
    s->early = false;
    s->current = NULL;
    j->next = s->wait_head;
    s->wait_head = j;
    if (s->wait_tail == NULL) {
        s->wait_tail = j;
    }
    s->n_waiting++;
    s->measure_next = j->measure;
}

/* A program that refused its snapshot after its early job was sent is
 * killed, the job back in the queue; its exit wakes the ship again,
 * without an early job, to replay the whole log. */
static void fleet__undo_early(struct fleet_ship *s)
{
    fleet__requeue_early(s);
    s->boot_plain = true;
    s->rewake = true;
    fleet__kill(s, "program refused its snapshot after its first event was "
                   "sent; waking it again to replay the log");
}

static void fleet__on_ready(struct fleet_ship *s, bool accepted)
{
    struct fleet *f = s->fleet;
    uint64_t start;
    if (s->early) {
        if (accepted || s->snapshot_event == 0) {
            s->early = false;
            fleet__awake(s);
            return;
        }
        if (s->first_event <= 1) {
            fleet__undo_early(s);
            return;
        }
        /* No log to replay either: killed below; the wake fails, the early
         * job with it (fleet_on_exit). */
    }
    if (s->snapshot_event > 0 && accepted) {
        start = s->snapshot_event + 1;
    } else if (s->first_event <= 1) {
        start = 1;
    } else {
        char why[200];
        snprintf(why, sizeof why,
                 "program refused the snapshot at event %llu and the log "
                 "before it was truncated",
                 (unsigned long long)s->snapshot_event);
        fleet__kill(s, why);
        return;
    }
    s->replay_next = start;
    s->replay_last = s->last_event;
    if (fleet__replay(s, start) != 0) {
        return;
    }
    if (start > s->last_event) {
        fleet__awake(s);
        return;
    }
    fleet__arm(s, FLEET_DEADLINE_WAKE, fleet__wake_ms(f));
}

/* Send the next waiting job to the program as event N, stamped with the
 * time and fresh entropy, which the record keeps so that it replays
 * exactly. */
static void fleet__dispatch(struct fleet_ship *s)
{
    struct fleet *f = s->fleet;
    struct fleet_job *j = s->wait_head;
    s->wait_head = j->next;
    if (s->wait_head == NULL) {
        s->wait_tail = NULL;
    }
    s->n_waiting--;
    j->next = NULL;
    j->number = s->next_number;
    j->measure = s->measure_next;
    s->measure_next = FLEET_MEASURE_NONE;
    fleet__lru_touch(f, s);

    struct frame_event ev = {
        .number = j->number,
        .time_ns = f->env.now_ns(f->env.data),
        .kind = j->kind,
        .payload = j->payload.data,
        .payload_len = j->payload.len,
    };
    f->env.entropy(f->env.data, ev.entropy, sizeof ev.entropy);
    s->current = j;
    j->time_ns = ev.time_ns;
    j->sent_ns = f->env.mono_ns(f->env.data);
    memcpy(j->entropy, ev.entropy, sizeof j->entropy);
    if (fleet__send_event(s, &ev) != 0) {
        fleet__kill(s, "cannot write to the program");
        return;
    }
    fleet__start_event(s);
}

static void fleet__request_snapshot(struct fleet_ship *s)
{
    struct buf fr;
    buf_init(&fr);
    if (frame_encode_snap_req(&fr, s->next_number - 1) != 0 ||
        fleet__send(s, &fr) != 0) {
        buf_free(&fr);
        fleet__kill(s, "cannot request a snapshot");
        return;
    }
    s->snapshot_pending = true;
    s->since_snapshot = 0;
}

static void fleet__stop(struct fleet_ship *s)
{
    struct buf fr;
    buf_init(&fr);
    if (frame_encode_stop(&fr) != 0 || fleet__send(s, &fr) != 0) {
        buf_free(&fr);
        fleet__kill(s, "cannot send stop");
        return;
    }
    s->stop_sent = true;
    fleet__arm(s, FLEET_DEADLINE_STOP, FLEET_STOP_MS);
}

/* Thaw a frozen ship; it is AWAKE again. A program that cannot be thawed
 * is killed: it would never answer. */
static void fleet__thaw(struct fleet_ship *s)
{
    struct fleet *f = s->fleet;
    fleet__set_state(s, SHIP_AWAKE);
    fleet__sweep_start(f);
    if (f->env.thaw(f->env.data, s) != 0) {
        fleet__kill(s, "cannot thaw the program");
    }
}

static void fleet__begin_sleep(struct fleet_ship *s, const char *why)
{
    if (s->state == SHIP_FROZEN) {
        fleet__thaw(s);
        if (!fleet__running(s)) {
            return;
        }
    }
    fleet__set_state(s, SHIP_SLEEPING);
    snprintf(s->sleep_reason, sizeof s->sleep_reason, "%s", why);
    s->sleep_wanted = false;
    fleet__disarm(s);
    if (s->snapshot_pending) {
        return; /* the snapshot on its way ends in STOP */
    }
    if (s->next_number - 1 > s->snapshot_event) {
        fleet__request_snapshot(s);
    } else {
        fleet__stop(s);
    }
}

uint64_t fleet_freeze_ms(const struct fleet_config *cfg, uint64_t own)
{
    if (own == UINT64_MAX) {
        return 0;
    }
    return own ? own : cfg->freeze_timeout_ms;
}

static uint64_t fleet__timeout(const struct fleet_ship *s, bool freeze)
{
    const struct fleet_config *cfg = &s->fleet->cfg;
    if (freeze) {
        return fleet_freeze_ms(cfg, s->freeze_timeout_ms);
    }
    return s->idle_timeout_ms ? s->idle_timeout_ms : cfg->idle_timeout_ms;
}

/* The ship has nothing to do: make room if the host is crowded, and arm
 * the first idle deadline. */
static void fleet__idle(struct fleet_ship *s)
{
    struct fleet *f = s->fleet;
    /* A program just started is measured as soon as it is idle, not when
     * its turn in the sweep comes (with thousands running, seconds later):
     * the budget sees a wake storm as it happens. */
    if (s->memory_ms == 0) {
        fleet__measure(s);
    }
    if (fleet__crowded(f)) {
        fleet__evict(f);
        if (s->state != SHIP_AWAKE) {
            return;
        }
    }
    uint64_t idle = fleet__timeout(s, false);
    uint64_t freeze = fleet__timeout(s, true);
    if (freeze != 0 && freeze < idle) {
        fleet__arm(s, FLEET_DEADLINE_FREEZE, freeze);
    } else {
        fleet__arm(s, FLEET_DEADLINE_IDLE, idle);
    }
}

/* Move s along after anything changed: wake it, thaw it, interrupt its
 * sleep, send its next event, or let it go idle. */
static void fleet__pump(struct fleet_ship *s)
{
    struct fleet *f = s->fleet;
    if (f->stopping || s->closing) {
        return;
    }
    if (s->proc && !fleet__running(s)) {
        return; /* being killed: its exit pumps again */
    }
    switch (s->state) {
    case SHIP_ASLEEP:
        if (fleet__wants_wake(s) && !s->queued_to_wake) {
            if (f->wake_head == NULL && fleet__can_wake(f)) {
                s->wake_wanted = false;
                fleet__wake(s);
            } else {
                fleet__enqueue_wake(f, s);
                fleet__evict(f);
            }
            return;
        }
        fleet__maybe_free(s);
        break;
    case SHIP_FROZEN:
        if (s->n_waiting > 0) {
            f->thaws++;
            s->measure_next = FLEET_MEASURE_THAW;
            fleet__thaw(s);
            fleet__pump(s);
        } else if (s->sleep_wanted) {
            fleet__begin_sleep(s, "asked");
        }
        break;
    case SHIP_SLEEPING:
        if (s->n_waiting > 0 && !s->stop_sent) {
            /* A new event interrupts the sleep instead of waiting for it. */
            fleet__set_state(s, SHIP_AWAKE);
            fleet__pump(s);
        }
        break;
    case SHIP_AWAKE:
        if (s->current != NULL) {
            break;
        }
        if (s->n_waiting > 0) {
            if (!s->held) {
                fleet__dispatch(s);
            }
        } else if (s->sleep_wanted) {
            fleet__begin_sleep(s, "asked");
        } else if (!fleet__busy(s)) {
            fleet__idle(s);
        } else {
            /* Replies are waiting for the log: not idle yet, and the log's
             * report pumps again. */
            fleet__disarm(s);
        }
        break;
    default:
        break;
    }
}

/* Release every job at the head of the gate that may leave. */
static void fleet__release(struct fleet_ship *s)
{
    struct gate_item *i;
    while ((i = gate_pop(&s->gate)) != NULL) {
        fleet__answer((struct fleet_job *)i);
    }
}

/* Free the job's reply body, if any, and stop counting it. */
static void fleet__drop_reply(struct fleet *f, struct fleet_job *j)
{
    if (j->reply_mem == NULL) {
        return;
    }
    budget_sub(f->budget, j->reply_counted, j->counted_draining);
    j->counted -= j->reply_counted;
    mem_free(j->reply_mem);
    j->reply_mem = NULL;
    j->reply_counted = 0;
    j->body = NULL;
    j->body_len = 0;
}

/* Make e, an HTTP reply effect of the DONE frame being delivered, the
 * job's reply. A frame that came in several reads has a buffer of its
 * own: the job takes it and the body stays where it is (*frame_taken says
 * so to a later effect of the same frame). A frame read in one go sits in
 * a shared buffer, and its body (at most a read's worth) is copied. */
static int fleet__set_reply(struct fleet_ship *s, struct fleet_job *j,
                            const struct frame_effect *e, bool *frame_taken)
{
    struct fleet *f = s->fleet;
    struct frame_http_reply r;
    if (frame_decode_http_reply(e->data, e->len, &r) != 0 || r.status < 100 ||
        r.status > 599) {
        return BERTH_EMALFORMED;
    }
    /* The content type becomes a header line: a CR or LF in it would let
     * a program add headers of its own (a cookie for every ship behind the
     * same front door). Only visible characters, spaces and tabs. */
    for (size_t i = 0; i < r.content_type_len; i++) {
        unsigned char ch = (unsigned char)r.content_type[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            return BERTH_EMALFORMED;
        }
    }
    j->status = r.status;
    mem_free(j->content_type);
    j->content_type = NULL;
    if (r.content_type_len > 0) {
        j->content_type = mem_strndup(r.content_type, r.content_type_len);
        if (j->content_type == NULL) {
            return BERTH_ENOMEM;
        }
    }
    if (!*frame_taken) {
        uint64_t counted;
        void *fr = f->env.take_frame(f->env.data, s, &counted);
        if (fr != NULL) {
            fleet__drop_reply(f, j);
            j->reply_mem = fr;
            j->reply_counted = counted; /* counted already */
            j->counted += counted;
            *frame_taken = true;
        }
    }
    if (*frame_taken) {
        j->body = r.body;
        j->body_len = r.body_len;
        return 0;
    }
    fleet__drop_reply(f, j);
    uint8_t *copy = mem_alloc(r.body_len ? r.body_len : 1);
    if (copy == NULL) {
        return BERTH_ENOMEM;
    }
    memcpy(copy, r.body, r.body_len);
    j->reply_mem = copy;
    j->reply_counted = r.body_len;
    j->counted += r.body_len;
    budget_add(f->budget, r.body_len, j->counted_draining);
    j->body = copy;
    j->body_len = r.body_len;
    return 0;
}

/* Drop the WebSocket effects j holds (from an answer of its program that
 * did not stand). */
static void fleet__drop_ws(struct fleet *f, struct fleet_job *j)
{
    budget_sub(f->budget, j->ws_fx.cap, j->counted_draining);
    j->counted -= j->ws_fx.cap;
    buf_free(&j->ws_fx);
}

/* Keep e, a WS_SEND or WS_CLOSE effect, in j for its release; 0,
 * BERTH_EMALFORMED or BERTH_ENOMEM. */
static int fleet__keep_ws(struct fleet *f, struct fleet_job *j,
                          const struct frame_effect *e)
{
    struct frame_ws_send ws;
    struct frame_ws_close wc;
    if (e->kind == FRAME_EFFECT_WS_SEND
            ? frame_decode_ws_send(e->data, e->len, &ws) != 0
            : frame_decode_ws_close(e->data, e->len, &wc) != 0) {
        return BERTH_EMALFORMED;
    }
    size_t cap = j->ws_fx.cap;
    if (buf_put_u8(&j->ws_fx, e->kind) != 0 ||
        buf_put_u32(&j->ws_fx, (uint32_t)e->len) != 0 ||
        buf_append(&j->ws_fx, e->data, e->len) != 0) {
        return BERTH_ENOMEM;
    }
    budget_add(f->budget, j->ws_fx.cap - cap, j->counted_draining);
    j->counted += j->ws_fx.cap - cap;
    return 0;
}

/* Put a job that has left its program into the gate. Its bytes drain from
 * now on (the log or the client takes them), and its payload, encoded
 * into the log already or never to be, goes at once (but a reusable
 * reply's key, and mail, which the environment reads when it leaves). */
static void fleet__gate_push(struct fleet_ship *s, struct fleet_job *j)
{
    struct budget *b = s->fleet->budget;
    if (!j->counted_draining) {
        budget_sub(b, j->payload.cap, false);
        j->counted -= j->payload.cap;
        if (!j->reusable && j->origin != FLEET_JOB_MAIL) {
            /* Else the reply's key, or the mail a refusal answers (its
             * sender's receipt is made from it), freed with j. */
            buf_free(&j->payload);
        }
        budget_drain(b, j->counted);
        j->counted_draining = true;
    }
    gate_push(&s->gate, &j->gate);
}

/* A changed event that will not be logged: its job leaves with the failure
 * already recorded in it, and the program, whose state has moved past the
 * log, is restarted from the log. */
static void fleet__unlogged(struct fleet_ship *s, struct fleet_job *j,
                            const char *why)
{
    j->changed = false;
    j->gate.needs_log = false;
    fleet__gate_push(s, j);
    fleet__kill(s, why);
    fleet__release(s);
}

static void fleet__measure_job(struct fleet_ship *s, struct fleet_job *j)
{
    struct fleet *f = s->fleet;
    j->done_ns = f->env.mono_ns(f->env.data);
    uint64_t dt = j->done_ns - j->arrived_ns;
    if (j->measure == FLEET_MEASURE_WAKE) {
        hist_record(&f->wake_latency, dt);
    } else if (j->measure == FLEET_MEASURE_THAW) {
        hist_record(&f->thaw_latency, dt);
    }
}

/* The program answered the current job: take its effects, log the event
 * if it changed state (a record chained to the ship's previous one), and
 * push the job into the gate. */
static void fleet__on_done(struct fleet_ship *s, const struct frame *fr)
{
    struct fleet *f = s->fleet;
    struct frame_done d;
    struct fleet_job *j = s->current;
    if (frame_decode_done(fr, &d) != 0 || j == NULL || d.number != j->number) {
        fleet__kill(s, "unexpected or malformed DONE frame");
        return;
    }
    struct frame_effect e;
    size_t off = 0;
    int rv;
    bool alarm_set = false;
    bool frame_taken = false;
    bool idle = false;
    uint64_t alarm = 0;
    struct buf fx; /* the entries of the event's effects item */
    buf_init(&fx);
    fleet__drop_ws(f, j);
    while ((rv = frame_effects_next(&d, &off, &e)) == 0) {
        if (e.kind == FRAME_EFFECT_WS_SEND || e.kind == FRAME_EFFECT_WS_CLOSE) {
            rv = fleet__keep_ws(f, j, &e);
            if (rv != 0) {
                buf_free(&fx);
                fleet__drop_ws(f, j);
                fleet__kill(s, rv == BERTH_ENOMEM
                                   ? "out of memory for WebSocket effects"
                                   : "malformed WS_SEND or WS_CLOSE effect");
                return;
            }
        } else if (e.kind == FRAME_EFFECT_HTTP_REPLY) {
            if (fleet__set_reply(s, j, &e, &frame_taken) != 0) {
                buf_free(&fx);
                fleet__kill(s, "malformed HTTP reply effect");
                return;
            }
        } else if (e.kind == FRAME_EFFECT_ALARM) {
            if (frame_decode_alarm(e.data, e.len, &alarm) != 0) {
                buf_free(&fx);
                fleet__kill(s, "malformed ALARM effect");
                return;
            }
            alarm_set = true;
        } else if (e.kind == FRAME_EFFECT_SPAWN ||
                   e.kind == FRAME_EFFECT_SEND ||
                   e.kind == FRAME_EFFECT_RELEASE ||
                   e.kind == FRAME_EFFECT_DESTROY) {
            struct frame_spawn sp;
            struct frame_send sd;
            bool ok = e.kind == FRAME_EFFECT_SPAWN
                          ? frame_decode_spawn(e.data, e.len, &sp) == 0
                      : e.kind == FRAME_EFFECT_SEND
                          ? frame_decode_send(e.data, e.len, &sd) == 0
                          : frame_decode_ship_ref(e.data, e.len) == 0 &&
                                (e.len > 0 || e.kind == FRAME_EFFECT_DESTROY);
            if (!ok) {
                buf_free(&fx);
                fleet__kill(s, "malformed SPAWN, SEND, RELEASE or DESTROY "
                               "effect");
                return;
            }
            rv = f->env.effect_entry(f->env.data, s, j, e.kind, e.data, e.len,
                                     &fx);
            if (rv != 0) {
                buf_free(&fx);
                fleet__disarm(s);
                s->current = NULL;
                fleet__job_fail(j, 503, "unavailable",
                                "cannot carry out the event's effects: %s",
                                err_str(rv));
                fleet__unlogged(s, j, "event's effects could not be made");
                return;
            }
        } else if (e.kind == FRAME_EFFECT_IDLE) {
            idle = true;
        } else if (e.kind == FRAME_EFFECT_LOG) {
            char n[24];
            snprintf(n, sizeof n, "%llu", (unsigned long long)j->number);
            char *line = mem_strndup((const char *)e.data, e.len);
            if (line != NULL) {
                fleet__log(s, "info", "program log", "event", n, "line", line);
                mem_free(line);
            }
        }
    }
    if (rv < 0) {
        buf_free(&fx);
        fleet__kill(s, "malformed effects");
        return;
    }
    fleet__disarm(s);
    fleet__measure_job(s, j);
    s->current = NULL;
    if (j->origin == FLEET_JOB_MAIL &&
        (rv = f->env.receipt_entry(f->env.data, s, j, &fx)) != 0) {
        buf_free(&fx);
        fleet__job_fail(j, 503, "unavailable", "cannot make the receipt: %s",
                        err_str(rv));
        fleet__unlogged(s, j, "a message's receipt could not be made");
        return;
    }
    if (idle) {
        /* Once what it answered has left, and if nothing waits. */
        s->sleep_wanted = true;
    }
    /* The alarm is part of the ship's durable state: setting one is a
     * change, and a TIMER event always is (it consumes the alarm), so that a
     * fired alarm never fires again after a restart. So are effects that
     * act beyond the program, and the delivery of mail, which must be
     * taken exactly once. */
    bool timer = j->kind == FRAME_EVENT_TIMER;
    bool mail = j->origin == FLEET_JOB_MAIL;
    j->changed = (d.flags & FRAME_DONE_CHANGED) != 0 || alarm_set || timer ||
                 fx.len > 0 || mail;
    j->alarm_changed = alarm_set || timer;
    if (alarm_set) {
        j->alarm_ns = alarm;
    } else if (timer && j->payload.len == 8 &&
               get_le64(j->payload.data) == s->alarm_ns) {
        j->alarm_ns = 0; /* the alarm it was for is consumed */
    } else {
        j->alarm_ns = s->alarm_ns; /* a later alarm was set since */
    }
    j->gate.needs_log = j->changed;
    j->gate.number = j->number;
    if (j->changed) {
        /* Every reply kept so far shows the state before this event. */
        reuse_clear(&s->reuse, &f->reuse);
    } else if ((d.flags & FRAME_DONE_REUSE) && j->origin == FLEET_JOB_FRONT &&
               j->kind == FRAME_EVENT_HTTP &&
               j->payload.len <= REUSE_ENTRY_MAX) {
        /* The payload stays as the entry's key until the job leaves, past
         * the budget's count: only one small enough to be kept at all. */
        j->reusable = true;
        j->reuse_epoch = s->reuse.epoch;
    }
    if (j->changed && !f->env.disk_ok(f->env.data)) {
        buf_free(&fx);
        fleet__job_fail(j, 507, "insufficient_storage",
                        "the host's disk is nearly full; writes are refused "
                        "until space is freed");
        fleet__unlogged(s, j, "event refused: disk nearly full");
        return;
    }
    struct quota_refusal why = {0};
    if (j->changed && f->env.write_ok != NULL &&
        !f->env.write_ok(f->env.data, s, &why)) {
        buf_free(&fx);
        /* The program's state is ahead of the log: it goes, and the next
         * event wakes it from what was committed. Reads go on. */
        fleet__job_refuse(j, &why, "the event is not committed");
        fleet__unlogged(s, j, "event refused: over the account's limit");
        return;
    }
    if (j->changed) {
        struct record_event rec = {
            .sid = s->sid,
            .number = j->number,
            .time_ns = j->time_ns,
            .kind = j->kind,
            .alarm_ns = j->alarm_ns,
            .payload = j->payload.data,
            .payload_len = j->payload.len,
        };
        memcpy(rec.entropy, j->entropy, sizeof rec.entropy);
        memcpy(rec.prev_hash, s->head_hash, sizeof rec.prev_hash);
        uint8_t nonce[SEAL_NONCE_SIZE];
        f->env.entropy(f->env.data, nonce, sizeof nonce);
        struct buf b, item;
        buf_init(&b);
        buf_init(&item);
        rv = record_encode_event(&b, &rec, f->cfg.keys, fleet__own(s), nonce);
        if (rv == 0 && (fx.len > 0 || mail)) {
            struct record_effects it = {.sid = s->sid,
                                        .number = j->number,
                                        .mail_taken = j->mail_seq,
                                        .entries = fx.data,
                                        .entries_len = fx.len};
            rv = record_encode_effects(&item, &it);
        }
        buf_free(&fx);
        if (rv == 0) {
            rv = f->env.propose_event(f->env.data, s, j->number, b.data, b.len,
                                      item.data, item.len);
        }
        buf_free(&item);
        if (rv != 0) {
            buf_free(&b);
            fleet__job_fail(j, 503, "unavailable", "cannot log the event: %s",
                            err_str(rv));
            fleet__unlogged(s, j, "event could not be logged");
            return;
        }
        s->inflight++;
        record_hash(b.data, b.len, s->head_hash);
        buf_free(&b);
        s->next_number++;
        s->since_snapshot++;
        s->alarm_ns = j->alarm_ns;
    }
    bool changed = j->changed;
    fleet__gate_push(s, j);
    fleet__release(s); /* j may be answered and freed here */
    if (changed && s->since_snapshot >= f->cfg.snapshot_every &&
        !s->snapshot_pending) {
        fleet__request_snapshot(s);
    }
    fleet__pump(s);
}

static void fleet__on_reject(struct fleet_ship *s, const struct frame *fr)
{
    struct frame_reject r;
    struct fleet_job *j = s->current;
    if (frame_decode_reject(fr, &r) != 0 || j == NULL ||
        r.number != j->number) {
        fleet__kill(s, "unexpected or malformed REJECT frame");
        return;
    }
    fleet__disarm(s);
    fleet__measure_job(s, j);
    s->current = NULL;
    fleet__job_fail(j, 422, "rejected", "%.*s", (int)r.reason_len, r.reason);
    j->gate.needs_log = false;
    fleet__gate_push(s, j);
    fleet__release(s);
    fleet__pump(s);
}

/* The program's snapshot: proposed as an entry of the ship's (applying it
 * stores the snapshot and truncates what it covers); a sleep goes on with
 * STOP without waiting for it. */
static void fleet__on_snapshot(struct fleet_ship *s, const struct frame *fr)
{
    struct fleet *f = s->fleet;
    struct frame_snapshot fs;
    if (frame_decode_snapshot(fr, &fs) != 0 || !s->snapshot_pending ||
        fs.number > s->next_number - 1) {
        fleet__kill(s, "unexpected or malformed SNAPSHOT frame");
        return;
    }
    s->snapshot_pending = false;
    if (!f->env.disk_ok(f->env.data)) {
        /* A snapshot only saves replay time; skip it on a full disk. */
        if (s->state == SHIP_SLEEPING) {
            fleet__stop(s);
        } else {
            fleet__pump(s);
        }
        return;
    }
    struct record_snapshot rs = {
        .sid = s->sid,
        .number = fs.number,
        .data = fs.data,
        .len = fs.len,
    };
    memcpy(rs.epoch, s->epoch, sizeof rs.epoch);
    uint8_t nonce[SEAL_NONCE_SIZE];
    f->env.entropy(f->env.data, nonce, sizeof nonce);
    struct buf e;
    buf_init(&e);
    int rv = record_encode_snapshot(&e, &rs, f->cfg.keys, fleet__own(s), nonce);
    if (rv == 0) {
        rv = f->env.propose_entry(f->env.data, s, FLEET_ENTRY_SNAPSHOT,
                                  fs.number, &e);
    }
    if (rv != 0) {
        /* A snapshot is an optimization: the log still has every event. */
        buf_free(&e);
        fleet__log(s, "warn", "cannot log snapshot", "error", err_str(rv), NULL,
                   NULL);
    } else {
        s->inflight++;
    }
    if (s->state == SHIP_SLEEPING) {
        fleet__stop(s);
    } else {
        fleet__pump(s);
    }
}

static void fleet__removed(struct fleet_ship *s, int status);

void fleet_ship_entry_done(struct fleet_ship *s, enum fleet_entry kind,
                           uint64_t number, int status)
{
    if (kind == FLEET_ENTRY_REMOVE) {
        fleet__removed(s, status);
        return;
    }
    s->inflight--;
    /* After a reset, the next wake reads the emptied ship from the store. */
    if (kind == FLEET_ENTRY_SNAPSHOT && status == 0 &&
        number > s->snapshot_event) {
        s->snapshot_event = number;
        s->first_event = number + 1;
    }
    fleet__answer_waiters(s);
    if (s->removing) {
        fleet__remove_step(s);
    } else {
        fleet__pump(s);
    }
}

/* While waking: READY, then one DONE for each replayed event. */
static void fleet__on_replay_frame(struct fleet_ship *s, const struct frame *fr)
{
    struct fleet *f = s->fleet;
    if (s->replay_next == 0) {
        bool accepted;
        if (frame_decode_ready(fr, &accepted) != 0) {
            fleet__kill(s, "expected a READY frame after BOOT");
            return;
        }
        fleet__on_ready(s, accepted);
        return;
    }
    struct frame_done d;
    if (fr->type == FRAME_REJECT) {
        fleet__kill(s, "program rejected a logged event during replay; "
                       "programs must be deterministic");
        return;
    }
    if (frame_decode_done(fr, &d) != 0 || d.number != s->replay_next) {
        fleet__kill(s, "unexpected frame during replay");
        return;
    }
    if (s->replay_next++ == s->replay_last) {
        fleet__awake(s);
    } else {
        fleet__arm(s, FLEET_DEADLINE_WAKE, fleet__wake_ms(f));
    }
}

void fleet_on_frame(struct fleet_ship *s, const struct frame *fr)
{
    if (!fleet__running(s)) {
        return; /* no frame counts after a kill */
    }
    if (s->state == SHIP_WAKING) {
        fleet__on_replay_frame(s, fr);
        return;
    }
    switch (fr->type) {
    case FRAME_DONE:
        fleet__on_done(s, fr);
        break;
    case FRAME_REJECT:
        fleet__on_reject(s, fr);
        break;
    case FRAME_SNAPSHOT:
        fleet__on_snapshot(s, fr);
        break;
    default:
        fleet__kill(s, "unexpected frame type");
        break;
    }
}

void fleet_on_exit(struct fleet_ship *s, const char *why, bool clean,
                   bool over_memory)
{
    struct fleet *f = s->fleet;
    bool expected = s->stop_sent && clean;
    bool deposed = s->deposed;
    bool rewake = s->rewake;
    s->rewake = false;
    if (s->early && !deposed) {
        /* It never got past BOOT: it fails with the wake, or waits for
         * the next one. */
        fleet__requeue_early(s);
    }
    s->early = false;
    s->proc = false;
    s->killed = false;
    s->deposed = false;
    s->held = false;
    f->n_procs--;
    fleet__disarm(s);
    fleet__forget_memory(s);
    fleet__lru_remove(f, s);
    if (!expected) {
        fleet__log(s, f->stopping || deposed ? "info" : "warn", "program ended",
                   "why", why, NULL, NULL);
        snprintf(s->last_failure, sizeof s->last_failure, "program %s", why);
    }
    if (s->current != NULL) {
        struct fleet_job *j = s->current;
        s->current = NULL;
        if (deposed) {
            fleet__job_fail(j, 503, "leader_changed",
                            "this host lost the lead; try again");
        } else if (over_memory) {
            fleet__job_fail(j, 503, "memory_limit",
                            "ship %s: program %s; the ship starts again "
                            "from its last committed state",
                            s->id, why);
        } else if (j->cpu_over) {
            fleet__job_fail(j, 504, "cpu_limit", "ship %s: %s", s->id, why);
        } else if (j->timed_out) {
            fleet__job_fail(j, 504, "timeout", "ship %s: %s", s->id, why);
        } else {
            fleet__job_fail(j, 502, "program_failed", "ship %s: program %s",
                            s->id, why);
        }
        j->gate.needs_log = false;
        fleet__gate_push(s, j);
    }
    if (s->state == SHIP_WAKING && !rewake) {
        char msg[300];
        snprintf(msg, sizeof msg, "program %s", why);
        fleet__fail_wake(s, 0, msg, NULL);
    }
    s->snapshot_pending = false;
    s->stop_sent = false;
    s->sleep_wanted = false;
    s->measure_next = FLEET_MEASURE_NONE;
    if (s->state != SHIP_ASLEEP && s->state != SHIP_REMOVED) {
        fleet__set_state(s, SHIP_ASLEEP);
    }
    fleet__answer_waiters(s);
    fleet__release(s);
    if (s->removing) {
        fleet__remove_step(s);
    } else {
        fleet__pump(s);
    }
    /* A process fewer: a queued wake may start. */
    fleet__pump_wakes(f);
}

/* The current job's deadline fell: return true when it may go on (its
 * CPU time and wall-clock time are both within their limits; the deadline
 * is armed again), false when it must be killed (cpu_over says whether for
 * its CPU time). */
static bool fleet__event_goes_on(struct fleet_ship *s)
{
    struct fleet *f = s->fleet;
    struct fleet_job *j = s->current;
    if (j == NULL) {
        return false;
    }
    j->wall_left_ms -=
        j->armed_ms < j->wall_left_ms ? j->armed_ms : j->wall_left_ms;
    uint64_t cpu_left = UINT64_MAX;
    uint64_t now_us;
    if (j->cpu_known && f->env.cpu(f->env.data, s, &now_us) == 0) {
        uint64_t used_ms =
            now_us > j->cpu_start_us ? (now_us - j->cpu_start_us) / 1000 : 0;
        if (used_ms >= f->cfg.event_cpu_ms) {
            j->cpu_over = true;
            return false;
        }
        cpu_left = f->cfg.event_cpu_ms - used_ms;
    }
    if (j->wall_left_ms == 0) {
        return false;
    }
    fleet__arm_event(s, cpu_left);
    return true;
}

static void fleet__on_deadline(struct fleet_ship *s)
{
    struct fleet *f = s->fleet;
    char why[128];
    int kind = s->deadline;
    if (!s->proc) {
        return;
    }
    s->deadline = FLEET_DEADLINE_NONE;
    switch (kind) {
    case FLEET_DEADLINE_EVENT:
        if (fleet__event_goes_on(s)) {
            break;
        }
        if (s->current != NULL && s->current->cpu_over) {
            snprintf(why, sizeof why,
                     "event %llu used more than %llu ms of "
                     "CPU time",
                     (unsigned long long)s->current->number,
                     (unsigned long long)f->cfg.event_cpu_ms);
            fleet__kill(s, why);
            break;
        }
        snprintf(why, sizeof why, "event %llu took longer than %llu ms",
                 (unsigned long long)(s->current ? s->current->number : 0),
                 (unsigned long long)f->cfg.event_timeout_ms);
        if (s->current != NULL) {
            s->current->timed_out = true;
        }
        fleet__kill(s, why);
        break;
    case FLEET_DEADLINE_WAKE:
        snprintf(why, sizeof why, "no progress while waking for %llu ms",
                 (unsigned long long)fleet__wake_ms(f));
        fleet__kill(s, why);
        break;
    case FLEET_DEADLINE_FREEZE:
        if (s->state == SHIP_AWAKE && !fleet__busy(s)) {
            /* Frozen, it cannot grow: this measure holds until it thaws. */
            fleet__measure(s);
            if (f->env.freeze(f->env.data, s) == 0) {
                fleet__set_state(s, SHIP_FROZEN);
            } else {
                fleet__log(s, "warn", "cannot freeze program", NULL, NULL, NULL,
                           NULL);
            }
            uint64_t idle = fleet__timeout(s, false);
            uint64_t freeze = fleet__timeout(s, true);
            fleet__arm(s, FLEET_DEADLINE_IDLE,
                       idle > freeze ? idle - freeze : 0);
            /* The measure may have put the host over its budget, and no
             * sweep runs while every program is frozen. Last: it may put
             * this very ship to sleep. */
            if (fleet__crowded(f)) {
                fleet__evict(f);
            }
        }
        break;
    case FLEET_DEADLINE_IDLE:
        if ((s->state == SHIP_AWAKE || s->state == SHIP_FROZEN) &&
            !fleet__busy(s)) {
            fleet__begin_sleep(s, "idle");
        }
        break;
    case FLEET_DEADLINE_STOP:
        fleet__kill(s, "did not exit after STOP");
        break;
    default:
        break;
    }
}

/* --- Acks: held, committed or failed. --- */

void fleet_ship_held(struct fleet_ship *s, uint64_t number)
{
    if (fleet__corrupt(s)) {
        return; /* the commit's report answers them: corrupt */
    }
    gate_mark_durable(&s->gate, number);
    fleet__release(s);
    fleet__pump(s);
}

void fleet_ship_committed(struct fleet_ship *s, uint64_t number, int status)
{
    struct fleet *f = s->fleet;
    s->inflight--;
    if (status == 0 && fleet__corrupt(s)) {
        /* The log has the events, but the ship's store did not take them:
         * never answer as if they were kept. */
        for (struct gate_item *i = s->gate.head; i != NULL; i = i->next) {
            struct fleet_job *j = (struct fleet_job *)i;
            if (i->needs_log && i->number <= number && !i->durable) {
                fleet__job_fail(j, 502, "corrupt", "ship %s: %s", s->id,
                                fleet_corrupt_detail(f, s->slot));
                i->durable = true;
            }
        }
    } else if (status == 0) {
        if (number > s->last_event) {
            s->last_event = number;
        }
    } else {
        /* Not committed: answer with an error, never with the effects. */
        for (struct gate_item *i = s->gate.head; i != NULL; i = i->next) {
            struct fleet_job *j = (struct fleet_job *)i;
            if (i->needs_log && i->number <= number && !i->durable) {
                /* A lost lead is the one failure a client should just
                 * retry: through any host, it reaches the new leader. */
                fleet__job_fail(j, 503,
                                status == BERTH_ENOTLEADER ? "leader_changed"
                                                           : "unavailable",
                                "event %llu was not committed: %s",
                                (unsigned long long)i->number, err_str(status));
                i->durable = true;
            }
        }
        if (number <= s->released) {
            /* Its effects left at a lower ack level: they may speak of a
             * state the log does not have. */
            f->released_lost++;
        }
        /* The program is ahead of the log now: restart it from the log. */
        fleet__kill(s, "an event of this ship was not committed");
    }
    fleet__release(s);
    fleet__answer_waiters(s);
    if (s->removing) {
        fleet__remove_step(s);
    } else {
        fleet__pump(s);
    }
}

/* --- Leading. --- */

/* Stop s at once because the host lost the lead: nothing it holds leaves,
 * every job waiting or held fails with leader_changed. */
static void fleet__depose(struct fleet_ship *s)
{
    struct fleet *f = s->fleet;
    fleet__dequeue_wake(f, s);
    s->wake_wanted = false;
    snprintf(s->last_failure, sizeof s->last_failure,
             "this host lost the lead");
    fleet__fail_waiting(s, 503, "leader_changed",
                        "this host lost the lead; try again");
    struct gate_item *i;
    while ((i = gate_pop_any(&s->gate)) != NULL) {
        struct fleet_job *j = (struct fleet_job *)i;
        fleet__job_fail(j, 503, "leader_changed",
                        "this host lost the lead; try again");
        fleet__answer(j);
    }
    if (s->proc && !s->killed) {
        if (s->state == SHIP_FROZEN) {
            f->env.thaw(f->env.data, s);
        }
        s->deposed = true;
        fleet__kill(s, "this host lost the lead");
    }
}

void fleet_lead(struct fleet *f, bool leading)
{
    if (leading == f->leading) {
        return;
    }
    f->leading = leading;
    if (leading) {
        fleet__alarm_rearm(f);
        return;
    }
    f->env.timer_stop(f->env.data, FLEET_TIMER_ALARM, NULL);
    for (uint32_t i = 0; i < f->reg->n_slots; i++) {
        struct fleet_ship *s = registry_get(f->reg, i)->live;
        if (s != NULL) {
            fleet__depose(s);
        }
    }
    /* Ships left with nothing to do go; the others go once their programs
     * have exited and their proposals are decided. */
    for (uint32_t i = 0; i < f->reg->n_slots; i++) {
        struct fleet_ship *s = registry_get(f->reg, i)->live;
        if (s != NULL) {
            fleet__answer_waiters(s);
            fleet__maybe_free(s);
        }
    }
}

/* --- Alarms. --- */

static void fleet__alarms_fire(struct fleet *f)
{
    uint64_t now = f->env.now_ns(f->env.data);
    uint32_t slot;
    uint64_t when;
    while ((when = alarms_next(f->alarms, &slot)) != 0 && when <= now &&
           !f->stopping && f->leading) {
        alarms_set(f->alarms, slot, 0);
        struct fleet_ship *s = fleet_ship_live(f, slot);
        struct buf payload;
        buf_init(&payload);
        if (s == NULL || buf_put_u64(&payload, when) != 0) {
            buf_free(&payload);
            alarms_set(f->alarms, slot, now + FLEET_ALARM_RETRY_NS);
            if (s != NULL) {
                fleet__maybe_free(s);
            }
            continue;
        }
        f->alarms_fired++;
        if (fleet_deliver(s, FLEET_JOB_ALARM, NULL, FRAME_EVENT_TIMER,
                          &payload) != 0) {
            alarms_set(f->alarms, slot, now + FLEET_ALARM_RETRY_NS);
        }
    }
    fleet__alarm_rearm(f);
}

static void fleet__alarm_rearm(struct fleet *f)
{
    uint32_t slot;
    uint64_t when = alarms_next(f->alarms, &slot);
    if (when == 0 || f->stopping || !f->leading) {
        f->env.timer_stop(f->env.data, FLEET_TIMER_ALARM, NULL);
        return;
    }
    uint64_t now = f->env.now_ns(f->env.data);
    /* Round up: a timer that fires early finds nothing due. */
    uint64_t ms = when > now ? (when - now + 999999) / 1000000 : 0;
    f->env.timer_start(f->env.data, FLEET_TIMER_ALARM, NULL, ms);
}

void fleet_alarms_rearm(struct fleet *f)
{
    fleet__alarm_rearm(f);
}

void fleet_on_timer(struct fleet *f, enum fleet_timer which,
                    struct fleet_ship *s)
{
    switch (which) {
    case FLEET_TIMER_SHIP:
        fleet__on_deadline(s);
        break;
    case FLEET_TIMER_SWEEP:
        fleet__sweep(f);
        break;
    case FLEET_TIMER_ALARM:
        fleet__alarms_fire(f);
        break;
    }
}

/* --- Admin operations. --- */

void fleet_ship_sleep(struct fleet_ship *s, void *req)
{
    struct fleet *f = s->fleet;
    if (s->state == SHIP_ASLEEP && s->inflight == 0 && !s->queued_to_wake &&
        !s->wake_wanted) {
        f->env.answer(f->env.data, s, req, FLEET_ANSWER_SHIP, 200, NULL, NULL);
        fleet__maybe_free(s);
        return;
    }
    fleet__add_waiter(s, req, false);
    if (s->state == SHIP_AWAKE || s->state == SHIP_FROZEN) {
        s->sleep_wanted = true;
        fleet__pump(s);
    } else if (s->state == SHIP_WAKING) {
        s->sleep_wanted = true;
    }
}

void fleet_ship_kill(struct fleet_ship *s, void *req)
{
    struct fleet *f = s->fleet;
    /* What waits would wake it again: it is failed, so that the ship
     * stays asleep until its next message. */
    fleet__fail_waiting(s, 503, "killed",
                        "ship %s: its program was killed by the operator",
                        s->id);
    fleet__dequeue_wake(f, s);
    s->wake_wanted = false;
    fleet__entry(s)->flags |= REGISTRY_KILLED;
    f->kills++;
    fleet__log(s, "warn", "program killed by the operator", "state",
               ship_state_name(s->state), NULL, NULL);
    fleet__kill(s, "killed by the operator");
    if (req != NULL) {
        fleet_ship_sleep(s, req);
    } else {
        fleet__maybe_free(s);
    }
}

void fleet_ship_wake(struct fleet_ship *s, void *req)
{
    struct fleet *f = s->fleet;
    if (s->state == SHIP_AWAKE) {
        f->env.answer(f->env.data, s, req, FLEET_ANSWER_SHIP, 200, NULL, NULL);
        return;
    }
    if (!f->leading) {
        f->env.answer(f->env.data, s, req, FLEET_ANSWER_ERROR, 503,
                      "leader_changed", "this host does not lead; try again");
        fleet__maybe_free(s);
        return;
    }
    fleet__add_waiter(s, req, true);
    if (s->state == SHIP_FROZEN) {
        fleet__thaw(s);
        fleet__answer_waiters(s);
        fleet__pump(s);
        return;
    }
    if (s->state != SHIP_WAKING) {
        /* Asleep, or on its way there: wake once it is. */
        s->wake_wanted = true;
    }
    fleet__pump(s);
}

void fleet_ship_prewake(struct fleet_ship *s)
{
    struct fleet *f = s->fleet;
    if (!f->leading || s->removing) {
        fleet__maybe_free(s);
        return;
    }
    if (s->state == SHIP_FROZEN) {
        f->thaws++;
        fleet__thaw(s);
    } else if (s->state != SHIP_AWAKE && s->state != SHIP_WAKING) {
        /* Asleep, or on its way there: wake once it is. */
        s->wake_wanted = true;
    }
    fleet__pump(s);
}

static void fleet__finish_removal(struct fleet_ship *s);

static void fleet__removed(struct fleet_ship *s, int status)
{
    struct fleet *f = s->fleet;
    s->inflight--;
    if (status != 0) {
        s->removing = false;
        if (s->remove_req) {
            char msg[200];
            snprintf(msg, sizeof msg, "removal was not committed: %s",
                     err_str(status));
            f->env.answer(f->env.data, s, s->remove_req, FLEET_ANSWER_ERROR,
                          503, "unavailable", msg);
            s->remove_req = NULL;
        }
        fleet__pump(s);
        return;
    }
    fleet__finish_removal(s);
}

/* The ship is out of the store: it leaves the registry, and whoever waits
 * on it hears so. */
static void fleet__finish_removal(struct fleet_ship *s)
{
    struct fleet *f = s->fleet;
    registry_remove(f->reg, s->slot);
    alarms_set(f->alarms, s->slot, 0);
    fleet__alarm_rearm(f);
    fleet__set_state(s, SHIP_REMOVED);
    if (s->remove_req) {
        f->env.answer(f->env.data, s, s->remove_req, FLEET_ANSWER_REMOVED, 200,
                      NULL, NULL);
        s->remove_req = NULL;
    }
    fleet__answer_waiters(s);
    fleet__maybe_free(s);
}

static void fleet__remove_step(struct fleet_ship *s)
{
    struct fleet *f = s->fleet;
    if (s->proc || s->inflight > 0 || s->state == SHIP_REMOVED) {
        return;
    }
    if (s->gone) {
        /* Removed by the log already: nothing to propose. */
        fleet__release(s);
        fleet__finish_removal(s);
        return;
    }
    if (s->remove_req == NULL) {
        return;
    }
    fleet__release(s);
    struct buf e;
    buf_init(&e);
    int rv = record_encode_ship_remove(&e, s->sid);
    if (rv == 0) {
        rv = f->env.propose_entry(f->env.data, s, FLEET_ENTRY_REMOVE, 0, &e);
    }
    if (rv != 0) {
        char msg[200];
        buf_free(&e);
        s->removing = false;
        snprintf(msg, sizeof msg, "cannot log the removal: %s", err_str(rv));
        f->env.answer(f->env.data, s, s->remove_req, FLEET_ANSWER_ERROR, 503,
                      "unavailable", msg);
        s->remove_req = NULL;
        fleet__pump(s);
        return;
    }
    s->inflight++;
}

void fleet_ship_remove(struct fleet_ship *s, void *req)
{
    struct fleet *f = s->fleet;
    if (s->removing) {
        char msg[200];
        snprintf(msg, sizeof msg, "ship %s is being removed", s->id);
        f->env.answer(f->env.data, s, req, FLEET_ANSWER_ERROR, 409, "conflict",
                      msg);
        return;
    }
    s->removing = true;
    s->remove_req = req;
    fleet__fail_waiting(s, 404, "not_found", "ship %s was removed", s->id);
    /* Leave the wake queue at once rather than when its turn comes. */
    fleet__dequeue_wake(f, s);
    s->wake_wanted = false;
    if (s->proc) {
        if (s->state == SHIP_FROZEN) {
            fleet__thaw(s);
        }
        fleet__kill(s, "ship removed");
        return;
    }
    fleet__remove_step(s);
}

int fleet_ship_reset(struct fleet_ship *s, uint64_t last_event)
{
    struct fleet *f = s->fleet;
    if ((s->state == SHIP_AWAKE || s->state == SHIP_FROZEN) &&
        s->current == NULL && s->n_waiting == 0 && !s->removing) {
        /* Idle that long: it sleeps first, and the reset follows. */
        s->sleep_wanted = true;
        fleet__pump(s);
        return BERTH_EBUSY;
    }
    if (s->state != SHIP_ASLEEP || s->inflight > 0 || s->n_waiting > 0 ||
        s->removing || s->queued_to_wake || s->wake_wanted || !f->leading) {
        fleet__maybe_free(s);
        return BERTH_EBUSY;
    }
    struct buf e;
    buf_init(&e);
    int rv = record_encode_ship_reset(&e, s->sid, last_event);
    if (rv == 0) {
        rv = f->env.propose_entry(f->env.data, s, FLEET_ENTRY_RESET, 0, &e);
    }
    if (rv != 0) {
        buf_free(&e);
        fleet__maybe_free(s);
        return rv;
    }
    s->inflight++;
    return 0;
}

void fleet_ship_gone(struct fleet_ship *s)
{
    struct fleet *f = s->fleet;
    if (s->gone || s->state == SHIP_REMOVED) {
        return;
    }
    s->gone = true;
    s->removing = true;
    fleet__fail_waiting(s, 404, "not_found", "ship %s was destroyed", s->id);
    fleet__dequeue_wake(f, s);
    s->wake_wanted = false;
    if (s->proc) {
        if (s->state == SHIP_FROZEN) {
            fleet__thaw(s);
        }
        fleet__kill(s, "ship destroyed");
        return;
    }
    fleet__remove_step(s);
}

/* --- Damage. --- */

void fleet_mark_corrupt(struct fleet *f, uint32_t slot, const char *detail)
{
    struct registry_ship *e = registry_get(f->reg, slot);
    char id[REGISTRY_ID_LEN + 1];
    registry_id(f->reg, slot, id);
    f->env.log(f->env.data, "error",
               "ship's stored data failed its checks; it will not wake "
               "until this is repaired",
               id, "error", detail, NULL, NULL);
    if (!(e->flags & REGISTRY_CORRUPT)) {
        struct fleet_damage *d =
            mem_realloc(f->damaged, (f->n_damaged + 1) * sizeof *d);
        if (d != NULL) {
            f->damaged = d;
            d[f->n_damaged].slot = slot;
            d[f->n_damaged].repairs = 0;
            snprintf(d[f->n_damaged].detail, sizeof d->detail, "%s", detail);
            f->n_damaged++;
        }
        e->flags |= REGISTRY_CORRUPT;
    }
    struct fleet_ship *s = e->live;
    if (s != NULL) {
        fleet__kill(s, "the ship's stored data failed its checks");
    }
}

void fleet_clear_corrupt(struct fleet *f, uint32_t slot)
{
    struct registry_ship *e = registry_get(f->reg, slot);
    if (!(e->flags & REGISTRY_CORRUPT)) {
        return;
    }
    e->flags &= (uint8_t)~REGISTRY_CORRUPT;
    for (unsigned i = 0; i < f->n_damaged; i++) {
        if (f->damaged[i].slot == slot) {
            f->damaged[i] = f->damaged[--f->n_damaged];
            break;
        }
    }
    char id[REGISTRY_ID_LEN + 1];
    registry_id(f->reg, slot, id);
    f->env.log(f->env.data, "info",
               "ship's stored data repaired; it wakes "
               "again",
               id, NULL, NULL, NULL, NULL);
}

const char *fleet_corrupt_detail(const struct fleet *f, uint32_t slot)
{
    for (unsigned i = 0; i < f->n_damaged; i++) {
        if (f->damaged[i].slot == slot) {
            return f->damaged[i].detail;
        }
    }
    return "its stored data failed its checks";
}

/* --- Stopping. --- */

void fleet_shutdown(struct fleet *f)
{
    f->stopping = true;
    f->env.timer_stop(f->env.data, FLEET_TIMER_ALARM, NULL);
    f->env.timer_stop(f->env.data, FLEET_TIMER_SWEEP, NULL);
    f->sweeping = false;
    for (uint32_t i = 0; i < f->reg->n_slots; i++) {
        struct fleet_ship *s = registry_get(f->reg, i)->live;
        if (s == NULL) {
            continue;
        }
        fleet__disarm(s);
        fleet__fail_waiting(s, 503, "unavailable", "host is stopping");
        if (s->proc && !s->killed) {
            if (s->state == SHIP_FROZEN) {
                f->env.thaw(f->env.data, s);
            }
            fleet__kill(s, "host stopping");
        }
    }
}

void fleet_free_ships(struct fleet *f)
{
    for (uint32_t k = 0; k < f->reg->n_slots; k++) {
        struct registry_ship *e = registry_get(f->reg, k);
        struct fleet_ship *s = e->live;
        if (s == NULL) {
            continue;
        }
        struct gate_item *i;
        while ((i = gate_pop_any(&s->gate)) != NULL) {
            struct fleet_job *j = (struct fleet_job *)i;
            if (!i->durable) {
                fleet__job_fail(j, 503, "unavailable", "host is stopping");
            }
            fleet__answer(j);
        }
        if (s->current != NULL) {
            fleet__job_fail(s->current, 503, "unavailable", "host is stopping");
            fleet__answer(s->current);
            s->current = NULL;
        }
        fleet__fail_waiting(s, 503, "unavailable", "host is stopping");
        for (unsigned w = 0; w < s->n_waiters; w++) {
            f->env.answer(f->env.data, s, s->waiters[w].req, FLEET_ANSWER_ERROR,
                          503, "unavailable", "host is stopping");
        }
        mem_free(s->waiters);
        s->waiters = NULL;
        s->n_waiters = 0;
        if (s->remove_req) {
            f->env.answer(f->env.data, s, s->remove_req, FLEET_ANSWER_ERROR,
                          503, "unavailable", "host is stopping");
            s->remove_req = NULL;
        }
        reuse_clear(&s->reuse, &f->reuse);
        e->live = NULL;
        f->env.ship_free(f->env.data, s);
    }
}
