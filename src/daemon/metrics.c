/* GET /metrics: the host's figures in Prometheus's text exposition format
 * (version 0.0.4), on the admin listener with the admin API's tokens
 * (scope read).
 *
 * Every figure is this host's, read when the scrape comes: nothing is
 * kept for it. Counters count since the host started (Prometheus sees a
 * restart as a reset); latencies are histograms whose buckets are read
 * from lib/hist.h's log-linear buckets at fixed bounds, so that a value
 * counts in a bucket only when it is at most the bucket's bound (within
 * 1/16 of a bound it may count in the next). Accounts' usage is the
 * store's, the same on every host of a cluster; raft's lag per host is
 * known only on the leader, and each heartbeat's age on every host.
 * docs/metrics.md lists every metric. */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "consensus/log.h"
#include "core/ship.h"
#include "daemon/host.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "proc/proc.h"
#include "proc/tree.h"

/* The text being built, and whether an append failed. */
struct metrics__out {
    struct buf b;
    bool failed;
};

static void metrics__printf(struct metrics__out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void metrics__printf(struct metrics__out *o, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line) {
        o->failed = true;
        return;
    }
    if (buf_append(&o->b, line, (size_t)n) != 0) {
        o->failed = true;
    }
}

/* # HELP and # TYPE of a metric. */
static void metrics__head(struct metrics__out *o, const char *name,
                          const char *type, const char *help)
{
    metrics__printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A metric with one sample and no labels. */
static void metrics__one(struct metrics__out *o, const char *name,
                         const char *type, const char *help, double v)
{
    metrics__head(o, name, type, help);
    metrics__printf(o, "%s %.17g\n", name, v);
}

/* Write s as a label value: backslash, double quote and newline escaped,
 * into out (size n, cut if need be). */
static void metrics__label(char *out, size_t n, const char *s)
{
    size_t k = 0;
    for (; *s != '\0' && k + 3 < n; s++) {
        if (*s == '\\' || *s == '"') {
            out[k++] = '\\';
            out[k++] = *s;
        } else if (*s == '\n') {
            out[k++] = '\\';
            out[k++] = 'n';
        } else {
            out[k++] = *s;
        }
    }
    out[k] = '\0';
}

/* The bounds of the latency histograms, in seconds: half a millisecond to
 * ten seconds, as wakes, thaws and commits spread over that. */
static const double metrics__bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                         0.025,  0.05,  0.1,    0.25,  0.5,
                                         1,      2.5,   5,      10};

/* A histogram of nanoseconds, in seconds. */
static void metrics__hist(struct metrics__out *o, const char *name,
                          const char *help, const struct hist *hs)
{
    metrics__head(o, name, "histogram", help);
    for (size_t i = 0; i < sizeof metrics__bounds / sizeof metrics__bounds[0];
         i++) {
        uint64_t ns = (uint64_t)(metrics__bounds[i] * 1e9 + 0.5);
        metrics__printf(o, "%s_bucket{le=\"%g\"} %llu\n", name,
                        metrics__bounds[i],
                        (unsigned long long)hist_count_at_most(hs, ns));
    }
    metrics__printf(o, "%s_bucket{le=\"+Inf\"} %llu\n", name,
                    (unsigned long long)hs->count);
    metrics__printf(o, "%s_sum %.9f\n", name, hs->sum / 1e9);
    metrics__printf(o, "%s_count %llu\n", name, (unsigned long long)hs->count);
}

/* --- Accounts. --- */

struct metrics__account {
    uint64_t id;
    char name[STORE_NAME_MAX * 2 + 1]; /* escaped */
    struct store_usage usage;
    uint64_t awake;
};

struct metrics__accounts {
    struct metrics__account *a;
    size_t n, cap;
    int rv;
};

static int metrics__account_add(const struct store_account *acc, void *arg)
{
    struct metrics__accounts *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct metrics__account *a = mem_realloc(l->a, cap * sizeof *a);
        if (a == NULL) {
            return BERTH_ENOMEM;
        }
        l->a = a;
        l->cap = cap;
    }
    struct metrics__account *m = &l->a[l->n++];
    m->id = acc->id;
    metrics__label(m->name, sizeof m->name, acc->name);
    m->usage = acc->usage;
    m->awake = 0;
    return 0;
}

