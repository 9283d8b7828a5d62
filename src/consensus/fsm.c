#include "consensus/fsm.h"

#include <limits.h>
#include <raft.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"

#define FSM__FRAME 8
#define FSM__EVERY 1024

/* The store's batch (store/store.h) is committed after this many entries or
 * entry bytes, or once its first entry is this old. With 256 writers to as
 * many ships, committing every 256 entries rather than every one cut the
 * bytes written per event from 18 KB to 2.7 KB on each host and raised
 * throughput by half (docs/design.md); big entries gain nothing from
 * sharing a commit.
 *
 * A host that no other host replicates from commits the store before
 * anything it commits is released: its store is then the proof of what may
 * have been acknowledged, which tells a damaged last entry from a torn
 * write (docs/design.md, "A damaged log"). The log does it (fsm_flush) once
 * per loop iteration, after every entry the iteration applied, and only
 * then lets their effects out. With peers, the entries a host loses that
 * way are on the hosts that acknowledged them. */
#define FSM__FLUSH_ENTRIES 256
#define FSM__FLUSH_BYTES (8u << 20)
#define FSM__FLUSH_MS 1000

/* Events a ship's snapshot stands for are deleted (store_sweep) at the
 * first flush this long after the last sweep: the longer, the more ships'
 * events share each page deleted, and the longer one sweep holds the loop.
 * One host, 16 writers, alternate 8 s runs: a p99 of 3.2-3.5 ms at 3 s,
 * 4.2-4.4 ms at 1 s, 11-13 ms deleting at each snapshot. */
#define FSM__SWEEP_MS 3000

struct fsm {
    struct raft_fsm raft_fsm;
    struct raft *raft;
    struct store *store;
    struct fsm_hooks hooks;
    unsigned every;          /* least entries between snapshots */
    unsigned trailing;       /* entries kept behind a snapshot; 0: default */
    unsigned size_percent;   /* log bytes since, in % of the store's size */
    uint64_t snapshot_index; /* raft index of the last snapshot */
    uint64_t bytes_since;    /* entry bytes applied since it */
    uint64_t store_bytes;    /* what the last snapshot cost */
    uint64_t unflushed;      /* entry bytes in the store's batch */
    uint64_t now_ms;         /* as of the last fsm_tick */
    uint64_t batch_ms;       /* when the batch's first entry was applied */
    uint64_t sweep_ms;       /* when store_sweep last ran */
    uint64_t prev_index;     /* snapshot_index and bytes_since before the */
    uint64_t prev_bytes;     /* snapshot being taken, should it fail */
    bool compacting;         /* fsm_compact asked for a snapshot */
    unsigned compact_rounds; /* snapshots it still wants: 2, then 1 */
    bool compact_taken;      /* raft took it: it is being written */
    bool compact_done;       /* and written: usual settings at next apply */
    bool pinned;             /* img is pinned in the store */
    /* Set by snapshot_async, which may run off the loop thread, when it
     * failed: raft then never calls snapshot_finalize, so the loop thread
     * releases the pin at its next call. */
    atomic_bool release;
    bool fatal;
    struct store_image img;
    struct fsm_stats stats;
};

