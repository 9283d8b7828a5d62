#include "daemon/host.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <dirent.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "consensus/fsm.h"
#include "consensus/log.h"
#include "crypto/keywrap.h"
#include "crypto/secretfile.h"
#include "core/export.h"
#include "core/record.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/mem.h"
#include "proc/harden.h"
#include "lib/notify.h"
#include "proc/launcher.h"
#include "proc/proc.h"
#include "proc/tree.h"
#include "store/apply.h"
#include "store/shipcopy.h"
#include "http/tls.h"
#include "daemon/rejoin.h"
#include "daemon/repair.h"
#include "daemon/replay.h"

void host_config_defaults(struct host_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    const char *env = getenv("BERTH_DATA");
    cfg->data_dir = env && *env ? env : "berth-data";
    cfg->listen = "127.0.0.1:8080";
    cfg->admin = NULL;
    cfg->max_body = 8u * 1024 * 1024;
    cfg->idle_timeout_ms = 60000;
    cfg->acks = GATE_ACKS_QUORUM;
    cfg->usage_interval_ms = 60000;
    cfg->crawl_share = 5;
    cfg->crawl_rest_ms = 60000;
    cfg->freeze_timeout_ms = 10000;
    cfg->event_timeout_ms = 10000;
    cfg->event_cpu_ms = 5000;
    /* Room for any sample program many times over, and far below a
     * machine: one program cannot take the host with it. */
    cfg->caps.memory_bytes = 512ULL << 20;
    cfg->caps.cpu_millis = 1000;
    cfg->caps.pids = 256;
    cfg->snapshot_every = 1000;
    cfg->max_queue = 1024;
    cfg->max_frame = FRAME_MAX_DEFAULT;
    /* Room for raft's next segments (8 MiB each) and the store's WAL. */
    cfg->reserve_bytes = 64u * 1024 * 1024;
    cfg->max_buffer_bytes = 256u * 1024 * 1024;
    cfg->header_timeout_ms = 10000;
    cfg->body_timeout_ms = 20000;
    cfg->min_rate = 4096;
    /* Four times the bench's 256 clients from one address; a host behind a
     * proxy on the same machine sees one address and wants 0. */
    cfg->max_conns_per_addr = 1024;
    cfg->max_idle_conns = 1024;
    cfg->ws_max_message = 1024 * 1024;
    cfg->ws_per_ship = 1024;
    cfg->ws_per_account = 16384;
    cfg->ws_inflight = 8;
    cfg->ws_ping_ms = 30000;
    cfg->log_level = LOGLEVEL_INFO;
    cfg->ship_log_bytes = 64u * 1024;
}

bool host_disk_ok(struct host *h)
{
    uint64_t now = uv_now(&h->loop);
    if (h->disk_checked_ms != 0 && now - h->disk_checked_ms < 100) {
        return h->disk_ok;
    }
    struct statvfs st;
    h->disk_checked_ms = now ? now : 1;
    if (statvfs(h->cfg.data_dir, &st) != 0) {
        h->disk_ok = true; /* cannot tell: let the log decide */
        return true;
    }
    /* A reserve of 0 turns the guard off: the log meets the full disk and
     * the host stops (crash-only). */
    bool ok = h->cfg.reserve_bytes == 0 ||
              (uint64_t)st.f_bavail * st.f_frsize > h->cfg.reserve_bytes;
    if (ok != h->disk_ok) {
        host_log(ok ? "info" : "warn",
                 ok ? "disk has room again; accepting writes"
                    : "disk nearly full; refusing writes",
                 "data", h->cfg.data_dir, NULL);
    }
    h->disk_ok = ok;
    return ok;
}

bool host_log_enabled(const char *level)
{
    int l = loglevel_of(level);
    /* An unknown level is written: a line is never lost to a typo. */
    return l < 0 || loglevel_enabled(l);
}

void host_log(const char *level, const char *msg, ...)
{
    if (!host_log_enabled(level)) {
        return;
    }
    struct timespec ts;
    struct tm tm;
    char when[32];
    char line[4096];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    /* One write per line, so lines from concurrent writers never mix and a
     * line costs one system call. */
    size_t n = (size_t)snprintf(line, sizeof line,
                                "time=%s.%03ldZ level=%s msg=\"%s\"", when,
                                ts.tv_nsec / 1000000, level, msg);
    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (k == NULL || n >= sizeof line) {
            break;
        }
        const char *v = va_arg(ap, const char *);
        bool quote = v == NULL || *v == '\0' || strpbrk(v, " \"=") != NULL;
        n += (size_t)snprintf(line + n, sizeof line - n,
                              quote ? " %s=\"%s\"" : " %s=%s", k, v ? v : "");
    }
    va_end(ap);
    if (n >= sizeof line - 1) {
        n = sizeof line - 2;
    }
    line[n++] = '\n';
    ssize_t w = write(2, line, n);
    (void)w; /* nowhere to report a failed log write */
}

uint64_t host_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Fatal log errors end the process at once: crash-only. The store and the
 * log on disk are what a restart recovers from. */
static void host__fatal(void *arg, const char *message)
{
    host_log("fatal", "log failed; exiting so that a restart recovers", "error",
             message, NULL);
    _exit(70);
}

/* A SHIP_BLOCK entry applied: the registry's flag follows, at once. */
static void host__blocked(struct host *h, const uint8_t *entry, size_t len)
{
    uint64_t sid;
    bool blocked;
    if (record_decode_ship_block(entry, len, &sid, &blocked) != 0) {
        return;
    }
    uint32_t slot = registry_seek(&h->reg, sid - 1);
    if (slot >= h->reg.n_slots || registry_get(&h->reg, slot)->sid != sid) {
        return;
    }
    struct registry_ship *e = registry_get(&h->reg, slot);
    e->flags =
        blocked ? e->flags | REGISTRY_BLOCKED : e->flags & ~REGISTRY_BLOCKED;
    char id[REGISTRY_ID_LEN + 1];
    registry_id(&h->reg, slot, id);
    host_log("info", blocked ? "ship blocked" : "ship unblocked", "ship", id,
             NULL);
    if (blocked) {
        host_ws_close_ship(h, sid, 1008, "the ship is blocked");
    }
    /* A program that has the network loses it: killed, it wakes on its
     * next message without it (ship.c gives a blocked ship none). */
    struct host_ship *hs = e->live;
    if (blocked && hs != NULL && hs->network && hs->proc != NULL &&
        h->leading) {
        fleet_ship_kill(&hs->core, NULL);
    }
}

/* Keep the registry in step with the store for what a host learns only by
 * applying: new ships, and removals. Before the host is ready there is no
 * registry yet; it is loaded whole once the log has caught up. */
static int host__apply_registry(struct host *h, uint64_t index,
                                const uint8_t *entry, size_t len)
{
    uint8_t type;
    if (!h->ready || record_entry_type(entry, len, &type) != 0) {
        return 0;
    }
    if (type == RECORD_ENTRY_EVENTS && !h->leading && index > h->loaded_index) {
        /* Events this host did not run may have set alarms: reload them
         * when it comes to lead. */
        h->alarms_stale = true;
    }
    if (type == RECORD_ENTRY_SHIP_BATCH || type == RECORD_ENTRY_SHIP_SEEDS ||
        type == RECORD_ENTRY_SHIP_NEW || type == RECORD_ENTRY_SHIP_IMPORT) {
        return host_registry_sync(h);
    }
    if (type == RECORD_ENTRY_SHIP_BLOCK) {
        host__blocked(h, entry, len);
    }
    if (h->registry_stale) {
        h->registry_stale = false;
        int rv = host_registry_sync(h);
        if (rv != 0) {
            return rv;
        }
    }
    if (h->removed_pending) {
        /* Give the ships' space back: their pages leave the store's file,
         * and the log's segments with their events leave the disk, at the
         * raft snapshot this asks for (which syncs the store first).
         * Only a committed store can give pages back: a failed flush
         * leaves the store behind the log, which is fatal. */
        h->removed_pending = false;
        int rv = store_flush(h->store);
        if (rv != 0) {
            return rv;
        }
        if (store_compact(h->store) != 0) {
            host_log("warn", "cannot give a removed ship's space back", "error",
                     store_errmsg(h->store), NULL);
        }
        log_compact(h->log);
    }
    host_mail_flush(h);
    return 0;
}

/* A committed entry removed a ship: it leaves the registry, or, when this
 * host works with it, the fleet lets it go once nothing is in flight.
 * Before the host is ready the registry is loaded whole later. */
static void host__removed(void *arg, uint64_t sid)
{
    struct host *h = arg;
    if (!h->ready) {
        return;
    }
    h->removed_pending = true;
    host_shiplog_remove(h, sid);
    uint32_t slot = registry_seek(&h->reg, sid - 1);
    if (slot >= h->reg.n_slots || registry_get(&h->reg, slot)->sid != sid) {
        return;
    }
    host_ws_close_ship(h, sid, 1001, "the ship was removed");
    struct fleet_ship *live = registry_get(&h->reg, slot)->live;
    if (live == NULL) {
        registry_remove(&h->reg, slot);
        alarms_set(&h->alarms, slot, 0);
    } else {
        fleet_ship_gone(live);
    }
}

/* A committed entry made ships (children): the registry learns of them
 * once it is applied. */
static void host__added(void *arg)
{
    struct host *h = arg;
    h->registry_stale = h->ready;
}

/* A committed entry gave a ship mail. */
static void host__mailed(void *arg, uint64_t target)
{
    host_mail_due(arg, target);
}

/* A committed entry's records for a ship did not fit what the store holds
 * of it: the ship is damaged, the others go on. */
static void host__damaged(void *arg, uint64_t sid, uint64_t number,
                          const char *why)
{
    struct host *h = arg;
    char detail[200];
    snprintf(detail, sizeof detail, "event %llu: %s",
             (unsigned long long)number, why);
    uint32_t slot = registry_seek(&h->reg, sid - 1);
    if (slot < h->reg.n_slots && registry_get(&h->reg, slot)->sid == sid) {
        host_ship_mark_corrupt(h, slot, detail);
    } else {
        /* Before the registry is loaded: the ship's next wake finds the
         * damage again, in its hash chain. */
        char s[32];
        snprintf(s, sizeof s, "%llu", (unsigned long long)sid);
        host_log("error", "ship's stored data failed its checks", "sid", s,
                 "error", detail, NULL);
    }
}

static void host__diverge_check(struct host *h, uint64_t index,
                                const uint8_t *entry, size_t len);

/* The fsm applied an entry to the store: the divergence watch and the
 * registry follow. */
