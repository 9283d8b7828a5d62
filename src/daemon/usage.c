/* Usage of ships' programs on the leader: CPU, memory, wakes and requests,
 * counted here as they happen and proposed every usage interval as a
 * USAGE entry (core/record.h), which every host applies to the figures the
 * store records (docs/design.md, "Usage"). Storage, ships and events need
 * none of this: applying the entries that change them records them. */
#include <string.h>

#include "core/record.h"
#include "daemon/host.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "proc/proc.h"

#define USAGE__MIN_CAP 64

static size_t usage__hash(uint64_t sid, size_t cap)
{
    return (size_t)(sid * 0x9e3779b97f4a7c15ULL) & (cap - 1);
}

/* Find sid's slot in slots (cap a power of two): its own, or the empty one
 * where it goes. */
static struct host_usage_slot *usage__find(struct host_usage_slot *slots,
                                           size_t cap, uint64_t sid)
{
    size_t i = usage__hash(sid, cap);
    while (slots[i].sid != 0 && slots[i].sid != sid) {
        i = (i + 1) & (cap - 1);
    }
    return &slots[i];
}

/* Return sid's slot, made if needed; NULL when out of memory (what would
 * have been counted is lost, as when the host stops). */
static struct host_usage_slot *usage__slot(struct host *h, uint64_t sid)
{
    struct host_usage *u = &h->usage;
    if (sid == 0) {
        return NULL;
    }
    if (u->cap > 0) {
        struct host_usage_slot *e = usage__find(u->slots, u->cap, sid);
        if (e->sid == sid) {
            return e;
        }
    }
    if ((u->n + 1) * 4 > u->cap * 3) {
        size_t cap = u->cap ? u->cap * 2 : USAGE__MIN_CAP;
        struct host_usage_slot *slots = mem_calloc(cap, sizeof *slots);
        if (slots == NULL) {
            return NULL;
        }
        for (size_t i = 0; i < u->cap; i++) {
            if (u->slots[i].sid != 0) {
                *usage__find(slots, cap, u->slots[i].sid) = u->slots[i];
            }
        }
        mem_free(u->slots);
        u->slots = slots;
        u->cap = cap;
    }
    struct host_usage_slot *e = usage__find(u->slots, u->cap, sid);
    e->sid = sid;
    u->n++;
    return e;
}

static uint64_t usage__now_ms(void)
{
    return uv_hrtime() / 1000000;
}

/* Count s's memory from its last measure to now, at that measure. */
static void usage__memory_to_now(struct host_ship *s, uint64_t now_ms)
{
    if (s->mem_ms != 0 && now_ms > s->mem_ms && s->mem_bytes > 0) {
        struct host_usage_slot *e = usage__slot(s->host, s->core.sid);
        if (e != NULL) {
            e->memory_byte_ms += s->mem_bytes * (now_ms - s->mem_ms);
        }
    }
    s->mem_ms = now_ms;
}

/* Count the CPU time s's program used since it was last read. */
static void usage__cpu(struct host_ship *s, struct proc *p, uint64_t now_ms)
{
    uint64_t us;
    if (p == NULL || proc_cpu(p, &us) != 0) {
        return;
    }
    s->cpu_ms = now_ms;
    if (us > s->cpu_seen_us) {
        struct host_usage_slot *e = usage__slot(s->host, s->core.sid);
        if (e != NULL) {
            e->cpu_us += us - s->cpu_seen_us;
        }
        host_quota_cpu(s->host, s->account, us - s->cpu_seen_us);
        s->cpu_seen_us = us;
    }
}

void host_usage_woke(struct host_ship *s)
{
    if (s->host->usage.off) {
        return;
    }
    struct host_usage_slot *e = usage__slot(s->host, s->core.sid);
    if (e != NULL) {
        e->wakes++;
    }
    s->cpu_seen_us = 0;
    s->cpu_ms = s->mem_ms = usage__now_ms();
    s->mem_bytes = 0;
}

void host_usage_request(struct host *h, uint64_t sid)
{
    if (h->usage.off) {
        return;
    }
    struct host_usage_slot *e = usage__slot(h, sid);
    if (e != NULL) {
        e->requests++;
    }
}

void host_usage_measured(struct host_ship *s, uint64_t bytes)
{
    if (s->host->usage.off) {
        return;
    }
    uint64_t now = usage__now_ms();
    usage__memory_to_now(s, now);
    s->mem_bytes = bytes;
    struct host_usage_slot *e = usage__slot(s->host, s->core.sid);
    if (e != NULL && bytes > e->memory_peak_bytes) {
        e->memory_peak_bytes = bytes;
    }
    if (now - s->cpu_ms >= s->host->cfg.usage_interval_ms) {
        usage__cpu(s, s->proc, now);
    }
}

