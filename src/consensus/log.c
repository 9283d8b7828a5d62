#include "consensus/log.h"

#include <errno.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "consensus/fsm.h"
#include "consensus/segments.h"
#include "lib/err.h"
#include "lib/mem.h"

/* One host's identity in its raft configuration. A one-voter cluster never
 * dials anyone, so the address is a name, not an endpoint; joining a cluster
 * replaces the transport and the address. */
#define LOG__ID 1
#define LOG__ADDRESS "local"

struct log {
    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport transport;
    struct raft_barrier barrier;
    uv_timer_t transport_handle; /* closed to close the transport */
    uv_timer_t watchdog;         /* runs only while proposals are pending */
    uint64_t progress_ms;        /* loop time the applied index last grew */
    uint64_t progress_index;     /* the applied index then */
    raft_uv_transport_close_cb transport_close_cb;
    struct log_config cfg;
    char *dir;
    uv_loop_t *loop;
    unsigned pending;
    bool fatal;
    bool closing;
    log_close_cb close_cb;
    void *close_arg;
};

struct log__req {
    struct raft_apply req;
    struct log *log;
    log_done_cb cb;
    void *arg;
};

static void log__fatal(struct log *l, const char *what, int rv)
{
    char msg[ERRMSG_SIZE];
    if (l->fatal) {
        return;
    }
    l->fatal = true;
    snprintf(msg, sizeof msg, "%s: %s (%s)", what, raft_strerror(rv),
             raft_errmsg(&l->raft));
    l->cfg.fatal(l->cfg.arg, msg);
}

/* The local transport: a single voter has no peers to dial or accept. */
static int log__transport_init(struct raft_uv_transport *t, raft_id id,
                               const char *address)
{
    return 0;
}

static int log__transport_listen(struct raft_uv_transport *t,
                                 raft_uv_accept_cb cb)
{
    return 0;
}

static int log__transport_connect(struct raft_uv_transport *t,
                                  struct raft_uv_connect *req, raft_id id,
                                  const char *address, raft_uv_connect_cb cb)
{
    return RAFT_NOCONNECTION;
}

static void log__transport_closed(uv_handle_t *h)
{
    struct log *l = h->data;
    l->transport_close_cb(&l->transport);
}

/* Closing completes on a later loop iteration, as libraft's TCP transport
 * does: its backend expects the callback after close returns. */
static void log__transport_close(struct raft_uv_transport *t,
                                 raft_uv_transport_close_cb cb)
{
    struct log *l = t->impl;
    l->transport_close_cb = cb;
    uv_close((uv_handle_t *)&l->transport_handle, log__transport_closed);
}

/* libraft 0.15 can stop for good after an I/O error without failing the
 * requests in flight (seen with a full disk: a segment could not be
 * prepared, and appends waited for it forever). While proposals are
 * pending, a watchdog checks once a second that raft still leads and that
 * some entry was applied in the last LOG__STALL_MS; an idle host runs no
 * timer. */
#define LOG__WATCHDOG_MS 1000
#define LOG__STALL_MS 10000

static void log__watchdog_cb(uv_timer_t *t)
{
    struct log *l = t->data;
    if (l->pending == 0 || l->closing) {
        uv_timer_stop(t);
        return;
    }
    if (raft_last_applied(&l->raft) != l->progress_index) {
        l->progress_index = raft_last_applied(&l->raft);
        l->progress_ms = uv_now(l->loop);
    }
    if (raft_state(&l->raft) != RAFT_LEADER) {
        log__fatal(l, "log stopped leading with proposals pending", RAFT_IOERR);
    } else if (uv_now(l->loop) - l->progress_ms > LOG__STALL_MS) {
        log__fatal(l, "log made no progress for 10 s with proposals pending",
                   RAFT_IOERR);
    }
}

static void log__watch(struct log *l)
{
    if (!uv_is_active((uv_handle_t *)&l->watchdog)) {
        l->progress_ms = uv_now(l->loop);
        l->progress_index = raft_last_applied(&l->raft);
        uv_timer_start(&l->watchdog, log__watchdog_cb, LOG__WATCHDOG_MS,
                       LOG__WATCHDOG_MS);
    }
}

static void log__barrier_cb(struct raft_barrier *req, int status)
{
    struct log *l = req->data;
    if (status != 0) {
        if (status != RAFT_SHUTDOWN && status != RAFT_CANCELED) {
            log__fatal(l, "log barrier failed", status);
        }
        return;
    }
    l->cfg.ready(l->cfg.arg);
}

static void log__free_closed(uv_handle_t *h)
{
    mem_free(h->data);
}

static int log__mkdir(const char *dir, char *errmsg)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        err_printf(errmsg, "cannot create %s: %s", dir, strerror(errno));
        return BERTH_EIO;
    }
    return 0;
}

