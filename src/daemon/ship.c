/* Ships on the host: the fleet's environment, and the daemon's calls into
 * it.
 *
 * The lifecycle of ships (tiers, jobs, wake and replay, the gate, sleep,
 * freeze, admission and eviction, alarms, crashes, leading) is pure code in
 * core/fleet.c. This file gives it a world: a program is a struct proc, a
 * timer a uv_timer_t, the store is the store, a proposal joins the host's
 * group commit (host_propose_event), a released job is an HTTP reply. It
 * also holds what is the daemon's alone: the descriptors that programs and
 * connections share, the buffer budget's holding back of programs and
 * clients, the epoch of a program (the hash of its executable), and a
 * ship's description as JSON. */
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/record.h"
#include "core/sandbox.h"
#include "daemon/host.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "lib/strlist.h"
#include "proc/proc.h"
#include "store/shipkey.h"

/* While the buffer budget is over, plans are made again this often even
 * if nothing reports a change. */
#define HOST__BUDGET_REPLAN_MS 100

static struct host_ship *ship__of(struct fleet_ship *s)
{
    return (struct host_ship *)s;
}

/* --- Descriptors: programs and connections share them. --- */

/* Connections of the admin API, on its socket and on TCP. */
static unsigned host__admin_conns(const struct host *h)
{
    return http_server_connections(h->admin) +
           (h->admin_tcp != NULL ? http_server_connections(h->admin_tcp) : 0);
}

/* Descriptors in use, counting the front door's at no less than the
 * connections' floor, which programs may never take. */
static unsigned host__fds_in_use(const struct host *h, unsigned procs)
{
    unsigned front = http_server_connections(h->front);
    return h->fd_base + procs * proc_fds_per_proc() +
           (front > h->fd_conns_floor ? front : h->fd_conns_floor) +
           host__admin_conns(h);
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
    unsigned programs = h->fleet.n_procs * proc_fds_per_proc();
    if (programs < h->fd_programs_floor) {
        programs = h->fd_programs_floor;
    }
    unsigned others = programs + host__admin_conns(h);
    return pool > others ? pool - others : 1;
}

/* Close idle front-door connections above the connections' floor when a
 * program would find no descriptors: a wake does not wait for clients
 * that are doing nothing. */
static void host__fds_for_wake(struct host *h)
{
    unsigned procs = h->fleet.n_procs;
    if (h->fd_limit == 0 || procs == 0 || procs >= h->fleet.max_awake) {
        return;
    }
    unsigned need =
        host__fds_in_use(h, procs) + proc_fds_per_proc() + HOST_FD_RESERVE;
    unsigned front = http_server_connections(h->front);
    if (need <= h->fd_limit || front <= h->fd_conns_floor) {
        return;
    }
    unsigned over = need - h->fd_limit;
    unsigned above = front - h->fd_conns_floor;
    http_server_close_idle(h->front, over < above ? over : above);
}

static bool ship__env_fds_room(void *data, unsigned procs, bool make)
{
    struct host *h = data;
    if (make) {
        host__fds_for_wake(h);
    }
    return h->fd_limit == 0 ||
           host__fds_in_use(h, procs) + proc_fds_per_proc() + HOST_FD_RESERVE <=
               h->fd_limit;
}

/* --- Holding back programs and clients: the buffer budget. --- */

static bool ship__has_work(struct host_ship *s)
{
    return s->proc != NULL && proc_running(s->proc) &&
           fleet_ship_has_work(&s->core);
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

/* Stop reading s's program; the fleet sends it no event and its progress
 * deadlines wait. */
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
    fleet_ship_hold(&s->core, true);
}

/* Let s on again. */
static void ship__unhold(struct host_ship *s)
{
    if (!s->held) {
        return;
    }
    ship__held_unlink(s);
    if (s->proc != NULL) {
        proc_resume(s->proc);
    }
    fleet_ship_hold(&s->core, false);
}

/* A program just started: while the budget is over it is held back like
 * every other, unless nothing drains and no ship is let on yet. Returns
 * whether it is held; the fleet learns it from its spawn operation. */