void host_usage_exited(struct host_ship *s, struct proc *p)
{
    if (s->host->usage.off) {
        return;
    }
    uint64_t now = usage__now_ms();
    usage__memory_to_now(s, now);
    usage__cpu(s, p, now);
    s->mem_bytes = 0;
    s->mem_ms = 0;
}

static void usage__proposed(void *arg, int status, int result)
{
    (void)arg;
    (void)status;
    (void)result;
}

/* Propose the items gathered so far (n of them) as one USAGE entry. */
static void usage__propose(struct host *h, struct record_usage_item *items,
                           size_t n)
{
    struct buf b;
    buf_init(&b);
    int rv = record_encode_usage(&b, items, n);
    if (rv == 0) {
        rv = host_propose_entry(h, &b, usage__proposed, NULL);
    }
    if (rv != 0) {
        host_log("warn", "usage not recorded", "ships",
                 n == 1 ? "1" : "several", "error", err_str(rv), NULL);
    } else {
        h->usage.proposed++;
    }
    buf_free(&b);
}

/* Every interval, on the leader: read the running programs' CPU, count
 * their memory to now, and propose what was gathered. A host that does
 * not lead forgets it: its programs were stopped when it stopped leading. */
static void usage__tick(uv_timer_t *t)
{
    struct host *h = t->data;
    struct host_usage *u = &h->usage;
    uint64_t now = usage__now_ms();
    for (struct fleet_ship *c = h->fleet.lru_head; c != NULL; c = c->lru_next) {
        struct host_ship *s = (struct host_ship *)c;
        if (s->proc != NULL) {
            usage__cpu(s, s->proc, now);
            usage__memory_to_now(s, now);
        }
    }
    if (u->n == 0) {
        return;
    }
    if (h->leading) {
        struct record_usage_item *items =
            mem_alloc(RECORD_USAGE_MAX * sizeof *items);
        size_t n = 0;
        for (size_t i = 0; items != NULL && i < u->cap; i++) {
            struct host_usage_slot *e = &u->slots[i];
            if (e->sid == 0) {
                continue;
            }
            items[n++] = (struct record_usage_item){
                .sid = e->sid,
                .cpu_us = e->cpu_us,
                .memory_peak_bytes = e->memory_peak_bytes,
                .memory_byte_seconds = e->memory_byte_ms / 1000,
                .wakes = e->wakes,
                .requests = e->requests,
            };
            if (n == RECORD_USAGE_MAX) {
                usage__propose(h, items, n);
                n = 0;
            }
        }
        if (n > 0) {
            usage__propose(h, items, n);
        }
        mem_free(items);
    }
    memset(u->slots, 0, u->cap * sizeof *u->slots);
    u->n = 0;
}

void host_usage_start(struct host *h)
{
    uv_timer_init(&h->loop, &h->usage.timer);
    h->usage.timer.data = h;
    if (h->usage.off) {
        return;
    }
    uv_timer_start(&h->usage.timer, usage__tick, h->cfg.usage_interval_ms,
                   h->cfg.usage_interval_ms);
}

void host_usage_stop(struct host *h)
{
    uv_timer_stop(&h->usage.timer);
    mem_free(h->usage.slots);
    h->usage.slots = NULL;
    h->usage.cap = h->usage.n = 0;
}

uint64_t host_usage_awake(struct host *h, uint64_t account)
{
    uint64_t n = 0;
    for (struct fleet_ship *c = h->fleet.lru_head; c != NULL; c = c->lru_next) {
        if (((struct host_ship *)c)->account == account) {
            n++;
        }
    }
    return n;
}

json_t *host_usage_json(const struct store_usage *u, bool account,
                        uint64_t ships_awake)
{
    json_t *o = json_object();
    if (account) {
        json_object_set_new(o, "ships", json_integer((json_int_t)u->ships));
        json_object_set_new(o, "ships_awake",
                            json_integer((json_int_t)ships_awake));
    }
    json_object_set_new(o, "storage_bytes",
                        json_integer((json_int_t)u->storage_bytes));
    json_object_set_new(o, "events", json_integer((json_int_t)u->events));
    json_object_set_new(o, "cpu_us", json_integer((json_int_t)u->cpu_us));
    json_object_set_new(o, "memory_peak_bytes",
                        json_integer((json_int_t)u->memory_peak_bytes));
    json_object_set_new(o, "memory_byte_seconds",
                        json_integer((json_int_t)u->memory_byte_seconds));
    json_object_set_new(o, "wakes", json_integer((json_int_t)u->wakes));
    json_object_set_new(o, "requests", json_integer((json_int_t)u->requests));
    return o;
}