/* A log whose open failed after raft took it over; see log_open. */
static struct log *log__abandoned;

/* Refuse a log that ends below what the state machine has applied: its
 * next entries would take the numbers of entries already applied. */
static int log__check_end(struct log *l, uint64_t last, char *errmsg)
{
    if (last >= l->cfg.applied_index) {
        return 0;
    }
    err_printf(errmsg,
               "raft log in %s ends at entry %llu, but entries up to "
               "%llu were applied: entries are missing",
               l->dir, (unsigned long long)last,
               (unsigned long long)l->cfg.applied_index);
    return BERTH_ECORRUPT;
}

/* Refuse a log that libraft would load with applied entries missing; let
 * it drop a torn last write that was never applied, and say so. */
static int log__check(struct log *l, char *errmsg)
{
    struct segments_report r;
    int rv = segments_check(l->dir, l->cfg.applied_index, &r, errmsg);
    if (rv != 0) {
        return rv;
    }
    rv = log__check_end(l, r.last_index, errmsg);
    if (rv != 0) {
        return rv;
    }
    if (r.torn_index != 0) {
        fprintf(stderr,
                "berth: raft segment %s/%s ends in a torn write at "
                "byte %llu (entry %llu, never applied); it is dropped\n",
                l->dir, r.torn_file, (unsigned long long)r.torn_offset,
                (unsigned long long)r.torn_index);
    }
    return 0;
}

int log_open(struct log **out, uv_loop_t *loop, const struct log_config *cfg,
             char *errmsg)
{
    struct raft_configuration conf;
    int rv;

    struct log *l = mem_calloc(1, sizeof *l);
    if (l == NULL) {
        err_printf(errmsg, "out of memory");
        return BERTH_ENOMEM;
    }
    l->cfg = *cfg;
    l->loop = loop;
    l->dir = mem_strdup(cfg->dir);
    if (l->dir == NULL) {
        err_printf(errmsg, "out of memory");
        rv = BERTH_ENOMEM;
        goto err_after_alloc;
    }
    rv = log__mkdir(l->dir, errmsg);
    if (rv != 0) {
        goto err_after_dir;
    }
    rv = log__check(l, errmsg);
    if (rv != 0) {
        goto err_after_dir;
    }

    /* libraft's backend owns transport.data; ours is impl. */
    l->transport.version = 1;
    l->transport.impl = l;
    l->transport.init = log__transport_init;
    l->transport.listen = log__transport_listen;
    l->transport.connect = log__transport_connect;
    l->transport.close = log__transport_close;

    rv = raft_uv_init(&l->io, loop, l->dir, &l->transport);
    if (rv != 0) {
        err_printf(errmsg, "raft log in %s: %s", l->dir, l->io.errmsg);
        rv = BERTH_EIO;
        goto err_after_dir;
    }

    /* A damaged segment must stop the host with a clear error, never be set
     * aside silently with the entries in it. */
    raft_uv_set_auto_recovery(&l->io, false);

    uv_timer_init(loop, &l->transport_handle);
    l->transport_handle.data = l;
    uv_timer_init(loop, &l->watchdog);
    l->watchdog.data = l;
    rv = raft_init(&l->raft, &l->io, fsm_raft_fsm(cfg->fsm), LOG__ID,
                   LOG__ADDRESS);
    if (rv != 0) {
        err_printf(errmsg, "raft init: %s", raft_errmsg(&l->raft));
        rv = BERTH_EIO;
        goto err_after_io;
    }
    l->raft.data = l;
    fsm_attach(cfg->fsm, &l->raft, cfg->snapshot_every);

    raft_configuration_init(&conf);
    rv = raft_configuration_add(&conf, LOG__ID, LOG__ADDRESS, RAFT_VOTER);
    if (rv != 0) {
        raft_configuration_close(&conf);
        err_printf(errmsg, "raft configuration: %s", raft_strerror(rv));
        rv = BERTH_ENOMEM;
        goto err_after_raft;
    }
    /* Only a brand new directory can be bootstrapped; an existing one
     * answers CANTBOOTSTRAP, which is the normal restart path. */
    rv = raft_bootstrap(&l->raft, &conf);
    raft_configuration_close(&conf);
    if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
        err_printf(errmsg, "raft bootstrap in %s: %s", l->dir,
                   raft_errmsg(&l->raft));
        rv = BERTH_EIO;
        goto err_after_raft;
    }

    rv = raft_start(&l->raft);
    if (rv != 0) {
        err_printf(errmsg, "raft log in %s cannot be loaded: %s", l->dir,
                   raft_errmsg(&l->raft));
        rv = rv == RAFT_CORRUPT ? BERTH_ECORRUPT : BERTH_EIO;
        goto err_after_raft;
    }
    /* The check above reads what libraft will load; this catches the rest,
     * such as a segment file that is missing altogether. */
    rv = log__check_end(l, raft_last_index(&l->raft), errmsg);
    if (rv != 0) {
        goto err_after_raft;
    }

    /* A barrier commits only after every earlier entry is applied, so its
     * callback is the moment the store reflects the whole log. */
    l->barrier.data = l;
    rv = raft_barrier(&l->raft, &l->barrier, log__barrier_cb);
    if (rv != 0) {
        err_printf(errmsg, "raft barrier: %s", raft_errmsg(&l->raft));
        rv = BERTH_EIO;
        goto err_after_raft;
    }
    *out = l;
    return 0;