static int host__key_rotated(struct host *h, uint64_t index,
                             const uint8_t *entry, size_t len);
static int host__load_data_keys(struct host *h, const uint8_t *master);

static int host__applied(void *arg, uint64_t index, const uint8_t *entry,
                         size_t len)
{
    struct host *h = arg;
    if (h->n_watch > 0) {
        host__diverge_check(h, index, entry, len);
    }
    uint8_t type = 0;
    if (record_entry_type(entry, len, &type) == 0 &&
        type == RECORD_ENTRY_KEY_ROTATE) {
        h->rotating = false;
        return host__key_rotated(h, index, entry, len);
    }
    if (type == RECORD_ENTRY_ACCOUNT) {
        host_accounts_applied(h, entry, len);
        return 0;
    }
    int rv = host__apply_registry(h, index, entry, len);
    if (rv != 0) {
        host_log("fatal", "cannot load new ships", "error", err_str(rv), NULL);
    }
    return rv;
}

/* Bring one registry entry in line with a store just replaced by a raft
 * snapshot: a ship the store no longer holds leaves (unless something on
 * this host still works with it, which then finds it gone), and, on the
 * leader, the others take the store's alarm (a follower arms none; it
 * loads them all when it comes to lead). */
static int host__restore_slot(struct host *h, uint32_t slot)
{
    struct registry_ship *r = registry_get(&h->reg, slot);
    uint64_t last, alarm;
    uint8_t hash[STORE_HASH_SIZE];
    if (r->flags & REGISTRY_REMOVED) {
        return 0;
    }
    int rv = store_ship_head_get(h->store, r->sid, &last, hash, &alarm);
    if (rv == BERTH_ENOTFOUND) {
        if (r->live == NULL) {
            registry_remove(&h->reg, slot);
        }
        return alarms_set(&h->alarms, slot, 0);
    }
    if (rv != 0 || !h->leading) {
        return rv;
    }
    return alarms_set(&h->alarms, slot,
                      host_ship_disabled(h, slot) ? 0 : alarm);
}

/* A raft snapshot replaced the store: what the host keeps of it in memory
 * is loaded again. Before the host is ready there is nothing loaded yet. */
static int host__restored(void *arg, uint64_t index)
{
    struct host *h = arg;
    char n[32];
    snprintf(n, sizeof n, "%llu", (unsigned long long)index);
    host_log("info", "store replaced by a raft snapshot", "applied_index", n,
             NULL);
    /* A pass's sums were of the store replaced: start again. */
    host_crawler_reset(h);
    /* The store's data keys are the cluster's now (a key rotation may have
     * come in the snapshot). */
    h->start_applied = index;
    if (host__load_data_keys(h, h->master_key) != 0) {
        host_log("error",
                 "the data keys of the store do not open with this host's "
                 "master key: what is sealed under them does not open here",
                 NULL);
    }
    if (!h->leading) {
        h->alarms_stale = true;
    }
    if (host_accounts_load(h) != 0) {
        host_log("error", "cannot count the disabled accounts", "error",
                 store_errmsg(h->store), NULL);
    }
    /* Entries up to index came whole, not one by one: whether a watched
     * one survived cannot be told. */
    for (unsigned i = 0; i < h->n_watch;) {
        if (h->watch[i].index <= index) {
            h->diverge_unknown++;
            h->watch[i] = h->watch[--h->n_watch];
        } else {
            i++;
        }
    }
    if (!h->ready) {
        return 0;
    }
    int rv = 0;
    for (uint32_t slot = 0; slot < h->reg.n_slots && rv == 0; slot++) {
        rv = host__restore_slot(h, slot);
    }
    if (rv == 0) {
        rv = host_registry_sync(h);
    }
    if (rv != 0) {
        host_log("fatal", "cannot reload ships after a raft snapshot", "error",
                 rv == BERTH_ENOMEM ? "out of memory" : store_errmsg(h->store),
                 NULL);
    }
    return rv;
}

static int host__load_ship(const struct store_ship_brief *b, void *arg)
{
    struct host *h = arg;
    uint32_t slot;
    int rv = registry_add(&h->reg, b->sid, b->id, b->name, b->program, &slot);
    if (rv == 0 && b->hidden) {
        registry_get(&h->reg, slot)->flags |= REGISTRY_HIDDEN;
    }
    if (rv == 0 && b->blocked) {
        registry_get(&h->reg, slot)->flags |= REGISTRY_BLOCKED;
    }
    /* A disabled account's alarms wait in the store until it is enabled
     * (daemon/accounts.c). */
    if (rv == 0 && b->alarm_ns != 0 && !host_account_disabled(h, b->account)) {
        rv = alarms_set(&h->alarms, slot, b->alarm_ns);
    }
    return rv;
}

int host_registry_sync(struct host *h)
{
    return store_ship_brief_foreach(h->store, registry_max_sid(&h->reg),
                                    host__load_ship, h);
}

/* --- The store's WAL, written back off the loop. ---
 *
 * A commit of the store does not sync its WAL, and SQLite's checkpoint
 * syncs it first, on the loop thread: after seconds of commits that wrote
 * tens of MB, 61 and 106 ms were seen. Writing it back on libuv's pool
 * leaves the checkpoint little to wait for: one host with 64 writers went
 * from a p99 of 55-80 ms to 34-46 (docs/performance.md). Every
 * HOST__WRITEBACK_MS while the store commits, so that each write-back is
 * small and raft's appends do not queue behind a large one on the disk;
 * every HOST__WRITEBACK_IDLE_MS otherwise. */
#define HOST__WRITEBACK_MS 10
#define HOST__WRITEBACK_IDLE_MS 100

static void host__writeback_work(uv_work_t *w)
{
    struct host *h = w->data;
    /* A failure here is SQLite's to meet at its own sync, which stops the
     * host with the reason; nothing is lost by not writing back. */
    (void)store_wal_writeback(h->store_path);
}

static void host__writeback_done(uv_work_t *w, int status)
{
    struct host *h = w->data;
    (void)status;
    h->writeback_busy = false;
}

static void host__repair_cb(uv_timer_t *t)
{
    struct host *h = t->data;
    if (h->fleet.n_damaged > 0) {
        repair_tick(h);
    }
    /* A follower learns its leader, and ships come and go, between
     * leadership changes: the service manager's STATUS follows. */
    host_service_status(h);
}

static void host__writeback_cb(uv_timer_t *t)
{
    struct host *h = t->data;
    uint64_t commits = fsm_stats(h->fsm).flushes;
    bool committing = commits != h->writeback_commits;
    h->writeback_commits = commits;
    uint64_t period = committing ? HOST__WRITEBACK_MS : HOST__WRITEBACK_IDLE_MS;
    if (uv_timer_get_repeat(t) != period) {
        uv_timer_start(t, host__writeback_cb, period, period);
    }
    if (!committing || h->writeback_busy) {
        return; /* the disk is slower than the period: skip one */
    }
    if (uv_queue_work(&h->loop, &h->writeback, host__writeback_work,
                      host__writeback_done) == 0) {
        h->writeback_busy = true;
    }
}

/* The descriptor table is grown up to this many slots at start (8 bytes
 * each and a few bits); beyond it, it grows on demand. */
#define HOST__FD_TABLE (1u << 17)

static void host__limits(struct host *h)
{
    /* Each running program holds descriptors: take what the system
     * allows. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
            getrlimit(RLIMIT_NOFILE, &rl);
        }
        h->fd_limit = rl.rlim_cur > 1u << 30 ? 1u << 30 : (unsigned)rl.rlim_cur;
    }
    /* Grow the descriptor table to its full size now. The kernel doubles it
     * as descriptors are opened, and in a process with threads (libuv's
     * pool) each growth waits for an RCU grace period: 10 to 40 ms seen here,
     * in the middle of whichever wake opened the 257th or 513th descriptor.
     * The table never shrinks, and costs about 9 bytes a slot. */
    unsigned top = h->fd_limit < HOST__FD_TABLE ? h->fd_limit : HOST__FD_TABLE;
    top = top > 0 ? top - 1 : 0;
    if (top > 0 && dup2(2, (int)top) == (int)top) {
        close((int)top);
    }
    /* The descriptors open now: the base that programs and connections
     * come on top of. */
    uint64_t fds = tree_self_fds();
    h->fd_base = fds > 0 ? (unsigned)fds : 64;
    /* Programs and connections share what is left. Each side has a floor
     * the other never takes: room for 256 programs, and for a thousand
     * connections (less on a small limit). */
    unsigned pool = h->fd_limit > h->fd_base + HOST_FD_RESERVE
                        ? h->fd_limit - h->fd_base - HOST_FD_RESERVE
                        : 0;
    h->fd_programs_floor = 256 * proc_fds_per_proc();
    if (h->fd_programs_floor > pool / 2) {
        h->fd_programs_floor = pool / 2;
    }
    h->fd_conns_floor = pool / 4 < 1024 ? pool / 4 : 1024;
    unsigned by_fds = (pool - h->fd_conns_floor) / proc_fds_per_proc();
    if (by_fds == 0) {
        by_fds = 1;
    }
    /* Processes are the other bound: leave half of the pids to the rest
     * of the system. */
    unsigned long pid_max = 0;
    FILE *f = fopen("/proc/sys/kernel/pid_max", "r");
    if (f != NULL) {
        if (fscanf(f, "%lu", &pid_max) != 1) {
            pid_max = 0;
        }
        fclose(f);
    }
    if (pid_max >= 4 && by_fds > pid_max / 2) {
        by_fds = (unsigned)(pid_max / 2);
    }
    h->max_awake = h->cfg.max_awake ? h->cfg.max_awake : by_fds;
    h->fleet.max_awake = h->max_awake;
}

/* The log is open: load every ship the store holds. From here on the
 * registry follows applied entries, on every host of the cluster. */
static int host__ready(struct host *h)
{
    int rv = store_meta_get(h->store, "applied_index", &h->loaded_index);
    if (rv == 0) {
        rv = host_registry_sync(h);
    }
    if (rv != 0) {
        host_log("fatal", "cannot load ships", "error",
                 rv == BERTH_ENOMEM ? "out of memory" : store_errmsg(h->store),
                 NULL);
        return rv;
    }
    host__limits(h);
    host_shiplog_start(h);
    h->ready = true;
    h->ready_ns = uv_hrtime() - h->started_ns;
    char n[32], ms[32], awake[32];
    snprintf(n, sizeof n, "%u", registry_count(&h->reg));
    snprintf(ms, sizeof ms, "%.1f", (double)h->ready_ns / 1e6);
    snprintf(awake, sizeof awake, "%u", h->max_awake);
    host_log("info", "host ready", "ships", n, "start_ms", ms, "max_awake",
             awake, "freezer", proc_freezer_name(), "caps", proc_caps_name(),
             "launcher", launcher_running() ? "yes" : "no", NULL);
    if (strcmp(proc_caps_name(), "none") == 0) {
        host_log("warn",
                 "caps not enforced: no cgroup hierarchy with the memory and "
                 "pids controllers that this host may write",
                 NULL);
    }
    return 0;
}

