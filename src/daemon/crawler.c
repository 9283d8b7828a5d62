/* The crawler: a walk of the store that recomputes each ship's and each
 * account's storage and ship count from what the store holds, and corrects
 * what the figures recorded as entries applied drifted from (docs/store.md,
 * "The crawler"; the walk itself is the store's, store_crawl_step).
 *
 * It runs on the loop, in steps of a few ships between everything else,
 * never inside a wake or an apply: each step stops after CRAWLER__BUDGET_NS
 * of CPU time, and the next one waits so that the walk takes at most
 * --crawl-share percent of one CPU. A whole pass then rests --crawl-rest
 * before the next. The cursor is kept in the store's meta table, so a pass
 * cut short by a stop resumes where it was (checking ships only: the
 * accounts' sums need a pass from the first ship). Each host walks its own
 * store: a correction is a fact about this host's copy. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "daemon/host.h"
#include "lib/err.h"
#include "store/store.h"

/* Ships a step walks at most, and its CPU time at most. */
#define CRAWLER__SHIPS 256
#define CRAWLER__BUDGET_NS 1000000u
#define CRAWLER__CURSOR "crawl_cursor"
/* Steps between two writes of the cursor. */
#define CRAWLER__SAVE_EVERY 32

static uint64_t crawler__cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The pause after a step of busy_ns for the walk to take share percent:
 * busy / (busy + pause) = share / 100, in whole ms (libuv's timers), and
 * at least 1 ms even at 100%: a timer due at once would run again before
 * the loop looked at anything else. */
static uint64_t crawler__pause_ms(uint64_t busy_ns, unsigned share)
{
    if (share >= 100) {
        return 1;
    }
    uint64_t pause_ns = busy_ns * (100 - share) / share;
    uint64_t ms = (pause_ns + 999999) / 1000000;
    return ms > 0 ? ms : 1;
}

static void crawler__tick(uv_timer_t *t);

/* What a whole pass found: each account's figures kept, drift logged. */
static void crawler__report(struct host *h, const struct store_crawl_report *r)
{
    struct host_crawler *c = &h->crawler;
    uint64_t now = host_now_ns();
    char a[24], d[64];
    c->ships_fixed += r->ships_fixed;
    if (r->ships_fixed > 0) {
        snprintf(a, sizeof a, "%llu", (unsigned long long)r->ships_fixed);
        snprintf(d, sizeof d, "%lld", (long long)r->bytes_fixed);
        host_log("warn", "crawler: ships' recorded storage corrected", "ships",
                 a, "bytes", d, NULL);
    }
    for (size_t i = 0; i < r->n_accounts; i++) {
        const struct store_crawl_account *x = &r->accounts[i];
        if (store_crawl_result_put(h->store, x, now) != 0) {
            host_log("warn", "crawler: cannot keep what it found", "error",
                     store_errmsg(h->store), NULL);
            break;
        }
        if (x->ships == x->recorded_ships &&
            x->storage_bytes == x->recorded_storage_bytes) {
            continue;
        }
        c->accounts_fixed++;
        char id[24], s1[48], s2[64];
        snprintf(id, sizeof id, "%llu", (unsigned long long)x->account);
        snprintf(s1, sizeof s1, "%llu, recorded %llu",
                 (unsigned long long)x->ships,
                 (unsigned long long)x->recorded_ships);
        snprintf(s2, sizeof s2, "%llu, recorded %llu",
                 (unsigned long long)x->storage_bytes,
                 (unsigned long long)x->recorded_storage_bytes);
        host_log("warn", "crawler: an account's recorded usage corrected",
                 "account", id, "ships", s1, "storage_bytes", s2, NULL);
    }
}

/* One step; the next is scheduled by the pace, or after the rest. */
static void crawler__tick(uv_timer_t *t)
{
    struct host *h = t->data;
    struct host_crawler *c = &h->crawler;
    bool done;
    uint64_t start = crawler__cpu_ns();
    if (!c->walking) {
        store_crawl_begin(h->store, c->cursor);
        c->walking = true;
        c->pass_cpu_ns = 0;
        c->pass_start_ns = uv_now(&h->loop);
    }
    unsigned walked = 0;
    int rv = store_crawl_step(h->store, CRAWLER__SHIPS, CRAWLER__BUDGET_NS,
                              &c->cursor, &walked, &done);
    c->ships_walked += walked;
    if (rv == 0 && done) {
        struct store_crawl_report r;
        rv = store_crawl_finish(h->store, &r);
        if (rv == 0) {
            crawler__report(h, &r);
        }
        c->walking = false;
        c->cursor = 0;
        c->passes += r.accounts_checked;
        c->last_pass_ships = r.ships_walked;
    }
    if (rv == 0 && (done || ++c->ticks_unsaved >= CRAWLER__SAVE_EVERY)) {
        c->ticks_unsaved = 0;
        rv = store_meta_put(h->store, CRAWLER__CURSOR, c->cursor);
        if (rv == 0 && done) {
            rv = store_flush(h->store);
        }
    }
    uint64_t busy = crawler__cpu_ns() - start;
    c->cpu_ns += busy;
    c->pass_cpu_ns += busy;
    if (rv != 0) {
        /* The store's own errors stop the host where they matter (an
         * apply); here the pass starts over after a rest. */
        host_log("warn", "crawler: a step failed; the pass starts again",
                 "error", store_errmsg(h->store), NULL);
        c->walking = false;
        c->cursor = 0;
        uv_timer_start(t, crawler__tick, h->cfg.crawl_rest_ms, 0);
        return;
    }
    if (done) {
        c->last_pass_ms = uv_now(&h->loop) - c->pass_start_ns;
        c->last_pass_cpu_ns = c->pass_cpu_ns;
        uv_timer_start(t, crawler__tick, h->cfg.crawl_rest_ms, 0);
        return;
    }
    uv_timer_start(t, crawler__tick,
                   crawler__pause_ms(busy, h->cfg.crawl_share), 0);
}

void host_crawler_start(struct host *h)
{
    struct host_crawler *c = &h->crawler;
    memset(c, 0, sizeof *c);
    uv_timer_init(&h->loop, &c->timer);
    c->timer.data = h;
    if (h->cfg.crawl_share == 0) {
        return;
    }
    if (store_meta_get(h->store, CRAWLER__CURSOR, &c->cursor) != 0) {
        c->cursor = 0;
    }
    /* A first pass soon after the start, behind the start's own work: a
     * second from now, not from the loop's time before the start, which
     * may be seconds old (a slow election, a long replay). */
    uv_update_time(&h->loop);
    uv_timer_start(&c->timer, crawler__tick, 1000, 0);
}

void host_crawler_reset(struct host *h)
{
    h->crawler.walking = false;
    h->crawler.cursor = 0;
}

void host_crawler_stop(struct host *h)
{
    struct host_crawler *c = &h->crawler;
    uv_timer_stop(&c->timer);
    if (c->walking && h->cfg.crawl_share != 0) {
        store_meta_put(h->store, CRAWLER__CURSOR, c->cursor);
    }
}
