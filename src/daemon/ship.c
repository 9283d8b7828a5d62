/* Ships on the host: wake, serve, commit, release, freeze, sleep, remove.
 *
 * A ship runs at most one job in its program at a time; the next job is
 * sent as soon as the program answers, while the log commits the previous
 * one. Every answered job enters the ship's gate and leaves it (its HTTP
 * reply is written) only once every state-changing event before it is
 * durable. A single timer per live ship holds whichever deadline applies.
 *
 * Tiers. A ship that is idle (see ship__busy) past its freeze timeout is
 * frozen; past its idle timeout it sleeps: snapshot, STOP, no process. A
 * live object (struct host_ship) exists only while a ship has a process or
 * work in flight; an asleep, quiet ship is only its registry entry.
 *
 * Admission. Waking takes a process, three descriptors and memory, so wakes
 * are admitted one by one (see host__can_wake): at most HOST__MAX_WAKING at
 * once, within the cap on running programs (--max-awake, or what the
 * descriptor limit allows) and the memory budget (--max-awake-mb). A ship
 * that cannot wake yet waits in a FIFO wake queue with its requests held,
 * and the least recently used idle ships are put to sleep to make room: a
 * storm of wakes queues, it does not fail. */
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/record.h"
#include "daemon/host.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "lib/strlist.h"
#include "proc/proc.h"

enum {
    SHIP__TIMER_NONE,
    SHIP__TIMER_EVENT,  /* the current job's time limit */
    SHIP__TIMER_WAKE,   /* waking must make progress */
    SHIP__TIMER_FREEZE, /* idle past this: freeze */
    SHIP__TIMER_IDLE,   /* idle past this: sleep */
    SHIP__TIMER_STOP,   /* STOP sent: must exit */
};

/* How long a program may take to exit after STOP before it is killed. */
#define SHIP__STOP_MS 5000

/* Waking must make progress (READY, or the next replayed DONE) within the
 * per-event limit, but never less than this: starting a process depends on
 * the host's load, not on the program. */
#define SHIP__WAKE_MIN_MS 5000

/* Wakes in progress at once. Waking is mostly CPU (spawn, boot, replay), so
 * more than a few per core only adds memory and latency. */
#define HOST__MAX_WAKING 8

/* The memory of running programs is measured by one host-wide timer that
 * ticks this often while a program that is not frozen runs, measuring at
 * most HOST__MEASURE_MAX programs a tick, each at most every
 * SHIP__MEMORY_EVERY_MS. A measure reads a few /proc or cgroup files
 * (5-6 us each), so a tick costs at most about 2 ms of the loop. */
#define HOST__MEASURE_TICK_MS 250
#define HOST__MEASURE_MAX 100
#define SHIP__MEMORY_EVERY_MS 750

/* While the buffer budget is over, plans are made again this often even
 * if nothing reports a change. */
#define HOST__BUDGET_REPLAN_MS 100

/* An alarm whose TIMER event failed is tried again this much later. */
#define SHIP__ALARM_RETRY_NS (5ULL * 1000 * 1000 * 1000)

static uint64_t ship__wake_ms(const struct host *h)
{
    return h->cfg.event_timeout_ms > SHIP__WAKE_MIN_MS ? h->cfg.event_timeout_ms
                                                       : SHIP__WAKE_MIN_MS;
}

static void ship__pump(struct host_ship *s);
static void ship__release(struct host_ship *s);
static void ship__remove_step(struct host_ship *s);
static void host__pump_wakes(struct host *h);
static void host__evict(struct host *h);
static void ship__begin_sleep(struct host_ship *s, const char *why);

static void ship__set_state(struct host_ship *s, enum ship_state next)
{
    enum ship_state prev = s->state;
    int rv = ship_state_set(&s->state, next);
    if (rv != 0) {
        host_log("error", "ship state machine refused a transition", "ship",
                 s->id, "from", ship_state_name(prev), "to",
                 ship_state_name(next), NULL);
        abort();
    }
    s->host->tiers[prev]--;
    s->host->tiers[next]++;
}

static void ship__timer_cb(uv_timer_t *t);

/* Whether a deadline of this kind waits for the program to make progress,
 * and so must wait while the host holds the program back. */
static bool ship__progress_timer(int kind)
{
    return kind == SHIP__TIMER_EVENT || kind == SHIP__TIMER_WAKE ||
           kind == SHIP__TIMER_STOP;
}

static void ship__arm(struct host_ship *s, int kind, uint64_t ms)
{
    s->timer_kind = kind;
    if (s->held && ship__progress_timer(kind)) {
        uv_timer_stop(&s->timer); /* runs once the ship is let on */
        s->timer_left_ms = ms;
        return;
    }
    uv_timer_start(&s->timer, ship__timer_cb, ms, 0);
}

static void ship__disarm(struct host_ship *s)
{
    s->timer_kind = SHIP__TIMER_NONE;
    uv_timer_stop(&s->timer);
}

static struct registry_ship *ship__entry(const struct host_ship *s)
{
    return registry_get(&s->host->reg, s->slot);
}

/* --- Live objects: made when a ship is touched, freed when it is quiet. --- */

uint32_t host_ship_lookup(struct host *h, const char *id_or_name)
{
    uint32_t slot = registry_find(&h->reg, id_or_name);
    return slot;
}