static int host__load_alarm(const struct store_ship_brief *b, void *arg)
{
    struct host *h = arg;
    uint32_t slot = registry_seek(&h->reg, b->sid - 1);
    if (slot < h->reg.n_slots && registry_get(&h->reg, slot)->sid == b->sid) {
        return alarms_set(&h->alarms, slot,
                          host_account_disabled(h, b->account) ? 0
                                                               : b->alarm_ns);
    }
    return 0;
}

/* Leading starts with every alarm as the store holds it (followers apply
 * events without arming anything) and ends with every program stopped:
 * only the leader runs ships and lets effects out. */
static void host__batches_step_down(struct host *h);

static void host__lead(void *arg, bool leading)
{
    struct host *h = arg;
    h->leading = leading;
    if (leading) {
        h->leads++;
        /* The registry's load read every alarm; only events applied
         * since, which no leader here ran, can have changed them. */
        if (host_registry_sync(h) != 0 ||
            (h->alarms_stale &&
             store_ship_brief_foreach(h->store, 0, host__load_alarm, h) != 0)) {
            host_log("fatal", "cannot load alarms", "error",
                     store_errmsg(h->store), NULL);
            _exit(70);
        }
        h->alarms_stale = false;
        host_alarms_start(h);
        host_log("info", "leading", NULL);
        host_service_status(h);
    } else {
        uv_timer_stop(&h->alarm_timer);
        host__batches_step_down(h);
        h->alarms_stale = true;
        host_ships_step_down(h);
        host_log("info", "no longer leading; ships stopped", NULL);
        host_service_status(h);
    }
}

static void host__note(void *arg, const char *level, const char *message,
                       const char *detail)
{
    (void)arg;
    host_log(level, message, detail ? "detail" : NULL, detail, NULL);
}

bool host_serving(const struct host *h)
{
    return h->ready && (h->leading || log_leader(h->log) != 0);
}

/* --- Group commit. ---
 *
 * Events computed in one loop iteration become one entry. Each event's
 * effects leave when its ship's ack level is met (core/gate.h): at commit
 * for quorum, the default; before it for lower levels, as the leader's
 * fsync and followers' acknowledgements arrive (log_held, polled once per
 * iteration from the log's progress callback); after it, for all, once
 * every voter holds it. Batches with any event not at quorum are kept on
 * h->batches until every event in them is answered. */

struct host__ref {
    struct host_ship *ship;
    uint64_t number;
    uint8_t acks;
    bool released; /* its effects left before commit */
    bool done;     /* host_ship_durable was called */
};

struct host__batch {
    struct host *host;
    struct host__ref *refs;
    unsigned n_refs;
    unsigned n_open; /* refs not done */
    uint64_t index;
    bool committed;
    bool tracked;  /* on h->batches */
    bool released; /* effects of some of its events left before commit */
    uint8_t hash[HOST_ENTRY_HASH];
    struct host__batch *prev, *next;
};

static void host__batch_unlink(struct host *h, struct host__batch *b)
{
    if (!b->tracked) {
        return;
    }
    if (b->prev != NULL) {
        b->prev->next = b->next;
    } else {
        h->batches = b->next;
    }
    if (b->next != NULL) {
        b->next->prev = b->prev;
    }
    b->tracked = false;
}

static void host__batch_free(struct host__batch *b)
{
    host__batch_unlink(b->host, b);
    mem_free(b->refs);
    mem_free(b);
}

static void host__ref_done(struct host__batch *b, struct host__ref *r,
                           int status)
{
    r->done = true;
    b->n_open--;
    host_ship_durable(r->ship, r->number, status);
}

/* Answer or release what the acks counted so far allow. */
static void host__batch_progress(struct host__batch *b)
{
    struct host *h = b->host;
    unsigned held = log_held(h->log, b->index);
    unsigned voters = log_voters(h->log);
    for (unsigned i = 0; i < b->n_refs; i++) {
        struct host__ref *r = &b->refs[i];
        if (r->done || (r->released && !b->committed) ||
            !gate_acks_met(r->acks, held, voters, b->committed)) {
            continue;
        }
        if (b->committed) {
            host__ref_done(b, r, 0);
        } else {
            r->released = true;
            b->released = true;
            h->released_early++;
            host_ship_held(r->ship, r->number);
        }
    }
}

/* Effects left before commit, and then the proposal failed: the entry may
 * still commit under the next leader, or be replaced. Its position and
 * hash are kept, and once this host applies that position (as leader or
 * follower) the two are compared: a different entry there means effects
 * left for events that no host kept. */
static void host__diverge_watch(struct host *h, const struct host__batch *b)
{
    if (h->n_watch == HOST_DIVERGE_WATCH) {
        h->diverge_unknown++;
        return;
    }
    h->watch[h->n_watch].index = b->index;
    memcpy(h->watch[h->n_watch].hash, b->hash, HOST_ENTRY_HASH);
    h->n_watch++;
}

static void host__diverge_check(struct host *h, uint64_t index,
                                const uint8_t *entry, size_t len)
{
    for (unsigned i = 0; i < h->n_watch;) {
        bool lost;
        if (h->watch[i].index == index) {
            uint8_t hash[HOST_ENTRY_HASH];
            crypto_generichash(hash, sizeof hash, entry, len, NULL, 0);
            lost = memcmp(hash, h->watch[i].hash, sizeof hash) != 0;
        } else if (h->watch[i].index < index) {
            /* Passed without being applied: another leader's entry that
             * is not a command (a barrier, a configuration) took it. */
            lost = true;
        } else {
            i++;
            continue;
        }
        if (lost) {
            h->diverge_lost++;
            char at[32];
            snprintf(at, sizeof at, "%llu",
                     (unsigned long long)h->watch[i].index);
            host_log("warn",
                     "effects left below quorum for events that a failover "
                     "lost",
                     "index", at, NULL);
        } else {
            h->diverge_survived++;
        }
        h->watch[i] = h->watch[--h->n_watch];
    }
}

static void host__batch_done(void *arg, int status, int result)
{
    struct host__batch *b = arg;
    struct host *h = b->host;
    (void)result;
    if (status == 0) {
        h->events_committed += b->n_refs;
        h->batches_committed++;
        b->committed = true;
        unsigned voters = log_voters(h->log);
        unsigned held = b->tracked ? log_held(h->log, b->index) : 0;
        for (unsigned i = 0; i < b->n_refs; i++) {
            struct host__ref *r = &b->refs[i];
            if (r->released || gate_acks_met(r->acks, held, voters, true)) {
                host__ref_done(b, r, 0);
            }
        }
    } else {
        if (b->released) {
            host__diverge_watch(h, b);
        }
        for (unsigned i = 0; i < b->n_refs; i++) {
            host__ref_done(b, &b->refs[i], status);
        }
    }
    if (b->n_open == 0) {
        host__batch_free(b);
    }
}

/* The log's progress callback: once per loop iteration on the leader. */
static void host__progress(void *arg)
{
    struct host *h = arg;
    struct host__batch *next;
    for (struct host__batch *b = h->batches; b != NULL; b = next) {
        next = b->next;
        host__batch_progress(b);
        if (b->n_open == 0) {
            host__batch_free(b);
        }
    }
}

/* This host stopped leading: what was committed but waits for more hosts
 * is not let out by a host that can no longer count them. */
static void host__batches_step_down(struct host *h)
{
    struct host__batch *next;
    for (struct host__batch *b = h->batches; b != NULL; b = next) {
        next = b->next;
        if (!b->committed) {
            continue; /* its proposal fails, or commits, on its own */
        }
        for (unsigned i = 0; i < b->n_refs; i++) {
            if (!b->refs[i].done) {
                host__ref_done(b, &b->refs[i], BERTH_ENOTLEADER);
            }
        }
        host__batch_free(b);
    }
}

static void host__flush(struct host *h)
{
    if (h->n_refs == 0) {
        return;
    }
    struct host__batch *b = mem_calloc(1, sizeof *b);
    if (b == NULL) {
        host_log("fatal", "out of memory proposing a batch", NULL);
        _exit(70);
    }
    b->host = h;
    b->refs = h->refs;
    b->n_refs = b->n_open = h->n_refs;
    bool track = false;
    for (unsigned i = 0; i < b->n_refs; i++) {
        uint8_t acks = b->refs[i].acks;
        track |= acks != GATE_ACKS_QUORUM && acks != GATE_ACKS_DEFAULT;
    }
    h->refs = NULL;
    h->n_refs = h->cap_refs = 0;
    if (track) {
        crypto_generichash(b->hash, sizeof b->hash, h->batch.data, h->batch.len,
                           NULL, 0);
    }
    int rv = log_propose(h->log, &h->batch, host__batch_done, b, &b->index);
    buf_free(&h->batch);
    if (rv != 0) {
        /* Only a closing or failed log refuses; fail the events like it. */
        host__batch_done(b, rv, 0);
        return;
    }
    if (track) {
        b->tracked = true;
        b->next = h->batches;
        if (h->batches != NULL) {
            h->batches->prev = b;
        }
        h->batches = b;
        /* Level 0 leaves now, before anything is written. */
        host__batch_progress(b);
    }
}

static void host__check_cb(uv_check_t *c)
{
    struct host *h = c->data;
    uv_check_stop(c);
    host__flush(h);
}

/* Most entries stay far below this; a bigger batch is flushed early so that
 * one entry never holds an unbounded amount of data. */
#define HOST__BATCH_MAX (4u * 1024 * 1024)