static void fsm__fatal(struct fsm *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void fsm__fatal(struct fsm *f, const char *fmt, ...)
{
    char msg[ERRMSG_SIZE];
    va_list ap;
    if (f->fatal) {
        return;
    }
    f->fatal = true;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (f->hooks.fatal != NULL) {
        f->hooks.fatal(f->hooks.arg, msg);
    }
}

size_t fsm_framed_len(size_t n)
{
    return FSM__FRAME + ((n + 7) & ~(size_t)7);
}

void fsm_frame(uint8_t *out, const uint8_t *entry, size_t n)
{
    put_le64(out, n);
    memcpy(out + FSM__FRAME, entry, n);
}

/* Whether the next snapshot is due: at least `every` entries, and at least
 * size_percent of the store's size in entry bytes, since the last one. A
 * snapshot copies the whole store, so taking one after every fixed number
 * of entries would cost a big store its size again and again for a few
 * bytes of log each time. */
static bool fsm__due(const struct fsm *f, uint64_t index)
{
    uint64_t since = index > f->snapshot_index ? index - f->snapshot_index : 0;
    return since >= f->every &&
           f->bytes_since >= f->store_bytes / 100 * f->size_percent;
}

/* The snapshot settings in force when no compaction is asked for: raft
 * takes a snapshot at the first commit after fsm__due says so, keeping an
 * eighth of `every` entries behind it for followers a little behind. */
static void fsm__settings(struct fsm *f, uint64_t index)
{
    if (f->raft == NULL || f->compacting) {
        return;
    }
    raft_set_snapshot_threshold(f->raft, fsm__due(f, index) ? 1 : UINT_MAX);
    raft_set_snapshot_trailing(f->raft,
                               f->trailing ? f->trailing : f->every / 8 + 1);
}

static void fsm__unpin(struct fsm *f)
{
    if (f->pinned) {
        store_image_end(f->store, &f->img);
        f->pinned = false;
    }
    atomic_store(&f->release, false);
}

/* A copy failed (fsm__snapshot_async): unpin, and count the log since the
 * snapshot before it again, since this one was never written. */
static void fsm__release(struct fsm *f)
{
    if (atomic_load(&f->release)) {
        fsm__unpin(f);
        f->snapshot_index = f->prev_index;
        f->bytes_since += f->prev_bytes;
    }
}

/* Whether the next flush sweeps: marks are waiting, and the last sweep is
 * FSM__SWEEP_MS old. */
static bool fsm__sweep_due(const struct fsm *f)
{
    return store_marked(f->store) && f->now_ms - f->sweep_ms >= FSM__SWEEP_MS;
}

/* Commit the store's batch, with a sweep when one is due; a failure leaves
 * the store behind what raft counts as applied, which only a restart
 * mends. */
static int fsm__flush(struct fsm *f)
{
    f->unflushed = 0;
    f->stats.flushes++;
    int rv = 0;
    if (fsm__sweep_due(f)) {
        f->stats.sweeps++;
        rv = store_sweep(f->store);
        if (!store_marked(f->store)) {
            /* Else more marks than a sweep takes: the next flush goes on. */
            f->sweep_ms = f->now_ms;
        }
    }
    if (rv == 0) {
        rv = store_flush(f->store);
    }
    if (rv != 0) {
        fsm__fatal(f, "committing applied entries to the store: %s (%s)",
                   err_str(rv), store_errmsg(f->store));
    }
    return rv;
}

bool fsm_alone(const struct fsm *f)
{
    unsigned holders = 0;
    for (unsigned i = 0; f->raft != NULL && i < f->raft->configuration.n; i++) {
        holders += f->raft->configuration.servers[i].role != RAFT_SPARE;
    }
    return holders <= 1;
}

static int fsm__apply(struct raft_fsm *rf, const struct raft_buffer *buf,
                      void **result)
{
    struct fsm *f = rf->data;
    fsm__release(f);
    if (f->compact_done) {
        /* The compacting snapshot was written with one entry kept behind
         * it (raft reads the trailing setting when the write completes,
         * after snapshot_finalize): the usual settings are back. */
        f->compacting = f->compact_taken = f->compact_done = false;
    }
    uint64_t n = buf->len >= FSM__FRAME ? get_le64(buf->base) : UINT64_MAX;
    if (n > buf->len - FSM__FRAME || fsm_framed_len(n) != buf->len) {
        fsm__fatal(f, "log entry with a bad length");
        return RAFT_CORRUPT;
    }
    /* Entries are applied one by one in order, and raft counts an entry as
     * applied once this returns: this one is the next. */
    uint64_t index = raft_last_applied(f->raft) + 1;
    const uint8_t *entry = (const uint8_t *)buf->base + FSM__FRAME;
    struct store_apply_hook hook = {.damaged = f->hooks.damaged,
                                    .removed = f->hooks.removed,
                                    .added = f->hooks.added,
                                    .mailed = f->hooks.mailed,
                                    .arg = f->hooks.arg};
    int res = 0;
    int rv = store_apply_entry(f->store, index, entry, (size_t)n, &hook, &res);
    if (rv != 0) {
        fsm__fatal(f, "applying log entry %llu: %s (%s)",
                   (unsigned long long)index, err_str(rv),
                   store_errmsg(f->store));
        return rv == BERTH_ECORRUPT ? RAFT_CORRUPT : RAFT_IOERR;
    }
    if (f->hooks.applied != NULL) {
        rv = f->hooks.applied(f->hooks.arg, index, entry, (size_t)n);
        if (rv != 0) {
            fsm__fatal(f, "after applying log entry %llu: %s",
                       (unsigned long long)index, err_str(rv));
            return RAFT_IOERR;
        }
    }
    f->bytes_since += buf->len;
    if (f->unflushed == 0) {
        f->batch_ms = f->now_ms;
    }
    f->unflushed += buf->len;
    if ((store_unflushed(f->store) >= FSM__FLUSH_ENTRIES ||
         f->unflushed >= FSM__FLUSH_BYTES) &&
        fsm__flush(f) != 0) {
        return RAFT_IOERR;
    }
    fsm__settings(f, index);
    *result = (void *)(intptr_t)res;
    return 0;
}

/* On the loop thread: pin a consistent copy of the store. The copy itself
 * is made by fsm__snapshot_async. */
static int fsm__snapshot(struct raft_fsm *rf, struct raft_buffer *bufs[],
                         unsigned *n_bufs)
{
    struct fsm *f = rf->data;
    fsm__release(f);
    if (f->pinned) {
        return RAFT_BUSY;
    }
    /* The copy is of the committed store. */
    if (fsm__flush(f) != 0) {
        return RAFT_IOERR;
    }
    int rv = store_image_begin(f->store, &f->img);
    if (rv != 0) {
        /* Without a copy the log keeps its entries; raft tries again at a
         * later commit. */
        return rv == BERTH_ENOMEM ? RAFT_NOMEM : RAFT_IOERR;
    }
    f->pinned = true;
    f->compact_taken = f->compacting;
    f->prev_index = f->snapshot_index;
    f->prev_bytes = f->bytes_since;
    f->snapshot_index = raft_last_applied(f->raft);
    f->bytes_since = 0;
    f->store_bytes = f->img.size;
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

/* The copy: it touches the pinned file only, never SQLite, so it may run
 * off the loop thread. libraft 0.22.1 calls it right after fsm__snapshot,
 * on the loop thread (docs/design.md). */
static int fsm__snapshot_async(struct raft_fsm *rf, struct raft_buffer *bufs[],
                               unsigned *n_bufs)
{
    struct fsm *f = rf->data;
    struct raft_buffer *b = raft_malloc(sizeof *b);
    if (b == NULL) {
        goto err;
    }
    b->len = STORE_IMAGE_HEADER + f->img.size;
    b->base = raft_malloc(b->len);
    if (b->base == NULL) {
        goto err_after_array;
    }
    if (store_image_read(&f->img, b->base) != 0) {
        goto err_after_base;
    }
    *bufs = b;
    *n_bufs = 1;
    return 0;

err_after_base:
    raft_free(b->base);
err_after_array:
    raft_free(b);
err:
    atomic_store(&f->release, true);
    return RAFT_NOMEM;
}

/* On the loop thread, once raft has written the snapshot (or given up). */
static int fsm__snapshot_finalize(struct raft_fsm *rf,
                                  struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct fsm *f = rf->data;
    for (unsigned i = 0; i < *n_bufs; i++) {
        f->stats.last_snapshot_bytes = (*bufs)[i].len;
        raft_free((*bufs)[i].base);
    }
    raft_free(*bufs);
    *bufs = NULL;
    *n_bufs = 0;
    fsm__unpin(f);
    f->stats.snapshots++;
    f->stats.snapshot_index = f->snapshot_index;
    if (f->compact_taken && f->compact_rounds > 1) {
        /* The second snapshot, two entries on: the segment the first one
         * closed then lies wholly behind the entry kept. */
        f->compact_rounds--;
        f->compact_taken = false;
        raft_set_snapshot_threshold(f->raft, 2);
    } else if (f->compact_taken) {
        f->compact_done = true;
    }
    return 0;
}

static int fsm__restore(struct raft_fsm *rf, struct raft_buffer *buf)
{
    struct fsm *f = rf->data;
    bool replaced = false;
    fsm__release(f);
    f->unflushed = 0;
    int rv = store_image_restore(f->store, buf->base, buf->len, &replaced);
    if (rv != 0) {
        fsm__fatal(f, "restoring a raft snapshot: %s (%s)", err_str(rv),
                   store_errmsg(f->store));
        /* raft frees the buffer of a failed restore. */
        return rv == BERTH_ECORRUPT ? RAFT_CORRUPT : RAFT_IOERR;
    }
    uint64_t index = get_le64((const uint8_t *)buf->base + 16);
    raft_free(buf->base);
    f->snapshot_index = index;
    f->stats.snapshot_index = index;
    f->bytes_since = 0;
    if (store_bytes(f->store, &f->store_bytes) != 0) {
        f->store_bytes = 0;
    }
    if (!replaced) {
        f->stats.restores_kept++;
        return 0;
    }
    f->stats.restores++;
    if (f->hooks.restored != NULL) {
        rv = f->hooks.restored(f->hooks.arg, index);
        if (rv != 0) {
            fsm__fatal(f, "after restoring a raft snapshot: %s", err_str(rv));
            return RAFT_IOERR;
        }
    }
    return 0;
}

int fsm_open(struct fsm **out, struct store *store,
             const struct fsm_hooks *hooks)
{
    struct fsm *f = mem_calloc(1, sizeof *f);
    if (f == NULL) {
        return BERTH_ENOMEM;
    }
    f->store = store;
    if (hooks != NULL) {
        f->hooks = *hooks;
    }
    f->every = FSM__EVERY;
    f->size_percent = 100;
    atomic_init(&f->release, false);
    f->img.fd = -1;
    /* Version 3: snapshot pins, snapshot_async copies, snapshot_finalize
     * frees (and raft leaves the buffers to it). */
    f->raft_fsm.version = 3;
    f->raft_fsm.data = f;
    f->raft_fsm.apply = fsm__apply;
    f->raft_fsm.snapshot = fsm__snapshot;
    f->raft_fsm.restore = fsm__restore;
    f->raft_fsm.snapshot_finalize = fsm__snapshot_finalize;
    f->raft_fsm.snapshot_async = fsm__snapshot_async;
    *out = f;
    return 0;
}

void fsm_close(struct fsm *f)
{
    if (f == NULL) {
        return;
    }
    fsm__unpin(f);
    mem_free(f);
}

struct raft_fsm *fsm_raft_fsm(struct fsm *f)
{
    return &f->raft_fsm;
}

void fsm_attach(struct fsm *f, struct raft *raft, unsigned every)
{
    f->raft = raft;
    f->every = every ? every : FSM__EVERY;
    /* Until the first snapshot, the store's size now is the cost. */
    if (store_bytes(f->store, &f->store_bytes) != 0) {
        f->store_bytes = 0;
    }
    fsm__settings(f, raft_last_applied(raft));
}

void fsm_set_size_percent(struct fsm *f, unsigned percent)
{
    f->size_percent = percent;
}

void fsm_set_trailing(struct fsm *f, unsigned trailing)
{
    f->trailing = trailing;
    if (f->raft != NULL) {
        fsm__settings(f, raft_last_applied(f->raft));
    }
}

bool fsm_compacting(const struct fsm *f)
{
    return f->compacting && !f->compact_done && !f->fatal;
}

void fsm_compact(struct fsm *f)
{
    if (f->fatal || f->raft == NULL) {
        return;
    }
    f->compact_rounds = 2;
    if (f->compacting) {
        return;
    }
    f->compacting = true;
    raft_set_snapshot_threshold(f->raft, 1);
    raft_set_snapshot_trailing(f->raft, 1);
}

void fsm_tick(struct fsm *f, uint64_t now_ms)
{
    f->now_ms = now_ms;
    if (!f->fatal &&
        ((f->unflushed > 0 && now_ms - f->batch_ms >= FSM__FLUSH_MS) ||
         fsm__sweep_due(f))) {
        fsm__flush(f);
    }
}

int fsm_flush(struct fsm *f)
{
    if (f->fatal) {
        return BERTH_EIO;
    }
    return f->unflushed > 0 ? fsm__flush(f) : 0;
}

struct fsm_stats fsm_stats(const struct fsm *f)
{
    return f->stats;
}