static int metrics__account_cmp(const void *k, const void *e)
{
    uint64_t id = *(const uint64_t *)k;
    const struct metrics__account *a = e;
    return id < a->id ? -1 : id > a->id;
}

static void metrics__accounts(struct metrics__out *o, struct host *h)
{
    struct metrics__accounts l = {0};
    int rv = store_account_foreach(h->store, metrics__account_add, &l);
    if (rv != 0) {
        /* Say that a part is missing rather than serve a partial truth. */
        o->failed = true;
        mem_free(l.a);
        return;
    }
    /* The walk is in id order: each running program finds its account by
     * bisection, in one pass over the programs. */
    for (struct fleet_ship *c = h->fleet.lru_head; c != NULL; c = c->lru_next) {
        uint64_t id = ((struct host_ship *)c)->account;
        struct metrics__account *a =
            bsearch(&id, l.a, l.n, sizeof *l.a, metrics__account_cmp);
        if (a != NULL) {
            a->awake++;
        }
    }
    static const struct {
        const char *name, *type, *help;
    } m[] = {
        {"berth_account_ships", "gauge", "Ships of the account."},
        {"berth_account_programs_running", "gauge",
         "Programs of the account's ships running on this host."},
        {"berth_account_storage_bytes", "gauge",
         "Storage the account's ships take, as recorded."},
        {"berth_account_events_total", "counter",
         "Events the account's ships committed."},
        {"berth_account_cpu_seconds_total", "counter",
         "CPU time the account's programs used, as recorded."},
        {"berth_account_memory_peak_bytes", "gauge",
         "The largest memory one of the account's programs held."},
        {"berth_account_memory_byte_seconds_total", "counter",
         "Memory the account's programs held, over time."},
        {"berth_account_wakes_total", "counter",
         "Wakes of the account's ships, as recorded."},
        {"berth_account_requests_total", "counter",
         "Requests to the account's ships, as recorded."},
    };
    for (size_t k = 0; k < sizeof m / sizeof m[0]; k++) {
        metrics__head(o, m[k].name, m[k].type, m[k].help);
        for (size_t i = 0; i < l.n; i++) {
            const struct store_usage *u = &l.a[i].usage;
            double v = k == 0   ? (double)u->ships
                       : k == 1 ? (double)l.a[i].awake
                       : k == 2 ? (double)u->storage_bytes
                       : k == 3 ? (double)u->events
                       : k == 4 ? u->cpu_us / 1e6
                       : k == 5 ? (double)u->memory_peak_bytes
                       : k == 6 ? (double)u->memory_byte_seconds
                       : k == 7 ? (double)u->wakes
                                : (double)u->requests;
            metrics__printf(o, "%s{account=\"%s\"} %.17g\n", m[k].name,
                            l.a[i].name, v);
        }
    }
    mem_free(l.a);
}

/* --- The cluster: raft and heartbeats. --- */

/* Whether host id is in the cluster's configuration. */
static bool metrics__member(struct host *h, uint64_t id)
{
    uint64_t m, match;
    for (unsigned i = 0; log_match(h->log, i, &m, &match) != BERTH_ENOTFOUND;
         i++) {
        if (m == id) {
            return true;
        }
    }
    return false;
}

