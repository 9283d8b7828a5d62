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
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "lib/err.h"
#include "lib/mem.h"
#include "store/store.h"

struct fx {
    char dir[64];
    char path[128];
};

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof *x);
    snprintf(x->dir, sizeof x->dir, "store-test.XXXXXX");
    assert_non_null(mkdtemp(x->dir));
    snprintf(x->path, sizeof x->path, "%s/store.db", x->dir);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    struct fx *x = *state;
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", x->dir);
    assert_int_equal(system(cmd), 0);
    free(x);
    return 0;
}

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
    assert_int_equal(store_snapshot_put(s, 1, 1, (const uint8_t *)
                                        "0123456789abcdef0123456789abcdef",
                                        "", 0),
                     0);
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
    uint64_t number;
    uint8_t epoch[STORE_HASH_SIZE];
    struct buf data;
    buf_init(&data);
    assert_int_equal(store_snapshot_get(s, 1, &number, epoch, &data), 0);
    assert_int_equal(data.len, 0); /* an empty snapshot is still one */
    assert_int_equal(store_snapshot_get(s, 2, &number, epoch, &data),
                     BERTH_ENOTFOUND);
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

static void test_events_and_transactions(void **state)
{
    struct store *s = open_ok(":memory:");
    for (uint64_t n = 1; n <= 5; n++) {
        assert_int_equal(store_event_put(s, 7, n, "x", 1), 0);
    }
    uint64_t sum = 0;
    assert_int_equal(store_event_foreach(s, 7, 3, collect, &sum), 0);
    assert_int_equal(sum, 345);
    assert_int_equal(store_event_truncate(s, 7, 2), 0);
    sum = 0;
    assert_int_equal(store_event_foreach(s, 7, 0, collect, &sum), 0);
    assert_int_equal(sum, 345);
    assert_int_equal(store_begin(s), 0);
    assert_int_equal(store_event_put(s, 7, 6, "x", 1), 0);
    assert_int_equal(store_rollback(s), 0);
    sum = 0;
    assert_int_equal(store_event_foreach(s, 7, 0, collect, &sum), 0);
    assert_int_equal(sum, 345);
    store_close(s);
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

static void test_open_out_of_memory(void **state)
{
    struct store *s;
    char errmsg[ERRMSG_SIZE];
    mem_fault_countdown(0);
    assert_int_equal(store_open(&s, ":memory:", errmsg), BERTH_ENOMEM);
    mem_fault_countdown(-1);
}

/* Write a store as an older version did: the first version's tables, the
 * ships table with more_columns added, then the statements of rest (its
 * ships and its user_version). */
static void old_store(const char *path, const char *more_columns,
                      const char *rest)
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
             "NULL, epoch BLOB NOT NULL, data BLOB NOT NULL);%s",
             more_columns, rest);
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
    old_store(x->path, "",
              "INSERT INTO ships VALUES (1, 'aaaa', 'old', '/bin/true', 5, 7, "
              "3, 1, 0, x'00', x'00', x'00');"
              "PRAGMA user_version=1;");

    struct store_ship ship;
    struct store *s = open_with_ship(x->path, "old", &ship);
    char errmsg[ERRMSG_SIZE];
    assert_int_equal(ship.last_event, 3);
    assert_int_equal(ship.idle_timeout_ms, 7);
    assert_int_equal(ship.alarm_ns, 0);
    assert_int_equal(ship.freeze_timeout_ms, 0);
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

/* A store of version 2 (no arguments or environment) is upgraded in place:
 * its ships read with empty lists, and lists written afterwards stay. */
static void test_upgrade_from_version_2(void **state)
{
    struct fx *x = *state;
    old_store(x->path,
              ", alarm_ns INTEGER NOT NULL DEFAULT 0, freeze_timeout_ms "
              "INTEGER NOT NULL DEFAULT 0",
              "INSERT INTO ships VALUES (1, 'aaaa', 'two', '/bin/true', 5, 7, "
              "3, 1, 0, x'00', x'00', x'00', 11, 12);"
              "PRAGMA user_version=2;");

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
    assert_int_equal(sqlite3_column_int(st, 0), 3);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ships_persist_and_stay_unique,
                                        setup, teardown),
        cmocka_unit_test(test_events_and_transactions),
        cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
        cmocka_unit_test(test_open_out_of_memory),
        cmocka_unit_test_setup_teardown(test_upgrade_from_version_1, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_from_version_2, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