static bool ship__hold_new(struct host_ship *s)
{
    struct host *h = s->host;
    if (!budget_over(&h->budget) || h->holder == s) {
        return false;
    }
    if (h->holder == NULL && h->budget.draining == 0) {
        h->holder = s;
        return false;
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
    return true;
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
            for (struct fleet_ship *c = h->fleet.lru_head; c != NULL;
                 c = c->lru_next) {
                struct host_ship *s = ship__of(c);
                if (ship__has_work(s) &&
                    (keep == NULL || proc_partial_bytes(s->proc) >
                                         proc_partial_bytes(keep->proc))) {
                    keep = s;
                }
            }
        }
    }
    h->holder = keep;
    for (struct fleet_ship *c = h->fleet.lru_head; c != NULL; c = c->lru_next) {
        if (ship__of(c) != keep) {
            ship__hold(ship__of(c));
        }
    }
    bool one_client =
        keep == NULL && h->budget.draining == 0 && h->fleet.wake_head == NULL;
    http_server_throttle(h->front,
                         one_client ? HTTP_THROTTLE_ONE : HTTP_THROTTLE_ALL);
    if (keep != NULL) {
        ship__unhold(keep);
    }
}

/* --- The fleet's environment: live objects and timers. --- */

static struct fleet_ship *ship__env_alloc(void *data, uint32_t slot)
{
    struct host *h = data;
    struct host_ship *s = mem_calloc(1, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    s->host = h;
    uv_timer_init(&h->loop, &s->timer);
    s->timer.data = s;
    return &s->core;
}

static void ship__timer_closed(uv_handle_t *handle)
{
    mem_free(handle->data);
}

/* Drop the arguments and environment a load took. */
static void ship__drop_args(struct host_ship *s)
{
    mem_free(s->args);
    mem_free(s->env);
    s->args = s->env = NULL;
    s->args_len = s->env_len = 0;
}

static void ship__env_free(void *data, struct fleet_ship *c)
{
    struct host_ship *s = ship__of(c);
    ship__drop_args(s);
    /* The memory goes once the timer has closed, so a caller up the stack
     * may still read the ship. */
    uv_close((uv_handle_t *)&s->timer, ship__timer_closed);
}

static void ship__timer_cb(uv_timer_t *t)
{
    struct host_ship *s = t->data;
    fleet_on_timer(&s->host->fleet, FLEET_TIMER_SHIP, &s->core);
}

static void host__sweep_cb(uv_timer_t *t)
{
    struct host *h = t->data;
    fleet_on_timer(&h->fleet, FLEET_TIMER_SWEEP, NULL);
}

static void host__alarm_cb(uv_timer_t *t)
{
    struct host *h = t->data;
    fleet_on_timer(&h->fleet, FLEET_TIMER_ALARM, NULL);
}

static void ship__env_timer_start(void *data, enum fleet_timer which,
                                  struct fleet_ship *c, uint64_t ms)
{
    struct host *h = data;
    switch (which) {
    case FLEET_TIMER_SHIP:
        uv_timer_start(&ship__of(c)->timer, ship__timer_cb, ms, 0);
        break;
    case FLEET_TIMER_SWEEP:
        uv_timer_start(&h->measure_timer, host__sweep_cb, ms, 0);
        break;
    case FLEET_TIMER_ALARM:
        uv_timer_start(&h->alarm_timer, host__alarm_cb, ms, 0);
        break;
    }
}

static void ship__env_timer_stop(void *data, enum fleet_timer which,
                                 struct fleet_ship *c)
{
    struct host *h = data;
    switch (which) {
    case FLEET_TIMER_SHIP:
        uv_timer_stop(&ship__of(c)->timer);
        break;
    case FLEET_TIMER_SWEEP:
        uv_timer_stop(&h->measure_timer);
        break;
    case FLEET_TIMER_ALARM:
        uv_timer_stop(&h->alarm_timer);
        break;
    }
}

static uint64_t ship__env_now_ns(void *data)
{
    return host_now_ns();
}

static uint64_t ship__env_mono_ns(void *data)
{
    return uv_hrtime();
}

/* Every event carries 32 bytes of entropy, and randombytes_buf is a
 * getrandom system call each time: the bytes come from a pool filled by
 * one call for 128 events. Bytes handed out are wiped from the pool. Only
 * the loop thread draws from it, and no program shares the host's memory. */
#define SHIP__ENTROPY_POOL 4096

static void ship__env_entropy(void *data, uint8_t *out, size_t n)
{
    static uint8_t pool[SHIP__ENTROPY_POOL];
    static size_t left;
    (void)data;
    if (n > sizeof pool) {
        randombytes_buf(out, n);
        return;
    }
    if (n > left) {
        randombytes_buf(pool, sizeof pool);
        left = sizeof pool;
    }
    uint8_t *from = pool + sizeof pool - left;
    memcpy(out, from, n);
    sodium_memzero(from, n);
    left -= n;
}

static bool ship__env_disk_ok(void *data)
{
    return host_disk_ok(data);
}

static bool ship__env_write_ok(void *data, struct fleet_ship *c,
                               struct quota_refusal *why)
{
    struct host_ship *s = ship__of(c);
    if (s->events_per_s != 0) {
        /* The ship's own cap, from its sandbox, before its account's. */
        uint64_t limits[QUOTA__COUNT] = {0};
        limits[QUOTA_EVENTS] = s->events_per_s;
        if (!quota_event_ok(limits, &s->events, uv_hrtime(), why)) {
            why->ship = true;
            return false;
        }
    }
    return host_quota_write_ok(data, s->account, why);
}

static void ship__env_log(void *data, const char *level, const char *msg,
                          const char *ship, const char *k1, const char *v1,
                          const char *k2, const char *v2)
{
    if (k1 == NULL) {
        host_log(level, msg, "ship", ship, NULL);
    } else if (k2 == NULL) {
        host_log(level, msg, "ship", ship, k1, v1, NULL);
    } else {
        host_log(level, msg, "ship", ship, k1, v1, k2, v2, NULL);
    }
}

/* One line per tier change: "ship waking" (a wake), "ship asleep", ...
 * Built only when info lines are written, as a wake storm makes many. */
static void ship__env_tier(void *data, struct fleet_ship *c,
                           enum ship_state from, enum ship_state to)
{
    (void)data;
    if (!host_log_enabled("info")) {
        return;
    }
    char msg[32];
    snprintf(msg, sizeof msg, "ship %s", ship_state_name(to));
    host_log("info", msg, "ship", c->id, "from", ship_state_name(from), NULL);
}

/* --- The fleet's environment: the store and the program. --- */

/* The epoch of a program is the hash of its executable, so a changed binary
 * starts a new epoch of the ship's log. The hash is kept per program with the
 * file's identity (device, inode, size, change time) and computed again only
 * when that changes, so a wake costs a stat, not a read of the binary. */
static int ship__hash_program(struct host *h, uint32_t index, const char *path,
                              uint8_t *epoch)
{
    struct stat st;
    if (index >= h->n_programs) {
        uint32_t n = h->reg.n_programs;
        struct host_program *p = mem_realloc(h->programs, n * sizeof *p);
        if (p == NULL) {
            return BERTH_ENOMEM;
        }
        memset(p + h->n_programs, 0, (n - h->n_programs) * sizeof *p);
        h->programs = p;
        h->n_programs = n;
    }
    struct host_program *prog = &h->programs[index];
    if (stat(path, &st) != 0) {
        return BERTH_ENOTFOUND;
    }
    uint64_t id[4] = {(uint64_t)st.st_dev, (uint64_t)st.st_ino,
                      (uint64_t)st.st_size,
                      (uint64_t)st.st_ctim.tv_sec * 1000000000ULL +
                          (uint64_t)st.st_ctim.tv_nsec};
    if (memcmp(id, prog->file_id, sizeof id) != 0) {
        FILE *f = fopen(path, "rb");
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
    memcpy(epoch, prog->epoch, STORE_HASH_SIZE);
    return 0;
}

int host_ship_epoch(struct host *h, uint32_t slot, uint8_t *epoch)
{
    struct registry_ship *e = registry_get(&h->reg, slot);
    return ship__hash_program(h, e->program, registry_program(&h->reg, slot),
                              epoch);
}

const uint8_t *host_ship_own_key(struct host *h, uint64_t sid, uint8_t *own)
{
    struct store_ship rec;
    if (store_ship_get_sid(h->store, sid, &rec) != 0) {
        return NULL;
    }
    bool has_own;
    int rv = shipkey_open(h->store, &h->keys, &rec, NULL, own, &has_own);
    store_ship_clear(&rec);
    return rv == 0 && has_own ? own : NULL;
}

static int ship__env_load(void *data, struct fleet_ship *c,
                          struct fleet_load *out, char *errmsg)
{
    struct host *h = data;
    struct host_ship *s = ship__of(c);
    struct registry_ship *e = registry_get(&h->reg, c->slot);
    const char *program = registry_program(&h->reg, c->slot);
    struct store_ship rec;
    int rv;
    ship__drop_args(s);
    rv = store_ship_get_sid(h->store, c->sid, &rec);
    if (rv != 0) {
        err_printf(errmsg, "cannot read ship record: %s",
                   store_errmsg(h->store));
        return rv;
    }
    if (host_account_disabled(h, rec.account)) {
        err_printf(errmsg, "its account is disabled");
        rv = BERTH_EDISABLED;
        goto err_after_rec;
    }
    if (!host_quota_wake_ok(h, rec.account, &out->refusal)) {
        err_printf(errmsg, "its account has %llu ships awake, its limit",
                   (unsigned long long)out->refusal.used);
        rv = BERTH_ELIMIT;
        goto err_after_rec;
    }
    rv = shipkey_open(h->store, &h->keys, &rec, NULL, out->own_key, &out->own);
    if (rv != 0) {
        err_printf(errmsg, "%s", store_errmsg(h->store));
        goto err_after_rec;
    }
    s->account = rec.account;
    /* A sandbox that does not decode grants nothing and caps nothing. */
    struct sandbox sb;
    bool sb_ok = sandbox_decode(rec.sandbox, rec.sandbox_len, &sb) == 0;
    uint32_t cap = sb_ok ? sb.events_per_s : 0;
    if (cap != s->events_per_s) {
        s->events_per_s = cap;
        memset(&s->events, 0, sizeof s->events); /* full at the next take */
    }
    out->last_event = rec.last_event;
    out->snapshot_event = rec.snapshot_event;
    out->first_event = rec.first_event;
    out->idle_timeout_ms = rec.idle_timeout_ms;
    out->freeze_timeout_ms = rec.freeze_timeout_ms;
    out->created_ns = rec.created_ns;
    out->alarm_ns = rec.alarm_ns;
    out->acks = rec.acks == GATE_ACKS_DEFAULT ? h->cfg.acks : rec.acks;
    memcpy(out->head_hash, rec.last_hash, sizeof out->head_hash);
    if (ship__hash_program(h, e->program, program, out->epoch) != 0) {
        err_printf(errmsg, "cannot read program %s", program);
        rv = BERTH_ENOTFOUND;
        goto err_after_rec;
    }
    if (out->snapshot_event > 0) {
        struct store_snapshot meta;
        rv = store_snapshot_get(h->store, c->sid, &meta, &out->snapshot);
        if (rv == BERTH_ECORRUPT) {
            err_printf(errmsg, "%s", store_errmsg(h->store));
            goto err_after_rec;
        }
        if (rv != 0) {
            err_printf(errmsg, "cannot read snapshot: %s",
                       store_errmsg(h->store));
            goto err_after_rec;
        }
        memcpy(out->chain, meta.chain, sizeof out->chain);
        memcpy(out->snapshot_epoch, meta.epoch, sizeof out->snapshot_epoch);
        out->snapshot_number = meta.number;
        out->snapshot_sealed = meta.sealed;
    }
    /* The caps: the host's, narrowed by the account's and the ship's
     * sandbox; a sandbox that does not decode (never written so) leaves
     * the others. */
    struct caps own = {0};
    if (sb_ok) {
        own.memory_bytes = sb.memory_bytes;
        own.cpu_millis = sb.cpu_millis;
        own.pids = sb.pids;
    }
    host_caps_in_force(h, rec.account, &own, &s->caps, NULL, NULL);
    /* Kept for spawn, which follows at once. A blocked ship is cut off
     * from the network too. */
    s->network =
        sb_ok && (sb.flags & SANDBOX_NETWORK) && !(e->flags & REGISTRY_BLOCKED);
    s->args = rec.args;
    s->args_len = rec.args_len;
    s->env = rec.env;
    s->env_len = rec.env_len;
    rec.args = rec.env = NULL;
    rec.args_len = rec.env_len = 0;
    store_ship_clear(&rec);
    return 0;

err_after_rec:
    store_ship_clear(&rec);
    return rv;
}

static void ship__on_frame(struct proc *p, const struct frame *f, void *arg)
{
    struct host_ship *s = arg;
    fleet_on_frame(&s->core, f);
}

static void ship__on_exit(struct proc *p, const char *why, int clean, void *arg)
{
    struct host_ship *s = arg;
    struct host *h = s->host;
    ship__held_unlink(s);
    if (h->holder == s) {
        h->holder = NULL;
        host_budget_changed(h);
    }
    host_usage_exited(s, p);
    bool over_memory = proc_over_memory(p);
    s->proc = NULL;
    fleet_on_exit(&s->core, why, clean != 0, over_memory);
}

static void ship__on_stderr(void *arg, const uint8_t *data, size_t n)
{
    host_shiplog_append(arg, data, n);
}

static int ship__env_spawn(void *data, struct fleet_ship *c, struct buf *boot,
                           bool *held, char *errmsg)
{
    struct host *h = data;
    struct host_ship *s = ship__of(c);
    const char *name = registry_name(&h->reg, c->slot);
    struct proc_config pc = {
        .path = registry_program(&h->reg, c->slot),
        .name = name[0] ? name : c->id,
        .ship_id = c->id,
        .max_frame = h->cfg.max_frame,
        .budget = &h->budget,
        .args = s->args,
        .args_len = s->args_len,
        .env = s->env,
        .env_len = s->env_len,
        .first = boot,
        .network = s->network,
        .caps = s->caps,
        .on_stderr = ship__on_stderr,
        /* The loop goes on while the launcher starts the program; the
         * program's pipes work at once. */
        .start_async = true,
    };
    s->log_failed = false;
    int rv = proc_spawn(&s->proc, &h->loop, &pc, ship__on_frame, ship__on_exit,
                        s, errmsg);
    ship__drop_args(s);
    if (rv == 0) {
        host_usage_woke(s);
        *held = ship__hold_new(s);
    }
    return rv;
}

struct ship__walk {
    fleet_replay_cb cb;
    void *arg;
};

static int ship__walk_one(uint64_t number, const void *rec, size_t len,
                          void *arg)
{
    struct ship__walk *w = arg;
    return w->cb(w->arg, number, rec, len);
}

static int ship__env_replay(void *data, struct fleet_ship *c, uint64_t start,
                            const uint8_t *chain, fleet_replay_cb cb, void *arg,
                            char *errmsg)
{
    struct host *h = data;
    struct ship__walk w = {.cb = cb, .arg = arg};
    int rv =
        store_event_foreach(h->store, c->sid, start, chain, ship__walk_one, &w);
    if (rv != 0) {
        err_printf(errmsg, "%s", store_errmsg(h->store));
    }
    return rv;
}

static int ship__env_send(void *data, struct fleet_ship *c, struct buf *frame)
{
    struct host_ship *s = ship__of(c);
    return s->proc != NULL ? proc_send(s->proc, frame) : BERTH_ESHUTDOWN;
}

static void ship__env_kill(void *data, struct fleet_ship *c, const char *why)
{
    struct host_ship *s = ship__of(c);
    if (s->proc != NULL) {
        if (proc_running(s->proc)) {
            host_log("info", "program killed", "ship", c->id, "why", why, NULL);
        }
        proc_kill(s->proc, why);
    }
}

static bool ship__env_running(void *data, struct fleet_ship *c)
{
    struct host_ship *s = ship__of(c);
    return s->proc != NULL && proc_running(s->proc);
}

static int ship__env_freeze(void *data, struct fleet_ship *c)
{
    struct host_ship *s = ship__of(c);
    return s->proc != NULL ? proc_freeze(s->proc) : BERTH_ESHUTDOWN;
}

static int ship__env_thaw(void *data, struct fleet_ship *c)
{
    struct host_ship *s = ship__of(c);
    return s->proc != NULL ? proc_thaw(s->proc) : BERTH_ESHUTDOWN;
}

static int ship__env_measure(void *data, struct fleet_ship *c, uint64_t *bytes)
{
    struct host_ship *s = ship__of(c);
    int rv = s->proc != NULL ? proc_memory(s->proc, bytes) : BERTH_ESHUTDOWN;
    if (rv == 0) {
        host_usage_measured(s, *bytes);
    }
    return rv;
}

static int ship__env_cpu(void *data, struct fleet_ship *c, uint64_t *usec)
{
    struct host_ship *s = ship__of(c);
    return s->proc != NULL ? proc_cpu(s->proc, usec) : BERTH_ESHUTDOWN;
}

static void *ship__env_take_frame(void *data, struct fleet_ship *c,
                                  uint64_t *counted)
{
    struct host_ship *s = ship__of(c);
    return s->proc != NULL ? proc_take_frame(s->proc, counted) : NULL;
}

/* --- The fleet's environment: the log. --- */

static int ship__env_propose_event(void *data, struct fleet_ship *c,
                                   uint64_t number, const uint8_t *rec,
                                   size_t len, const uint8_t *fx, size_t fx_len)
{
    return host_propose_event(data, ship__of(c), number, rec, len, fx, fx_len);
}

static int ship__env_effect_entry(void *data, struct fleet_ship *c,
                                  const struct fleet_job *j, uint8_t kind,
                                  const uint8_t *p, size_t len, struct buf *out)
{
    return host_children_effect_entry(data, ship__of(c), j, kind, p, len, out);
}

static int ship__env_receipt_entry(void *data, struct fleet_ship *c,
                                   const struct fleet_job *j, struct buf *out)
{
    return host_children_receipt_entry(data, ship__of(c), j, out);
}

/* An entry of a ship's own in flight: which, and for a snapshot, where. */
struct ship__entry {
    struct host_ship *ship;
    enum fleet_entry kind;
    uint64_t number;
};

static void ship__entry_done(void *arg, int status, int result)
{
    struct ship__entry ctx = *(struct ship__entry *)arg;
    mem_free(arg);
    fleet_ship_entry_done(&ctx.ship->core, ctx.kind, ctx.number, status);
}

static int ship__env_propose_entry(void *data, struct fleet_ship *c,
                                   enum fleet_entry kind, uint64_t number,
                                   struct buf *entry)
{
    struct ship__entry *ctx = mem_alloc(sizeof *ctx);
    if (ctx == NULL) {
        return BERTH_ENOMEM;
    }
    ctx->ship = ship__of(c);
    ctx->kind = kind;
    ctx->number = number;
    int rv = host_propose_entry(data, entry, ship__entry_done, ctx);
    if (rv != 0) {
        mem_free(ctx);
    }
    return rv;
}

void host_ship_held(struct host_ship *s, uint64_t number)
{
    fleet_ship_held(&s->core, number);
}

void host_ship_durable(struct host_ship *s, uint64_t number, int status)
{
    /* The group commit reports success once the event is both committed
     * and held at its ship's level (all: every voter), so held comes
     * first; it may have come already, below quorum. */
    if (status == 0) {
        fleet_ship_held(&s->core, number);
    }
    fleet_ship_committed(&s->core, number, status);
}

/* --- The fleet's environment: answers. --- */

static json_t *ship__body_json(const struct fleet_job *j)
{
    json_t *v = json_stringn((const char *)j->body, j->body_len);
    return v ? v : json_null();
}

/* Answer an error: {"error": {"code": code, "message": message}}; a
 * request that failed because this host does not (or no longer) leads has
 * code leader_changed and status 503, and may be retried. */
static void ship__reply_error(struct http_request *req, int status,
                              const char *code, const char *message)
{
    host_reply_error(req, status, code, "%s", message);
}

/* Write the job's outcome to its client and free it. */
static void ship__env_release(void *data, struct fleet_job *j)
{
    struct host *h = data;
    if (j->kind == FRAME_EVENT_WEBSOCKET || j->ws_fx.len > 0) {
        host_ws_released(h, j); /* may answer j->req itself */
    }
    struct http_request *req = j->req;
    if (j->origin != FLEET_JOB_ALARM) {
        host_usage_request(h, j->ship->sid);
    }
    if (j->origin == FLEET_JOB_MAIL) {
        host_mail_released(h, j);
    }
    if (req == NULL) {
        fleet_job_free(&h->fleet, j);
        return;
    }
    if (j->refused) {
        host_reply_limit(req, j->error_message ? j->error_message : "refused",
                         &j->refusal);
    } else if (j->error_code[0] != '\0') {
        ship__reply_error(req, j->status, j->error_code,
                          j->error_message ? j->error_message : "failed");
    } else if (j->origin == FLEET_JOB_FRONT) {
        if (j->status == 0) {
            http_reply(req, 204, NULL, NULL, 0, NULL);
        } else if (j->reply_mem == NULL) {
            /* No body, or one lent by a kept reply (core/reuse.h), which
             * http_reply copies. */
            http_reply(req, j->status, j->content_type, j->body, j->body_len,
                       NULL);
        } else {
            /* The body goes out from where the program's frame put it; the
             * server takes the memory, and its count, over. */
            void *mem = j->reply_mem;
            uint64_t counted = j->reply_counted;
            if (!j->counted_draining) {
                budget_drain(&h->budget, counted);
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
    fleet_job_free(&h->fleet, j);
}

static void ship__env_answer(void *data, struct fleet_ship *c, void *arg,
                             enum fleet_answer what, int status,
                             const char *code, const char *message)
{
    struct host *h = data;
    struct http_request *req = arg;
    if (req == NULL) {
        return; /* the host's own request (daemon/accounts.c) */
    }
    if (what == FLEET_ANSWER_SHIP) {
        host_reply_json(req, 200, host_ship_json(h, c->slot));
    } else if (what == FLEET_ANSWER_REMOVED) {
        json_t *o = json_object();
        json_object_set_new(o, "removed", json_string(c->id));
        host_reply_json(req, 200, o);
    } else {
        ship__reply_error(req, status, code, message);
    }
}

void host_ships_init(struct host *h)
{
    struct fleet_env env = {
        .data = h,
        .ship_alloc = ship__env_alloc,
        .ship_free = ship__env_free,
        .load = ship__env_load,
        .spawn = ship__env_spawn,
        .replay = ship__env_replay,
        .send = ship__env_send,
        .kill = ship__env_kill,
        .running = ship__env_running,
        .freeze = ship__env_freeze,
        .thaw = ship__env_thaw,
        .measure = ship__env_measure,
        .cpu = ship__env_cpu,
        .take_frame = ship__env_take_frame,
        .propose_event = ship__env_propose_event,
        .effect_entry = ship__env_effect_entry,
        .receipt_entry = ship__env_receipt_entry,
        .propose_entry = ship__env_propose_entry,
        .disk_ok = ship__env_disk_ok,
        .write_ok = ship__env_write_ok,
        .fds_room = ship__env_fds_room,
        .timer_start = ship__env_timer_start,
        .timer_stop = ship__env_timer_stop,
        .now_ns = ship__env_now_ns,
        .mono_ns = ship__env_mono_ns,
        .entropy = ship__env_entropy,
        .release = ship__env_release,
        .answer = ship__env_answer,
        .log = ship__env_log,
        .tier = ship__env_tier,
    };
    struct fleet_config cfg = {
        .keys = &h->keys,
        .idle_timeout_ms = h->cfg.idle_timeout_ms,
        .freeze_timeout_ms = h->cfg.freeze_timeout_ms,
        .event_timeout_ms = h->cfg.event_timeout_ms,
        .event_cpu_ms = h->cfg.event_cpu_ms,
        .snapshot_every = h->cfg.snapshot_every,
        .max_queue = h->cfg.max_queue,
        .max_awake_bytes = h->cfg.max_awake_bytes,
    };
    fleet_init(&h->fleet, &env, &cfg, &h->reg, &h->alarms, &h->budget);
}

/* --- The daemon's calls into the fleet. --- */

uint32_t host_ship_lookup(struct host *h, const char *id_or_name)
{
    return registry_find(&h->reg, id_or_name);
}

struct host_ship *host_ship_live(struct host *h, uint32_t slot)
{
    struct fleet_ship *c = fleet_ship_live(&h->fleet, slot);
    return c != NULL ? ship__of(c) : NULL;
}

void host_ship_deliver(struct host_ship *s, enum host_job_origin origin,
                       struct http_request *req, uint8_t kind,
                       struct buf *payload)
{
    if (fleet_deliver(&s->core, (enum fleet_origin)origin, req, kind,
                      payload) != 0 &&
        req != NULL) {
        host_reply_error(req, 503, "unavailable", "out of memory");
    }
}

void host_alarms_start(struct host *h)
{
    fleet_lead(&h->fleet, true);
    fleet_alarms_rearm(&h->fleet);
    host_mail_start(h);
}

void host_ships_step_down(struct host *h)
{
    host_ws_close_all(h, "the host no longer leads; connect again");
    fleet_lead(&h->fleet, false);
}

void host_ship_sleep(struct host_ship *s, struct http_request *req)
{
    fleet_ship_sleep(&s->core, req);
}

void host_ship_wake(struct host_ship *s, struct http_request *req)
{
    fleet_ship_wake(&s->core, req);
}

void host_ship_prewake(struct host_ship *s)
{
    fleet_ship_prewake(&s->core);
}

void host_ship_kill(struct host_ship *s, struct http_request *req)
{
    fleet_ship_kill(&s->core, req);
}

void host_ship_remove(struct host_ship *s, struct http_request *req)
{
    fleet_ship_remove(&s->core, req);
}

void host_ship_mark_corrupt(struct host *h, uint32_t slot, const char *detail)
{
    fleet_mark_corrupt(&h->fleet, slot, detail);
}

const char *host_ship_corrupt_detail(const struct host *h, uint32_t slot)
{
    return fleet_corrupt_detail(&h->fleet, slot);
}

void host_ships_shutdown(struct host *h)
{
    fleet_shutdown(&h->fleet);
}

void host_ships_free(struct host *h)
{
    fleet_free_ships(&h->fleet);
    fleet_close(&h->fleet);
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

/* The ship's caps: its own (its sandbox's; 0: none), its account's, those
 * in force (the smallest with the host's) and where each comes from, and
 * what its running program's cgroups say of its use. */
static json_t *ship__caps_json(struct host *h, const struct store_ship *rec,
                               const struct host_ship *s)
{
    struct sandbox sb;
    struct caps own = {0}, eff, acct;
    struct caps_origin from;
    if (sandbox_decode(rec->sandbox, rec->sandbox_len, &sb) == 0) {
        own.memory_bytes = sb.memory_bytes;
        own.cpu_millis = sb.cpu_millis;
        own.pids = sb.pids;
    }
    host_caps_in_force(h, rec->account, &own, &eff, &from, &acct);
    json_t *o = json_pack(
        "{s:I, s:I, s:I, s:{s:I, s:I, s:I}, s:{s:I, s:I, s:I}, "
        "s:{s:s, s:s, s:s}}",
        "memory_bytes", (json_int_t)own.memory_bytes, "cpu_millis",
        (json_int_t)own.cpu_millis, "pids", (json_int_t)own.pids, "account",
        "memory_bytes", (json_int_t)acct.memory_bytes, "cpu_millis",
        (json_int_t)acct.cpu_millis, "pids", (json_int_t)acct.pids, "in_force",
        "memory_bytes", (json_int_t)eff.memory_bytes, "cpu_millis",
        (json_int_t)eff.cpu_millis, "pids", (json_int_t)eff.pids, "from",
        "memory_bytes", caps_level_name(from.memory), "cpu_millis",
        caps_level_name(from.cpu), "pids", caps_level_name(from.pids));
    struct proc_caps_use use;
    if (o != NULL && s != NULL && s->proc != NULL &&
        proc_caps_use(s->proc, &use) == 0) {
        json_object_set_new(
            o, "use",
            json_pack("{s:I, s:I, s:I, s:I, s:I}", "memory_bytes",
                      (json_int_t)use.memory_bytes, "memory_peak_bytes",
                      (json_int_t)use.memory_peak_bytes, "pids",
                      (json_int_t)use.pids, "pids_peak",
                      (json_int_t)use.pids_peak, "oom_kills",
                      (json_int_t)use.oom_kills));
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
    enum ship_state state = s ? s->core.state : SHIP_ASLEEP;
    if (e->flags & REGISTRY_REMOVED) {
        state = SHIP_REMOVED;
    }
    uint64_t last_event = rec.last_event;
    if (s != NULL && s->core.last_event > last_event) {
        last_event = s->core.last_event;
    }
    uint64_t idle =
        rec.idle_timeout_ms ? rec.idle_timeout_ms : h->cfg.idle_timeout_ms;
    uint64_t freeze = fleet_freeze_ms(&h->fleet.cfg, rec.freeze_timeout_ms);
    uint8_t acks = have ? rec.acks : GATE_ACKS_DEFAULT;
    char acks_name[8];
    gate_acks_name(acks == GATE_ACKS_DEFAULT ? h->cfg.acks : acks, acks_name);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "name", name[0] ? json_string(name) : json_null());
    json_object_set_new(o, "state", json_string(ship_state_name(state)));
    json_object_set_new(o, "blocked",
                        json_boolean((e->flags & REGISTRY_BLOCKED) != 0));
    json_object_set_new(o, "killed",
                        json_boolean((e->flags & REGISTRY_KILLED) != 0));
    struct store_account acct;
    if (have && store_account_get_id(h->store, rec.account, &acct) == 0) {
        json_object_set_new(o, "account", json_string(acct.name));
        json_object_set_new(o, "account_disabled", json_boolean(acct.disabled));
    }
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
    json_object_set_new(o, "acks",
                        acks_name[0] >= '0' && acks_name[0] <= '9'
                            ? json_integer(atoi(acks_name))
                            : json_string(acks_name));
    json_object_set_new(o, "acks_default",
                        json_boolean(acks == GATE_ACKS_DEFAULT));
    json_object_set_new(o, "freeze_timeout_ms",
                        json_integer((json_int_t)freeze));
    json_object_set_new(o, "wake_count", json_integer(e->wake_count));
    json_object_set_new(o, "queued", json_integer(s ? s->core.n_waiting : 0));
    json_object_set_new(o, "created_ns",
                        json_integer((json_int_t)rec.created_ns));
    json_object_set_new(o, "last_active_ns",
                        json_integer((json_int_t)e->last_active_ns));
    /* A disabled account's alarms are out of the heap, pending in the
     * store (daemon/accounts.c). */
    uint64_t alarm = alarms_get(&h->alarms, slot);
    if (alarm == 0 && have && host_account_disabled(h, rec.account)) {
        alarm = rec.alarm_ns;
    }
    json_object_set_new(o, "alarm_ns", json_integer((json_int_t)alarm));
    json_object_set_new(o, "memory_bytes",
                        json_integer((json_int_t)(s ? s->core.memory : 0)));
    json_object_set_new(
        o, "stderr_dropped_bytes",
        json_integer(s && s->proc ? (json_int_t)proc_stderr_dropped(s->proc)
                                  : 0));
    json_object_set_new(o, "pid",
                        s && s->proc && proc_pid(s->proc) > 0
                            ? json_integer(proc_pid(s->proc))
                            : json_null());
    json_object_set_new(o, "caps", ship__caps_json(h, &rec, s));
    struct store_usage usage;
    if (store_ship_usage(h->store, e->sid, &usage) == 0) {
        json_object_set_new(o, "usage", host_usage_json(&usage, false, 0));
    }
    json_object_set_new(o, "corrupt",
                        e->flags & REGISTRY_CORRUPT
                            ? json_string(fleet_corrupt_detail(&h->fleet, slot))
                            : json_null());
    if (have) {
        store_ship_clear(&rec);
    }
    return o;
}