static void metrics__cluster(struct metrics__out *o, struct host *h)
{
    uint64_t self = log_id(h->log);
    metrics__head(o, "berth_host_info", "gauge",
                  "This host: its raft id and what freezes its programs.");
    metrics__printf(o, "berth_host_info{host=\"%llu\",freezer=\"%s\"} 1\n",
                    (unsigned long long)self, proc_freezer_name());
    metrics__one(o, "berth_leader", "gauge",
                 "1 when this host leads the cluster, else 0.", h->leading);
    metrics__one(o, "berth_raft_leader_id", "gauge",
                 "The raft id of the host this one knows to lead; 0: none.",
                 (double)log_leader(h->log));
    metrics__one(o, "berth_raft_term", "gauge", "The raft term.",
                 (double)log_term(h->log));
    metrics__one(o, "berth_raft_last_index", "gauge",
                 "The index of the last entry in this host's log.",
                 (double)log_last_index(h->log));
    metrics__one(o, "berth_raft_applied_index", "gauge",
                 "The index of the last entry this host applied.",
                 (double)log_applied_index(h->log));
    metrics__one(o, "berth_proposals_in_flight", "gauge",
                 "Entries this host proposed that are not applied yet.",
                 log_pending(h->log));
    metrics__one(o, "berth_cluster_hosts", "gauge",
                 "Hosts in the cluster's configuration.", log_hosts(h->log));
    /* Lag: the leader's own last index against each host's match index. */
    metrics__head(o, "berth_raft_lag_entries", "gauge",
                  "Entries the host is behind the leader's log, as the "
                  "leader knows (on the leader only).");
    uint64_t last = log_last_index(h->log), id, match;
    int rv;
    for (unsigned i = 0;
         (rv = log_match(h->log, i, &id, &match)) != BERTH_ENOTFOUND; i++) {
        if (rv == 0) {
            metrics__printf(
                o, "berth_raft_lag_entries{host=\"%llu\"} %llu\n",
                (unsigned long long)id,
                (unsigned long long)(last > match ? last - match : 0));
        }
    }
    metrics__head(o, "berth_heartbeat_age_seconds", "gauge",
                  "How long ago the host's last heartbeat came (0 for "
                  "this host); absent for a host not heard from since "
                  "this one started.");
    uint64_t now = uv_now(&h->loop);
    metrics__printf(o, "berth_heartbeat_age_seconds{host=\"%llu\"} 0\n",
                    (unsigned long long)self);
    for (unsigned i = 0; i < h->beats.n; i++) {
        const struct host_beat *b = &h->beats.beat[i];
        if (b->id == self || !metrics__member(h, b->id)) {
            continue; /* a host removed since */
        }
        uint64_t age = now > b->received_ms ? now - b->received_ms : 0;
        metrics__printf(o, "berth_heartbeat_age_seconds{host=\"%llu\"} %.3f\n",
                        (unsigned long long)b->id, age / 1e3);
    }
    metrics__one(o, "berth_heartbeats_received_total", "counter",
                 "Heartbeats this host received from others.",
                 (double)h->beats.received);
}

