/* The SQLite store: records survive a reopen, unique ids and names hold,
 * and damaged files are refused with a message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "core/gate.h"
#include "core/record.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "store/apply.h"
#include "store/store.h"
#include "fx_dir.h"

static int setup(void **state)
{
    return fx_dir_setup_named(state, "store-test", "store.db");
}

#define teardown fx_dir_teardown

static struct store *open_ok(const char *path)
{
    struct store *s;
    char errmsg[ERRMSG_SIZE];
    int rv = store_open(&s, path, errmsg);
    if (rv != 0) {
        fail_msg("store_open: %s", errmsg);
    }
    return s;
}

static void ship(struct store_ship *sh, uint64_t sid, const char *id,
                 const char *name)
{
    memset(sh, 0, sizeof *sh);
    sh->sid = sid;
    snprintf(sh->id, sizeof sh->id, "%s", id);
    snprintf(sh->name, sizeof sh->name, "%s", name);
    sh->program = "/bin/prog";
    sh->first_event = 1;
}

static int stop_at_two(const struct store_ship *s, void *arg)
{
    int *n = arg;
    return ++*n == 2 ? 42 : 0;
}

static void test_ships_persist_and_stay_unique(void **state)
{
    struct fx *x = *state;
    struct store *s = open_ok(x->path);
    struct store_ship a, b, got;
    ship(&a, 1, "aaaa", "ann");
    ship(&b, 2, "bbbb", "");
    assert_int_equal(store_ship_put(s, &a), 0);
    assert_int_equal(store_ship_put(s, &b), 0);
    /* Unnamed ships do not collide; named ones and ids do. */
    struct store_ship c;
    ship(&c, 3, "cccc", "");
    assert_int_equal(store_ship_put(s, &c), 0);
    ship(&c, 4, "dddd", "ann");
    assert_int_equal(store_ship_put(s, &c), BERTH_EEXIST);
    assert_non_null(strstr(store_errmsg(s), "UNIQUE"));
    ship(&c, 5, "aaaa", "");
    assert_int_equal(store_ship_put(s, &c), BERTH_EEXIST);
    /* The clash changed nothing. */
    assert_int_equal(store_ship_get(s, "ann", &got), 0);
    assert_int_equal(got.sid, 1);
    store_ship_clear(&got);
    uint64_t count;
    assert_int_equal(store_ship_count(s, &count), 0);
    assert_int_equal(count, 3);
    int n = 0;
    assert_int_equal(store_ship_foreach(s, stop_at_two, &n), 42);
    assert_int_equal(store_meta_put(s, "next_sid", 3), 0);
    assert_int_equal(store_event_put(s, 1, 1, "r1", 2), 0);
    struct store_snapshot snap = {.number = 1};
    memcpy(snap.epoch, "0123456789abcdef0123456789abcdef", STORE_HASH_SIZE);
    assert_int_equal(store_snapshot_put(s, 1, &snap, "", 0), 0);
    assert_int_equal(store_sync(s), 0);
    store_close(s);

    s = open_ok(x->path);
    assert_int_equal(store_ship_get(s, "aaaa", &got), 0);
    assert_string_equal(got.name, "ann");
    assert_string_equal(got.program, "/bin/prog");
    store_ship_clear(&got);
    assert_int_equal(store_ship_get_sid(s, 2, &got), 0);
    assert_string_equal(got.name, "");
    store_ship_clear(&got);
    uint64_t v;
    assert_int_equal(store_meta_get(s, "next_sid", &v), 0);
    assert_int_equal(v, 3);
    assert_int_equal(store_meta_get(s, "missing", &v), 0);
    assert_int_equal(v, 0);
    struct buf data;
    buf_init(&data);
    assert_int_equal(store_snapshot_get(s, 1, &snap, &data), 0);
    assert_int_equal(data.len, 0); /* an empty snapshot is still one */
    assert_int_equal(snap.number, 1);
    assert_memory_equal(snap.epoch, "0123456789abcdef", 16);
    assert_int_equal(store_snapshot_get(s, 2, &snap, &data), BERTH_ENOTFOUND);
    buf_free(&data);
    /* Delete takes events and snapshot with it. */
    assert_int_equal(store_ship_delete(s, 1), 0);
    assert_int_equal(store_ship_delete(s, 1), BERTH_ENOTFOUND);
    assert_int_equal(store_ship_get(s, "ann", &got), BERTH_ENOTFOUND);
    store_close(s);
}

static int collect(uint64_t number, const void *rec, size_t len, void *arg)
{
    uint64_t *sum = arg;
    *sum = *sum * 10 + number;
    return 0;
}

/* Store ship sid (named after it) with events 1..n chained from zeros, as
 * applying would; returns the head hash in head. */
static void chained_ship(struct store *s, uint64_t sid, uint64_t n,
                         uint8_t *head)
{
    struct store_ship sh;
    char id[16];
    snprintf(id, sizeof id, "ship%llu", (unsigned long long)sid);
    ship(&sh, sid, id, "");
    memset(head, 0, RECORD_HASH_SIZE);
    for (uint64_t i = 1; i <= n; i++) {
        struct record_event ev = {.sid = sid, .number = i, .kind = 2};
        struct buf r;
        ev.payload = (const uint8_t *)"x";
        ev.payload_len = 1;
        memcpy(ev.prev_hash, head, RECORD_HASH_SIZE);
        buf_init(&r);
        assert_int_equal(record_encode_event(&r, &ev, NULL, NULL, NULL), 0);
        record_hash(r.data, r.len, head);
        assert_int_equal(store_event_put(s, sid, i, r.data, r.len), 0);
        buf_free(&r);
    }
    sh.last_event = n;
    memcpy(sh.last_hash, head, RECORD_HASH_SIZE);
    assert_int_equal(store_ship_put(s, &sh), 0);
}

static void test_events_and_transactions(void **state)
{
    struct store *s = open_ok(":memory:");
    uint8_t head[RECORD_HASH_SIZE], zeros[RECORD_HASH_SIZE] = {0};
    chained_ship(s, 7, 5, head);
    uint64_t sum = 0;
    assert_int_equal(store_event_foreach(s, 7, 3, NULL, collect, &sum), 0);
    assert_int_equal(sum, 345);
    sum = 0;
    assert_int_equal(store_event_foreach(s, 7, 1, zeros, collect, &sum), 0);
    assert_int_equal(sum, 12345);
    assert_int_equal(store_event_truncate(s, 7, 2), 0);
    sum = 0;
    assert_int_equal(store_event_foreach(s, 7, 3, NULL, collect, &sum), 0);
    assert_int_equal(sum, 345);
    assert_int_equal(store_entry_begin(s, true), 0);
    assert_int_equal(store_event_put(s, 7, 6, "x", 1), 0);
    assert_int_equal(store_entry_undo(s), 0);
    assert_int_equal(store_entry_end(s), 0);
    assert_int_equal(store_flush(s), 0);
    sum = 0;
    assert_int_equal(store_event_foreach(s, 7, 3, NULL, collect, &sum), 0);
    assert_int_equal(sum, 345);
    /* Nothing to walk: the given link must be the head. */
    assert_int_equal(store_event_foreach(s, 7, 6, head, collect, &sum), 0);
    assert_int_equal(store_event_foreach(s, 7, 6, zeros, collect, &sum),
                     BERTH_ECORRUPT);
    store_close(s);
}

/* Inside a batch a ship's head lives in memory (store/heads.h): whatever
 * reads the ship's row sees it, an undone entry takes it back, a deleted or
 * rewritten ship forgets it, and only the flush makes it durable. */
static int64_t query_int(const char *path, const char *sql);

/* A truncation only marks: the events stay, below first_event, until a
 * sweep deletes every marked one; marks are durable, survive a crash (a
 * close without a sweep) and go with an undone entry. */