struct host_ship *host_ship_live(struct host *h, uint32_t slot)
{
    struct registry_ship *e = registry_get(&h->reg, slot);
    if (e->live != NULL) {
        return e->live;
    }
    struct host_ship *s = mem_calloc(1, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    s->host = h;
    s->slot = slot;
    s->sid = e->sid;
    registry_id(&h->reg, slot, s->id);
    snprintf(s->name, sizeof s->name, "%s", registry_name(&h->reg, slot));
    s->program = registry_program(&h->reg, slot);
    s->program_index = e->program;
    s->state = SHIP_ASLEEP;
    gate_init(&s->gate);
    uv_timer_init(&h->loop, &s->timer);
    s->timer.data = s;
    e->live = s;
    h->n_live++;
    h->tiers[SHIP_ASLEEP]++;
    return s;
}

static void ship__timer_closed(uv_handle_t *handle)
{
    mem_free(handle->data);
}

static bool ship__quiet(const struct host_ship *s)
{
    return (s->state == SHIP_ASLEEP || s->state == SHIP_REMOVED) &&
           s->proc == NULL && s->current == NULL && s->n_waiting == 0 &&
           s->gate.head == NULL && s->inflight == 0 && s->n_waiters == 0 &&
           s->remove_req == NULL && !s->wake_wanted && !s->queued_to_wake &&
           (!s->removing || s->state == SHIP_REMOVED);
}

/* Free the live object of a quiet ship; its registry entry stays (unless the
 * ship was removed). The memory goes once the timer has closed, so a caller
 * up the stack may still read s. */
static void ship__maybe_free(struct host_ship *s)
{
    struct host *h = s->host;
    if (s->closing || h->stopping || !ship__quiet(s)) {
        return;
    }
    s->closing = true;
    struct registry_ship *e = ship__entry(s);
    if (e->live == s) {
        e->live = NULL;
    }
    h->tiers[s->state]--;
    h->n_live--;
    ship__disarm(s);
    uv_close((uv_handle_t *)&s->timer, ship__timer_closed);
}

/* --- The LRU of ships with a process, and their memory. --- */

static void host__lru_remove(struct host *h, struct host_ship *s)
{
    if (s->lru_prev != NULL) {
        s->lru_prev->lru_next = s->lru_next;
    } else if (h->lru_head == s) {
        h->lru_head = s->lru_next;
    } else {
        return; /* not in the list */
    }
    if (s->lru_next != NULL) {
        s->lru_next->lru_prev = s->lru_prev;
    } else {
        h->lru_tail = s->lru_prev;
    }
    s->lru_prev = s->lru_next = NULL;
}

/* Make s the most recently used. */
static void host__lru_touch(struct host *h, struct host_ship *s)
{
    if (h->lru_tail == s) {
        return;
    }
    host__lru_remove(h, s);
    s->lru_prev = h->lru_tail;
    if (h->lru_tail != NULL) {
        h->lru_tail->lru_next = s;
    } else {
        h->lru_head = s;
    }
    h->lru_tail = s;
}

/* Measure the program and what it started (proc_memory). */
static void ship__measure(struct host_ship *s)
{
    struct host *h = s->host;
    uint64_t now = uv_now(&h->loop);
    uint64_t bytes;
    if (s->proc == NULL || proc_memory(s->proc, &bytes) != 0) {
        return;
    }
    h->awake_memory = h->awake_memory - s->memory + bytes;
    s->memory = bytes;
    s->memory_ms = now ? now : 1;
}

static bool host__crowded(const struct host *h);

/* One tick of the memory sweep: measure the running programs that are due,
 * least recently used first, then put idle ships to sleep if the budget is
 * exceeded, and start queued wakes if measures came out lower. A frozen
 * program was measured as it froze and cannot grow; one that is leaving
 * (SLEEPING) keeps its last measure. The timer stops when nothing is left
 * to measure, and a wake or a thaw starts it again. */
static void host__measure_cb(uv_timer_t *t)
{
    struct host *h = t->data;
    uint64_t now = uv_now(&h->loop);
    unsigned measured = 0;
    bool running = false;
    for (struct host_ship *s = h->lru_head; s != NULL; s = s->lru_next) {
        if (s->proc == NULL || s->state == SHIP_FROZEN ||
            s->state == SHIP_SLEEPING) {
            continue;
        }
        running = true;
        if (measured < HOST__MEASURE_MAX &&
            (s->memory_ms == 0 ||
             now - s->memory_ms >= SHIP__MEMORY_EVERY_MS)) {
            ship__measure(s);
            measured++;
        }
    }
    if (!running || h->stopping) {
        uv_timer_stop(t);
    }
    if (h->stopping) {
        return;
    }
    if (host__crowded(h)) {
        host__evict(h);
    }
    host__pump_wakes(h);
}

/* A program runs (again): make sure the sweep measures it. */
static void host__measure_start(struct host *h)
{
    if (!uv_is_active((uv_handle_t *)&h->measure_timer)) {
        uv_timer_start(&h->measure_timer, host__measure_cb,
                       HOST__MEASURE_TICK_MS, HOST__MEASURE_TICK_MS);
    }
}

static void ship__forget_memory(struct host_ship *s)
{
    s->host->awake_memory -= s->memory;
    s->memory = 0;
    s->memory_ms = 0;
}

/* --- Admission of wakes. --- */

/* Descriptors in use, counting the front door's at no less than the
 * connections' floor, which programs may never take. */
static unsigned host__fds_in_use(const struct host *h)
{
    unsigned front = http_server_connections(h->front);
    return h->fd_base + h->n_procs * proc_fds_per_proc() +
           (front > h->fd_conns_floor ? front : h->fd_conns_floor) +
           http_server_connections(h->admin);
}

unsigned host_front_max_conns(void *arg)
{
    struct host *h = arg;
    if (h->fd_limit == 0) {
        return 0; /* not known yet: the host is starting */
    }
    unsigned pool = h->fd_limit > h->fd_base + HOST_FD_RESERVE
                        ? h->fd_limit - h->fd_base - HOST_FD_RESERVE
                        : 0;
    unsigned programs = h->n_procs * proc_fds_per_proc();
    if (programs < h->fd_programs_floor) {
        programs = h->fd_programs_floor;
    }
    unsigned others = programs + http_server_connections(h->admin);
    return pool > others ? pool - others : 1;
}

/* Close idle front-door connections above the connections' floor when a
 * program would find no descriptors: a wake does not wait for clients
 * that are doing nothing. */
static void host__fds_for_wake(struct host *h)
{
    if (h->fd_limit == 0 || h->n_procs == 0 || h->n_procs >= h->max_awake) {
        return;
    }
    unsigned need = host__fds_in_use(h) + proc_fds_per_proc() + HOST_FD_RESERVE;
    unsigned front = http_server_connections(h->front);
    if (need <= h->fd_limit || front <= h->fd_conns_floor) {
        return;
    }
    unsigned over = need - h->fd_limit;
    unsigned above = front - h->fd_conns_floor;
    http_server_close_idle(h->front, over < above ? over : above);
}

/* Return whether one more program may start now. */
static bool host__room(const struct host *h, unsigned procs)
{
    if (procs == 0) {
        return true; /* always room for one, whatever the budget */
    }
    if (procs >= h->max_awake) {
        return false;
    }
    if (h->fd_limit != 0 &&
        host__fds_in_use(h) + proc_fds_per_proc() + HOST_FD_RESERVE >
            h->fd_limit) {
        return false;
    }
    return h->cfg.max_awake_bytes == 0 ||
           h->awake_memory < h->cfg.max_awake_bytes;
}

static bool host__can_wake(struct host *h)
{
    if (h->tiers[SHIP_WAKING] >= HOST__MAX_WAKING) {
        return false;
    }
    host__fds_for_wake(h);
    return host__room(h, h->n_procs);
}

static void host__enqueue_wake(struct host *h, struct host_ship *s)
{
    s->queued_to_wake = true;
    s->wake_next = NULL;
    if (h->wake_tail != NULL) {
        h->wake_tail->wake_next = s;
    } else {
        h->wake_head = s;
    }
    h->wake_tail = s;
    h->n_wake_queue++;
}

static void ship__wake(struct host_ship *s);

static bool ship__wants_wake(const struct host_ship *s)
{
    return s->state == SHIP_ASLEEP && (s->n_waiting > 0 || s->wake_wanted) &&
           s->inflight == 0 && s->proc == NULL && !s->removing &&
           !s->host->stopping;
}

/* Start queued wakes while there is room. */
static void host__pump_wakes(struct host *h)
{
    while (h->wake_head != NULL && host__can_wake(h)) {
        struct host_ship *s = h->wake_head;
        h->wake_head = s->wake_next;
        if (h->wake_head == NULL) {
            h->wake_tail = NULL;
        }
        h->n_wake_queue--;
        s->queued_to_wake = false;
        s->wake_next = NULL;
        if (ship__wants_wake(s)) {
            s->wake_wanted = false;
            ship__wake(s);
        } else {
            ship__pump(s);
        }
    }
}

/* Whether s is doing or owes anything: an event in the program, events
 * waiting, replies held by the gate, proposals not yet applied, or a
 * snapshot on its way. Such a ship is never frozen, put to sleep by its
 * timeouts or evicted. */
static bool ship__busy(const struct host_ship *s)
{
    return s->current != NULL || s->n_waiting > 0 || s->gate.head != NULL ||
           s->inflight > 0 || s->snapshot_pending || s->wake_wanted;
}

/* Whether the programs that are not already stopping exceed what is
 * allowed: the memory budget, or the room that queued wakes need. Room is
 * made for as many wakes as may run at once, not one at a time: an eviction
 * takes a snapshot and a process exit, and a storm of wakes would otherwise
 * wait for them one by one. */
static bool host__crowded(const struct host *h)
{
    unsigned procs = h->n_procs;
    unsigned leaving = h->tiers[SHIP_SLEEPING];
    unsigned staying = procs > leaving ? procs - leaving : 0;
    if (h->cfg.max_awake_bytes != 0 &&
        h->awake_memory > h->cfg.max_awake_bytes && staying > 0) {
        return true;
    }
    unsigned want =
        h->n_wake_queue < HOST__MAX_WAKING ? h->n_wake_queue : HOST__MAX_WAKING;
    return want > 0 && !host__room(h, staying + want - 1);
}

/* Put the least recently used idle ships to sleep while the host is
 * crowded. A ship leaving frees its room only when its process exits, so
 * ships already SLEEPING count as gone. */
static void host__evict(struct host *h)
{
    struct host_ship *s = h->lru_head;
    while (s != NULL && host__crowded(h)) {
        struct host_ship *next = s->lru_next;
        if ((s->state == SHIP_AWAKE || s->state == SHIP_FROZEN) &&
            !ship__busy(s) && !s->sleep_wanted) {
            uint64_t freed = s->memory;
            h->evictions++;
            ship__begin_sleep(s, h->wake_head != NULL ? "room for a wake"
                                                      : "memory budget");
            /* Its memory is as good as freed for the budget's sake. */
            h->awake_memory -= freed;
            s->memory = 0;
        }
        s = next;
    }
}

/* --- Holding back programs and clients: the buffer budget. --- */

/* Whether s can make progress if let on: its program owes a frame, or it
 * has events to send. */
static bool ship__has_work(const struct host_ship *s)
{
    return s->proc != NULL && proc_running(s->proc) &&
           (s->current != NULL || s->state == SHIP_WAKING ||
            s->snapshot_pending || s->stop_sent || s->n_waiting > 0);
}

static void ship__held_unlink(struct host_ship *s)
{
    struct host *h = s->host;
    if (!s->held) {
        return;
    }
    if (s->held_prev != NULL) {
        s->held_prev->held_next = s->held_next;
    } else {
        h->held_head = s->held_next;
    }
    if (s->held_next != NULL) {
        s->held_next->held_prev = s->held_prev;
    }
    s->held_prev = s->held_next = NULL;
    s->held = false;
    h->n_held--;
}

/* Stop reading s's program, sending it events and running its progress
 * deadlines. */
static void ship__hold(struct host_ship *s)
{
    struct host *h = s->host;
    if (s->held || s->proc == NULL) {
        return;
    }
    s->held = true;
    s->held_prev = NULL;
    s->held_next = h->held_head;
    if (h->held_head != NULL) {
        h->held_head->held_prev = s;
    }
    h->held_head = s;
    h->n_held++;
    proc_pause(s->proc);
    if (ship__progress_timer(s->timer_kind)) {
        s->timer_left_ms = uv_timer_get_due_in(&s->timer);
        uv_timer_stop(&s->timer);
    }
}

/* Let s on again. Its deadline goes on with the time it had left: the
 * wait was the host's doing, not the program's. */
static void ship__unhold(struct host_ship *s)
{
    if (!s->held) {
        return;
    }
    ship__held_unlink(s);
    if (s->proc != NULL) {
        proc_resume(s->proc);
    }
    if (ship__progress_timer(s->timer_kind)) {
        uv_timer_start(&s->timer, ship__timer_cb, s->timer_left_ms, 0);
    }
    ship__pump(s);
}

/* A program just started: while the budget is over it is held back like
 * every other, unless nothing drains and no ship is let on yet. */
static void ship__hold_new(struct host_ship *s)
{
    struct host *h = s->host;
    if (!budget_over(&h->budget) || h->holder == s) {
        return;
    }
    if (h->holder == NULL && h->budget.draining == 0) {
        h->holder = s;
        return;
    }
    ship__hold(s);
}

static void host__budget_idle_cb(uv_idle_t *i)
{
    uv_idle_stop(i);
    host_budget_plan(i->data);
}

static void host__budget_timer_cb(uv_timer_t *t)
{
    host_budget_plan(t->data);
}

void host_budget_changed(void *arg)
{
    struct host *h = arg;
    /* Budget updates happen deep inside reads and replies: plan once the
     * stack has unwound, and before the loop next waits. */
    if (!uv_is_active((uv_handle_t *)&h->budget_idle)) {
        uv_idle_start(&h->budget_idle, host__budget_idle_cb);
    }
}

void host_budget_start(struct host *h)
{
    uv_idle_init(&h->loop, &h->budget_idle);
    h->budget_idle.data = h;
    uv_timer_init(&h->loop, &h->budget_timer);
    h->budget_timer.data = h;
}

void host_budget_stop(struct host *h)
{
    uv_idle_stop(&h->budget_idle);
    uv_timer_stop(&h->budget_timer);
}

void host_budget_plan(struct host *h)
{
    if (h->stopping) {
        return;
    }
    if (!budget_over(&h->budget)) {
        uv_timer_stop(&h->budget_timer);
        h->holder = NULL;
        http_server_throttle(h->front, HTTP_THROTTLE_OFF);
        while (h->held_head != NULL) {
            ship__unhold(h->held_head);
        }
        return;
    }
    /* Plans follow the budget's changes; this timer only makes sure that
     * a change nobody reported (a ship let on that ran out of work) never
     * leaves the host stuck. */
    if (!uv_is_active((uv_handle_t *)&h->budget_timer)) {
        uv_timer_start(&h->budget_timer, host__budget_timer_cb,
                       HOST__BUDGET_REPLAN_MS, HOST__BUDGET_REPLAN_MS);
    }
    /* While some bytes drain by themselves (replies waiting for the log or
     * for their clients), waiting is enough. When none do, what is held
     * leaves only if someone goes on: one ship, the one with most of a
     * frame read, so that a reply bigger than the whole budget still gets
     * through; and failing any ship with work, one client's request. */
    struct host_ship *keep = NULL;
    if (h->budget.draining == 0) {
        if (h->holder != NULL && ship__has_work(h->holder)) {
            keep = h->holder;
        } else {
            for (struct host_ship *s = h->lru_head; s != NULL;
                 s = s->lru_next) {
                if (ship__has_work(s) &&
                    (keep == NULL || proc_partial_bytes(s->proc) >
                                         proc_partial_bytes(keep->proc))) {
                    keep = s;
                }
            }
        }
    }
    h->holder = keep;
    for (struct host_ship *s = h->lru_head; s != NULL; s = s->lru_next) {
        if (s != keep) {
            ship__hold(s);
        }
    }
    bool one_client =
        keep == NULL && h->budget.draining == 0 && h->wake_head == NULL;
    http_server_throttle(h->front,
                         one_client ? HTTP_THROTTLE_ONE : HTTP_THROTTLE_ALL);
    if (keep != NULL) {
        ship__unhold(keep);
    }
}

/* --- Jobs. --- */

static struct host_job *ship__job_new(struct host_ship *s,
                                      enum host_job_origin origin,
                                      struct http_request *req, uint8_t kind)
{
    struct host_job *j = mem_calloc(1, sizeof *j);
    if (j == NULL) {
        return NULL;
    }
    j->ship = s;
    j->origin = origin;
    j->req = req;
    j->kind = kind;
    j->arrived_ns = uv_hrtime();
    buf_init(&j->payload);
    return j;
}

static void ship__job_free(struct host_job *j)
{
    budget_sub(&j->ship->host->budget, j->counted, j->counted_draining);
    buf_free(&j->payload);
    mem_free(j->reply_mem);
    mem_free(j->content_type);
    mem_free(j->error_message);
    mem_free(j);
}

/* Record a failure as the job's outcome. */
static void ship__job_fail(struct host_job *j, int status, const char *code,
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

static json_t *ship__body_json(const struct host_job *j)
{
    json_t *v = json_stringn((const char *)j->body, j->body_len);
    return v ? v : json_null();
}

static void host__alarm_rearm(struct host *h);

/* A job leaves the host: its logged alarm takes effect, a failed TIMER
 * event is tried again later, and its client gets the outcome. */
static void ship__job_done(struct host_job *j)
{
    struct host_ship *s = j->ship;
    struct host *h = s->host;
    bool removed = registry_get(&h->reg, s->slot)->flags & REGISTRY_REMOVED;
    if (!removed && j->error_code[0] == '\0' && j->gate.needs_log &&
        j->alarm_changed) {
        /* Effects leave only once durable, the alarm among them. Events
         * that did not touch the alarm leave the heap alone: the one due
         * may be firing right now. */
        if (alarms_get(&h->alarms, s->slot) != j->alarm_ns) {
            alarms_set(&h->alarms, s->slot, j->alarm_ns);
            host__alarm_rearm(h);
        }
    } else if (!removed && j->origin == HOST_JOB_ALARM &&
               alarms_get(&h->alarms, s->slot) == 0) {
        /* The alarm was not consumed: try again, not at once, so that a
         * broken program does not spin. */
        alarms_set(&h->alarms, s->slot, host_now_ns() + SHIP__ALARM_RETRY_NS);
        host__alarm_rearm(h);
    }
}

/* Write the job's outcome to its client and free it. */
static void ship__answer(struct host_job *j)
{
    ship__job_done(j);
    struct http_request *req = j->req;
    if (req == NULL) {
        ship__job_free(j);
        return;
    }
    if (j->error_code[0] != '\0') {
        host_reply_error(req, j->status, j->error_code, "%s",
                         j->error_message ? j->error_message : "failed");
    } else if (j->origin == HOST_JOB_FRONT) {
        if (j->status == 0) {
            http_reply(req, 204, NULL, NULL, 0, NULL);
        } else if (j->reply_mem == NULL) {
            http_reply(req, j->status, j->content_type, NULL, 0, NULL);
        } else {
            /* The body goes out from where the program's frame put it; the
             * server takes the memory, and its count, over. */
            void *mem = j->reply_mem;
            uint64_t counted = j->reply_counted;
            if (!j->counted_draining) {
                budget_drain(&j->ship->host->budget, counted);
            }
            j->reply_mem = NULL;
            j->reply_counted = 0;
            j->counted -= counted;
            http_reply_take(req, j->status, j->content_type, mem, counted,
                            j->body, j->body_len, NULL);
        }
    } else {
        json_t *o = json_object();
        json_object_set_new(o, "event",
                            j->changed ? json_integer((json_int_t)j->number)
                                       : json_null());
        json_object_set_new(o, "changed", json_boolean(j->changed));
        if (j->status != 0) {
            json_t *r = json_object();
            json_object_set_new(r, "status", json_integer(j->status));
            json_object_set_new(r, "content_type",
                                j->content_type ? json_string(j->content_type)
                                                : json_null());
            json_object_set_new(r, "body", ship__body_json(j));
            json_object_set_new(o, "reply", r);
        } else {
            json_object_set_new(o, "reply", json_null());
        }
        host_reply_json(req, 200, o);
    }
    ship__job_free(j);
}

/* Jobs that never reached the program leave at once: they reveal nothing
 * about state, so the gate has nothing to hold them for. */
static void ship__fail_waiting(struct host_ship *s, int status,
                               const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    while (s->wait_head != NULL) {
        struct host_job *j = s->wait_head;
        s->wait_head = j->next;
        ship__job_fail(j, status, code, "%s", msg);
        ship__answer(j);
    }
    s->wait_tail = NULL;
    s->n_waiting = 0;
}

/* Marks a waiter that asked for a wake (in http_request.data). */
static char ship__wake_waiter;

/* Answer the admin requests waiting for the ship to settle: awake, or
 * asleep with nothing of it still being committed (so that a ship reported
 * asleep has its snapshot recorded). */
static void ship__answer_waiters(struct host_ship *s)
{
    bool settled = s->state == SHIP_AWAKE ||
                   (s->state == SHIP_ASLEEP && s->inflight == 0 &&
                    !s->queued_to_wake && !s->wake_wanted) ||
                   s->state == SHIP_REMOVED;
    if (!settled || s->n_waiters == 0) {
        return;
    }
    struct http_request **waiters = s->waiters;
    unsigned n = s->n_waiters;
    s->waiters = NULL;
    s->n_waiters = 0;
    for (unsigned i = 0; i < n; i++) {
        struct http_request *req = waiters[i];
        if (req->data == &ship__wake_waiter && s->state != SHIP_AWAKE) {
            host_reply_error(
                req, 502, "wake_failed", "ship %s did not wake: %s", s->id,
                s->last_failure[0] ? s->last_failure : "unknown reason");
        } else {
            host_reply_json(req, 200, host_ship_json(s->host, s->slot));
        }
    }
    mem_free(waiters);
}

static void ship__add_waiter(struct host_ship *s, struct http_request *req)
{
    struct http_request **w =
        mem_realloc(s->waiters, (s->n_waiters + 1) * sizeof *w);
    if (w == NULL) {
        host_reply_error(req, 503, "unavailable", "out of memory");
        return;
    }
    s->waiters = w;
    s->waiters[s->n_waiters++] = req;
}

static void ship__submit(struct host_ship *s, struct host_job *job)
{
    struct host *h = s->host;
    ship__entry(s)->last_active_ns = host_now_ns();
    if (s->removing || s->state == SHIP_REMOVED) {
        ship__job_fail(job, 404, "not_found", "ship %s is being removed",
                       s->id);
        ship__answer(job);
        ship__maybe_free(s);
        return;
    }
    if (h->stopping) {
        ship__job_fail(job, 503, "unavailable", "host is stopping");
        ship__answer(job);
        return;
    }
    if (ship__entry(s)->flags & REGISTRY_CORRUPT) {
        ship__job_fail(job, 502, "corrupt", "ship %s: %s", s->id,
                       host_ship_corrupt_detail(h, s->slot));
        ship__answer(job);
        ship__maybe_free(s);
        return;
    }
    if (s->n_waiting >= h->cfg.max_queue) {
        ship__job_fail(job, 503, "busy",
                       "ship %s has %u requests waiting; try again", s->id,
                       s->n_waiting);
        ship__answer(job);
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
    ship__pump(s);
}

void host_ship_deliver(struct host_ship *s, enum host_job_origin origin,
                       struct http_request *req, uint8_t kind,
                       struct buf *payload)
{
    struct host_job *j = ship__job_new(s, origin, req, kind);
    if (j == NULL) {
        buf_free(payload);
        if (req != NULL) {
            host_reply_error(req, 503, "unavailable", "out of memory");
        }
        ship__maybe_free(s);
        return;
    }
    j->payload = *payload;
    buf_init(payload);
    j->counted = j->payload.cap;
    budget_add(&s->host->budget, j->counted, false);
    ship__submit(s, j);
}

/* --- Talking to the program. --- */

static int ship__send(struct host_ship *s, struct buf *frame)
{
    int rv = proc_send(s->proc, frame);
    buf_free(frame);
    return rv;
}

static int ship__send_event(struct host_ship *s, const struct frame_event *ev)
{
    struct buf f;
    buf_init(&f);
    /* Sized once: the frame may be as big as the request it carries. */
    int rv = buf_reserve_exact(&f, FRAME_HEADER_SIZE + 64 + ev->payload_len);
    if (rv == 0) {
        rv = frame_encode_event(&f, ev);
    }
    if (rv != 0) {
        buf_free(&f);
        return rv;
    }
    return ship__send(s, &f);
}

static void ship__on_frame(struct proc *p, const struct frame *f, void *arg);
static void ship__on_exit(struct proc *p, const char *why, int clean,
                          void *arg);

/* The epoch of a program is the hash of its executable, so a changed binary
 * starts a new epoch of the ship's log. The hash is kept per program with the
 * file's identity (device, inode, size, change time) and computed again only
 * when that changes, so a wake costs a stat, not a read of the binary. */
static int ship__hash_program(struct host_ship *s)
{
    struct host *h = s->host;
    struct stat st;
    if (s->program_index >= h->n_programs) {
        uint32_t n = h->reg.n_programs;
        struct host_program *p = mem_realloc(h->programs, n * sizeof *p);
        if (p == NULL) {
            return BERTH_ENOMEM;
        }
        memset(p + h->n_programs, 0, (n - h->n_programs) * sizeof *p);
        h->programs = p;
        h->n_programs = n;
    }
    struct host_program *prog = &h->programs[s->program_index];
    if (stat(s->program, &st) != 0) {
        return BERTH_ENOTFOUND;
    }
    uint64_t id[4] = {(uint64_t)st.st_dev, (uint64_t)st.st_ino,
                      (uint64_t)st.st_size,
                      (uint64_t)st.st_ctim.tv_sec * 1000000000ULL +
                          (uint64_t)st.st_ctim.tv_nsec};
    if (memcmp(id, prog->file_id, sizeof id) != 0) {
        FILE *f = fopen(s->program, "rb");
        if (f == NULL) {
            return BERTH_ENOTFOUND;
        }
        crypto_generichash_state hs;
        crypto_generichash_init(&hs, NULL, 0, STORE_HASH_SIZE);
        uint8_t chunk[65536];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
            crypto_generichash_update(&hs, chunk, n);
        }
        int bad = ferror(f);
        fclose(f);
        if (bad) {
            return BERTH_EIO;
        }
        crypto_generichash_final(&hs, prog->epoch, STORE_HASH_SIZE);
        memcpy(prog->file_id, id, sizeof id);
    }
    memcpy(s->epoch, prog->epoch, sizeof s->epoch);
    return 0;
}

/* Fail the events waiting for a wake that did not happen: 502 corrupt when
 * the ship's data failed its checks, else 502 wake_failed. */
static void ship__fail_wake(struct host_ship *s, const char *why)
{
    if (ship__entry(s)->flags & REGISTRY_CORRUPT) {
        ship__fail_waiting(s, 502, "corrupt", "ship %s: %s", s->id,
                           host_ship_corrupt_detail(s->host, s->slot));
    } else {
        ship__fail_waiting(s, 502, "wake_failed", "ship %s failed to wake: %s",
                           s->id, why);
    }
}

static void ship__wake(struct host_ship *s)
{
    struct host *h = s->host;
    struct store_ship rec;
    char errmsg[ERRMSG_SIZE];
    struct buf snap;
    uint64_t snap_number = 0;
    int rv;

    ship__set_state(s, SHIP_WAKING);
    ship__entry(s)->wake_count++;
    h->wakes++;
    s->measure_next = HOST_MEASURE_WAKE;
    rv = store_ship_get_sid(h->store, s->sid, &rec);
    if (rv != 0) {
        snprintf(errmsg, sizeof errmsg, "cannot read ship record: %s",
                 store_errmsg(h->store));
        goto err;
    }
    s->last_event = rec.last_event;
    s->snapshot_event = rec.snapshot_event;
    s->first_event = rec.first_event;
    s->idle_timeout_ms = rec.idle_timeout_ms;
    s->freeze_timeout_ms = rec.freeze_timeout_ms;
    s->acks = rec.acks == GATE_ACKS_DEFAULT ? h->cfg.acks : rec.acks;
    s->created_ns = rec.created_ns;
    s->alarm_ns = rec.alarm_ns;
    memcpy(s->head_hash, rec.last_hash, sizeof s->head_hash);

    if (ship__hash_program(s) != 0) {
        snprintf(errmsg, sizeof errmsg, "cannot read program %s", s->program);
        goto err_after_rec;
    }
    buf_init(&snap);
    /* Replay from event 1 follows from nothing: zeros. */
    memset(s->replay_chain, 0, sizeof s->replay_chain);
    if (s->snapshot_event > 0) {
        struct store_snapshot meta;
        rv = store_snapshot_get(h->store, s->sid, &meta, &snap);
        if (rv == BERTH_ECORRUPT) {
            buf_free(&snap);
            host_ship_mark_corrupt(h, s->slot, store_errmsg(h->store));
            snprintf(errmsg, sizeof errmsg, "%s", store_errmsg(h->store));
            goto err_after_rec;
        }
        if (rv != 0) {
            buf_free(&snap);
            snprintf(errmsg, sizeof errmsg, "cannot read snapshot: %s",
                     store_errmsg(h->store));
            goto err_after_rec;
        }
        snap_number = meta.number;
        memcpy(s->replay_chain, meta.chain, sizeof s->replay_chain);
    }

    /* The arguments and environment live in the store, not in memory: a
     * wake reads the ship's record anyway. */
    struct proc_config pc = {
        .path = s->program,
        .name = s->name[0] ? s->name : s->id,
        .ship_id = s->id,
        .max_frame = h->cfg.max_frame,
        .budget = &h->budget,
        .args = rec.args,
        .args_len = rec.args_len,
        .env = rec.env,
        .env_len = rec.env_len,
    };
    rv = proc_spawn(&s->proc, &h->loop, &pc, ship__on_frame, ship__on_exit, s,
                    errmsg);
    store_ship_clear(&rec);
    if (rv != 0) {
        buf_free(&snap);
        goto err;
    }
    h->n_procs++;
    host__lru_touch(h, s);
    ship__hold_new(s);
    host__measure_start(h);
    struct frame_boot boot = {
        .id = s->id,
        .id_len = strlen(s->id),
        .snapshot_event = snap_number,
        .snapshot = snap.data,
        .snapshot_len = snap.len,
    };
    struct buf f;
    buf_init(&f);
    rv = frame_encode_boot(&f, &boot);
    buf_free(&snap);
    if (rv != 0 || ship__send(s, &f) != 0) {
        buf_free(&f);
        proc_kill(s->proc, "cannot send boot frame");
        return;
    }
    s->replay_next = 0;
    ship__arm(s, SHIP__TIMER_WAKE, ship__wake_ms(h));
    return;

err_after_rec:
    store_ship_clear(&rec);
err:
    host_log("warn", "ship failed to wake", "ship", s->id, "error", errmsg,
             NULL);
    snprintf(s->last_failure, sizeof s->last_failure, "%s", errmsg);
    ship__set_state(s, SHIP_ASLEEP);
    s->measure_next = HOST_MEASURE_NONE;
    ship__fail_wake(s, errmsg);
    ship__answer_waiters(s);
    host__pump_wakes(h);
    ship__maybe_free(s);
}

static void ship__awake(struct host_ship *s)
{
    ship__set_state(s, SHIP_AWAKE);
    s->wake_wanted = false;
    s->next_number = s->last_event + 1;
    s->since_snapshot = s->last_event - s->snapshot_event;
    ship__disarm(s);
    ship__answer_waiters(s);
    host__pump_wakes(s->host);
    ship__pump(s);
}

/* Send one logged event to a waking program; the store has checked its
 * place in the ship's hash chain. */
static int ship__replay_one(uint64_t number, const void *rec, size_t len,
                            void *arg)
{
    struct host_ship *s = arg;
    struct record_event ev;
    if (record_decode_event(rec, len, &ev) != 0) {
        return BERTH_ECORRUPT; /* the store decoded it: not reached */
    }
    struct frame_event fe = {
        .number = ev.number,
        .time_ns = ev.time_ns,
        .kind = ev.kind,
        .payload = ev.payload,
        .payload_len = ev.payload_len,
    };
    memcpy(fe.entropy, ev.entropy, sizeof fe.entropy);
    return ship__send_event(s, &fe) != 0 ? BERTH_ESHUTDOWN : 0;
}

static void ship__on_ready(struct host_ship *s, bool accepted)
{
    uint64_t start;
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
        proc_kill(s->proc, why);
        return;
    }
    s->replay_next = start;
    s->replay_last = s->last_event;
    /* The store checks every record's place in the hash chain, from the
     * snapshot's link (or from nothing at event 1) to the ship's head,
     * also when there is nothing to replay. */
    uint8_t zeros[STORE_HASH_SIZE] = {0};
    int rv = store_event_foreach(s->host->store, s->sid, start,
                                 start == 1 ? zeros : s->replay_chain,
                                 ship__replay_one, s);
    if (rv == BERTH_ECORRUPT) {
        host_ship_mark_corrupt(s->host, s->slot, store_errmsg(s->host->store));
        return;
    }
    if (rv != 0) {
        proc_kill(s->proc, "cannot replay the log");
        return;
    }
    if (start > s->last_event) {
        ship__awake(s);
        return;
    }
    ship__arm(s, SHIP__TIMER_WAKE, ship__wake_ms(s->host));
}

static void ship__dispatch(struct host_ship *s)
{
    struct host_job *j = s->wait_head;
    s->wait_head = j->next;
    if (s->wait_head == NULL) {
        s->wait_tail = NULL;
    }
    s->n_waiting--;
    j->next = NULL;
    j->number = s->next_number;
    j->measure = s->measure_next;
    s->measure_next = HOST_MEASURE_NONE;
    host__lru_touch(s->host, s);

    struct frame_event ev = {
        .number = j->number,
        .time_ns = host_now_ns(),
        .kind = j->kind,
        .payload = j->payload.data,
        .payload_len = j->payload.len,
    };
    randombytes_buf(ev.entropy, sizeof ev.entropy);
    /* Keep what the record needs: the same event must replay exactly. */
    s->current = j;
    j->time_ns = ev.time_ns;
    memcpy(j->entropy, ev.entropy, sizeof j->entropy);
    if (ship__send_event(s, &ev) != 0) {
        proc_kill(s->proc, "cannot write to the program");
        return;
    }
    ship__arm(s, SHIP__TIMER_EVENT, s->host->cfg.event_timeout_ms);
}

static void ship__request_snapshot(struct host_ship *s)
{
    struct buf f;
    buf_init(&f);
    if (frame_encode_snap_req(&f, s->next_number - 1) != 0 ||
        ship__send(s, &f) != 0) {
        buf_free(&f);
        proc_kill(s->proc, "cannot request a snapshot");
        return;
    }
    s->snapshot_pending = true;
    s->since_snapshot = 0;
}

static void ship__stop(struct host_ship *s)
{
    struct buf f;
    buf_init(&f);
    if (frame_encode_stop(&f) != 0 || ship__send(s, &f) != 0) {
        buf_free(&f);
        proc_kill(s->proc, "cannot send stop");
        return;
    }
    s->stop_sent = true;
    ship__arm(s, SHIP__TIMER_STOP, SHIP__STOP_MS);
}

/* Thaw a frozen ship; it is AWAKE again. A program that cannot be thawed
 * is killed: it would never answer. */
static void ship__thaw(struct host_ship *s)
{
    ship__set_state(s, SHIP_AWAKE);
    host__measure_start(s->host);
    if (proc_thaw(s->proc) != 0) {
        proc_kill(s->proc, "cannot thaw the program");
    }
}

static void ship__begin_sleep(struct host_ship *s, const char *why)
{
    if (s->state == SHIP_FROZEN) {
        ship__thaw(s);
        if (!proc_running(s->proc)) {
            return;
        }
    }
    ship__set_state(s, SHIP_SLEEPING);
    snprintf(s->sleep_reason, sizeof s->sleep_reason, "%s", why);
    s->sleep_wanted = false;
    ship__disarm(s);
    if (s->snapshot_pending) {
        return; /* the snapshot on its way ends in STOP */
    }
    if (s->next_number - 1 > s->snapshot_event) {
        ship__request_snapshot(s);
    } else {
        ship__stop(s);
    }
}

/* The freeze timeout in force for a ship's own setting: the host's for 0,
 * and 0 (never) for STORE_TIMEOUT_NEVER, as for the host. */
static uint64_t ship__freeze_ms(uint64_t own, const struct host_config *cfg)
{
    if (own == STORE_TIMEOUT_NEVER) {
        return 0;
    }
    return own ? own : cfg->freeze_timeout_ms;
}

static uint64_t ship__timeout(const struct host_ship *s, bool freeze)
{
    const struct host_config *cfg = &s->host->cfg;
    if (freeze) {
        return ship__freeze_ms(s->freeze_timeout_ms, cfg);
    }
    return s->idle_timeout_ms ? s->idle_timeout_ms : cfg->idle_timeout_ms;
}

/* The ship has nothing to do: make room if the host is crowded, and arm
 * the first idle deadline. */
static void ship__idle(struct host_ship *s)
{
    struct host *h = s->host;
    /* A program just started is measured as soon as it is idle, not when
     * its turn in the sweep comes (with thousands running, seconds later):
     * the budget sees a wake storm as it happens. */
    if (s->memory_ms == 0) {
        ship__measure(s);
    }
    if (host__crowded(h)) {
        host__evict(h);
        if (s->state != SHIP_AWAKE) {
            return;
        }
    }
    uint64_t idle = ship__timeout(s, false);
    uint64_t freeze = ship__timeout(s, true);
    if (freeze != 0 && freeze < idle) {
        ship__arm(s, SHIP__TIMER_FREEZE, freeze);
    } else {
        ship__arm(s, SHIP__TIMER_IDLE, idle);
    }
}

static void ship__pump(struct host_ship *s)
{
    struct host *h = s->host;
    if (h->stopping || s->closing) {
        return;
    }
    if (s->proc != NULL && !proc_running(s->proc)) {
        return; /* being killed: its exit callback pumps again */
    }
    switch (s->state) {
    case SHIP_ASLEEP:
        /* Events still being committed must land before the log is read
         * back into a new process. */
        if (ship__wants_wake(s) && !s->queued_to_wake) {
            if (h->wake_head == NULL && host__can_wake(h)) {
                s->wake_wanted = false;
                ship__wake(s);
            } else {
                host__enqueue_wake(h, s);
                host__evict(h);
            }
            return;
        }
        ship__maybe_free(s);
        break;
    case SHIP_FROZEN:
        if (s->n_waiting > 0) {
            h->thaws++;
            s->measure_next = HOST_MEASURE_THAW;
            ship__thaw(s);
            ship__pump(s);
        } else if (s->sleep_wanted) {
            ship__begin_sleep(s, "asked");
        }
        break;
    case SHIP_SLEEPING:
        if (s->n_waiting > 0 && !s->stop_sent) {
            /* A new event interrupts the sleep instead of waiting for it. */
            ship__set_state(s, SHIP_AWAKE);
            ship__pump(s);
        }
        break;
    case SHIP_AWAKE:
        if (s->current != NULL) {
            break;
        }
        if (s->n_waiting > 0) {
            if (!s->held) {
                ship__dispatch(s);
            }
        } else if (s->sleep_wanted) {
            ship__begin_sleep(s, "asked");
        } else if (!ship__busy(s)) {
            ship__idle(s);
        } else {
            /* Replies are waiting for the log: not idle yet, and the log's
             * callback pumps again. */
            ship__disarm(s);
        }
        break;
    default:
        break;
    }
}

/* Release every job at the head of the gate that may leave. */
static void ship__release(struct host_ship *s)
{
    struct gate_item *i;
    while ((i = gate_pop(&s->gate)) != NULL) {
        ship__answer((struct host_job *)i);
    }
}

/* Free the job's reply body, if any, and stop counting it. */
static void ship__drop_reply(struct host_job *j)
{
    if (j->reply_mem == NULL) {
        return;
    }
    budget_sub(&j->ship->host->budget, j->reply_counted, j->counted_draining);
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
 * the proc's shared buffer, and its body (at most a read's worth) is
 * copied. */
static int ship__set_reply(struct host_ship *s, struct host_job *j,
                           const struct frame_effect *e, bool *frame_taken)
{
    struct frame_http_reply r;
    if (frame_decode_http_reply(e->data, e->len, &r) != 0 || r.status < 100 ||
        r.status > 599) {
        return BERTH_EMALFORMED;
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
        void *frame = proc_take_frame(s->proc, &counted);
        if (frame != NULL) {
            ship__drop_reply(j);
            j->reply_mem = frame;
            j->reply_counted = counted; /* the proc counted it already */
            j->counted += counted;
            *frame_taken = true;
        }
    }
    if (*frame_taken) {
        j->body = r.body;
        j->body_len = r.body_len;
        return 0;
    }
    ship__drop_reply(j);
    uint8_t *copy = mem_alloc(r.body_len ? r.body_len : 1);
    if (copy == NULL) {
        return BERTH_ENOMEM;
    }
    memcpy(copy, r.body, r.body_len);
    j->reply_mem = copy;
    j->reply_counted = r.body_len;
    j->counted += r.body_len;
    budget_add(&s->host->budget, r.body_len, j->counted_draining);
    j->body = copy;
    j->body_len = r.body_len;
    return 0;
}

/* Put a job that has left its program into the gate. Its bytes drain from
 * now on (the log or the client takes them), and its payload, encoded
 * into the log already or never to be, goes at once. */
static void ship__gate_push(struct host_ship *s, struct host_job *j)
{
    struct budget *b = &s->host->budget;
    if (!j->counted_draining) {
        budget_sub(b, j->payload.cap, false);
        j->counted -= j->payload.cap;
        buf_free(&j->payload);
        budget_drain(b, j->counted);
        j->counted_draining = true;
    }
    gate_push(&s->gate, &j->gate);
}

/* A changed event that will not be logged: its job leaves with the failure
 * already recorded in it, and the program, whose state has moved past the
 * log, is restarted from the log. */
static void ship__unlogged(struct host_ship *s, struct host_job *j,
                           const char *why)
{
    j->changed = false;
    j->gate.needs_log = false;
    ship__gate_push(s, j);
    proc_kill(s->proc, why);
    ship__release(s);
}

static void ship__measure_job(struct host_ship *s, const struct host_job *j)
{
    struct host *h = s->host;
    uint64_t dt = uv_hrtime() - j->arrived_ns;
    if (j->measure == HOST_MEASURE_WAKE) {
        hist_record(&h->wake_latency, dt);
    } else if (j->measure == HOST_MEASURE_THAW) {
        hist_record(&h->thaw_latency, dt);
    }
}

static void ship__on_done(struct host_ship *s, const struct frame *f)
{
    struct frame_done d;
    struct host_job *j = s->current;
    if (frame_decode_done(f, &d) != 0 || j == NULL || d.number != j->number) {
        proc_kill(s->proc, "unexpected or malformed DONE frame");
        return;
    }
    struct frame_effect e;
    size_t off = 0;
    int rv;
    bool alarm_set = false;
    bool frame_taken = false;
    uint64_t alarm = 0;
    while ((rv = frame_effects_next(&d, &off, &e)) == 0) {
        if (e.kind == FRAME_EFFECT_HTTP_REPLY) {
            if (ship__set_reply(s, j, &e, &frame_taken) != 0) {
                proc_kill(s->proc, "malformed HTTP reply effect");
                return;
            }
        } else if (e.kind == FRAME_EFFECT_ALARM) {
            if (frame_decode_alarm(e.data, e.len, &alarm) != 0) {
                proc_kill(s->proc, "malformed ALARM effect");
                return;
            }
            alarm_set = true;
        } else if (e.kind == FRAME_EFFECT_LOG) {
            char n[24];
            snprintf(n, sizeof n, "%llu", (unsigned long long)j->number);
            char *line = mem_strndup((const char *)e.data, e.len);
            if (line != NULL) {
                host_log("info", "program log", "ship", s->id, "event", n,
                         "line", line, NULL);
                mem_free(line);
            }
        }
    }
    if (rv < 0) {
        proc_kill(s->proc, "malformed effects");
        return;
    }
    ship__disarm(s);
    ship__measure_job(s, j);
    s->current = NULL;
    /* The alarm is part of the ship's durable state: setting one is a
     * change, and a TIMER event always is (it consumes the alarm), so that a
     * fired alarm never fires again after a restart. */
    bool timer = j->kind == FRAME_EVENT_TIMER;
    j->changed = (d.flags & FRAME_DONE_CHANGED) != 0 || alarm_set || timer;
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
    if (j->changed && !host_disk_ok(s->host)) {
        ship__job_fail(j, 507, "insufficient_storage",
                       "the host's disk is nearly full; writes are refused "
                       "until space is freed");
        ship__unlogged(s, j, "event refused: disk nearly full");
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
        struct buf b;
        buf_init(&b);
        rv = record_encode_event(&b, &rec);
        if (rv == 0) {
            rv = host_propose_event(s->host, s, j->number, b.data, b.len);
        }
        if (rv != 0) {
            buf_free(&b);
            ship__job_fail(j, 503, "unavailable", "cannot log the event: %s",
                           err_str(rv));
            ship__unlogged(s, j, "event could not be logged");
            return;
        }
        record_hash(b.data, b.len, s->head_hash);
        buf_free(&b);
        s->next_number++;
        s->since_snapshot++;
        s->alarm_ns = j->alarm_ns;
    }
    bool changed = j->changed;
    ship__gate_push(s, j);
    ship__release(s); /* j may be answered and freed here */
    if (changed && s->since_snapshot >= s->host->cfg.snapshot_every &&
        !s->snapshot_pending) {
        ship__request_snapshot(s);
    }
    ship__pump(s);
}

static void ship__on_reject(struct host_ship *s, const struct frame *f)
{
    struct frame_reject r;
    struct host_job *j = s->current;
    if (frame_decode_reject(f, &r) != 0 || j == NULL || r.number != j->number) {
        proc_kill(s->proc, "unexpected or malformed REJECT frame");
        return;
    }
    ship__disarm(s);
    ship__measure_job(s, j);
    s->current = NULL;
    ship__job_fail(j, 422, "rejected", "%.*s", (int)r.reason_len, r.reason);
    j->gate.needs_log = false;
    ship__gate_push(s, j);
    ship__release(s);
    ship__pump(s);
}

static void ship__snapshot_done(void *arg, int status, int result);

struct ship__snap {
    struct host_ship *ship;
    uint64_t number;
};

static void ship__on_snapshot(struct host_ship *s, const struct frame *f)
{
    struct frame_snapshot fs;
    if (frame_decode_snapshot(f, &fs) != 0 || !s->snapshot_pending ||
        fs.number > s->next_number - 1) {
        proc_kill(s->proc, "unexpected or malformed SNAPSHOT frame");
        return;
    }
    s->snapshot_pending = false;
    if (!host_disk_ok(s->host)) {
        /* A snapshot only saves replay time; skip it on a full disk. */
        if (s->state == SHIP_SLEEPING) {
            ship__stop(s);
        } else {
            ship__pump(s);
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
    struct buf e;
    buf_init(&e);
    struct ship__snap *ctx = mem_alloc(sizeof *ctx);
    int rv = ctx ? record_encode_snapshot(&e, &rs) : BERTH_ENOMEM;
    if (rv == 0) {
        ctx->ship = s;
        ctx->number = fs.number;
        rv = host_propose_entry(s->host, &e, ship__snapshot_done, ctx);
    }
    if (rv != 0) {
        /* A snapshot is an optimization: the log still has every event. */
        buf_free(&e);
        mem_free(ctx);
        host_log("warn", "cannot log snapshot", "ship", s->id, "error",
                 err_str(rv), NULL);
    } else {
        s->inflight++;
    }
    if (s->state == SHIP_SLEEPING) {
        ship__stop(s);
    } else {
        ship__pump(s);
    }
}

static void ship__snapshot_done(void *arg, int status, int result)
{
    struct ship__snap *ctx = arg;
    struct host_ship *s = ctx->ship;
    s->inflight--;
    if (status == 0 && ctx->number > s->snapshot_event) {
        s->snapshot_event = ctx->number;
        s->first_event = ctx->number + 1;
    }
    mem_free(ctx);
    ship__answer_waiters(s);
    if (s->removing) {
        ship__remove_step(s);
    } else {
        ship__pump(s);
    }
}

static void ship__on_frame(struct proc *p, const struct frame *f, void *arg)
{
    struct host_ship *s = arg;
    if (s->state == SHIP_WAKING) {
        if (s->replay_next == 0) {
            bool accepted;
            if (frame_decode_ready(f, &accepted) != 0) {
                proc_kill(p, "expected a READY frame after BOOT");
                return;
            }
            ship__on_ready(s, accepted);
            return;
        }
        struct frame_done d;
        if (f->type == FRAME_REJECT) {
            proc_kill(p, "program rejected a logged event during replay; "
                         "programs must be deterministic");
            return;
        }
        if (frame_decode_done(f, &d) != 0 || d.number != s->replay_next) {
            proc_kill(p, "unexpected frame during replay");
            return;
        }
        if (s->replay_next++ == s->replay_last) {
            ship__awake(s);
        } else {
            ship__arm(s, SHIP__TIMER_WAKE, ship__wake_ms(s->host));
        }
        return;
    }
    switch (f->type) {
    case FRAME_DONE:
        ship__on_done(s, f);
        break;
    case FRAME_REJECT:
        ship__on_reject(s, f);
        break;
    case FRAME_SNAPSHOT:
        ship__on_snapshot(s, f);
        break;
    default:
        proc_kill(p, "unexpected frame type");
        break;
    }
}

static void ship__on_exit(struct proc *p, const char *why, int clean, void *arg)
{
    struct host_ship *s = arg;
    struct host *h = s->host;
    bool expected = s->stop_sent && clean;
    ship__held_unlink(s);
    if (h->holder == s) {
        h->holder = NULL;
        host_budget_changed(h);
    }
    s->proc = NULL;
    h->n_procs--;
    ship__disarm(s);
    ship__forget_memory(s);
    host__lru_remove(h, s);
    if (!expected) {
        host_log(h->stopping ? "info" : "warn", "program ended", "ship", s->id,
                 "why", why, NULL);
        snprintf(s->last_failure, sizeof s->last_failure, "program %s", why);
    }
    if (s->current != NULL) {
        struct host_job *j = s->current;
        s->current = NULL;
        if (j->timed_out) {
            ship__job_fail(j, 504, "timeout", "ship %s: %s", s->id, why);
        } else {
            ship__job_fail(j, 502, "program_failed", "ship %s: program %s",
                           s->id, why);
        }
        j->gate.needs_log = false;
        ship__gate_push(s, j);
    }
    if (s->state == SHIP_WAKING) {
        char msg[300];
        snprintf(msg, sizeof msg, "program %s", why);
        ship__fail_wake(s, msg);
    }
    s->snapshot_pending = false;
    s->stop_sent = false;
    s->sleep_wanted = false;
    s->measure_next = HOST_MEASURE_NONE;
    if (s->state != SHIP_ASLEEP && s->state != SHIP_REMOVED) {
        ship__set_state(s, SHIP_ASLEEP);
    }
    ship__answer_waiters(s);
    ship__release(s);
    if (s->removing) {
        ship__remove_step(s);
    } else {
        ship__pump(s);
    }
    /* A process fewer: a queued wake may start. */
    host__pump_wakes(h);
}

static void ship__timer_cb(uv_timer_t *t)
{
    struct host_ship *s = t->data;
    if (s->proc == NULL) {
        return;
    }
    char why[128];
    int kind = s->timer_kind;
    s->timer_kind = SHIP__TIMER_NONE;
    switch (kind) {
    case SHIP__TIMER_EVENT:
        snprintf(why, sizeof why, "event %llu took longer than %u ms",
                 (unsigned long long)(s->current ? s->current->number : 0),
                 s->host->cfg.event_timeout_ms);
        if (s->current != NULL) {
            s->current->timed_out = true;
        }
        proc_kill(s->proc, why);
        break;
    case SHIP__TIMER_WAKE:
        snprintf(why, sizeof why, "no progress while waking for %llu ms",
                 (unsigned long long)ship__wake_ms(s->host));
        proc_kill(s->proc, why);
        break;
    case SHIP__TIMER_FREEZE:
        if (s->state == SHIP_AWAKE && !ship__busy(s)) {
            /* Frozen, it cannot grow: this measure holds until it thaws. */
            ship__measure(s);
            if (proc_freeze(s->proc) == 0) {
                ship__set_state(s, SHIP_FROZEN);
            } else {
                host_log("warn", "cannot freeze program", "ship", s->id, NULL);
            }
            uint64_t idle = ship__timeout(s, false);
            uint64_t freeze = ship__timeout(s, true);
            ship__arm(s, SHIP__TIMER_IDLE, idle > freeze ? idle - freeze : 0);
            /* The measure may have put the host over its budget, and no
             * sweep runs while every program is frozen. Last: it may put
             * this very ship to sleep. */
            if (host__crowded(s->host)) {
                host__evict(s->host);
            }
        }
        break;
    case SHIP__TIMER_IDLE:
        if ((s->state == SHIP_AWAKE || s->state == SHIP_FROZEN) &&
            !ship__busy(s)) {
            ship__begin_sleep(s, "idle");
        }
        break;
    case SHIP__TIMER_STOP:
        proc_kill(s->proc, "did not exit after STOP");
        break;
    default:
        break;
    }
}

void host_ship_held(struct host_ship *s, uint64_t number)
{
    if (ship__entry(s)->flags & REGISTRY_CORRUPT) {
        return;
    }
    gate_mark_durable(&s->gate, number);
    ship__release(s);
}

void host_ship_durable(struct host_ship *s, uint64_t number, int status)
{
    s->inflight--;
    if (status == 0 && (ship__entry(s)->flags & REGISTRY_CORRUPT)) {
        /* The log has the events, but the ship's store did not take them:
         * never answer as if they were kept. */
        for (struct gate_item *i = s->gate.head; i != NULL; i = i->next) {
            struct host_job *j = (struct host_job *)i;
            if (i->needs_log && i->number <= number && !i->durable) {
                ship__job_fail(j, 502, "corrupt", "ship %s: %s", s->id,
                               host_ship_corrupt_detail(s->host, s->slot));
                i->durable = true;
            }
        }
    } else if (status == 0) {
        if (number > s->last_event) {
            s->last_event = number;
        }
        gate_mark_durable(&s->gate, number);
    } else {
        /* Not committed: answer with an error, never with the effects. */
        for (struct gate_item *i = s->gate.head; i != NULL; i = i->next) {
            struct host_job *j = (struct host_job *)i;
            if (i->needs_log && i->number <= number && !i->durable) {
                ship__job_fail(j, 503, "unavailable",
                               "event %llu was not committed: %s",
                               (unsigned long long)i->number, err_str(status));
                i->durable = true;
            }
        }
        /* The program is ahead of the log now: restart it from the log. */
        if (s->proc != NULL) {
            proc_kill(s->proc, "an event of this ship was not committed");
        }
    }
    ship__release(s);
    ship__answer_waiters(s);
    if (s->removing) {
        ship__remove_step(s);
    } else {
        ship__pump(s);
    }
}

/* --- Alarms. --- */

static void host__alarm_cb(uv_timer_t *t)
{
    struct host *h = t->data;
    uint64_t now = host_now_ns();
    uint32_t slot;
    uint64_t when;
    while ((when = alarms_next(&h->alarms, &slot)) != 0 && when <= now &&
           !h->stopping) {
        alarms_set(&h->alarms, slot, 0);
        struct host_ship *s = host_ship_live(h, slot);
        struct buf payload;
        buf_init(&payload);
        if (s == NULL || buf_put_u64(&payload, when) != 0) {
            buf_free(&payload);
            alarms_set(&h->alarms, slot, now + SHIP__ALARM_RETRY_NS);
            continue;
        }
        h->alarms_fired++;
        host_ship_deliver(s, HOST_JOB_ALARM, NULL, FRAME_EVENT_TIMER, &payload);
    }
    host__alarm_rearm(h);
}

static void host__alarm_rearm(struct host *h)
{
    uint32_t slot;
    uint64_t when = alarms_next(&h->alarms, &slot);
    if (when == 0 || h->stopping || !h->leading) {
        uv_timer_stop(&h->alarm_timer);
        return;
    }
    uint64_t now = host_now_ns();
    /* Round up: a timer that fires early finds nothing due. */
    uint64_t ms = when > now ? (when - now + 999999) / 1000000 : 0;
    uv_timer_start(&h->alarm_timer, host__alarm_cb, ms, 0);
}

void host_alarms_start(struct host *h)
{
    h->alarm_timer.data = h;
    host__alarm_rearm(h);
}

/* --- Admin operations. --- */

void host_ship_sleep(struct host_ship *s, struct http_request *req)
{
    if (s->state == SHIP_ASLEEP && s->inflight == 0 && !s->queued_to_wake &&
        !s->wake_wanted) {
        host_reply_json(req, 200, host_ship_json(s->host, s->slot));
        ship__maybe_free(s);
        return;
    }
    ship__add_waiter(s, req);
    if (s->state == SHIP_AWAKE || s->state == SHIP_FROZEN) {
        s->sleep_wanted = true;
        ship__pump(s);
    } else if (s->state == SHIP_WAKING) {
        s->sleep_wanted = true;
    }
}

void host_ship_wake(struct host_ship *s, struct http_request *req)
{
    if (s->state == SHIP_AWAKE) {
        host_reply_json(req, 200, host_ship_json(s->host, s->slot));
        return;
    }
    req->data = &ship__wake_waiter;
    ship__add_waiter(s, req);
    if (s->state == SHIP_FROZEN) {
        ship__thaw(s);
        ship__answer_waiters(s);
        ship__pump(s);
        return;
    }
    if (s->state != SHIP_WAKING) {
        /* Asleep, or on its way there: wake once it is. */
        s->wake_wanted = true;
    }
    ship__pump(s);
}

static void ship__removed(void *arg, int status, int result)
{
    struct host_ship *s = arg;
    struct host *h = s->host;
    s->inflight--;
    if (status != 0) {
        s->removing = false;
        if (s->remove_req) {
            host_reply_error(s->remove_req, 503, "unavailable",
                             "removal was not committed: %s", err_str(status));
            s->remove_req = NULL;
        }
        ship__pump(s);
        return;
    }
    registry_remove(&h->reg, s->slot);
    alarms_set(&h->alarms, s->slot, 0);
    host__alarm_rearm(h);
    ship__set_state(s, SHIP_REMOVED);
    if (s->remove_req) {
        json_t *o = json_object();
        json_object_set_new(o, "removed", json_string(s->id));
        host_reply_json(s->remove_req, 200, o);
        s->remove_req = NULL;
    }
    ship__answer_waiters(s);
    ship__maybe_free(s);
}

static void ship__remove_step(struct host_ship *s)
{
    if (s->proc != NULL || s->inflight > 0 || s->state == SHIP_REMOVED ||
        s->remove_req == NULL) {
        return;
    }
    ship__release(s);
    struct buf e;
    buf_init(&e);
    int rv = record_encode_ship_remove(&e, s->sid);
    if (rv == 0) {
        rv = host_propose_entry(s->host, &e, ship__removed, s);
    }
    if (rv != 0) {
        buf_free(&e);
        s->removing = false;
        host_reply_error(s->remove_req, 503, "unavailable",
                         "cannot log the removal: %s", err_str(rv));
        s->remove_req = NULL;
        ship__pump(s);
        return;
    }
    s->inflight++;
}

void host_ship_remove(struct host_ship *s, struct http_request *req)
{
    struct host *h = s->host;
    if (s->removing) {
        host_reply_error(req, 409, "conflict", "ship %s is being removed",
                         s->id);
        return;
    }
    s->removing = true;
    s->remove_req = req;
    ship__fail_waiting(s, 404, "not_found", "ship %s was removed", s->id);
    if (s->queued_to_wake) {
        /* Leave the wake queue at once rather than when its turn comes. */
        struct host_ship **pp = &h->wake_head, *prev = NULL;
        while (*pp != NULL && *pp != s) {
            prev = *pp;
            pp = &(*pp)->wake_next;
        }
        if (*pp == s) {
            *pp = s->wake_next;
            if (h->wake_tail == s) {
                h->wake_tail = prev;
            }
            h->n_wake_queue--;
        }
        s->queued_to_wake = false;
        s->wake_next = NULL;
    }
    s->wake_wanted = false;
    if (s->proc != NULL) {
        if (s->state == SHIP_FROZEN) {
            ship__thaw(s);
        }
        proc_kill(s->proc, "ship removed");
        return;
    }
    ship__remove_step(s);
}

void host_ship_mark_corrupt(struct host *h, uint32_t slot, const char *detail)
{
    struct registry_ship *e = registry_get(&h->reg, slot);
    char id[REGISTRY_ID_LEN + 1];
    registry_id(&h->reg, slot, id);
    host_log("error",
             "ship's stored data failed its checks; it will not "
             "wake until this is repaired",
             "ship", id, "error", detail, NULL);
    if (!(e->flags & REGISTRY_CORRUPT)) {
        struct host_damage *d =
            mem_realloc(h->damaged, (h->n_damaged + 1) * sizeof *d);
        if (d != NULL) {
            h->damaged = d;
            d[h->n_damaged].slot = slot;
            snprintf(d[h->n_damaged].detail, sizeof d->detail, "%s", detail);
            h->n_damaged++;
        }
        e->flags |= REGISTRY_CORRUPT;
    }
    struct host_ship *s = e->live;
    if (s != NULL && s->proc != NULL) {
        proc_kill(s->proc, "the ship's stored data failed its checks");
    }
}

const char *host_ship_corrupt_detail(const struct host *h, uint32_t slot)
{
    for (unsigned i = 0; i < h->n_damaged; i++) {
        if (h->damaged[i].slot == slot) {
            return h->damaged[i].detail;
        }
    }
    return "its stored data failed its checks";
}

void host_ship_shutdown(struct host_ship *s)
{
    ship__disarm(s);
    ship__fail_waiting(s, 503, "unavailable", "host is stopping");
    if (s->proc != NULL) {
        if (s->state == SHIP_FROZEN) {
            proc_thaw(s->proc);
        }
        proc_kill(s->proc, "host stopping");
    }
}

void host_ship_step_down(struct host_ship *s)
{
    ship__disarm(s);
    ship__fail_waiting(s, 503, "leader_changed",
                       "this host stopped leading the cluster; retry");
    if (s->proc != NULL) {
        if (s->state == SHIP_FROZEN) {
            proc_thaw(s->proc);
        }
        proc_kill(s->proc, "no longer leading");
    }
}

void host_ships_step_down(struct host *h)
{
    for (uint32_t i = 0; i < h->reg.n_slots; i++) {
        struct host_ship *s = registry_get(&h->reg, i)->live;
        if (s != NULL) {
            host_ship_step_down(s);
        }
    }
}

void host_ships_shutdown(struct host *h)
{
    for (uint32_t i = 0; i < h->reg.n_slots; i++) {
        struct host_ship *s = registry_get(&h->reg, i)->live;
        if (s != NULL) {
            host_ship_shutdown(s);
        }
    }
}

static void ship__free_one(struct host_ship *s)
{
    struct gate_item *i;
    while ((i = gate_pop_any(&s->gate)) != NULL) {
        struct host_job *j = (struct host_job *)i;
        if (!i->durable) {
            ship__job_fail(j, 503, "unavailable", "host is stopping");
        }
        ship__answer(j);
    }
    for (unsigned k = 0; k < s->n_waiters; k++) {
        host_reply_error(s->waiters[k], 503, "unavailable", "host is stopping");
    }
    mem_free(s->waiters);
    s->waiters = NULL;
    s->n_waiters = 0;
    if (s->remove_req) {
        host_reply_error(s->remove_req, 503, "unavailable", "host is stopping");
        s->remove_req = NULL;
    }
    uv_close((uv_handle_t *)&s->timer, ship__timer_closed);
}

void host_ships_free(struct host *h)
{
    for (uint32_t i = 0; i < h->reg.n_slots; i++) {
        struct registry_ship *e = registry_get(&h->reg, i);
        if (e->live != NULL) {
            ship__free_one(e->live);
            e->live = NULL;
        }
    }
}

/* --- Describing ships. --- */

/* A string list as JSON: an array of its strings, or for an environment
 * (env true) an object of its "K=V" strings. */
static json_t *ship__list_json(const char *p, size_t len, bool env)
{
    json_t *o = env ? json_object() : json_array();
    const char *str;
    size_t off = 0;
    while ((str = strlist_next(p, len, &off)) != NULL) {
        const char *eq = env ? strchr(str, '=') : NULL;
        if (!env) {
            json_array_append_new(o, json_string(str));
        } else if (eq != NULL) {
            char key[256];
            snprintf(key, sizeof key, "%.*s", (int)(eq - str), str);
            json_object_set_new(o, key, json_string(eq + 1));
        }
    }
    return o;
}

json_t *host_ship_json(struct host *h, uint32_t slot)
{
    const struct registry_ship *e = registry_get(&h->reg, slot);
    const struct host_ship *s = e->live;
    struct store_ship rec;
    char id[REGISTRY_ID_LEN + 1];
    bool have = store_ship_get_sid(h->store, e->sid, &rec) == 0;
    if (!have) {
        memset(&rec, 0, sizeof rec);
    }
    registry_id(&h->reg, slot, id);
    const char *name = registry_name(&h->reg, slot);
    enum ship_state state = s ? s->state : SHIP_ASLEEP;
    if (e->flags & REGISTRY_REMOVED) {
        state = SHIP_REMOVED;
    }
    uint64_t last_event = rec.last_event;
    if (s != NULL && s->last_event > last_event) {
        last_event = s->last_event;
    }
    uint64_t idle =
        rec.idle_timeout_ms ? rec.idle_timeout_ms : h->cfg.idle_timeout_ms;
    uint64_t freeze = ship__freeze_ms(rec.freeze_timeout_ms, &h->cfg);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "name", name[0] ? json_string(name) : json_null());
    json_object_set_new(o, "state", json_string(ship_state_name(state)));
    json_object_set_new(o, "program",
                        json_string(registry_program(&h->reg, slot)));
    json_object_set_new(o, "args",
                        ship__list_json(rec.args, rec.args_len, false));
    json_object_set_new(o, "env", ship__list_json(rec.env, rec.env_len, true));
    json_object_set_new(o, "last_event", json_integer((json_int_t)last_event));
    json_object_set_new(o, "snapshot_event",
                        json_integer((json_int_t)rec.snapshot_event));
    json_object_set_new(o, "first_event",
                        json_integer((json_int_t)rec.first_event));
    json_object_set_new(o, "idle_timeout_ms", json_integer((json_int_t)idle));
    uint8_t acks = have ? rec.acks : GATE_ACKS_DEFAULT;
    char acks_name[8];
    gate_acks_name(acks == GATE_ACKS_DEFAULT ? h->cfg.acks : acks, acks_name);
    json_object_set_new(o, "acks",
                        acks_name[0] >= '0' && acks_name[0] <= '9'
                            ? json_integer(atoi(acks_name))
                            : json_string(acks_name));
    json_object_set_new(o, "acks_default",
                        json_boolean(acks == GATE_ACKS_DEFAULT));
    json_object_set_new(o, "freeze_timeout_ms",
                        json_integer((json_int_t)freeze));
    json_object_set_new(o, "wake_count", json_integer(e->wake_count));
    json_object_set_new(o, "queued", json_integer(s ? s->n_waiting : 0));
    json_object_set_new(o, "created_ns",
                        json_integer((json_int_t)rec.created_ns));
    json_object_set_new(o, "last_active_ns",
                        json_integer((json_int_t)e->last_active_ns));
    json_object_set_new(o, "alarm_ns",
                        json_integer((json_int_t)alarms_get(&h->alarms, slot)));
    json_object_set_new(o, "memory_bytes",
                        json_integer((json_int_t)(s ? s->memory : 0)));
    json_object_set_new(
        o, "stderr_dropped_bytes",
        json_integer(s && s->proc ? (json_int_t)proc_stderr_dropped(s->proc)
                                  : 0));
    json_object_set_new(
        o, "pid", s && s->proc ? json_integer(proc_pid(s->proc)) : json_null());
    json_object_set_new(o, "corrupt",
                        e->flags & REGISTRY_CORRUPT
                            ? json_string(host_ship_corrupt_detail(h, slot))
                            : json_null());
    if (have) {
        store_ship_clear(&rec);
    }
    return o;
}