void host_metrics_handle(struct host *h, struct http_request *req)
{
    struct metrics__out out = {0};
    struct metrics__out *o = &out;
    buf_init(&o->b);

    metrics__head(o, "berth_ships", "gauge", "Ships, by tier.");
    uint32_t total = registry_count(&h->reg), others = 0;
    for (int i = 0; i < SHIP__STATE_COUNT; i++) {
        if (i != SHIP_REMOVED && i != SHIP_ASLEEP) {
            others += h->fleet.tiers[i];
            metrics__printf(o, "berth_ships{tier=\"%s\"} %u\n",
                            ship_state_name((enum ship_state)i),
                            h->fleet.tiers[i]);
        }
    }
    metrics__printf(o, "berth_ships{tier=\"asleep\"} %u\n",
                    total > others ? total - others : 0);
    metrics__one(o, "berth_wake_queue", "gauge", "Wakes waiting for room.",
                 h->fleet.n_wake_queue);
    metrics__one(o, "berth_programs_running", "gauge",
                 "Programs running (awake or frozen ships).", h->fleet.n_procs);
    metrics__one(o, "berth_programs_memory_bytes", "gauge",
                 "The running programs' memory, as last measured.",
                 (double)h->fleet.awake_memory);
    metrics__one(o, "berth_wakes_total", "counter",
                 "Ships woken: a program started from a snapshot.",
                 (double)h->fleet.wakes);
    metrics__one(o, "berth_thaws_total", "counter", "Frozen ships thawed.",
                 (double)h->fleet.thaws);
    metrics__one(o, "berth_evictions_total", "counter",
                 "Idle ships put to sleep to make room.",
                 (double)h->fleet.evictions);
    metrics__one(o, "berth_alarms_fired_total", "counter", "Alarms fired.",
                 (double)h->fleet.alarms_fired);
    metrics__one(o, "berth_events_committed_total", "counter",
                 "Events committed by this host's ships (rate(): events a "
                 "second).",
                 (double)h->events_committed);
    metrics__one(o, "berth_batches_committed_total", "counter",
                 "Group commits: log entries that carried events.",
                 (double)h->batches_committed);
    metrics__one(o, "berth_reuses_total", "counter",
                 "Requests answered from a kept reply.",
                 (double)h->fleet.reuse.hits);
    metrics__one(o, "berth_stderr_dropped_bytes_total", "counter",
                 "Programs' stderr not written to the host's log (over its "
                 "rate limit); the per-ship log keeps it all.",
                 (double)proc_stderr_dropped_total());
    metrics__hist(o, "berth_wake_seconds",
                  "Wake latency: a request to a sleeping ship, to its "
                  "answer.",
                  &h->fleet.wake_latency);
    metrics__hist(o, "berth_thaw_seconds",
                  "Thaw latency: a request to a frozen ship, to its answer.",
                  &h->fleet.thaw_latency);
    metrics__hist(o, "berth_event_queue_seconds",
                  "A logged event's wait for its ship's program.",
                  &h->fleet.queue_latency);
    metrics__hist(o, "berth_event_compute_seconds",
                  "A logged event's time in its program.",
                  &h->fleet.compute_latency);
    metrics__hist(o, "berth_commit_seconds",
                  "Commit latency: a logged event's wait, after its "
                  "program answered, until it is durable at its ack level "
                  "and its effects leave.",
                  &h->fleet.durable_latency);
    metrics__one(o, "berth_buffer_bytes", "gauge",
                 "Bytes held for requests and replies.",
                 (double)h->budget.held);
    metrics__one(o, "berth_connections", "gauge",
                 "Open front-door connections.",
                 http_server_connections(h->front));
    metrics__one(o, "berth_websockets", "gauge",
                 "WebSockets open at the front door.", (double)h->ws.open);
    metrics__one(o, "berth_websockets_opened_total", "counter",
                 "WebSockets opened (a program's 101).", (double)h->ws.opened);
    metrics__one(o, "berth_websocket_messages_in_total", "counter",
                 "WebSocket messages from clients, each an event.",
                 (double)h->ws.messages_in);
    metrics__one(o, "berth_websocket_messages_out_total", "counter",
                 "WebSocket messages written to clients (WS_SEND).",
                 (double)h->ws.messages_out);
    metrics__one(o, "berth_websocket_sends_dropped_total", "counter",
                 "WS_SEND and WS_CLOSE effects to no open WebSocket of "
                 "their ship.",
                 (double)h->ws.dropped);
    metrics__one(o, "berth_websockets_refused_total", "counter",
                 "WebSocket upgrades refused over a limit (429).",
                 (double)h->ws.refused);
    metrics__one(o, "berth_process_resident_memory_bytes", "gauge",
                 "The host process's resident memory.",
                 (double)tree_self_rss());
    metrics__one(o, "berth_process_open_fds", "gauge",
                 "Descriptors open in the host process.",
                 (double)tree_self_fds());
    metrics__one(o, "berth_process_max_fds", "gauge",
                 "The host process's descriptor limit.", h->fd_limit);
    struct rusage ru;
    double cpu = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
              ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    }
    metrics__one(o, "berth_process_cpu_seconds_total", "counter",
                 "CPU time of the host process (programs not included).", cpu);
    metrics__one(o, "berth_uptime_seconds", "gauge",
                 "Time since the host started.",
                 (uv_hrtime() - h->started_ns) / 1e9);
    metrics__cluster(o, h);
    metrics__accounts(o, h);
    if (o->failed) {
        buf_free(&o->b);
        host_reply_error(req, 503, "unavailable",
                         "cannot gather the metrics now");
        return;
    }
    http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", o->b.data,
               o->b.len, NULL);
    buf_free(&o->b);
}