static void test_truncation_marks_until_swept(void **state)
{
    struct fx *x = *state;
    uint8_t head[RECORD_HASH_SIZE], h[RECORD_HASH_SIZE];
    struct store *s = open_ok(x->path);
    chained_ship(s, 7, 5, head);
    chained_ship(s, 8, 5, head);
    assert_int_equal(store_sweep(s), 0);
    assert_false(store_marked(s));
    assert_int_equal(store_entry_begin(s, true), 0);
    assert_int_equal(store_event_truncate(s, 7, 2), 0);
    assert_int_equal(store_entry_end(s), 0);
    assert_int_equal(store_entry_begin(s, true), 0);
    assert_int_equal(store_event_truncate(s, 8, 4), 0);
    assert_int_equal(store_entry_undo(s), 0);
    assert_int_equal(store_entry_end(s), 0);
    assert_int_equal(store_flush(s), 0);
    assert_true(store_marked(s));
    assert_int_equal(store_event_hash(s, 7, 1, h), 0);
    /* A crash now: the files as they are, committed, not yet swept. */
    char crash[160], cmd[800];
    snprintf(crash, sizeof crash, "%s/crash.db", x->dir);
    snprintf(cmd, sizeof cmd, "cp %s %s && cp %s-wal %s-wal", x->path, crash,
             x->path, crash);
    assert_int_equal(system(cmd), 0);
    store_close(s);
    /* A close sweeps. */
    assert_int_equal(query_int(x->path, "SELECT count(*) FROM events"), 8);

    s = open_ok(crash);
    assert_true(store_marked(s));
    assert_int_equal(store_event_hash(s, 7, 2, h), 0);
    assert_int_equal(store_sweep(s), 0);
    assert_false(store_marked(s));
    assert_int_equal(store_flush(s), 0);
    assert_int_equal(store_event_hash(s, 7, 1, h), BERTH_ENOTFOUND);
    assert_int_equal(store_event_hash(s, 7, 2, h), BERTH_ENOTFOUND);
    assert_int_equal(store_event_hash(s, 7, 3, h), 0);
    assert_int_equal(store_event_hash(s, 8, 1, h), 0);
    /* A second mark of the same ship replaces the first. */
    assert_int_equal(store_event_truncate(s, 7, 3), 0);
    assert_int_equal(store_event_truncate(s, 7, 4), 0);
    assert_int_equal(store_compact(s), 0);
    assert_int_equal(store_event_hash(s, 7, 4, h), BERTH_ENOTFOUND);
    assert_int_equal(store_event_hash(s, 7, 5, h), 0);
    store_close(s);
    assert_int_equal(query_int(crash, "SELECT count(*) FROM truncations"), 0);
    assert_int_equal(query_int(crash, "SELECT count(*) FROM events"), 6);
}

/* One sweep takes the marks of at most STORE_SWEEP_SHIPS ships; the rest
 * wait for the next. */
static void test_sweep_is_bounded(void **state)
{
    struct fx *x = *state;
    struct store *s = open_ok(x->path);
    uint8_t head[RECORD_HASH_SIZE], h[RECORD_HASH_SIZE];
    unsigned n = STORE_SWEEP_SHIPS + 10;
    for (unsigned sid = 1; sid <= n; sid++) {
        chained_ship(s, sid, 2, head);
    }
    assert_int_equal(store_sweep(s), 0);
    for (unsigned sid = 1; sid <= n; sid++) {
        assert_int_equal(store_event_truncate(s, sid, 1), 0);
    }
    assert_int_equal(store_sweep(s), 0);
    assert_true(store_marked(s));
    assert_int_equal(store_event_hash(s, 1, 1, h), BERTH_ENOTFOUND);
    assert_int_equal(store_event_hash(s, n, 1, h), 0);
    assert_int_equal(store_sweep(s), 0);
    assert_false(store_marked(s));
    for (unsigned sid = 1; sid <= n; sid++) {
        assert_int_equal(store_event_hash(s, sid, 1, h), BERTH_ENOTFOUND);
        assert_int_equal(store_event_hash(s, sid, 2, h), 0);
    }
    /* A close sweeps them all. */
    for (unsigned sid = 1; sid <= n; sid++) {
        assert_int_equal(store_event_truncate(s, sid, 2), 0);
    }
    store_close(s);
    assert_int_equal(query_int(x->path, "SELECT count(*) FROM events"), 0);
    assert_int_equal(query_int(x->path, "SELECT count(*) FROM truncations"), 0);
}

static void test_heads_in_a_batch(void **state)
{
    struct fx *x = *state;
    struct store *s = open_ok(x->path);
    struct store_ship a, b, got;
    ship(&a, 1, "a1", "alpha");
    ship(&b, 2, "b2", "beta");
    assert_int_equal(store_ship_put(s, &a), 0);
    assert_int_equal(store_ship_put(s, &b), 0);
    uint8_t h5[STORE_HASH_SIZE], h6[STORE_HASH_SIZE], h[STORE_HASH_SIZE];
    memset(h5, 5, sizeof h5);
    memset(h6, 6, sizeof h6);
    uint64_t last, alarm;

    assert_int_equal(store_entry_begin(s, true), 0);
    assert_int_equal(store_ship_head_put(s, 1, 5, h5, 50, 0, 0), 0);
    assert_int_equal(store_ship_head_get(s, 1, &last, h, &alarm), 0);
    assert_int_equal(last, 5);
    assert_int_equal(alarm, 50);
    assert_memory_equal(h, h5, sizeof h);
    assert_int_equal(store_entry_end(s), 0);

    /* An undone entry: its head goes back to 5, even though a read of the
     * ship's row wrote it out in the middle. */
    assert_int_equal(store_entry_begin(s, true), 0);
    assert_int_equal(store_ship_head_put(s, 1, 6, h6, 60, 0, 0), 0);
    assert_int_equal(store_ship_get(s, "alpha", &got), 0);
    assert_int_equal(got.last_event, 6);
    assert_int_equal(got.alarm_ns, 60);
    assert_memory_equal(got.last_hash, h6, sizeof h6);
    store_ship_clear(&got);
    assert_int_equal(store_ship_head_put(s, 2, 9, h6, 0, 0, 0), 0);
    assert_int_equal(store_entry_undo(s), 0);
    assert_int_equal(store_entry_end(s), 0);
    assert_int_equal(store_ship_head_get(s, 1, &last, h, &alarm), 0);
    assert_int_equal(last, 5);
    assert_memory_equal(h, h5, sizeof h);
    assert_int_equal(store_ship_head_get(s, 2, &last, h, &alarm), 0);
    assert_int_equal(last, 0);

    /* A rewritten ship's row wins over its head in memory, and a deleted
     * ship has none. */
    assert_int_equal(store_entry_begin(s, true), 0);
    assert_int_equal(store_ship_head_put(s, 2, 7, h6, 0, 0, 0), 0);
    b.last_event = 3;
    assert_int_equal(store_ship_put(s, &b), 0);
    assert_int_equal(store_ship_head_get(s, 2, &last, h, &alarm), 0);
    assert_int_equal(last, 3);
    assert_int_equal(store_ship_head_put(s, 2, 8, h6, 0, 0, 0), 0);
    assert_int_equal(store_ship_delete(s, 2), 0);
    assert_int_equal(store_ship_head_get(s, 2, &last, h, &alarm),
                     BERTH_ENOTFOUND);
    assert_int_equal(store_entry_end(s), 0);

    /* Only a flushed head outlives the store. */
    assert_int_equal(store_flush(s), 0);
    assert_int_equal(store_entry_begin(s, true), 0);
    assert_int_equal(store_ship_head_put(s, 1, 99, h6, 0, 0, 0), 0);
    assert_int_equal(store_entry_end(s), 0);
    assert_int_equal(store_unflushed(s), 1);
    /* Closing flushes; a host that dies instead loses the batch. */
    store_close(s);
    s = open_ok(x->path);
    assert_int_equal(store_ship_get(s, "alpha", &got), 0);
    assert_int_equal(got.last_event, 99);
    store_ship_clear(&got);
    assert_int_equal(store_ship_get(s, "beta", &got), BERTH_ENOTFOUND);
    store_close(s);
}