int host_propose_event(struct host *h, struct host_ship *s, uint64_t number,
                       const uint8_t *rec, size_t len, const uint8_t *fx,
                       size_t fx_len)
{
    int rv;
    if (h->n_refs == h->cap_refs) {
        unsigned cap = h->cap_refs ? h->cap_refs * 2 : 64;
        struct host__ref *refs = mem_realloc(h->refs, cap * sizeof *refs);
        if (refs == NULL) {
            return BERTH_ENOMEM;
        }
        h->refs = refs;
        h->cap_refs = cap;
    }
    if (h->batch.len == 0 && (rv = record_events_begin(&h->batch)) != 0) {
        return rv;
    }
    size_t mark = h->batch.len;
    uint32_t count = record_events_count(&h->batch);
    rv = record_events_add(&h->batch, rec, len);
    if (rv == 0 && fx_len > 0 &&
        (rv = record_events_add(&h->batch, fx, fx_len)) != 0) {
        record_events_cut(&h->batch, mark, count);
    }
    if (rv != 0) {
        return rv;
    }
    memset(&h->refs[h->n_refs], 0, sizeof h->refs[h->n_refs]);
    h->refs[h->n_refs].ship = s;
    h->refs[h->n_refs].number = number;
    h->refs[h->n_refs].acks = s->core.acks;
    h->n_refs++;
    if (h->batch.len >= HOST__BATCH_MAX) {
        host__flush(h);
    } else if (!uv_is_active((uv_handle_t *)&h->flush)) {
        uv_check_start(&h->flush, host__check_cb);
    }
    return 0;
}

int host_propose_entry(struct host *h, struct buf *entry,
                       void (*cb)(void *, int, int), void *arg)
{
    host__flush(h);
    return log_propose(h->log, entry, cb, arg, NULL);
}

/* --- Start and stop. --- */

static int host__mkdir(const char *dir)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "berth: cannot create data directory %s: %s\n", dir,
                strerror(errno));
        return -1;
    }
    return 0;
}

unsigned host_forward_wait_ms(const struct host *h)
{
    /* An election takes one to two election timeouts, and more on a busy
     * machine: 2.5 s (two and a half) was seen to fall short under the
     * sanitized tests. */
    return 5 * (h->cfg.election_ms ? h->cfg.election_ms : 1000);
}

static void host__drain_cb(uv_timer_t *t)
{
    struct host *h = t->data;
    if ((h->parked == NULL && h->forwards == 0) ||
        uv_now(&h->loop) >= h->drain_until) {
        uv_timer_stop(t);
        host__flush(h);
        uv_stop(&h->loop);
    }
}

/* The last step of a stop: what clients of open connections sent goes to
 * the leader (this host starts nothing, front.c), and the host exits once
 * it is answered, so that a stop costs no request a retry; it waits at
 * most a second longer than a request waits for a leader. */
static void host__drain(struct host *h)
{
    /* Alone, there is nobody to pass anything to. */
    h->drain_until =
        uv_now(&h->loop) +
        (log_hosts(h->log) > 1 ? host_forward_wait_ms(h) + 1000 : 0);
    uv_timer_start(&h->stop_timer, host__drain_cb, 0, 10);
}

static void host__stop_timer_cb(uv_timer_t *t)
{
    struct host *h = t->data;
    host_log("warn", "leadership hand-over took too long; stopping", NULL);
    host__drain(h);
}

static void host__handed_off(void *arg)
{
    struct host *h = arg;
    host_log("info", "leadership handed over", NULL);
    uv_timer_stop(&h->stop_timer);
    host__drain(h);
}

int host_tls_reload(struct host *h, char *errmsg)
{
    if (h->tls == NULL) {
        err_printf(errmsg, "this host serves no TLS (serve --tls-cert)");
        return BERTH_ENOTFOUND;
    }
    int rv = http_tls_reload(h->tls, errmsg);
    if (rv != 0) {
        host_log("warn", "TLS certificate not reloaded; the one before serves",
                 "why", errmsg, NULL);
        return rv;
    }
    char what[400];
    http_tls_describe(h->tls, what, sizeof what);
    host_log("info", "TLS certificate reloaded", "cert", what, NULL);
    return 0;
}

static void host__sighup_cb(uv_signal_t *sig, int signum)
{
    char errmsg[ERRMSG_SIZE];
    host_tls_reload(sig->data, errmsg);
}

static void host__signal_cb(uv_signal_t *sig, int signum)
{
    struct host *h = sig->data;
    if (h->stopping) {
        /* A second signal does not wait for a hand-off. */
        uv_stop(&h->loop);
        return;
    }
    h->stopping = true;
    host_ws_close_all(h, "the host is stopping");
    host_log("info", "stopping", "signal", signum == SIGINT ? "INT" : "TERM",
             NULL);
    host_service_stopping(h);
    /* New clients go to the other hosts (a refused connection costs them
     * no try); the open connections are served until the drain ends. */
    http_server_stop_listening(h->front);
    /* A leader first hands over to the most caught-up voter, so that the
     * cluster does not wait an election timeout to notice it is gone. */
    if (h->leading && log_handoff(h->log, host__handed_off, h) == 0) {
        host_log("info", "handing leadership over", NULL);
        /* libraft gives up on a transfer after an election timeout; this
         * is a backstop should its callback never come. */
        uv_timer_start(&h->stop_timer, host__stop_timer_cb, 5000, 0);
        return;
    }
    host__drain(h);
}

/* The front door's socket came from the service manager: say so, and
 * warn when it is not where --listen says, which peers are told is the
 * front door. */
static void host__check_passed(struct host *h, int passed)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    char port[16] = "?", want[16] = "?";
    if (getsockname(h->front_fd, (struct sockaddr *)&sa, &len) == 0) {
        int p = sa.ss_family == AF_INET6
                    ? ntohs(((struct sockaddr_in6 *)&sa)->sin6_port)
                    : ntohs(((struct sockaddr_in *)&sa)->sin_port);
        snprintf(port, sizeof port, "%d", p);
    }
    const char *colon = strrchr(h->cfg.listen, ':');
    snprintf(want, sizeof want, "%s", colon != NULL ? colon + 1 : "?");
    char n[16];
    snprintf(n, sizeof n, "%d", passed);
    host_log("info", "front door socket from the service manager", "port", port,
             "sockets", n, NULL);
    if (strcmp(port, want) != 0) {
        host_log("warn",
                 "the front door's socket is not on the port --listen names; "
                 "peers are told --listen",
                 "socket_port", port, "listen", h->cfg.listen, NULL);
    }
}

/* Admin connections at most, and idle ones at most: the CLI opens one
 * per command. */
#define HOST__ADMIN_CONNS 256
#define HOST__ADMIN_IDLE 64

static unsigned host__admin_max_conns(void *arg)
{
    return HOST__ADMIN_CONNS;
}

/* Name this host's programs and cgroups after its data directory, whose
 * device and inode no other directory has while it exists, and kill what
 * an earlier run of it left: a host killed with -9 cannot clean up, and
 * the lock taken just before says that run is over. */
static void host__claim_programs(const char *dir)
{
    struct stat st;
    char tag[64];
    char n[16];
    unsigned killed = 0;
    if (stat(dir, &st) != 0) {
        return; /* the lock file is in it: not expected */
    }
    snprintf(tag, sizeof tag, "%llx-%llx", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    int rv = proc_setup(tag, &killed);
    if (rv != 0) {
        host_log("warn", "cannot name this host's programs", "error",
                 err_str(rv), NULL);
        return;
    }
    if (killed > 0) {
        snprintf(n, sizeof n, "%u", killed);
        host_log("info", "killed processes an earlier run left", "processes", n,
                 NULL);
    }
}

/* The parts of hardening BERTH_HARDEN keeps, a list such as
 * "seccomp,rlimits" (or "none"): for the wake bench, which times each
 * part alone; unset, all of them. */
static unsigned host__harden_parts(void)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"seccomp", HARDEN_SECCOMP},
                 {"rlimits", HARDEN_RLIMITS},
                 {"dir", HARDEN_DIR},
                 {"netns", HARDEN_NETNS},
                 {"caps", HARDEN_CAPS}};
    const char *env = getenv("BERTH_HARDEN");
    if (env == NULL) {
        return HARDEN_ALL;
    }
    unsigned parts = 0;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        if (strstr(env, names[i].name) != NULL) {
            parts |= names[i].bit;
        }
    }
    return parts;
}

/* Set up what programs give up at their start (proc/harden.h), before the
 * launcher forks, and say what is in force. Returns 0 or a negative code
 * with errmsg set. */
static int host__harden(struct host *h, char *errmsg)
{
    struct harden_config hc = {
        .parts = h->cfg.no_harden ? 0 : host__harden_parts(),
        .data_dir = h->cfg.data_dir,
        .user = h->cfg.program_user,
        .uids = h->cfg.program_uids,
    };
    int rv = harden_setup(&hc, errmsg);
    if (rv != 0) {
        return rv;
    }
    char parts[16], uid[48];
    long first;
    unsigned n = harden_uids(&first);
    snprintf(parts, sizeof parts, "0x%02x", harden_parts());
    if (n > 0) {
        snprintf(uid, sizeof uid, "one of %ld-%ld a program", first,
                 first + (long)n - 1);
    } else {
        snprintf(uid, sizeof uid, "%ld", harden_uid());
    }
    if (harden_parts() == 0) {
        host_log("warn", "programs start without their sandbox (--no-harden)",
                 NULL);
    } else {
        host_log("info", "programs are hardened", "parts", parts, "network",
                 harden_network(), "uid",
                 harden_uid() >= 0 || n > 0 ? uid : "the host's", NULL);
    }
    if ((harden_parts() & HARDEN_NETNS) && strcmp(harden_network(), "none")) {
        host_log("warn",
                 "programs keep the host's network: no network namespace",
                 "network", harden_network(), NULL);
    }
    return 0;
}

/* Tell clients where the admin API is on TCP: the host writes its address
 * (HOST:PORT, the port as bound) to DATA/admin.addr, which the CLI reads
 * when it is given the data directory and cannot use DATA/admin.sock;
 * without TCP it removes an admin.addr left by an earlier host. Best
 * effort: a client can still be given --admin. */
static void host__publish_admin(struct host *h)
{
    const char *admin = h->cfg.admin;
    char path[4096], other[4100];
    snprintf(path, sizeof path, "%s/admin.addr", h->cfg.data_dir);
    if (admin == NULL) {
        unlink(path);
        return;
    }
    const char *colon = strrchr(admin, ':');
    int host_len = colon ? (int)(colon - admin) : (int)strlen(admin);
    /* Written whole and renamed, so a reader never sees half of it. */
    snprintf(other, sizeof other, "%s.new", path);
    FILE *f = fopen(other, "w");
    if (f != NULL) {
        fprintf(f, "%.*s:%d\n", host_len, admin,
                http_server_port(h->admin_tcp));
    }
    if (f == NULL || fclose(f) != 0 || rename(other, path) != 0) {
        host_log("warn", "cannot write the admin address", "path", path,
                 "error", strerror(errno), NULL);
        unlink(other);
    }
}