err_after_raft:
    /* raft now owns io and closes it asynchronously, referencing l until it
     * is done; a failed open is followed by process exit, so l is left to
     * the OS rather than freed under raft's feet, and kept reachable so
     * that leak checkers agree. */
    l->closing = true;
    raft_close(&l->raft, NULL);
    log__abandoned = l;
    return rv;
err_after_io:
    raft_uv_close(&l->io);
    /* l holds the handles: it is freed once both are closed. */
    mem_free(l->dir);
    uv_close((uv_handle_t *)&l->watchdog, NULL);
    uv_close((uv_handle_t *)&l->transport_handle, log__free_closed);
    return rv;
err_after_dir:
    mem_free(l->dir);
err_after_alloc:
    mem_free(l);
    return rv;
}

static void log__apply_cb(struct raft_apply *req, int status, void *result)
{
    struct log__req *r = req->data;
    struct log *l = r->log;
    l->pending--;
    int rv = 0;
    if (status != 0) {
        if (status == RAFT_SHUTDOWN || status == RAFT_CANCELED) {
            rv = BERTH_ESHUTDOWN;
        } else {
            /* With one voter, losing leadership can only follow an I/O
             * error (libraft steps down after a failed write), so it is as
             * fatal as the error itself. */
            log__fatal(l, "log write failed", status);
            rv = BERTH_EIO;
        }
    }
    log_done_cb cb = r->cb;
    void *arg = r->arg;
    mem_free(r);
    cb(arg, rv, rv == 0 ? (int)(intptr_t)result : 0);
}

int log_propose(struct log *l, struct buf *entry, log_done_cb cb, void *arg)
{
    if (l->fatal || l->closing) {
        return BERTH_ESHUTDOWN;
    }
    struct log__req *r = mem_alloc(sizeof *r);
    if (r == NULL) {
        return BERTH_ENOMEM;
    }
    /* raft wants memory from raft_malloc; copying once keeps buf's
     * allocator private to berth. */
    struct raft_buffer b;
    b.len = fsm_framed_len(entry->len);
    b.base = raft_calloc(1, b.len);
    if (b.base == NULL) {
        mem_free(r);
        return BERTH_ENOMEM;
    }
    fsm_frame(b.base, entry->data, entry->len);
    r->log = l;
    r->cb = cb;
    r->arg = arg;
    r->req.data = r;
    int rv = raft_apply(&l->raft, &r->req, &b, 1, log__apply_cb);
    if (rv != 0) {
        raft_free(b.base);
        mem_free(r);
        if (rv == RAFT_NOTLEADER) {
            /* A one-voter cluster that does not lead has failed. */
            log__fatal(l, "log no longer leads", rv);
            return BERTH_EIO;
        }
        return rv == RAFT_NOTLEADER ? BERTH_ENOTLEADER
               : rv == RAFT_NOMEM   ? BERTH_ENOMEM
                                    : BERTH_EIO;
    }
    buf_free(entry);
    l->pending++;
    log__watch(l);
    return 0;
}

void log_compact(struct log *l)
{
    if (l->fatal || l->closing) {
        return;
    }
    fsm_compact(l->cfg.fsm);
}

unsigned log_pending(const struct log *l)
{
    return l->pending;
}

uint64_t log_applied_index(const struct log *l)
{
    return raft_last_applied((struct raft *)&l->raft);
}

static void log__closed(uv_handle_t *h)
{
    struct log *l = h->data;
    log_close_cb cb = l->close_cb;
    void *arg = l->close_arg;
    mem_free(l->dir);
    mem_free(l);
    if (cb != NULL) {
        cb(arg);
    }
}

static void log__close_cb(struct raft *raft)
{
    struct log *l = raft->data;
    raft_uv_close(&l->io);
    /* The watchdog closes last: l, which holds it, is freed in its close
     * callback, after libuv is done with every handle inside l. */
    uv_close((uv_handle_t *)&l->watchdog, log__closed);
}

void log_close(struct log *l, log_close_cb cb, void *arg)
{
    l->closing = true;
    l->close_cb = cb;
    l->close_arg = arg;
    uv_timer_stop(&l->watchdog);
    raft_close(&l->raft, log__close_cb);
}