/* Change stored bytes behind the store's back, as a flipped bit or a
 * hand-edited row would. */
static void tamper(const char *path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        fail_msg("%s: %s", sql, msg);
    }
    sqlite3_close(db);
}

/* Rewrite ship sid's event n, as chained_ship made it, with payload c: with
 * any c but 'x' the record still decodes but is not the one logged. */
static void put_payload(struct store *s, uint64_t sid, uint64_t n, char c)
{
    struct record_event ev = {.sid = sid, .number = n, .kind = 2};
    struct buf r;
    buf_init(&r);
    uint8_t prev[RECORD_HASH_SIZE] = {0};
    for (uint64_t i = 1; i <= n; i++) {
        buf_free(&r);
        buf_init(&r);
        ev.number = i;
        ev.payload = (const uint8_t *)"x";
        ev.payload_len = 1;
        memcpy(ev.prev_hash, prev, sizeof prev);
        assert_int_equal(record_encode_event(&r, &ev, NULL, NULL, NULL), 0);
        record_hash(r.data, r.len, prev);
    }
    r.data[r.len - 1] = (uint8_t)c;
    assert_int_equal(store_event_put(s, sid, n, r.data, r.len), 0);
    buf_free(&r);
}

/* Walk ship 7 from its first event and expect damage named in the
 * message. */
static void expect_damage(const char *path, uint64_t from, const uint8_t *link,
                          const char *words)
{
    struct store *s = open_ok(path);
    uint64_t sum = 0;
    assert_int_equal(store_event_foreach(s, 7, from, link, collect, &sum),
                     BERTH_ECORRUPT);
    if (strstr(store_errmsg(s), words) == NULL) {
        fail_msg("'%s' does not say '%s'", store_errmsg(s), words);
    }
    store_close(s);
}

static void test_hash_chain_is_checked(void **state)
{
    struct fx *x = *state;
    uint8_t head[RECORD_HASH_SIZE], zeros[RECORD_HASH_SIZE] = {0};
    struct store *s = open_ok(x->path);
    chained_ship(s, 7, 5, head);
    store_close(s);

    /* A record changed by hand: the next one no longer follows. */
    s = open_ok(x->path);
    put_payload(s, 7, 3, 'y');
    store_close(s);
    expect_damage(x->path, 1, zeros, "event 4 breaks the hash chain");
    s = open_ok(x->path);
    put_payload(s, 7, 3, 'x');
    store_close(s);
    /* The last record changed, or the head zeroed: the end does not match
     * the ship's head. */
    tamper(x->path, "UPDATE ships SET last_hash = zeroblob(32)");
    expect_damage(x->path, 1, zeros, "event 5 does not match the ship's head");
    expect_damage(x->path, 3, NULL, "event 5 does not match the ship's head");
    tamper(x->path, "UPDATE ships SET last_event = 6");
    expect_damage(x->path, 1, zeros, "last event is 6");
    tamper(x->path, "UPDATE ships SET last_event = 5");
    /* A missing record, a wrong first link, a record of another ship. */
    tamper(x->path, "DELETE FROM events WHERE n = 2");
    expect_damage(x->path, 1, zeros, "event 2 is missing");
    expect_damage(x->path, 1, head, "event 1 does not follow");
    tamper(x->path, "UPDATE events SET sid = 8 WHERE n = 1;"
                    "UPDATE events SET sid = 7 WHERE n = 1");
    tamper(x->path, "UPDATE events SET n = 2 WHERE n = 1");
    expect_damage(x->path, 2, NULL, "another ship or place");
}

static void test_snapshot_checksum_is_checked(void **state)
{
    struct fx *x = *state;
    uint8_t head[RECORD_HASH_SIZE], head8[RECORD_HASH_SIZE];
    struct store *s = open_ok(x->path);
    chained_ship(s, 7, 5, head);
    chained_ship(s, 8, 5, head8);
    struct store_snapshot snap = {.number = 5};
    memcpy(snap.chain, head, sizeof snap.chain);
    assert_int_equal(store_snapshot_put(s, 7, &snap, "state", 5), 0);
    memcpy(snap.chain, head8, sizeof snap.chain);
    assert_int_equal(store_snapshot_put(s, 8, &snap, "other", 5), 0);
    store_close(s);

    /* Each damage to ship 7's row: its bytes, its number, its epoch, its
     * link, its checksum, or ship 8's whole valid row put in its place. */
    const char *damage[] = {
        "UPDATE snapshots SET data = 'statf' WHERE sid = 7",
        "UPDATE snapshots SET n = 4 WHERE sid = 7",
        "UPDATE snapshots SET epoch = zeroblob(31) || x'01' WHERE sid = 7",
        "UPDATE snapshots SET chain = zeroblob(32) WHERE sid = 7",
        "UPDATE snapshots SET sum = zeroblob(32) WHERE sid = 7",
        "DELETE FROM snapshots WHERE sid = 7;"
        "UPDATE snapshots SET sid = 7 WHERE sid = 8",
    };
    tamper(x->path, "CREATE TABLE keep AS SELECT * FROM snapshots");
    for (size_t i = 0; i < sizeof damage / sizeof damage[0]; i++) {
        struct store_snapshot got;
        struct buf data;
        tamper(x->path, damage[i]);
        s = open_ok(x->path);
        buf_init(&data);
        assert_int_equal(store_snapshot_get(s, 7, &got, &data), BERTH_ECORRUPT);
        assert_int_equal(data.len, 0);
        assert_non_null(strstr(store_errmsg(s), "fails its checksum"));
        buf_free(&data);
        store_close(s);
        tamper(x->path, "DELETE FROM snapshots; INSERT INTO snapshots "
                        "SELECT * FROM keep");
        /* Put back, it reads again. */
        s = open_ok(x->path);
        buf_init(&data);
        assert_int_equal(store_snapshot_get(s, 7, &got, &data), 0);
        assert_memory_equal(data.data, "state", 5);
        buf_free(&data);
        store_close(s);
    }
}

/* A store of schema version 2 gets each snapshot's link and checksum:
 * from the ship's head when no event follows the snapshot, else from the
 * next event's record. */