#define HOST__CLUSTER_KEY "clusterk"

/* Whether peer connections go unencrypted: BERTH_PEER_PLAINTEXT=1, for
 * bench/cluster.py's measure of what encryption costs, on every host of a
 * cluster at once. Said loudly. */
/* BERTH_ACCOUNTING=off: no usage measured, recorded or crawled, so that
 * a benchmark can measure what accounting costs beside a host that does
 * it (docs/performance.md). The figures of such a host are wrong. */
static void host__accounting(struct host *h)
{
    const char *v = getenv("BERTH_ACCOUNTING");
    if (v == NULL || strcmp(v, "off") != 0) {
        return;
    }
    host_log("warn",
             "BERTH_ACCOUNTING=off: usage is neither measured nor recorded, "
             "and no crawler runs (for benchmarks only)",
             NULL);
    h->usage.off = true;
    h->cfg.crawl_share = 0;
    store_set_accounting(h->store, false);
}

static bool host__peer_plaintext(void)
{
    const char *v = getenv("BERTH_PEER_PLAINTEXT");
    if (v == NULL || strcmp(v, "1") != 0) {
        return false;
    }
    host_log("warn",
             "BERTH_PEER_PLAINTEXT=1: peer connections are neither "
             "authenticated nor encrypted (for benchmarks only)",
             NULL);
    return true;
}

/* The stopped host, kept reachable until the process exits. */
static struct host *host__instance;

/* Open DATA/master.key (made at the first start) with the operator's
 * secret, if any, and say plainly when the key sits beside the data. */
static int host__open_master_key(struct host *h)
{
    const struct host_config *cfg = &h->cfg;
    char path[4200], errmsg[ERRMSG_SIZE];
    uint8_t file_key[MASTER_KEY_SIZE];
    uint8_t pass[1024];
    struct master_secret secret = {.how = MASTER_PLAIN};
    const char *env = getenv("BERTH_PASSPHRASE");
    int rv = 0;
    if (cfg->passphrase_file != NULL && cfg->master_key_file != NULL) {
        fprintf(stderr, "berth: give --passphrase-file or --master-key-file, "
                        "not both\n");
        return BERTH_EINVAL;
    }
    if (cfg->master_key_file != NULL) {
        rv = master_read_key_file(cfg->master_key_file, file_key, errmsg);
        secret = (struct master_secret){
            .how = MASTER_KEY_FILE, .bytes = file_key, .len = sizeof file_key};
    } else if (cfg->passphrase_file != NULL) {
        FILE *f = fopen(cfg->passphrase_file, "re");
        size_t n = f != NULL ? fread(pass, 1, sizeof pass, f) : 0;
        if (f == NULL || ferror(f) || n == sizeof pass) {
            err_printf(errmsg, "reading the passphrase file %s: %s",
                       cfg->passphrase_file,
                       f == NULL || ferror(f) ? strerror(errno)
                                              : "longer than 1023 bytes");
            rv = BERTH_EINVAL;
        }
        if (f != NULL) {
            fclose(f);
        }
        while (n > 0 && (pass[n - 1] == '\n' || pass[n - 1] == '\r')) {
            n--; /* the line's end is not the passphrase's */
        }
        secret = (struct master_secret){
            .how = MASTER_PASSPHRASE, .bytes = pass, .len = n};
    } else if (env != NULL && *env != '\0') {
        secret = (struct master_secret){.how = MASTER_PASSPHRASE,
                                        .bytes = (const uint8_t *)env,
                                        .len = strlen(env)};
    }
    if (rv == 0 && secret.how == MASTER_PASSPHRASE && secret.len == 0) {
        err_printf(errmsg, "the passphrase is empty");
        rv = BERTH_EINVAL;
    }
    snprintf(path, sizeof path, "%s/master.key", cfg->data_dir);
    if (rv == 0) {
        /* h->wrap keeps the wrapping key, not the secret: a host that
         * joins or rotates seals its new master key with it. */
        rv = master_open(path, &secret, h->master_key, &h->key_how, &h->wrap,
                         errmsg);
    }
    sodium_memzero(file_key, sizeof file_key);
    sodium_memzero(pass, sizeof pass);
    if (env != NULL) {
        /* Wiped where it lies, so that /proc/PID/environ no longer shows
         * it, and gone before the launcher is forked. */
        sodium_memzero((char *)env, strlen(env));
        unsetenv("BERTH_PASSPHRASE");
    }
    if (rv != 0) {
        fprintf(stderr, "berth: master key: %s\n", errmsg);
        return rv;
    }
    if (h->cfg.unsealed) {
        host_log("warn",
                 "--unsealed: new events, snapshots and ship keys are "
                 "written readable; use it only to measure sealing",
                 NULL);
    }
    if (h->key_how == MASTER_PLAIN) {
        host_log("warn",
                 "the master key sits beside the data: anyone who reads the "
                 "data directory can read it; set BERTH_PASSPHRASE, "
                 "--passphrase-file or --master-key-file to seal it",
                 "path", path, NULL);
    } else {
        host_log("info", "master key opened", "path", path, "kept",
                 master_how_text(h->key_how), NULL);
    }
    return 0;
}

/* Settle the cluster secret of a host with a peer port: DATA/cluster.key,
 * or the one given (a joining host's), or a new one (a host that starts a
 * cluster). A new or given one is written once the log is open. */
static int host__open_cluster_secret(struct host *h)
{
    const struct host_config *cfg = &h->cfg;
    char path[4200], errmsg[ERRMSG_SIZE];
    uint8_t given[32];
    bool have_given = false;
    int rv = 0;
    const char *env = getenv("BERTH_CLUSTER_SECRET");
    if (cfg->cluster_secret_file != NULL) {
        rv = master_read_key_file(cfg->cluster_secret_file, given, errmsg);
        have_given = rv == 0;
    } else if (env != NULL && *env != '\0') {
        size_t got = 0;
        if (strlen(env) != 64 ||
            sodium_hex2bin(given, sizeof given, env, 64, NULL, &got, NULL) !=
                0 ||
            got != sizeof given) {
            err_printf(errmsg, "BERTH_CLUSTER_SECRET is not 64 hex digits");
            rv = BERTH_EINVAL;
        }
        have_given = rv == 0;
    }
    if (env != NULL) {
        sodium_memzero((char *)env, strlen(env));
        unsetenv("BERTH_CLUSTER_SECRET");
    }
    if (rv != 0) {
        fprintf(stderr, "berth: cluster secret: %s\n", errmsg);
        return rv;
    }
    if (cfg->peer == NULL) {
        sodium_memzero(given, sizeof given);
        return 0;
    }
    snprintf(path, sizeof path, "%s/cluster.key", cfg->data_dir);
    rv = secretfile_read(path, h->master_key, HOST__CLUSTER_KEY,
                         h->cluster_secret, sizeof h->cluster_secret, errmsg);
    if (rv == 0 && have_given &&
        sodium_memcmp(given, h->cluster_secret, sizeof given) != 0) {
        err_printf(errmsg,
                   "%s holds another cluster secret than the one given; "
                   "this host is of another cluster (start it without the "
                   "secret, or from a new data directory to join another)",
                   path);
        rv = BERTH_EINVAL;
    } else if (rv == BERTH_ENOTFOUND && have_given) {
        memcpy(h->cluster_secret, given, sizeof given);
        h->cluster_key_write = true;
        rv = 0;
    } else if (rv == BERTH_ENOTFOUND && cfg->join != NULL) {
        err_printf(errmsg, "joining a cluster needs its secret: give "
                           "--cluster-secret-file FILE or BERTH_CLUSTER_SECRET "
                           "(`berth cluster secret` prints it on a member)");
        rv = BERTH_EINVAL;
    } else if (rv == BERTH_ENOTFOUND) {
        /* This host starts a cluster (or takes a peer port): its secret. */
        randombytes_buf(h->cluster_secret, sizeof h->cluster_secret);
        h->cluster_key_write = true;
        rv = 0;
    }
    sodium_memzero(given, sizeof given);
    if (rv != 0) {
        fprintf(stderr, "berth: cluster secret: %s\n", errmsg);
    }
    return rv;
}

/* Write DATA/cluster.key when it is new, or the master key changed. */
static int host__write_cluster_secret(struct host *h)
{
    char path[4200], errmsg[ERRMSG_SIZE];
    if (!h->cluster_key_write) {
        return 0;
    }
    snprintf(path, sizeof path, "%s/cluster.key", h->cfg.data_dir);
    int rv =
        secretfile_write(path, h->master_key, HOST__CLUSTER_KEY,
                         h->cluster_secret, sizeof h->cluster_secret, errmsg);
    if (rv != 0) {
        fprintf(stderr, "berth: cluster secret: %s\n", errmsg);
        return rv;
    }
    h->cluster_key_write = false;
    host_log("info", "cluster secret kept, sealed under the master key", "path",
             path, NULL);
    return 0;
}

/* Open the count data keys wrapped at wrapped under master into k. */
static int host__unwrap_keys(const struct host *h, const uint8_t *master,
                             const uint8_t *wrapped, uint32_t count,
                             struct seal_keys *k)
{
    uint8_t data[SEAL_KEYS_MAX * SEAL_KEY_SIZE];
    int rv = count == 0 || count > SEAL_KEYS_MAX ? BERTH_ECORRUPT : 0;
    for (uint32_t i = 0; i < count && rv == 0; i++) {
        rv = keywrap_unwrap_key(
            data + (size_t)i * SEAL_KEY_SIZE, master, KEYWRAP_DATA, i + 1,
            wrapped + (size_t)i * KEYWRAP_SIZE, KEYWRAP_SIZE);
    }
    if (rv == 0) {
        rv = seal_keys_set(k, data, count, !h->cfg.unsealed);
    }
    sodium_memzero(data, sizeof data);
    return rv;
}

/* Load the store's data keys into h->keys, opened with master; with none
 * (no rotation yet), data key 1 comes from master. Returns 0,
 * BERTH_EREJECTED when they do not open with master, or the store's
 * error. */
static int host__load_data_keys(struct host *h, const uint8_t *master)
{
    uint8_t wrapped[SEAL_KEYS_MAX * KEYWRAP_SIZE];
    uint32_t n = 0;
    int rv =
        store_data_keys_get(h->store, wrapped, KEYWRAP_SIZE, SEAL_KEYS_MAX, &n);
    if (rv != 0) {
        return rv;
    }
    if (n == 0) {
        seal_keys_init(&h->keys, master, !h->cfg.unsealed);
        return 0;
    }
    struct seal_keys k;
    if (host__unwrap_keys(h, master, wrapped, n, &k) != 0) {
        return BERTH_EREJECTED;
    }
    h->keys = k;
    seal_keys_wipe(&k);
    return 0;
}

