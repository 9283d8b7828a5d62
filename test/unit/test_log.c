/* The log on real libraft and a real directory: entries are applied in
 * order, replayed after a restart, and the loop closes cleanly. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "consensus/fsm.h"
#include "consensus/log.h"
#include "consensus/segments.h"
#include "core/record.h"
#include "lib/err.h"
#include "store/store.h"

struct fixture {
    uv_loop_t loop;
    char dir[64];
    char raft[96]; /* the log's directory */
    char path[96]; /* the store */
    struct store *store;
    struct fsm *fsm;
    struct log *log;
    bool ready;
    unsigned applied;    /* entries applied */
    uint64_t last_seen;  /* payload of the last applied entry */
    uint64_t last_index; /* log position of the last applied entry */
    unsigned done;       /* proposer callbacks */
    bool closed;
};

/* Each entry is the removal of a ship that does not exist: the store
 * applies it as a no-op, and its sid numbers the entries. */
static int fx_applied(void *arg, uint64_t index, const uint8_t *entry,
                      size_t len)
{
    struct fixture *f = arg;
    uint64_t v;
    assert_int_equal(record_decode_ship_remove(entry, len, &v), 0);
    /* Positions grow by one from entry to entry (the bootstrap's
     * configuration entry comes first, so they start above 1). */
    assert_true(index > 1);
    assert_true(f->last_index == 0 || index == f->last_index + 1);
    f->last_index = index;
    /* Entries arrive in proposal order; after a restart the first one is
     * whatever follows the last raft snapshot. */
    assert_true(f->last_seen == 0 || v == f->last_seen + 1);
    f->last_seen = v;
    f->applied++;
    return 0;
}

static void fx_fatal(void *arg, const char *message)
{
    fail_msg("fatal: %s", message);
}

static void fx_lead(void *arg, bool leading)
{
    struct fixture *f = arg;
    f->ready = leading;
}

static void fx_done(void *arg, int status, int result)
{
    struct fixture *f = arg;
    assert_int_equal(status, 0);
    assert_int_equal(result, 0);
    /* A host alone answers only what its store has committed. */
    assert_int_equal(store_unflushed(f->store), 0);
    f->done++;
}

static void fx_closed(void *arg)
{
    struct fixture *f = arg;
    f->closed = true;
}

/* Open the store and the fsm over it; every = 0 keeps the default. */
static void fx_open_store(struct fixture *f)
{
    char errmsg[ERRMSG_SIZE];
    struct fsm_hooks hooks = {
        .applied = fx_applied,
        .fatal = fx_fatal,
        .arg = f,
    };
    if (store_open(&f->store, f->path, errmsg) != 0) {
        fail_msg("store_open: %s", errmsg);
    }
    assert_int_equal(fsm_open(&f->fsm, f->store, &hooks), 0);
    /* The store is small: snapshots follow the entry count alone. */
    fsm_set_size_percent(f->fsm, 0);
}

static void fx_open_applied(struct fixture *f, unsigned every, uint64_t applied)
{
    char errmsg[ERRMSG_SIZE];
    fx_open_store(f);
    struct log_config cfg = {
        .dir = f->raft,
        .applied_index = applied,
        .snapshot_every = every,
        .fsm = f->fsm,
        .fatal = fx_fatal,
        .lead = fx_lead,
        .arg = f,
    };
    f->ready = false;
    f->last_seen = 0;
    f->last_index = 0;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    int rv = log_open(&f->log, &f->loop, &cfg, errmsg);
    if (rv != 0) {
        fail_msg("log_open: %s", errmsg);
    }
    while (!f->ready) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
}

static void fx_open(struct fixture *f, unsigned every)
{
    fx_open_applied(f, every, 0);
}