static void test_upgrade_from_version_2(void **state)
{
    struct fx *x = *state;
    uint8_t head[RECORD_HASH_SIZE], head8[RECORD_HASH_SIZE];
    uint8_t link8[RECORD_HASH_SIZE];
    struct store *s = open_ok(x->path);
    chained_ship(s, 7, 5, head);
    chained_ship(s, 8, 5, head8);
    assert_int_equal(store_event_hash(s, 8, 3, link8), 0);
    store_close(s);
    /* Back to version 2: snapshots without link or checksum; ship 7's
     * stands for its last event, ship 8's for event 3. */
    tamper(
        x->path,
        "DROP TABLE snapshots;"
        "CREATE TABLE snapshots (sid INTEGER PRIMARY KEY, n INTEGER NOT "
        "NULL, epoch BLOB NOT NULL, data BLOB NOT NULL);"
        "INSERT INTO snapshots VALUES (7, 5, zeroblob(32), 'seven');"
        "INSERT INTO snapshots VALUES (8, 3, zeroblob(32), 'eight');"
        "DELETE FROM events WHERE sid = 8 AND n <= 3;"
        "DROP TABLE truncations;"
        "ALTER TABLE ships DROP COLUMN args;"
        "ALTER TABLE ships DROP COLUMN env;"
        "ALTER TABLE ships DROP COLUMN acks;"
        "DROP INDEX ships_by_account; ALTER TABLE ships DROP COLUMN "
        "account; DROP TABLE accounts;"
        "ALTER TABLE ships DROP COLUMN usage_bytes; ALTER TABLE ships DROP "
        "COLUMN usage_cpu_us; ALTER TABLE ships DROP COLUMN usage_mem_peak; "
        "ALTER TABLE ships DROP COLUMN usage_mem_byte_s; ALTER TABLE ships "
        "DROP COLUMN usage_wakes; ALTER TABLE ships DROP COLUMN usage_requests;"
        "DROP INDEX ships_by_parent; DROP INDEX ships_timed; ALTER TABLE ships "
        "DROP COLUMN parent; "
        "ALTER TABLE ships DROP COLUMN lifetime; ALTER TABLE ships DROP COLUMN "
        "lifetime_ms; ALTER TABLE ships DROP COLUMN spawn_tag; ALTER TABLE "
        "ships "
        "DROP COLUMN access; ALTER TABLE ships DROP COLUMN sandbox; DROP TABLE "
        "mail; ALTER TABLE ships DROP COLUMN blocked;"
        "PRAGMA user_version=2;");
    s = open_ok(x->path);
    struct store_snapshot got;
    struct buf data;
    uint64_t sum = 0;
    buf_init(&data);
    assert_int_equal(store_snapshot_get(s, 7, &got, &data), 0);
    assert_memory_equal(got.chain, head, RECORD_HASH_SIZE);
    assert_int_equal(store_event_foreach(s, 7, 6, got.chain, collect, &sum), 0);
    assert_int_equal(store_snapshot_get(s, 8, &got, &data), 0);
    assert_memory_equal(got.chain, link8, RECORD_HASH_SIZE);
    assert_int_equal(store_event_foreach(s, 8, 4, got.chain, collect, &sum), 0);
    assert_memory_equal(data.data, "seveneight", 10);
    buf_free(&data);
    /* Schema 13 recorded each ship's storage from what the store held, and
     * the account's figures from its ships'. */
    struct store_usage u7, u8;
    struct store_account anon;
    uint64_t counted;
    assert_int_equal(store_ship_usage(s, 7, &u7), 0);
    assert_int_equal(store_ship_usage(s, 8, &u8), 0);
    assert_int_equal(store_usage_recount(s, 7, &counted), 0);
    assert_int_equal(u7.storage_bytes, counted);
    assert_true(counted > STORE_USAGE_ROW + 5);
    assert_int_equal(store_account_get_id(s, 0, &anon), 0);
    assert_int_equal(anon.usage.ships, 2);
    assert_int_equal(anon.usage.storage_bytes,
                     u7.storage_bytes + u8.storage_bytes);
    assert_int_equal(anon.usage.events, 10);
    store_close(s);
    /* The upgrade also turned incremental auto-vacuum on, so that removed
     * ships' pages can leave the file. */
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(x->path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db, "PRAGMA auto_vacuum", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 2);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_not_a_database(void **state)
{
    struct fx *x = *state;
    FILE *f = fopen(x->path, "w");
    for (int i = 0; i < 512; i++) {
        fputs("this is not a database ", f);
    }
    fclose(f);
    struct store *s;
    char errmsg[ERRMSG_SIZE];
    assert_int_equal(store_open(&s, x->path, errmsg), BERTH_ECORRUPT);
    assert_true(strlen(errmsg) > 0);
}

/* The WAL is written back by name while the store is open and goes on
 * working; a missing WAL is nothing to do, an impossible path an error. */
static void test_wal_writeback(void **state)
{
    struct fx *x = *state;
    struct store *s = open_ok(x->path);
    struct store_ship sh;
    ship(&sh, 1, "aaaa", "wb");
    assert_int_equal(store_ship_put(s, &sh), 0);
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", x->path);
    struct stat st;
    assert_int_equal(stat(wal, &st), 0);
    assert_true(st.st_size > 0);
    assert_int_equal(store_wal_writeback(x->path), 0);
    assert_int_equal(store_event_put(s, 1, 1, "rec", 3), 0);
    store_close(s);

    char none[160];
    snprintf(none, sizeof none, "%s/none.db", x->dir);
    assert_int_equal(store_wal_writeback(none), 0);
    char long_path[5000];
    memset(long_path, 'a', sizeof long_path - 1);
    long_path[sizeof long_path - 1] = '\0';
    assert_int_equal(store_wal_writeback(long_path), BERTH_EIO);
}

static void test_open_out_of_memory(void **state)
{
    struct store *s;
    char errmsg[ERRMSG_SIZE];
    mem_fault_countdown(0);
    assert_int_equal(store_open(&s, ":memory:", errmsg), BERTH_ENOMEM);
    mem_fault_countdown(-1);
}

/* Write a store as an older version did: the first version's tables, the
 * ships and snapshots tables with ship_columns and snapshot_columns added,
 * then the statements of rest (its ships and its user_version). */
static void old_store(const char *path, const char *ship_columns,
                      const char *snapshot_columns, const char *rest)
{
    char sql[2048];
    snprintf(sql, sizeof sql,
             "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT "
             "NULL) WITHOUT ROWID;"
             "CREATE TABLE ships (sid INTEGER PRIMARY KEY, id TEXT NOT NULL "
             "UNIQUE, name TEXT UNIQUE, program TEXT NOT NULL, created_ns "
             "INTEGER NOT NULL, idle_timeout_ms INTEGER NOT NULL, last_event "
             "INTEGER NOT NULL, first_event INTEGER NOT NULL, snapshot_event "
             "INTEGER NOT NULL, last_hash BLOB NOT NULL, public_key BLOB NOT "
             "NULL, secret_key BLOB NOT NULL%s);"
             "CREATE TABLE events (sid INTEGER NOT NULL, n INTEGER NOT NULL, "
             "rec BLOB NOT NULL, PRIMARY KEY (sid, n)) WITHOUT ROWID;"
             "CREATE TABLE snapshots (sid INTEGER PRIMARY KEY, n INTEGER NOT "
             "NULL, epoch BLOB NOT NULL, data BLOB NOT NULL%s);%s",
             ship_columns, snapshot_columns, rest);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* Open the store at path and read the ship id_or_name into out. */
static struct store *open_with_ship(const char *path, const char *id_or_name,
                                    struct store_ship *out)
{
    struct store *s = open_ok(path);
    assert_int_equal(store_ship_get(s, id_or_name, out), 0);
    return s;
}

/* A store written by the first version (no alarms, no freeze timeout) opens
 * and is brought up to date in place, its ships intact. */
static void test_upgrade_from_version_1(void **state)
{
    struct fx *x = *state;
    old_store(x->path, "", "",
              "INSERT INTO ships VALUES (1, 'aaaa', 'old', '/bin/true', 5, 7, "
              "3, 1, 0, x'00', x'00', x'00');"
              "PRAGMA user_version=1;");

    struct store_ship ship;
    struct store *s = open_with_ship(x->path, "old", &ship);
    char errmsg[ERRMSG_SIZE];
    assert_int_equal(ship.last_event, 3);
    /* Every ship made before accounts is the anonymous account's. */
    assert_int_equal(ship.account, 0);
    struct store_account acct;
    assert_int_equal(store_account_get_id(s, 0, &acct), 0);
    assert_string_equal(acct.name, "anonymous");
    assert_false(acct.disabled);
    uint64_t owner = 9;
    assert_int_equal(store_ship_account(s, ship.sid, &owner), 0);
    assert_int_equal(owner, 0);
    assert_int_equal(ship.idle_timeout_ms, 7);
    assert_int_equal(ship.alarm_ns, 0);
    assert_int_equal(ship.freeze_timeout_ms, 0);
    /* Ships from before ack levels take the host's default. */
    assert_int_equal(ship.acks, GATE_ACKS_DEFAULT);
    ship.alarm_ns = 99;
    assert_int_equal(store_ship_put(s, &ship), 0);
    store_ship_clear(&ship);
    store_close(s);
    /* Opened again: already current. */
    assert_int_equal(store_open(&s, x->path, errmsg), 0);
    assert_int_equal(store_ship_get(s, "aaaa", &ship), 0);
    assert_int_equal(ship.alarm_ns, 99);
    store_ship_clear(&ship);
    store_close(s);
}

/* A store of version 3 (no arguments or environment) is upgraded in place:
 * its ships read with empty lists, and lists written afterwards stay. */
static void test_upgrade_from_version_3(void **state)
{
    struct fx *x = *state;
    old_store(x->path,
              ", alarm_ns INTEGER NOT NULL DEFAULT 0, freeze_timeout_ms "
              "INTEGER NOT NULL DEFAULT 0",
              ", chain BLOB NOT NULL DEFAULT x'', sum BLOB NOT NULL DEFAULT "
              "x''",
              "INSERT INTO ships VALUES (1, 'aaaa', 'two', '/bin/true', 5, 7, "
              "3, 1, 0, x'00', x'00', x'00', 11, 12);"
              "PRAGMA user_version=3;");

    struct store_ship got;
    struct store *s = open_with_ship(x->path, "two", &got);
    assert_int_equal(got.last_event, 3);
    assert_int_equal(got.alarm_ns, 11);
    assert_int_equal(got.freeze_timeout_ms, 12);
    assert_null(got.args);
    assert_int_equal(got.args_len, 0);
    assert_null(got.env);
    assert_int_equal(got.env_len, 0);
    store_ship_clear(&got);
    struct store_ship lists;
    ship(&lists, 2, "bbbb", "three");
    lists.args = "a\0b c\0";
    lists.args_len = 6;
    lists.env = "K=V\0";
    lists.env_len = 4;
    lists.freeze_timeout_ms = STORE_TIMEOUT_NEVER;
    assert_int_equal(store_ship_put(s, &lists), 0);
    store_close(s);

    s = open_with_ship(x->path, "three", &got);
    assert_int_equal(got.args_len, 6);
    assert_memory_equal(got.args, "a\0b c\0", 6);
    assert_int_equal(got.env_len, 4);
    assert_memory_equal(got.env, "K=V\0", 4);
    assert_true(got.freeze_timeout_ms == STORE_TIMEOUT_NEVER);
    store_ship_clear(&got);
    store_close(s);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(x->path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(
        sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 17);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* The first column of the first row of sql on the database at path. */
static int64_t query_int(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* A store of version 5 keeps its events in a WITHOUT ROWID table; the
 * upgrade moves them to a rowid table with an index on (sid, n), every
 * event kept, and putting an event again still replaces it. */
static void test_upgrade_from_version_5(void **state)
{
    struct fx *x = *state;
    old_store(x->path,
              ", alarm_ns INTEGER NOT NULL DEFAULT 0, freeze_timeout_ms "
              "INTEGER NOT NULL DEFAULT 0, args BLOB, env BLOB, acks INTEGER "
              "NOT NULL DEFAULT 255",
              ", chain BLOB NOT NULL DEFAULT x'', sum BLOB NOT NULL DEFAULT "
              "x''",
              "INSERT INTO ships VALUES (1, 'aaaa', 'five', '/bin/true', 5, 7, "
              "3, 1, 0, x'00', x'00', x'00', 0, 0, NULL, NULL, 2);"
              "INSERT INTO events VALUES (1, 2, 'two'), (1, 1, 'one'), "
              "(1, 3, 'three');"
              "PRAGMA user_version=5;");

    struct store_ship got;
    struct store *s = open_with_ship(x->path, "five", &got);
    assert_int_equal(got.acks, 2);
    store_ship_clear(&got);
    assert_int_equal(store_event_put(s, 1, 3, "THREE", 5), 0);
    store_close(s);

    assert_int_equal(query_int(x->path, "PRAGMA user_version"), 17);
    assert_int_equal(query_int(x->path, "SELECT count(*) FROM truncations"), 0);
    assert_int_equal(query_int(x->path, "SELECT count(*) FROM events"), 3);
    /* In number order after the upgrade, the replaced event last. */
    assert_int_equal(query_int(x->path, "SELECT group_concat(rec, ',') = "
                                        "'one,two,THREE' FROM (SELECT rec "
                                        "FROM events ORDER BY rowid)"),
                     1);
    assert_int_equal(query_int(x->path,
                               "SELECT count(*) FROM sqlite_master WHERE "
                               "name = 'events_by_ship' AND type = 'index'"),
                     1);
}

/* --- Tokens. --- */

static int count_tokens(const struct store_token *t, void *arg)
{
    int *n = arg;
    (*n)++;
    return 0;
}

static void token(struct store_token *t, const char *id, uint8_t fill,
                  const char *name)
{
    memset(t, 0, sizeof *t);
    snprintf(t->id, sizeof t->id, "%s", id);
    memset(t->hash, fill, sizeof t->hash);
    t->scope = 2;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->created_ns = 1000 + fill;
}

/* Tokens persist, stay unique by id, hash and name, and go when deleted. */
static void test_tokens_persist_and_stay_unique(void **state)
{
    struct fx *x = *state;
    struct store *s = open_ok(x->path);
    struct store_token a, b, got;
    token(&a, "aaaa", 1, "ci");
    assert_int_equal(store_token_put(s, &a), 0);
    token(&b, "bbbb", 2, "");
    assert_int_equal(store_token_put(s, &b), 0);
    token(&b, "cccc", 3, ""); /* two unnamed tokens do not collide */
    assert_int_equal(store_token_put(s, &b), 0);
    token(&b, "aaaa", 4, ""); /* the id */
    assert_int_equal(store_token_put(s, &b), BERTH_EEXIST);
    token(&b, "dddd", 1, ""); /* the hash */
    assert_int_equal(store_token_put(s, &b), BERTH_EEXIST);
    token(&b, "dddd", 4, "ci"); /* the name */
    assert_int_equal(store_token_put(s, &b), BERTH_EEXIST);
    store_close(s);

    s = open_ok(x->path);
    assert_int_equal(store_token_get(s, "aaaa", &got), 0);
    assert_string_equal(got.name, "ci");
    assert_memory_equal(got.hash, a.hash, sizeof a.hash);
    assert_int_equal(got.scope, 2);
    assert_int_equal(got.account, 0);
    assert_int_equal(got.created_ns, 1001);
    assert_int_equal(store_token_get(s, "ci", &got), 0);
    assert_string_equal(got.id, "aaaa");
    assert_int_equal(store_token_get(s, "bbbb", &got), 0);
    assert_string_equal(got.name, "");
    assert_int_equal(store_token_get(s, "nope", &got), BERTH_ENOTFOUND);
    int n = 0;
    assert_int_equal(store_token_foreach(s, count_tokens, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(store_token_delete(s, "aaaa"), 0);
    assert_int_equal(store_token_delete(s, "aaaa"), BERTH_ENOTFOUND);
    assert_int_equal(store_token_get(s, "ci", &got), BERTH_ENOTFOUND);
    n = 0;
    assert_int_equal(store_token_foreach(s, count_tokens, &n), 0);
    assert_int_equal(n, 2);
    store_close(s);
}

/* A store of version 7 gets the tokens table, empty. */
static void test_upgrade_from_version_7_adds_sealed_and_tokens(void **state)
{
    struct fx *x = *state;
    struct store *s = open_ok(x->path);
    store_close(s);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(x->path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(
            db,
            "DROP TABLE tokens; ALTER TABLE snapshots "
            "DROP COLUMN sealed; DROP INDEX "
            "ships_by_account; ALTER TABLE ships DROP "
            "COLUMN account; DROP TABLE accounts; "
            "ALTER TABLE ships DROP COLUMN usage_bytes; ALTER TABLE ships DROP "
            "COLUMN usage_cpu_us; ALTER TABLE ships DROP COLUMN "
            "usage_mem_peak; ALTER TABLE ships DROP COLUMN usage_mem_byte_s; "
            "ALTER TABLE ships DROP COLUMN usage_wakes; ALTER TABLE ships DROP "
            "COLUMN usage_requests;"
            "DROP INDEX ships_by_parent; DROP INDEX ships_timed; ALTER TABLE "
            "ships DROP COLUMN parent; "
            "ALTER TABLE ships DROP COLUMN lifetime; ALTER TABLE ships DROP "
            "COLUMN "
            "lifetime_ms; ALTER TABLE ships DROP COLUMN spawn_tag; ALTER TABLE "
            "ships DROP COLUMN access; ALTER TABLE ships DROP COLUMN sandbox; "
            "DROP TABLE "
            "mail; ALTER TABLE ships DROP COLUMN blocked;"
            "PRAGMA user_version=7;",
            NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    s = open_ok(x->path);
    struct store_token t;
    token(&t, "aaaa", 1, "");
    assert_int_equal(store_token_put(s, &t), 0);
    store_close(s);
    assert_int_equal(query_int(x->path, "PRAGMA user_version"), 17);
    assert_int_equal(query_int(x->path, "SELECT count(*) FROM tokens"), 1);
    assert_int_equal(query_int(x->path, "SELECT count(*) FROM snapshots WHERE "
                                        "sealed = 0"),
                     0);
}

static int brief_blocked(const struct store_ship_brief *b, void *arg)
{
    int *out = arg;
    out[b->sid - 1] = b->blocked ? 1 : 0;
    return 0;
}

/* What schema 17 added: accounts' caps. */
#define DROP_ACCOUNT_CAPS                                                      \
    "ALTER TABLE accounts DROP COLUMN cap_memory;"                             \
    "ALTER TABLE accounts DROP COLUMN cap_cpu;"                                \
    "ALTER TABLE accounts DROP COLUMN cap_pids;"

/* A store of version 16 gets accounts' caps, none for every account, its
 * accounts and their limits intact; caps set are read back whole and
 * alone. */
static void test_upgrade_to_account_caps(void **state)
{
    struct fx *x = *state;
    struct store *s = open_ok(x->path);
    uint64_t id;
    assert_int_equal(store_account_new(s, "dora", 5, &id), 0);
    uint64_t limits[QUOTA__COUNT];
    for (int i = 0; i < QUOTA__COUNT; i++) {
        limits[i] = QUOTA_KEEP;
    }
    limits[QUOTA_SHIPS] = 7;
    assert_int_equal(store_account_set_limits(s, id, limits), 0);
    store_close(s);
    tamper(x->path, DROP_ACCOUNT_CAPS "PRAGMA user_version=16;");
    s = open_ok(x->path);
    struct store_account a;
    struct caps c = {1, 1, 1};
    assert_int_equal(store_account_get(s, "dora", &a), 0);
    assert_int_equal(a.limits[QUOTA_SHIPS], 7);
    assert_true(caps_none(&a.caps));
    assert_int_equal(store_account_caps(s, id, &c), 0);
    assert_true(caps_none(&c));
    c = (struct caps){32 << 20, 250, 0};
    assert_int_equal(store_account_set_caps(s, id, 0x03, &c), 0);
    c = (struct caps){0, 0, 12};
    assert_int_equal(store_account_set_caps(s, id, 0x04, &c), 0);
    assert_int_equal(store_account_set_caps(s, 42, 0x04, &c), BERTH_ENOTFOUND);
    store_close(s);
    s = open_ok(x->path);
    assert_int_equal(store_account_caps(s, id, &c), 0);
    assert_int_equal(c.memory_bytes, 32 << 20);
    assert_int_equal(c.cpu_millis, 250);
    assert_int_equal(c.pids, 12);
    assert_int_equal(store_account_get_id(s, id, &a), 0);
    assert_memory_equal(&a.caps, &c, sizeof c);
    assert_int_equal(store_account_get_id(s, 0, &a), 0);
    assert_true(caps_none(&a.caps));
    store_close(s);
    assert_int_equal(query_int(x->path, "PRAGMA user_version"), 17);
}

/* A store of version 15 gets the blocked column, every ship unblocked; a
 * block is kept apart from the row's codec: a put leaves it as it is. */
static void test_upgrade_to_blocked(void **state)
{
    struct fx *x = *state;
    struct store *s = open_ok(x->path);
    struct store_ship a, b;
    ship(&a, 1, "aaaa", "ann");
    ship(&b, 2, "bbbb", "bob");
    assert_int_equal(store_ship_put(s, &a), 0);
    assert_int_equal(store_ship_put(s, &b), 0);
    store_close(s);
    tamper(x->path, "ALTER TABLE ships DROP COLUMN blocked;" DROP_ACCOUNT_CAPS
                    "PRAGMA user_version=15;");
    s = open_ok(x->path);
    int seen[2] = {-1, -1};
    assert_int_equal(store_ship_brief_foreach(s, 0, brief_blocked, seen), 0);
    assert_int_equal(seen[0], 0);
    assert_int_equal(seen[1], 0);
    assert_int_equal(store_ship_block(s, 2, true), 0);
    assert_int_equal(store_ship_block(s, 9, true), BERTH_ENOTFOUND);
    b.last_event = 3;
    assert_int_equal(store_ship_put(s, &b), 0);
    assert_int_equal(store_ship_brief_foreach(s, 0, brief_blocked, seen), 0);
    assert_int_equal(seen[0], 0);
    assert_int_equal(seen[1], 1);
    store_close(s);
    assert_int_equal(query_int(x->path, "PRAGMA user_version"), 17);
}

/* A store of version 9 gets the data keys table, empty; keys put are read
 * back in order, replace the ones before, and a gap is refused. */
static void test_data_keys(void **state)
{
    struct fx *x = *state;
    struct store *s = open_ok(x->path);
    store_close(s);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(x->path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(
            db,
            "DROP TABLE data_keys; DROP INDEX "
            "ships_by_account; ALTER TABLE ships DROP "
            "COLUMN account; DROP TABLE accounts; "
            "ALTER TABLE ships DROP COLUMN usage_bytes; ALTER TABLE ships DROP "
            "COLUMN usage_cpu_us; ALTER TABLE ships DROP COLUMN "
            "usage_mem_peak; ALTER TABLE ships DROP COLUMN usage_mem_byte_s; "
            "ALTER TABLE ships DROP COLUMN usage_wakes; ALTER TABLE ships DROP "
            "COLUMN usage_requests;"
            "DROP INDEX ships_by_parent; DROP INDEX ships_timed; ALTER TABLE "
            "ships DROP COLUMN parent; "
            "ALTER TABLE ships DROP COLUMN lifetime; ALTER TABLE ships DROP "
            "COLUMN "
            "lifetime_ms; ALTER TABLE ships DROP COLUMN spawn_tag; ALTER TABLE "
            "ships DROP COLUMN access; ALTER TABLE ships DROP COLUMN sandbox; "
            "DROP TABLE "
            "mail; ALTER TABLE ships DROP COLUMN blocked;"
            "PRAGMA user_version=9;",
            NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    s = open_ok(x->path);
    uint8_t keys[3 * 8], out[4 * 8];
    uint32_t n = 99;
    assert_int_equal(store_data_keys_get(s, out, 8, 4, &n), 0);
    assert_int_equal(n, 0);
    for (unsigned i = 0; i < sizeof keys; i++) {
        keys[i] = (uint8_t)i;
    }
    assert_int_equal(store_data_keys_put(s, keys, 8, 2), 0);
    assert_int_equal(store_data_keys_put(s, keys, 8, 3), 0);
    assert_int_equal(store_data_keys_get(s, out, 8, 4, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(out, keys, sizeof keys);
    /* More than the caller takes, or of another size: refused. */
    assert_int_equal(store_data_keys_get(s, out, 8, 2, &n), BERTH_ECORRUPT);
    assert_int_equal(store_data_keys_get(s, out, 4, 4, &n), BERTH_ECORRUPT);
    store_close(s);
    assert_int_equal(query_int(x->path, "PRAGMA user_version"), 17);
    assert_int_equal(query_int(x->path, "SELECT count(*) FROM data_keys"), 3);
    assert_int_equal(sqlite3_open(x->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DELETE FROM data_keys WHERE kid = 2",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    s = open_ok(x->path);
    assert_int_equal(store_data_keys_get(s, out, 8, 4, &n), BERTH_ECORRUPT);
    store_close(s);
}

/* --- Images: a raft snapshot is a copy of the store. --- */

/* A store at path holding n ships (sids 1..n) at applied index index. */
static struct store *image_store(const char *path, unsigned n, uint64_t index)
{
    struct store *s = open_ok(path);
    for (unsigned i = 1; i <= n; i++) {
        struct store_ship sh;
        char id[16];
        snprintf(id, sizeof id, "id%u", i);
        ship(&sh, i, id, "");
        assert_int_equal(store_ship_put(s, &sh), 0);
        assert_int_equal(store_event_put(s, i, 1, "rec", 3), 0);
    }
    assert_int_equal(store_meta_put(s, "applied_index", index), 0);
    return s;
}

/* Take an image of s; the caller frees it. */
static uint8_t *take_image(struct store *s, size_t *len)
{
    struct store_image img;
    assert_int_equal(store_image_begin(s, &img), 0);
    *len = STORE_IMAGE_HEADER + img.size;
    uint8_t *p = malloc(*len);
    assert_int_equal(store_image_read(&img, p), 0);
    store_image_end(s, &img);
    return p;
}

static uint64_t ship_count(struct store *s)
{
    uint64_t n;
    assert_int_equal(store_ship_count(s, &n), 0);
    return n;
}

static uint64_t applied_index(struct store *s)
{
    uint64_t v;
    assert_int_equal(store_meta_get(s, "applied_index", &v), 0);
    return v;
}

/* Whether this process holds a POSIX lock on the file at path. */
static bool holds_lock(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    char want[64], line[256];
    snprintf(want, sizeof want, " %d %02x:%02x:%llu ", (int)getpid(),
             major(st.st_dev), minor(st.st_dev), (unsigned long long)st.st_ino);
    FILE *f = fopen("/proc/locks", "r");
    assert_non_null(f);
    bool found = false;
    while (fgets(line, sizeof line, f) != NULL) {
        found = found || strstr(line, want) != NULL;
    }
    fclose(f);
    return found;
}

/* Taking an image leaves SQLite's lock on the database file in place: the
 * image reads through the store's own descriptor, never one it opens and
 * closes (closing any descriptor of a file drops the process's locks). */
static void test_an_image_keeps_the_lock(void **state)
{
    struct fx *x = *state;
    struct store *s = image_store(x->path, 3, 5);
    assert_true(holds_lock(x->path));
    size_t len;
    free(take_image(s, &len));
    assert_true(holds_lock(x->path));
    store_close(s);
    assert_false(holds_lock(x->path));
}

static void test_image_round_trip(void **state)
{
    struct fx *x = *state;
    char other[160];
    snprintf(other, sizeof other, "%s/other.db", x->dir);
    struct store *a = image_store(x->path, 50, 77);
    struct store *b = image_store(other, 3, 10);
    size_t len;
    uint8_t *image = take_image(a, &len);
    uint64_t index;
    assert_int_equal(store_image_check(image, len, &index), 0);
    assert_int_equal(index, 77);

    bool replaced;
    assert_int_equal(store_image_restore(b, image, len, &replaced), 0);
    assert_true(replaced);
    /* The same pointer now reads the other store's contents, and writes. */
    assert_int_equal(ship_count(b), 50);
    assert_int_equal(applied_index(b), 77);
    uint8_t h1[STORE_HASH_SIZE], h2[STORE_HASH_SIZE];
    assert_int_equal(store_event_hash(a, 50, 1, h1), 0);
    assert_int_equal(store_event_hash(b, 50, 1, h2), 0);
    assert_memory_equal(h1, h2, sizeof h1);
    assert_int_equal(store_meta_put(b, "applied_index", 78), 0);
    store_close(b);
    /* It survives a reopen; no temporary file is left. */
    b = open_ok(other);
    assert_int_equal(applied_index(b), 78);
    assert_int_equal(ship_count(b), 50);
    char tmp[192];
    snprintf(tmp, sizeof tmp, "%s.restore", other);
    assert_int_equal(access(tmp, F_OK), -1);

    /* A store that holds the image's index, or a later one, is kept as it
     * is: a host restarting on its own data copies nothing. */
    assert_int_equal(store_image_restore(b, image, len, &replaced), 0);
    assert_false(replaced);
    assert_int_equal(applied_index(b), 78);
    assert_int_equal(store_meta_put(a, "applied_index", 77), 0);
    assert_int_equal(store_image_restore(a, image, len, &replaced), 0);
    assert_false(replaced);
    free(image);
    store_close(a);
    store_close(b);
}

/* While pinned, the store goes on taking writes, and the image holds the
 * state at the pin; checkpoints wait. */
static void test_image_is_consistent_while_writes_go_on(void **state)
{
    struct fx *x = *state;
    char other[160];
    snprintf(other, sizeof other, "%s/other.db", x->dir);
    struct store *a = image_store(x->path, 5, 5);
    struct store_image img;
    assert_int_equal(store_image_begin(a, &img), 0);
    assert_int_equal(img.index, 5);
    struct store_image again;
    assert_int_equal(store_image_begin(a, &again), BERTH_EBUSY);
    assert_int_equal(store_sync(a), BERTH_EBUSY);
    /* Enough writes to pass SQLite's automatic checkpoint. */
    char big[4096];
    memset(big, 'x', sizeof big);
    for (unsigned i = 0; i < 2000; i++) {
        assert_int_equal(store_event_put(a, 1, 2 + i, big, sizeof big), 0);
    }
    assert_int_equal(store_meta_put(a, "applied_index", 6), 0);
    size_t len = STORE_IMAGE_HEADER + img.size;
    uint8_t *image = malloc(len);
    assert_int_equal(store_image_read(&img, image), 0);
    store_image_end(a, &img);
    assert_int_equal(store_sync(a), 0);

    struct store *b = open_ok(other);
    bool replaced;
    assert_int_equal(store_image_restore(b, image, len, &replaced), 0);
    assert_true(replaced);
    assert_int_equal(applied_index(b), 5);
    uint8_t h[STORE_HASH_SIZE];
    assert_int_equal(store_event_hash(b, 1, 1, h), 0);
    assert_int_equal(store_event_hash(b, 1, 2, h), BERTH_ENOTFOUND);
    free(image);
    store_close(a);
    store_close(b);
}

/* A damaged image is refused and the store is left as it was. */
static void test_image_corrupt_is_refused(void **state)
{
    struct fx *x = *state;
    char other[160];
    snprintf(other, sizeof other, "%s/other.db", x->dir);
    struct store *a = image_store(x->path, 20, 40);
    struct store *b = image_store(other, 2, 3);
    size_t len;
    uint8_t *image = take_image(a, &len);
    bool replaced = true;
    uint64_t index;

    /* One flipped bit anywhere: data, index, length, magic. */
    size_t spots[] = {len - 1, STORE_IMAGE_HEADER + 200, 16, 24, 0, 40};
    for (size_t i = 0; i < sizeof spots / sizeof spots[0]; i++) {
        image[spots[i]] ^= 0x04;
        assert_int_equal(store_image_check(image, len, &index), BERTH_ECORRUPT);
        assert_int_equal(store_image_restore(b, image, len, &replaced),
                         BERTH_ECORRUPT);
        assert_false(replaced);
        image[spots[i]] ^= 0x04;
    }
    /* A damaged body passes the header's own check, not the whole one;
     * a store that holds the image already never reads the body. */
    image[len - 1] ^= 0x04;
    assert_int_equal(store_image_index(image, len, &index), 0);
    assert_int_equal(index, 40);
    assert_int_equal(store_image_check(image, len, &index), BERTH_ECORRUPT);
    image[len - 1] ^= 0x04;
    /* Cut short, or too short for a header. */
    assert_int_equal(store_image_restore(b, image, len - 1, &replaced),
                     BERTH_ECORRUPT);
    assert_int_equal(store_image_restore(b, image, 10, &replaced),
                     BERTH_ECORRUPT);
    assert_int_equal(ship_count(b), 2);
    assert_int_equal(applied_index(b), 3);
    assert_int_equal(store_meta_put(b, "applied_index", 4), 0);
    /* The intact image still restores. */
    assert_int_equal(store_image_restore(b, image, len, &replaced), 0);
    assert_true(replaced);
    assert_int_equal(ship_count(b), 20);
    free(image);
    store_close(a);
    store_close(b);
}

/* A write error halfway through a restore (here: the file size limit)
 * leaves the old store in place and usable, with no file left over. */
static void test_image_restore_io_error_keeps_store(void **state)
{
    struct fx *x = *state;
    char other[160];
    snprintf(other, sizeof other, "%s/other.db", x->dir);
    struct store *a = image_store(x->path, 400, 40);
    struct store *b = image_store(other, 2, 3);
    assert_int_equal(store_sync(b), 0);
    size_t len;
    uint8_t *image = take_image(a, &len);

    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (len - STORE_IMAGE_HEADER) / 2;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    bool replaced = true;
    int rv = store_image_restore(b, image, len, &replaced);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    assert_int_equal(rv, BERTH_EIO);
    assert_false(replaced);
    assert_non_null(strstr(store_errmsg(b), "writing"));
    char tmp[192];
    snprintf(tmp, sizeof tmp, "%s.restore", other);
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(ship_count(b), 2);
    assert_int_equal(store_meta_put(b, "applied_index", 4), 0);
    assert_int_equal(applied_index(b), 4);
    store_close(b);
    b = open_ok(other);
    assert_int_equal(applied_index(b), 4);
    free(image);
    store_close(a);
    store_close(b);
}

/* A store in memory has no file to copy or replace. */
static void test_image_needs_a_file(void **state)
{
    struct store *s = open_ok(":memory:");
    struct store_image img;
    assert_int_equal(store_image_begin(s, &img), BERTH_EINVAL);
    uint64_t bytes;
    assert_int_equal(store_bytes(s, &bytes), 0);
    assert_true(bytes > 0);
    store_close(s);
}

/* SQLite allocates through lib/mem.h: with a fault set, its own allocator
 * answers NULL, and the sizes it keeps count of are those of mem. */
static void test_sqlite_allocates_through_mem(void **state)
{
    struct store *s = open_ok(":memory:");
    store_close(s);
    mem_fault_countdown(0);
    void *p = sqlite3_malloc(64);
    bool hit = mem_fault_hit();
    mem_fault_countdown(-1);
    sqlite3_free(p);
    assert_true(hit);
    assert_null(p);
    p = sqlite3_malloc(60);
    assert_non_null(p);
    assert_int_equal(sqlite3_msize(p), mem_usable_size(p));
    assert_true(sqlite3_msize(p) >= 64); /* rounded up to 8 */
    sqlite3_free(p);
}

/* One attempt of the fault loop: a new store at path, a ship put and read
 * back, an entry applied and flushed, the store synced. Returns 0 or the first
 * failure's code, after checking that the failure says what it was. */
static int store_attempt(const char *path, const struct buf *entry)
{
    struct store *s;
    struct store_ship a, got;
    char errmsg[ERRMSG_SIZE] = "";
    unlink(path);
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", path);
    unlink(wal);
    int rv = store_open(&s, path, errmsg);
    if (rv != 0) {
        assert_true(rv < 0);
        assert_true(strlen(errmsg) > 0);
        return rv;
    }
    ship(&a, 1, "a1", "alpha");
    rv = store_ship_put(s, &a);
    if (rv == 0 && (rv = store_ship_get(s, "alpha", &got)) == 0) {
        assert_string_equal(got.program, "/bin/prog");
        store_ship_clear(&got);
    }
    int result = -1;
    if (rv == 0 && (rv = store_apply_entry(s, 1, entry->data, entry->len, NULL,
                                           &result)) == 0) {
        assert_int_equal(result, 0);
        rv = store_flush(s);
    }
    if (rv == 0 && (rv = store_ship_get(s, "beta", &got)) == 0) {
        store_ship_clear(&got);
    }
    if (rv == 0) {
        rv = store_sync(s);
    }
    if (rv != 0) {
        assert_true(rv < 0);
        assert_true(strlen(store_errmsg(s)) > 0);
        if (rv == BERTH_ENOMEM) {
            assert_non_null(strstr(store_errmsg(s), "out of memory"));
        }
    }
    store_close(s);
    return rv;
}

/* Allocation n fails, for n = 0, 1, 2, ... until an attempt goes through
 * with no fault hit: every failure is a negative code with a message and
 * leaks nothing (ASan checks at exit), and some of them come from inside
 * SQLite. */
static void test_every_allocation_can_fail(void **state)
{
    struct fx *x = *state;
    struct record_ship_new r = {
        .id = "b2", .name = "beta", .program = "/bin/true"};
    struct buf entry;
    buf_init(&entry);
    assert_int_equal(record_encode_ship_new(&entry, &r), 0);
    int n, enomem = 0, other = 0;
    for (n = 0;; n++) {
        assert_true(n < 100000);
        mem_fault_countdown(n);
        int rv = store_attempt(x->path, &entry);
        bool hit = mem_fault_hit();
        mem_fault_countdown(-1);
        if (!hit) {
            assert_int_equal(rv, 0);
            break;
        }
        if (rv == BERTH_ENOMEM) {
            enomem++;
        } else if (rv != 0) {
            other++;
        }
    }
    buf_free(&entry);
    /* store.c allocates a handful of times; SQLite, hundreds. */
    assert_true(n > 200);
    assert_true(enomem > 0);
    print_message("%d allocations: %d failed ENOMEM, %d otherwise\n", n, enomem,
                  other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ships_persist_and_stay_unique,
                                        setup, teardown),
        cmocka_unit_test(test_events_and_transactions),
        cmocka_unit_test_setup_teardown(test_truncation_marks_until_swept,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heads_in_a_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hash_chain_is_checked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_checksum_is_checked,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
        cmocka_unit_test(test_open_out_of_memory),
        cmocka_unit_test_setup_teardown(test_wal_writeback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_from_version_1, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_from_version_2, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_to_account_caps, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_to_blocked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_from_version_3, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_from_version_5, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tokens_persist_and_stay_unique,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_upgrade_from_version_7_adds_sealed_and_tokens, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_data_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_image_keeps_the_lock, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_image_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_image_is_consistent_while_writes_go_on, setup, teardown),
        cmocka_unit_test_setup_teardown(test_image_corrupt_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_image_restore_io_error_keeps_store,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_image_needs_a_file, setup,
                                        teardown),
        cmocka_unit_test(test_sqlite_allocates_through_mem),
        cmocka_unit_test_setup_teardown(test_every_allocation_can_fail, setup,
                                        teardown),
    };
    /* A store opens before any test touches SQLite itself, so that SQLite
     * allocates through lib/mem.h whichever tests run. */
    struct store *s = open_ok(":memory:");
    store_close(s);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