/* Paths of DATA/<name> and of DATA/<name>.next, a key rotation's new file
 * until the store holds the rotation. */
static void host__key_paths(const struct host *h, const char *name, char *path,
                            char *next, size_t size)
{
    snprintf(path, size, "%s/%s", h->cfg.data_dir, name);
    snprintf(next, size, "%s/%s.next", h->cfg.data_dir, name);
}

/* Load the data keys at start, finishing or undoing a key rotation that a
 * crash cut short: master.key.next (and cluster.key.next) are written
 * before the store holds the rotation and renamed into place after, so a
 * store whose keys open with the old master key never got the rotation
 * (the log brings it again), and one whose keys open with the next one
 * did. */
static int host__open_data_keys(struct host *h)
{
    char path[4200], next[4200], cpath[4200], cnext[4200];
    char errmsg[ERRMSG_SIZE], id[2 * MASTER_ID_SIZE + 1];
    uint8_t key[MASTER_KEY_SIZE];
    host__key_paths(h, "master.key", path, next, sizeof path);
    host__key_paths(h, "cluster.key", cpath, cnext, sizeof cpath);
    int rv = host__load_data_keys(h, h->master_key);
    int nrv = master_open_wrapped(next, &h->wrap, key, errmsg);
    if (nrv == BERTH_ENOTFOUND) {
        /* no rotation was cut short */
    } else if (rv == 0 || rv != BERTH_EREJECTED || nrv != 0 ||
               host__load_data_keys(h, key) != 0) {
        /* The store does not hold the rotation: the log brings it. */
        unlink(next);
        unlink(cnext);
        host_log("warn",
                 "undid a key rotation cut short; the log applies it "
                 "again",
                 "path", next, NULL);
    } else {
        rv = file_rename_synced(cnext, cpath, errmsg);
        if (rv == 0 || rv == BERTH_ENOTFOUND) {
            rv = file_rename_synced(next, path, errmsg);
        }
        if (rv != 0) {
            fprintf(stderr, "berth: key rotation: %s\n", errmsg);
            sodium_memzero(key, sizeof key);
            return rv;
        }
        memcpy(h->master_key, key, MASTER_KEY_SIZE);
        master_key_id(h->master_key, id);
        host_log("info", "finished a key rotation cut short", "id", id, NULL);
    }
    sodium_memzero(key, sizeof key);
    if (rv == BERTH_EREJECTED) {
        master_key_id(h->master_key, id);
        fprintf(stderr,
                "berth: data keys: the store's data keys do not open with "
                "the master key in %s (id %s): the master key was rotated "
                "after this copy of it was made; start with the current "
                "master.key (docs/security.md, \"Key rotation\")\n",
                path, id);
        return rv;
    }
    if (rv != 0) {
        fprintf(stderr, "berth: data keys: %s\n", store_errmsg(h->store));
    }
    return rv;
}

/* Replace this host's master key with key: the new files written beside
 * the old ones (.next), the store made durable with the rotation's data
 * keys, then the files renamed into place; host__open_data_keys finishes
 * or undoes what a crash cuts short. */
static int host__replace_master_key(struct host *h, const uint8_t *key)
{
    char path[4200], next[4200], cpath[4200], cnext[4200];
    char errmsg[ERRMSG_SIZE];
    host__key_paths(h, "master.key", path, next, sizeof path);
    host__key_paths(h, "cluster.key", cpath, cnext, sizeof cpath);
    int rv = master_rewrap(next, &h->wrap, key, errmsg);
    if (rv == 0 && h->cfg.peer != NULL) {
        rv = secretfile_write(cnext, key, HOST__CLUSTER_KEY, h->cluster_secret,
                              sizeof h->cluster_secret, errmsg);
    }
    if (rv == 0 && store_sync(h->store) != 0) {
        err_printf(errmsg, "syncing the store: %s", store_errmsg(h->store));
        rv = BERTH_EIO;
    }
    if (rv == 0 && h->cfg.peer != NULL) {
        rv = file_rename_synced(cnext, cpath, errmsg);
    }
    if (rv == 0) {
        rv = file_rename_synced(next, path, errmsg);
    }
    if (rv != 0) {
        host_log("fatal", "key rotation: cannot replace the master key",
                 "error", errmsg, NULL);
    }
    return rv;
}

/* Apply a KEY_ROTATE entry on this host (the store has its data keys):
 * open the new master key with the old one, keep it in DATA/master.key as
 * the old one was kept, and seal with the new data key from now on. */
static int host__key_rotated(struct host *h, uint64_t index,
                             const uint8_t *entry, size_t len)
{
    struct record_key_rotate r;
    char mine[2 * MASTER_ID_SIZE + 1], at[32];
    uint8_t key[MASTER_KEY_SIZE];
    struct seal_keys k;
    if (index <= h->start_applied ||
        record_decode_key_rotate(entry, len, &r) != 0) {
        return 0; /* the store's data keys were loaded at start */
    }
    snprintf(at, sizeof at, "%llu", (unsigned long long)index);
    master_key_id(h->master_key, mine);
    if (memcmp(r.old_id, mine, RECORD_KEY_ID_SIZE) != 0) {
        /* A host that has the new key already (it joined since) opens the
         * data keys with it. */
        if (host__unwrap_keys(h, h->master_key, r.keys, r.count, &k) == 0) {
            h->keys = k;
            seal_keys_wipe(&k);
            return 0;
        }
        host_log("error",
                 "key rotation: this host's master key is not the one "
                 "rotated; it cannot follow the rotation (nor open what is "
                 "sealed under the new data key)",
                 "index", at, "id", mine, NULL);
        return 0;
    }
    if (keywrap_unwrap_key(key, h->master_key, KEYWRAP_MASTER, 0, r.master,
                           KEYWRAP_SIZE) != 0 ||
        host__unwrap_keys(h, key, r.keys, r.count, &k) != 0) {
        sodium_memzero(key, sizeof key);
        host_log("error",
                 "key rotation: the new keys do not open with this host's "
                 "master key; it cannot follow the rotation",
                 "index", at, NULL);
        return 0;
    }
    int rv = host__replace_master_key(h, key);
    if (rv == 0) {
        memcpy(h->master_key, key, MASTER_KEY_SIZE);
        h->keys = k;
        master_key_id(h->master_key, mine);
        char kid[16];
        snprintf(kid, sizeof kid, "%u", (unsigned)r.count);
        host_log("info", "master key rotated", "id", mine, "data_key", kid,
                 "index", at, NULL);
        /* The entry (the new master key wrapped under the old) stays in
         * raft's log until a raft snapshot drops it: asking for one now
         * (fsm_compact) lost the entries after it on the next restart in
         * test_key_rotate, so the usual snapshots do (docs/security.md). */
    }
    seal_keys_wipe(&k);
    sodium_memzero(key, sizeof key);
    return rv;
}

/* A host that joins adopts the cluster's master key: DATA/master.key is
 * replaced, kept under the operator's secret as before. */
static int host__joined(void *arg, const uint8_t *key, char *errmsg)
{
    struct host *h = arg;
    char path[4200];
    static const uint8_t zero[MASTER_KEY_SIZE];
    if (sodium_memcmp(key, zero, MASTER_KEY_SIZE) == 0) {
        err_printf(errmsg, "the cluster sent no master key");
        return BERTH_EMALFORMED;
    }
    if (sodium_memcmp(key, h->master_key, MASTER_KEY_SIZE) == 0) {
        return 0;
    }
    snprintf(path, sizeof path, "%s/master.key", h->cfg.data_dir);
    int rv = master_rewrap(path, &h->wrap, key, errmsg);
    if (rv != 0) {
        return rv;
    }
    memcpy(h->master_key, key, MASTER_KEY_SIZE);
    /* Before any entry applies or any ship is made: what the cluster
     * sealed opens here. */
    seal_keys_init(&h->keys, h->master_key, !h->cfg.unsealed);
    h->cluster_key_write = true; /* sealed under the new key */
    char id[2 * MASTER_ID_SIZE + 1];
    master_key_id(h->master_key, id);
    host_log("info", "adopted the cluster's master key", "path", path, "id", id,
             "kept", master_how_text(h->key_how), NULL);
    return 0;
}

/* The sids of every ship of a store, for host_fsck_offline. */
struct host__sids {
    uint64_t *sids;
    size_t n, cap;
};

static int host__collect_sid(const struct store_ship_brief *b, void *arg)
{
    struct host__sids *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 1024;
        uint64_t *p = mem_realloc(l->sids, cap * sizeof *p);
        if (p == NULL) {
            return BERTH_ENOMEM;
        }
        l->sids = p;
        l->cap = cap;
    }
    l->sids[l->n++] = b->sid;
    return 0;
}