static void fx_close(struct fixture *f)
{
    f->closed = false;
    log_close(f->log, fx_closed, f);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->closed);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    fsm_close(f->fsm);
    store_close(f->store);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s", "log-test.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->raft, sizeof f->raft, "%s/raft", f->dir);
    snprintf(f->path, sizeof f->path, "%s/store.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void propose(struct fixture *f, uint32_t v)
{
    struct buf b;
    buf_init(&b);
    assert_int_equal(record_encode_ship_remove(&b, v), 0);
    assert_int_equal(log_propose(f->log, &b, fx_done, f, NULL), 0);
    assert_null(b.data); /* taken */
}

static void test_propose_apply_restart(void **state)
{
    struct fixture *f = *state;
    fx_open(f, 0);
    for (uint32_t v = 1; v <= 100; v++) {
        propose(f, v);
    }
    assert_int_equal(log_pending(f->log), 100);
    while (f->done < 100) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(f->applied, 100);
    assert_int_equal(log_pending(f->log), 0);
    assert_int_equal(f->last_index, log_applied_index(f->log));
    /* Entries applied in one loop iteration share one commit of the
     * store; proposed together, they are written and applied together. */
    assert_true(fsm_stats(f->fsm).flushes <= 10);
    fx_close(f);

    /* Committed entries are applied again on start, before ready, at the
     * same positions. */
    uint64_t last_index = f->last_index;
    f->last_index = 0;
    f->applied = 0;
    fx_open(f, 0);
    assert_int_equal(f->applied, 100);
    assert_int_equal(f->last_seen, 100);
    assert_int_equal(f->last_index, last_index);
    fx_close(f);
}

static void test_snapshot_copies_store(void **state)
{
    struct fixture *f = *state;
    fx_open(f, 16);
    for (uint32_t v = 1; v <= 64; v++) {
        propose(f, v);
        while (f->done < v) {
            uv_run(&f->loop, UV_RUN_ONCE);
        }
    }
    /* raft snapshots after each 16 entries; each is a copy of the store. */
    struct fsm_stats st = fsm_stats(f->fsm);
    uint64_t last_index = f->last_index;
    assert_true(st.snapshots >= 1);
    assert_true(st.last_snapshot_bytes > STORE_IMAGE_HEADER);
    fx_close(f);
    /* After a snapshot only the entries behind it are replayed, and the
     * snapshot is not copied back: the store holds it already. */
    f->applied = 0;
    fx_open(f, 16);
    assert_true(f->applied < 64);
    st = fsm_stats(f->fsm);
    assert_int_equal(st.restores, 0);
    assert_int_equal(st.restores_kept, 1);
    fx_close(f);

    /* A host whose store was lost gets it back from the snapshot and the
     * log. */
    assert_int_equal(unlink(f->path), 0);
    f->applied = 0;
    fx_open(f, 16);
    st = fsm_stats(f->fsm);
    assert_int_equal(st.restores, 1);
    uint64_t applied;
    assert_int_equal(store_meta_get(f->store, "applied_index", &applied), 0);
    assert_int_equal(applied, last_index);
    fx_close(f);
}

/* The segment check reads libraft's own files as libraft does, and a log
 * that ends below the applied index is refused with the files untouched. */
static void test_log_below_applied_is_refused(void **state)
{
    struct fixture *f = *state;
    char errmsg[ERRMSG_SIZE];
    struct segments_report r;
    fx_open(f, 0);
    for (uint32_t v = 1; v <= 50; v++) {
        propose(f, v);
    }
    while (f->done < 50) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uint64_t last = f->last_index;
    fx_close(f);

    assert_int_equal(segments_check(f->raft, last, &r, errmsg), 0);
    /* The barrier that marks readiness follows the last entry. */
    assert_true(r.last_index >= last && r.last_index <= last + 1);
    assert_int_equal(r.torn_index, 0);

    fx_open_store(f);
    struct log_config cfg = {
        .dir = f->raft,
        .applied_index = r.last_index + 1,
        .fsm = f->fsm,
        .fatal = fx_fatal,
        .lead = fx_lead,
        .arg = f,
    };
    struct log *l = NULL;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(log_open(&l, &f->loop, &cfg, errmsg), BERTH_ECORRUPT);
    assert_non_null(strstr(errmsg, "entries are missing"));
    assert_int_equal(uv_loop_close(&f->loop), 0);
    fsm_close(f->fsm);
    store_close(f->store);

    /* At the applied index it opens as usual. */
    f->last_seen = 0;
    f->done = 0;
    fx_open_applied(f, 0, r.last_index);
    fx_close(f);
}

/* A peer port another socket holds fails the start with its reason, and
 * leaves nothing that names it: the same directory then starts without a
 * peer address (or with another) rather than being tied to the first. */
static void test_busy_peer_port_leaves_no_identity(void **state)
{
    struct fixture *f = *state;
    char errmsg[ERRMSG_SIZE], peer[64];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sin;
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    snprintf(peer, sizeof peer, "127.0.0.1:%u", ntohs(sin.sin_port));

    fx_open_store(f);
    struct log_config cfg = {
        .dir = f->raft,
        .peer = peer,
        .fsm = f->fsm,
        .fatal = fx_fatal,
        .lead = fx_lead,
        .arg = f,
    };
    struct log *l = NULL;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(log_open(&l, &f->loop, &cfg, errmsg), BERTH_EBUSY);
    assert_non_null(strstr(errmsg, "peer port: cannot listen on"));
    assert_non_null(strstr(errmsg, peer));
    assert_int_equal(uv_loop_close(&f->loop), 0);
    fsm_close(f->fsm);
    store_close(f->store);
    close(fd);

    /* Without a peer address it starts, leads and logs. */
    fx_open(f, 0);
    propose(f, 1);
    while (f->done < 1) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    fx_close(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_propose_apply_restart, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_copies_store, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_below_applied_is_refused,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_peer_port_leaves_no_identity,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