int host_fsck_offline(const struct host_config *cfg, const char *const *names,
                      int n, json_t **out, char *errmsg)
{
    char path[4200];
    struct host__sids l = {0};
    struct host *h = mem_calloc(1, sizeof *h);
    if (h == NULL) {
        err_printf(errmsg, "out of memory");
        return BERTH_ENOMEM;
    }
    h->cfg = *cfg;
    snprintf(path, sizeof path, "%s/store.db", cfg->data_dir);
    if (access(path, F_OK) != 0) {
        err_printf(errmsg, "%s holds no store", cfg->data_dir);
        mem_free(h);
        return BERTH_ENOTFOUND;
    }
    /* The lock of berth serve: no host may write the store meanwhile. */
    snprintf(path, sizeof path, "%s/lock", cfg->data_dir);
    int lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    int rv = BERTH_EBUSY;
    if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) != 0) {
        err_printf(errmsg, "a host holds %s: run fsck against it",
                   cfg->data_dir);
        goto err_after_lock;
    }
    if ((rv = host__open_master_key(h)) != 0) {
        err_printf(errmsg, "cannot open the master key");
        goto err_after_lock;
    }
    snprintf(path, sizeof path, "%s/store.db", cfg->data_dir);
    if ((rv = store_open(&h->store, path, errmsg)) != 0) {
        goto err_after_key;
    }
    if ((rv = host__load_data_keys(h, h->master_key)) != 0) {
        err_printf(errmsg, "%s",
                   rv == BERTH_EREJECTED
                       ? "the store's data keys do not open with this master "
                         "key"
                       : store_errmsg(h->store));
        goto err_after_store;
    }
    for (int i = 0; i < n && rv == 0; i++) {
        struct store_ship ship;
        rv = store_ship_get(h->store, names[i], &ship);
        if (rv == BERTH_ENOTFOUND) {
            err_printf(errmsg, "no ship %s", names[i]);
        } else if (rv == 0) {
            rv = host__collect_sid(&(struct store_ship_brief){.sid = ship.sid},
                                   &l);
            store_ship_clear(&ship);
        }
    }
    if (rv == 0 && n == 0) {
        rv = store_ship_brief_foreach(h->store, 0, host__collect_sid, &l);
    }
    if (rv != 0) {
        if (rv != BERTH_ENOTFOUND) {
            err_printf(errmsg, "cannot read the ships: %s",
                       store_errmsg(h->store));
        }
        goto err_after_store;
    }
    json_t *ships = json_array();
    bool ok = true;
    for (size_t i = 0; i < l.n && rv == 0; i++) {
        struct fsck_result r;
        rv = fsck_ship(h->store, &h->keys, l.sids[i], &r);
        if (rv == 0) {
            ok = ok && r.ok;
            json_array_append_new(ships, host_fsck_json(&r));
        }
    }
    if (rv != 0) {
        err_printf(errmsg, "cannot read the store: %s", store_errmsg(h->store));
        json_decref(ships);
        goto err_after_store;
    }
    *out = json_object();
    json_object_set_new(*out, "ok", json_boolean(ok));
    json_object_set_new(*out, "ships", ships);
err_after_store:
    store_close(h->store);
err_after_key:
    seal_keys_wipe(&h->keys);
    sodium_memzero(h->master_key, sizeof h->master_key);
    sodium_memzero(&h->wrap, sizeof h->wrap);
err_after_lock:
    if (lock >= 0) {
        close(lock);
    }
    mem_free(l.sids);
    mem_free(h);
    return rv;
}

/* Another host asks for this one's copy of ship sid's stored data, to
 * repair its own (berth fsck --repair). The batch is flushed first, so the
 * copy is what this store has applied. */
static void host__ship_copy(void *arg, struct log_call *call, uint64_t sid)
{
    struct host *h = arg;
    struct buf copy;
    buf_init(&copy);
    int rv = fsm_flush(h->fsm);
    if (rv == 0) {
        rv = shipcopy_encode(h->store, sid, &copy);
    }
    if (rv == 0 && copy.len > LOG_FORWARD_MAX) {
        rv = BERTH_ETOOBIG;
    }
    log_forward_reply(call, rv, copy.data, copy.len);
    buf_free(&copy);
}

int host_run(const struct host_config *cfg)
{
    struct host *h = mem_calloc(1, sizeof *h);
    char errmsg[ERRMSG_SIZE];
    char path[4096];
    int rv;
    if (h == NULL) {
        fprintf(stderr, "berth: out of memory\n");
        return 1;
    }
    h->cfg = *cfg;
    loglevel_set(cfg->log_level);
    h->disk_ok = true;
    /* First, before anything else opens a descriptor or a program could
     * inherit one: the sockets a service manager passed. */
    int passed = notify_listen_fds(&h->front_fd, &h->tls_fd);
    budget_init(&h->budget, cfg->max_buffer_bytes, host_budget_changed, h);
    h->started_ns = uv_hrtime();
    registry_init(&h->reg);
    alarms_init(&h->alarms);
    host_ships_init(h);
    buf_init(&h->batch);
    signal(SIGPIPE, SIG_IGN);

    /* A request becomes one frame to its program: body, headers and
     * target must fit in the frame limit. */
    if (cfg->max_body + 64 * 1024 + 1024 > cfg->max_frame) {
        fprintf(stderr,
                "berth: --max-body %zu is too big: a request must fit in "
                "one frame of %zu bytes with its headers (64 KiB)\n",
                cfg->max_body, cfg->max_frame);
        goto err_after_alloc;
    }
    /* A certificate that does not load stops the start, before anything
     * else is touched, with OpenSSL's reason. */
    if (cfg->tls_cert != NULL &&
        http_tls_new(&h->tls, cfg->tls_cert, cfg->tls_key, errmsg) != 0) {
        fprintf(stderr, "berth: TLS: %s\n", errmsg);
        goto err_after_alloc;
    }
    if (host__mkdir(cfg->data_dir) != 0) {
        goto err_after_alloc;
    }
    /* One host per data directory: a second one would write the same log
     * and store. The lock is released by the kernel when the process ends,
     * however it ends. */
    snprintf(path, sizeof path, "%s/lock", cfg->data_dir);
    int lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "berth: %s is in use by another berth host (%s)\n",
                cfg->data_dir, strerror(errno));
        if (lock >= 0) {
            close(lock);
        }
        goto err_after_alloc;
    }
    if (host__open_master_key(h) != 0) {
        goto err_after_alloc;
    }
    host__claim_programs(cfg->data_dir);
    if (host__harden(h, errmsg) != 0) {
        fprintf(stderr, "berth: %s\n", errmsg);
        goto err_after_alloc;
    }
    /* While this process holds a handful of descriptors and no threads,
     * and knows its run: the launcher starts every program from here on,
     * and kills what is left of them when the host is gone. */
    if (launcher_start(errmsg) != 0) {
        host_log("warn", "no program launcher; starting programs directly",
                 "error", errmsg, NULL);
    }
    rv = uv_loop_init(&h->loop);

    if (rv != 0) {
        fprintf(stderr, "berth: event loop: %s\n", uv_strerror(rv));
        goto err_after_alloc;
    }
    host_ws_init(h);
    snprintf(path, sizeof path, "%s/store.db", cfg->data_dir);
    snprintf(h->store_path, sizeof h->store_path, "%s", path);
    rv = store_open(&h->store, path, errmsg);
    if (rv != 0) {
        fprintf(stderr, "berth: store %s: %s\n", path, errmsg);
        goto err_after_loop;
    }

    uint64_t applied = 0;
    rv = store_meta_get(h->store, "applied_index", &applied);
    if (rv != 0) {
        fprintf(stderr, "berth: store %s: %s\n", path, store_errmsg(h->store));
        goto err_after_store;
    }
    /* A raft log damaged beyond what libraft may drop: a member of a
     * cluster sets its copy aside and joins again (daemon/rejoin.h); a host
     * alone refuses to start. */
    struct identity_rejoin rejoin;
    bool rejoining;
    rv = rejoin_prepare(cfg->data_dir, applied, &rejoin, &rejoining, errmsg);
    if (rv != 0) {
        fprintf(stderr,
                "berth: %s\nberth: the log cannot be loaded as it is; "
                "refusing to start so that nothing is lost (its files are "
                "left as they are; see docs/design.md, \"A damaged log\")\n",
                errmsg);
        goto err_after_store;
    }
    if (rejoining) {
        char where[4300];
        store_close(h->store);
        h->store = NULL;
        rv = rejoin_set_aside(cfg->data_dir, where, sizeof where, errmsg);
        if (rv == 0) {
            rv = store_open(&h->store, path, errmsg);
        }
        if (rv != 0) {
            fprintf(stderr, "berth: %s\n", errmsg);
            goto err_after_loop;
        }
        char replaces[24];
        snprintf(replaces, sizeof replaces, "%llu",
                 (unsigned long long)rejoin.replaces);
        host_log("warn",
                 "the raft log is damaged: this host set its copy aside and "
                 "joins its cluster again",
                 "damage", errmsg, "kept", where, "was", replaces, "through",
                 rejoin.members[0], NULL);
        applied = 0;
    }
    h->start_applied = applied;
    host__accounting(h);
    rv = host_accounts_load(h);
    if (rv != 0) {
        fprintf(stderr, "berth: store %s: %s\n", path, store_errmsg(h->store));
        goto err_after_store;
    }
    /* The data keys, then the cluster secret: a key rotation cut short
     * by a crash is finished or undone first (docs/security.md). */
    if (host__open_data_keys(h) != 0 || host__open_cluster_secret(h) != 0) {
        goto err_after_store;
    }
    struct fsm_hooks hooks = {
        .applied = host__applied,
        .damaged = host__damaged,
        .removed = host__removed,
        .added = host__added,
        .mailed = host__mailed,
        .restored = host__restored,
        .fatal = host__fatal,
        .arg = h,
    };
    rv = fsm_open(&h->fsm, h->store, &hooks);
    if (rv != 0) {
        fprintf(stderr, "berth: out of memory\n");
        goto err_after_store;
    }
    snprintf(path, sizeof path, "%s/raft", cfg->data_dir);
    /* Peers that probe this host learn where its doors are. */
    char info[600];
    snprintf(info, sizeof info, "listen %s admin %s", cfg->listen,
             cfg->admin != NULL ? cfg->admin : "-");
    struct log_config lc = {
        .dir = path,
        .applied_index = applied,
        .peer = cfg->peer,
        .join = cfg->join,
        .voters = cfg->voters,
        .heartbeat_ms = cfg->heartbeat_ms,
        .election_ms = cfg->election_ms,
        .info = info,
        .fsm = h->fsm,
        .fatal = host__fatal,
        .lead = host__lead,
        .progress = host__progress,
        .note = host__note,
        .forwarded = host_forwarded,
        .ship_copy = host__ship_copy,
        .beat = host_beat_received,
        .cluster_secret = cfg->peer != NULL ? h->cluster_secret : NULL,
        .peer_plaintext = host__peer_plaintext(),
        .master_key = h->master_key,
        .joined = host__joined,
        .rejoin = rejoining ? &rejoin : NULL,
        .arg = h,
    };
    rv = log_open(&h->log, &h->loop, &lc, errmsg);
    if (rv == 0 && rejoining && rejoin_done(cfg->data_dir, errmsg) != 0) {
        fprintf(stderr, "berth: %s\n", errmsg);
        goto err_after_log;
    }
    if (rv == 0 && host__write_cluster_secret(h) != 0) {
        goto err_after_log;
    }
    if (rv != 0) {
        /* Usage, joining and the peer port fail with their own words; the
         * rest is about the files. */
        if (rv != BERTH_EINVAL && rv != BERTH_ETIMEOUT && rv != BERTH_EBUSY) {
            fprintf(stderr,
                    "berth: %s\nberth: the log cannot be loaded as it "
                    "is; refusing to start so that nothing is lost (its "
                    "files are left as they are; see docs/design.md, \"A "
                    "damaged log\")\n",
                    errmsg);
        } else {
            fprintf(stderr, "berth: %s\n", errmsg);
        }
        goto err_after_log;
    }
    if (host__ready(h) != 0) {
        goto err_after_log;
    }

    uv_check_init(&h->loop, &h->flush);
    h->flush.data = h;
    host_ws_start(h);
    uv_timer_init(&h->loop, &h->alarm_timer);
    h->alarm_timer.data = h;
    uv_timer_init(&h->loop, &h->mail_retry);
    h->mail_retry.data = h;
    uv_timer_init(&h->loop, &h->lifetimes);
    h->lifetimes.data = h;
    host_budget_start(h);
    uv_timer_init(&h->loop, &h->measure_timer);
    h->measure_timer.data = h;
    uv_timer_init(&h->loop, &h->writeback_timer);
    h->writeback_timer.data = h;
    h->writeback.data = h;
    uv_timer_start(&h->writeback_timer, host__writeback_cb,
                   HOST__WRITEBACK_IDLE_MS, HOST__WRITEBACK_IDLE_MS);
    uv_timer_init(&h->loop, &h->repair_timer);
    h->repair_timer.data = h;
    uv_timer_start(&h->repair_timer, host__repair_cb, REPAIR_TICK_MS,
                   REPAIR_TICK_MS);
    host_crawler_start(h);
    host_usage_start(h);
    host_beats_start(h);

    struct http_server_config hc = {
        .max_body = cfg->max_body,
        .header_timeout_ms = cfg->header_timeout_ms,
        .body_timeout_ms = cfg->body_timeout_ms,
        .min_rate = cfg->min_rate,
        .max_idle = cfg->max_idle_conns,
        .max_per_addr = cfg->max_conns_per_addr,
        .max_conns = host_front_max_conns,
        .max_conns_arg = h,
        .budget = &h->budget,
        .on_headers = host_front_headers,
        .on_server_name = host_front_server_name,
        .server_name_wakes = host_front_server_name_wakes,
        .hook_arg = h,
    };
    rv = http_server_new(&h->front, &h->loop, &hc, host_front_handle, h);
    if (rv == 0 && h->front_fd >= 0) {
        rv = http_server_listen_fd(h->front, h->front_fd, errmsg);
        host__check_passed(h, passed);
    } else if (rv == 0) {
        if (passed > 0) {
            host_log("warn",
                     "the service manager passed sockets but none named "
                     "front; the front door binds --listen itself",
                     NULL);
        }
        rv = http_server_listen_tcp(h->front, cfg->listen, errmsg);
    }
    if (rv != 0) {
        fprintf(stderr, "berth: front door on %s: %s\n", cfg->listen, errmsg);
        goto err_after_log;
    }
    if (h->tls != NULL && h->tls_fd >= 0) {
        rv = http_server_listen_tls_fd(h->front, h->tls_fd, h->tls, errmsg);
        if (rv != 0) {
            fprintf(stderr,
                    "berth: front door (TLS) on the service manager's "
                    "socket: %s\n",
                    errmsg);
            goto err_after_log;
        }
        host_log("info", "TLS socket from the service manager", NULL);
    } else if (h->tls_fd >= 0) {
        /* Closed, so that its clients are refused rather than left
         * waiting. */
        host_log("warn",
                 "the service manager passed a socket named tls but the "
                 "host has no --tls-cert: it is closed",
                 NULL);
        close(h->tls_fd);
        h->tls_fd = -1;
    } else if (h->tls != NULL) {
        if (h->tls_fd < 0 && h->front_fd >= 0) {
            host_log("info",
                     "the TLS door binds --tls-listen itself: the service "
                     "manager passed no socket named tls",
                     NULL);
        }
        rv = http_server_listen_tls(h->front, cfg->tls_listen, h->tls, errmsg);
        if (rv != 0) {
            fprintf(stderr, "berth: front door (TLS) on %s: %s\n",
                    cfg->tls_listen, errmsg);
            goto err_after_log;
        }
    }
    /* The admin API is local and never held back, but its bytes count, and
     * it gets the same deadlines and a cap of its own. */
    struct http_server_config ac = {
        .max_body = 1024 * 1024,
        .header_timeout_ms = cfg->header_timeout_ms,
        .body_timeout_ms = cfg->body_timeout_ms,
        .min_rate = cfg->min_rate,
        .max_idle = HOST__ADMIN_IDLE,
        .max_conns = host__admin_max_conns,
        .budget = &h->budget,
    };
    /* The socket (mode 0600) needs no token: only the host's user reaches
     * it, and it is where the first token is made. TCP, when asked for,
     * takes a token on every request (daemon/tokens.c), so it may listen on
     * any address. */
    auth_limiter_init(&h->limiter, AUTH_FAIL_BURST, AUTH_FAIL_PER_SEC);
    /* The socket takes an export whole (berth ship import); TCP keeps
     * the smaller limit, as its clients are not all trusted. */
    struct http_server_config ac_unix = ac;
    ac_unix.max_body = EXPORT_MAX + 64 * 1024;
    rv = http_server_new(&h->admin, &h->loop, &ac_unix, host_admin_handle, h);
    if (rv == 0) {
        snprintf(h->admin_path, sizeof h->admin_path, "%s/admin.sock",
                 cfg->data_dir);
        rv = http_server_listen_unix(h->admin, h->admin_path, errmsg);
    }
    if (rv != 0) {
        fprintf(stderr, "berth: admin API on %s/admin.sock: %s\n",
                cfg->data_dir, errmsg);
        goto err_after_log;
    }
    if (cfg->admin != NULL) {
        rv = http_server_new(&h->admin_tcp, &h->loop, &ac,
                             host_admin_handle_tcp, h);
        if (rv == 0) {
            rv = http_server_listen_tcp(h->admin_tcp, cfg->admin, errmsg);
        }
        if (rv != 0) {
            fprintf(stderr, "berth: admin API on %s: %s\n", cfg->admin,
                    rv == BERTH_ENOMEM ? "out of memory" : errmsg);
            goto err_after_log;
        }
    }
    host__publish_admin(h);

    uv_timer_init(&h->loop, &h->stop_timer);
    h->stop_timer.data = h;
    uv_timer_init(&h->loop, &h->park_timer);
    h->park_timer.data = h;
    uv_signal_init(&h->loop, &h->sigint);
    uv_signal_init(&h->loop, &h->sigterm);
    h->sigint.data = h->sigterm.data = h;
    uv_signal_start(&h->sigint, host__signal_cb, SIGINT);
    uv_signal_start(&h->sigterm, host__signal_cb, SIGTERM);
    uv_signal_init(&h->loop, &h->sighup);
    h->sighup.data = h;
    uv_signal_start(&h->sighup, host__sighup_cb, SIGHUP);

    char port[16];
    snprintf(port, sizeof port, "%d", http_server_port(h->front));
    host_log("info", "listening", "front", cfg->listen, "port", port, "admin",
             h->admin_path, "admin_tcp", cfg->admin ? cfg->admin : "-", "data",
             cfg->data_dir, NULL);
    if (h->tls != NULL) {
        char what[400];
        http_tls_describe(h->tls, what, sizeof what);
        snprintf(port, sizeof port, "%d", http_server_tls_port(h->front));
        host_log("info", "listening for TLS", "front", cfg->tls_listen, "port",
                 port, "cert", what, "domain", cfg->domain ? cfg->domain : "-",
                 NULL);
    }
    /* Both doors listen, the store is open and raft runs: a service
     * manager may count the host as started. */
    host_service_ready(h);

    uv_run(&h->loop, UV_RUN_DEFAULT);

    /* Stop is crash-only: programs are killed, proposals in flight finish,
     * and the process exits without closing libraft, whose close path
     * crashed now and then in testing. The next start recovers from disk,
     * exactly as after kill -9. */
    host_ships_shutdown(h);
    replay_stop_all(h);
    uv_timer_stop(&h->alarm_timer);
    host_budget_stop(h);
    uv_timer_stop(&h->measure_timer);
    uv_timer_stop(&h->writeback_timer);
    uv_timer_stop(&h->repair_timer);
    uv_timer_stop(&h->mail_retry);
    uv_timer_stop(&h->lifetimes);
    host_crawler_stop(h);
    host_usage_stop(h);
    host_beats_stop(h);
    host_shiplog_stop(h);
    host_ws_close_all(h, "the host is stopping");
    http_server_close(h->front, NULL, NULL);
    http_server_close(h->admin, NULL, NULL);
    if (h->admin_tcp != NULL) {
        http_server_close(h->admin_tcp, NULL, NULL);
    }
    if (cfg->admin != NULL) {
        snprintf(path, sizeof path, "%s/admin.addr", cfg->data_dir);
        unlink(path);
    }
    uv_signal_stop(&h->sigint);
    uv_signal_stop(&h->sigterm);
    uv_signal_stop(&h->sighup);
    uv_timer_stop(&h->stop_timer);
    host_service_stop(h);
    host_forward_stop(h);
    uint64_t deadline = uv_now(&h->loop) + 10000;
    while ((log_pending(h->log) > 0 || proc_count() > 0) &&
           uv_now(&h->loop) < deadline) {
        uv_run(&h->loop, UV_RUN_ONCE);
    }
    host_ships_free(h);
    uv_run(&h->loop, UV_RUN_NOWAIT);
    host_ws_free(h);
    http_tls_free(h->tls);
    h->tls = NULL;
    store_close(h->store);
    h->store = NULL;
    mem_free(h->disabled);
    h->disabled = NULL;
    h->n_disabled = 0;
    host_quota_free(h);
    mem_free(h->mail_due);
    mem_free(h->leases);
    proc_cleanup();
    harden_cleanup();
    seal_keys_wipe(&h->keys);
    master_wrap_wipe(&h->wrap);
    sodium_memzero(h->master_key, sizeof h->master_key);
    /* h stays reachable, so leak checkers see libraft's memory as live. */
    host__instance = h;
    host_log("info", "stopped", NULL);
    return 0;

err_after_log:
    /* A host that failed to start exits; the OS reclaims what is left: the
     * log may still hold handles on the loop. h stays reachable, as after a
     * stop. */
    store_close(h->store);
    h->store = NULL;
    host__instance = h;
    return 1;
err_after_store:
    store_close(h->store);
err_after_loop:
    uv_loop_close(&h->loop);
err_after_alloc:
    http_tls_free(h->tls);
    seal_keys_wipe(&h->keys);
    master_wrap_wipe(&h->wrap);
    sodium_memzero(h->master_key, sizeof h->master_key);
    mem_free(h);
    return 1;
}
