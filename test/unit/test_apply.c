/* Applying log entries to the store is deterministic and idempotent: the
 * same entry twice, or a replay after a snapshot, changes nothing. */
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
#include <sodium.h>

#include "core/account.h"
#include "core/auth.h"
#include "core/record.h"
#include "core/registry.h"
#include "lib/err.h"
#include "core/sandbox.h"
#include "lib/mem.h"
#include "proto/frame.h"
#include "store/apply.h"

static int setup(void **state)
{
    struct store *s;
    char errmsg[ERRMSG_SIZE];
    assert_int_equal(store_open(&s, ":memory:", errmsg), 0);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    store_close(*state);
    return 0;
}

/* What the apply hook heard of. */
struct damage {
    unsigned n;
    uint64_t sid, number;
};

static void on_damaged(void *arg, uint64_t sid, uint64_t number,
                       const char *why)
{
    struct damage *d = arg;
    assert_non_null(why);
    d->n++;
    d->sid = sid;
    d->number = number;
}

static void apply_hooked(struct store *s, struct buf *e, int want_rv,
                         int want_res, struct damage *d)
{
    int res = -1;
    struct store_apply_hook hook = {.damaged = on_damaged, .arg = d};
    assert_int_equal(store_apply_entry(s, 0, e->data, e->len, &hook, &res),
                     want_rv);
    if (want_rv == 0) {
        assert_int_equal(res, want_res);
    }
}

/* Apply an entry in which nothing is damaged. */
static void apply(struct store *s, struct buf *e, int want_rv, int want_res)
{
    struct damage d = {0};
    apply_hooked(s, e, want_rv, want_res, &d);
    assert_int_equal(d.n, 0);
}

static uint64_t new_ship(struct store *s, const char *id, const char *name)
{
    struct record_ship_new r = {.id = id, .name = name, .program = "/bin/true"};
    struct buf e;
    struct store_ship ship;
    buf_init(&e);
    assert_int_equal(record_encode_ship_new(&e, &r), 0);
    apply(s, &e, 0, 0);
    /* Applying it again is a no-op. */
    apply(s, &e, 0, 0);
    buf_free(&e);
    assert_int_equal(store_ship_get(s, id, &ship), 0);
    uint64_t sid = ship.sid;
    assert_int_equal(ship.first_event, 1);
    store_ship_clear(&ship);
    return sid;
}

/* Append events from..to of ship sid to an EVENTS entry, chaining hashes
 * from *head. */
static void add_events(struct buf *e, uint64_t sid, uint64_t from, uint64_t to,
                       uint8_t *head)
{
    if (e->len == 0) {
        assert_int_equal(record_events_begin(e), 0);
    }
    for (uint64_t n = from; n <= to; n++) {
        struct record_event ev = {.sid = sid, .number = n, .kind = 2};
        ev.payload = (const uint8_t *)"x";
        ev.payload_len = 1;
        memcpy(ev.prev_hash, head, RECORD_HASH_SIZE);
        struct buf r;
        buf_init(&r);
        assert_int_equal(record_encode_event(&r, &ev, NULL, NULL, NULL), 0);
        record_hash(r.data, r.len, head);
        assert_int_equal(record_events_add(e, r.data, r.len), 0);
        buf_free(&r);
    }
}

static int count_cb(uint64_t number, const void *rec, size_t len, void *arg)
{
    (*(uint64_t *)arg)++;
    return 0;
}

/* Count a ship's events, checking their hash chain on the way; a removed
 * ship has none. */
static uint64_t count_events(struct store *s, uint64_t sid)
{
    uint64_t n = 0;
    struct store_ship ship;
    if (store_ship_get_sid(s, sid, &ship) == BERTH_ENOTFOUND) {
        return 0;
    }
    uint64_t first = ship.first_event;
    store_ship_clear(&ship);
    assert_int_equal(store_event_foreach(s, sid, first, NULL, count_cb, &n), 0);
    return n;
}

/* Read ship sid's sandbox into *sb; its blob stays in *ship (cleared by
 * the caller). */
static void sandbox_of(struct store *s, uint64_t sid, struct store_ship *ship,
                       struct sandbox *sb)
{
    assert_int_equal(store_ship_get_sid(s, sid, ship), 0);
    assert_int_equal(sandbox_decode(ship->sandbox, ship->sandbox_len, sb), 0);
}

/* A resize rewrites only the caps it names, keeps the rest of the
 * sandbox, applies again alike, and leaves a ship that is gone alone. */
static void test_ship_resize(void **state)
{
    struct store *s = *state;
    uint64_t sid = new_ship(s, "rs", "resized");
    struct record_resize r = {.sid = sid,
                              .which =
                                  RECORD_RESIZE_MEMORY | RECORD_RESIZE_PIDS,
                              .memory_bytes = 32 << 20,
                              .cpu_millis = 999, /* not named: ignored */
                              .pids = 16};
    struct buf e;
    buf_init(&e);
    assert_int_equal(record_encode_ship_resize(&e, &r), 0);
    apply(s, &e, 0, 0);
    apply(s, &e, 0, 0);
    struct store_ship ship;
    struct sandbox sb;
    sandbox_of(s, sid, &ship, &sb);
    assert_int_equal(sb.memory_bytes, 32 << 20);
    assert_int_equal(sb.pids, 16);
    assert_int_equal(sb.cpu_millis, 0);
    store_ship_clear(&ship);
    /* The others stay; "none" (0) lifts one. */
    r.which = RECORD_RESIZE_CPU | RECORD_RESIZE_STORAGE | RECORD_RESIZE_PIDS;
    r.pids = 0;
    r.storage_bytes = 100 << 20;
    buf_free(&e);
    assert_int_equal(record_encode_ship_resize(&e, &r), 0);
    apply(s, &e, 0, 0);
    sandbox_of(s, sid, &ship, &sb);
    assert_int_equal(sb.memory_bytes, 32 << 20);
    assert_int_equal(sb.cpu_millis, 999);
    assert_int_equal(sb.pids, 0);
    assert_int_equal(sb.budget_bytes, 100 << 20);
    store_ship_clear(&ship);
    /* All lifted: no blob at all. */
    r.which = RECORD_RESIZE_ALL;
    r.memory_bytes = r.cpu_millis = r.storage_bytes = 0;
    buf_free(&e);
    assert_int_equal(record_encode_ship_resize(&e, &r), 0);
    apply(s, &e, 0, 0);
    assert_int_equal(store_ship_get_sid(s, sid, &ship), 0);
    assert_int_equal(ship.sandbox_len, 0);
    store_ship_clear(&ship);
    /* A ship that is not there. */
    r.sid = sid + 100;
    buf_free(&e);
    assert_int_equal(record_encode_ship_resize(&e, &r), 0);
    apply(s, &e, 0, BERTH_ENOTFOUND);
    buf_free(&e);
}

static void test_ship_new_and_name_race(void **state)
{
    struct store *s = *state;
    uint64_t a = new_ship(s, "aaaa", "ann");
    uint64_t b = new_ship(s, "bbbb", "");
    assert_int_not_equal(a, b);
    /* A second ship with a taken name loses, deterministically. */
    struct record_ship_new r = {.id = "cccc", .name = "ann", .program = "/x"};
    struct buf e;
    buf_init(&e);
    assert_int_equal(record_encode_ship_new(&e, &r), 0);
    apply(s, &e, 0, BERTH_EEXIST);
    buf_free(&e);
    struct store_ship ship;
    assert_int_equal(store_ship_get(s, "cccc", &ship), BERTH_ENOTFOUND);
}

static void test_events_idempotent_and_chained(void **state)
{
    struct store *s = *state;
    uint64_t a = new_ship(s, "aaaa", "ann");
    uint64_t b = new_ship(s, "bbbb", "bob");
    uint8_t ha[RECORD_HASH_SIZE] = {0}, hb[RECORD_HASH_SIZE] = {0};
    struct buf e;
    buf_init(&e);
    /* One entry with events of two ships: a group commit. */
    add_events(&e, a, 1, 3, ha);
    add_events(&e, b, 1, 2, hb);
    add_events(&e, a, 4, 4, ha);
    apply(s, &e, 0, 0);
    apply(s, &e, 0, 0); /* replayed */
    buf_free(&e);
    struct store_ship ship;
    assert_int_equal(store_ship_get_sid(s, a, &ship), 0);
    assert_int_equal(ship.last_event, 4);
    assert_memory_equal(ship.last_hash, ha, RECORD_HASH_SIZE);
    store_ship_clear(&ship);
    assert_int_equal(count_events(s, a), 4);
    assert_int_equal(count_events(s, b), 2);

    /* A gap or a broken chain means the ship's stored head does not fit
     * the log: that ship is reported damaged and left alone, and the
     * entry's other ships still apply. */
    struct damage d = {0};
    buf_init(&e);
    uint8_t h2[RECORD_HASH_SIZE];
    memcpy(h2, ha, sizeof h2);
    add_events(&e, a, 6, 6, h2);
    add_events(&e, b, 3, 3, hb);
    apply_hooked(s, &e, 0, 0, &d);
    buf_free(&e);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.sid, a);
    assert_int_equal(d.number, 6);
    buf_init(&e);
    uint8_t wrong[RECORD_HASH_SIZE] = {1};
    add_events(&e, a, 5, 5, wrong);
    apply_hooked(s, &e, 0, 0, &d);
    buf_free(&e);
    assert_int_equal(d.n, 2);
    assert_int_equal(d.number, 5);
    assert_int_equal(count_events(s, a), 4);
    assert_int_equal(count_events(s, b), 3);
}

/* An entry of events has no savepoint (store_entry_begin): a failure in the
 * middle may leave the events before it (an entry applied in part is an
 * entry applied twice in test_events_idempotent_and_chained), and applying
 * the entry again, as the log does after the host stops, completes it.
 * Allocation n fails, for every n, inside a batch as on a host with
 * peers. */
static void test_events_cut_short_complete_on_replay(void **state)
{
    struct store *s = *state;
    uint64_t sids[3] = {new_ship(s, "aaaa", "ann"), new_ship(s, "bbbb", "bob"),
                        new_ship(s, "cccc", "cat")};
    assert_int_equal(store_flush(s), 0);
    uint64_t index = 100;
    int failures = 0;
    for (int n = 0;; n++) {
        assert_true(n < 100000);
        uint8_t heads[3][RECORD_HASH_SIZE];
        uint64_t last[3];
        struct buf e;
        buf_init(&e);
        for (int i = 0; i < 3; i++) {
            struct store_ship ship;
            assert_int_equal(store_ship_get_sid(s, sids[i], &ship), 0);
            last[i] = ship.last_event;
            memcpy(heads[i], ship.last_hash, RECORD_HASH_SIZE);
            store_ship_clear(&ship);
        }
        for (int i = 0; i < 3; i++) {
            add_events(&e, sids[i], last[i] + 1, last[i] + 4, heads[i]);
        }
        index++;
        int res = -1;
        mem_fault_countdown(n);
        int rv = store_apply_entry(s, index, e.data, e.len, NULL, &res);
        bool hit = mem_fault_hit();
        mem_fault_countdown(-1);
        if (rv != 0) {
            failures++;
            assert_true(hit);
            /* What a restart does: SQLite may have rolled the open batch
             * back, or it is kept (the harder case: the events before the
             * failure are there); then the entry is applied again. */
            assert_int_equal(store_flush(s), 0);
            assert_int_equal(
                store_apply_entry(s, index, e.data, e.len, NULL, &res), 0);
        }
        assert_int_equal(store_flush(s), 0);
        buf_free(&e);
        for (int i = 0; i < 3; i++) {
            struct store_ship ship;
            assert_int_equal(store_ship_get_sid(s, sids[i], &ship), 0);
            assert_int_equal(ship.last_event, last[i] + 4);
            assert_memory_equal(ship.last_hash, heads[i], RECORD_HASH_SIZE);
            store_ship_clear(&ship);
            assert_int_equal(count_events(s, sids[i]), last[i] + 4);
        }
        if (!hit) {
            break;
        }
    }
    assert_true(failures > 0);
}

static void test_snapshot_truncates_and_replay_is_noop(void **state)
{
    struct store *s = *state;
    uint64_t a = new_ship(s, "aaaa", "ann");
    uint8_t h[RECORD_HASH_SIZE] = {0};
    struct buf ev;
    buf_init(&ev);
    add_events(&ev, a, 1, 10, h);
    apply(s, &ev, 0, 0);

    struct record_snapshot rs = {
        .sid = a, .number = 6, .data = (const uint8_t *)"state", .len = 5};
    struct buf e;
    buf_init(&e);
    assert_int_equal(record_encode_snapshot(&e, &rs, NULL, NULL, NULL), 0);
    apply(s, &e, 0, 0);
    /* The first snapshot truncates nothing: the events before it go with
     * the next one, which keeps this one as its prior. */
    assert_int_equal(count_events(s, a), 10);
    struct buf e2;
    buf_init(&e2);
    rs.number = 8;
    assert_int_equal(record_encode_snapshot(&e2, &rs, NULL, NULL, NULL), 0);
    apply(s, &e2, 0, 0);
    assert_int_equal(count_events(s, a), 4);
    /* The log replays events 1..10 and both snapshots after a restart:
     * nothing comes back, nothing changes. */
    apply(s, &ev, 0, 0);
    apply(s, &e, 0, 0);
    apply(s, &e2, 0, 0);
    assert_int_equal(count_events(s, a), 4);
    struct store_ship ship;
    assert_int_equal(store_ship_get_sid(s, a, &ship), 0);
    assert_int_equal(ship.snapshot_event, 8);
    assert_int_equal(ship.first_event, 7);
    store_ship_clear(&ship);
    struct store_snapshot snap, prior;
    struct buf data;
    buf_init(&data);
    assert_int_equal(store_snapshot_get(s, a, &snap, &data), 0);
    assert_int_equal(snap.number, 8);
    assert_true(snap.sealed);
    assert_int_equal(seal_key_id(data.data, data.len), 0);
    assert_memory_equal(data.data + SEAL_PLAIN_OVERHEAD, "state", 5);
    data.len = 0;
    assert_int_equal(store_prior_snapshot_get(s, a, &prior, &data), 0);
    assert_int_equal(prior.number, 6);
    buf_free(&data);
    buf_free(&e);
    buf_free(&e2);
    /* The prior snapshot links to the log: event 7 follows from it, and
     * the walk ends at the head. */
    uint64_t n = 0;
    assert_int_equal(store_event_foreach(s, a, 7, prior.chain, count_cb, &n),
                     0);
    assert_int_equal(n, 4);

    /* A snapshot beyond the last event: the ship is damaged. */
    struct damage d = {0};
    rs.number = 11;
    buf_init(&e);
    assert_int_equal(record_encode_snapshot(&e, &rs, NULL, NULL, NULL), 0);
    apply_hooked(s, &e, 0, 0, &d);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.number, 11);
    buf_free(&e);
    buf_free(&ev);
}

/* The recorded storage of ship sid agrees with a count of what the store
 * holds, and the anonymous account's with its ship's; return it. */
static uint64_t storage_checked(struct store *s, uint64_t sid)
{
    struct store_usage u;
    struct store_account a;
    uint64_t counted;
    assert_int_equal(store_ship_usage(s, sid, &u), 0);
    assert_int_equal(store_usage_recount(s, sid, &counted), 0);
    assert_int_equal(u.storage_bytes, counted);
    assert_int_equal(store_account_get_id(s, ACCOUNT_ANONYMOUS, &a), 0);
    assert_int_equal(a.usage.storage_bytes, counted);
    assert_int_equal(a.usage.ships, 1);
    return counted;
}

static void test_usage_recorded_as_entries_apply(void **state)
{
    struct store *s = *state;
    uint64_t a = new_ship(s, "aaaa", "ann");
    assert_int_equal(storage_checked(s, a),
                     STORE_USAGE_ROW + strlen("ann") + strlen("/bin/true"));
    uint8_t h[RECORD_HASH_SIZE] = {0};
    struct buf ev;
    buf_init(&ev);
    add_events(&ev, a, 1, 10, h);
    apply(s, &ev, 0, 0);
    uint64_t ten = storage_checked(s, a);
    uint64_t event_bytes;
    assert_int_equal(store_event_bytes(s, a, 1, 10, &event_bytes), 0);
    assert_int_equal(ten, STORE_USAGE_ROW + 12 + event_bytes);
    /* Replayed events count once, and so do events applied after the
     * batch's heads were written (above, to read the figures). */
    apply(s, &ev, 0, 0);
    assert_int_equal(storage_checked(s, a), ten);
    struct buf more;
    buf_init(&more);
    add_events(&more, a, 11, 12, h);
    apply(s, &more, 0, 0);
    buf_free(&more);
    ten = storage_checked(s, a);

    /* A big snapshot, then a small one: the big one stays as the prior
     * (with the events after it) until the next replaces it. */
    uint8_t big[5000];
    memset(big, 'b', sizeof big);
    struct record_snapshot rs = {
        .sid = a, .number = 5, .data = big, .len = sizeof big};
    struct buf e;
    buf_init(&e);
    assert_int_equal(record_encode_snapshot(&e, &rs, NULL, NULL, NULL), 0);
    apply(s, &e, 0, 0);
    uint64_t with_big = storage_checked(s, a);
    assert_true(with_big > ten + sizeof big);
    buf_free(&e);
    rs.number = 8;
    rs.data = (const uint8_t *)"s";
    rs.len = 1;
    buf_init(&e);
    assert_int_equal(record_encode_snapshot(&e, &rs, NULL, NULL, NULL), 0);
    apply(s, &e, 0, 0);
    buf_free(&e);
    assert_true(storage_checked(s, a) < with_big);
    rs.number = 12;
    buf_init(&e);
    assert_int_equal(record_encode_snapshot(&e, &rs, NULL, NULL, NULL), 0);
    apply(s, &e, 0, 0);
    buf_free(&e);
    uint64_t small = storage_checked(s, a);
    assert_true(small < ten);
    /* Sweeping the marked events changes nothing recorded. */
    assert_int_equal(store_sweep(s), 0);
    assert_int_equal(storage_checked(s, a), small);

    /* Measures from the leader add up; the peak is the highest. */
    struct record_usage_item items[2] = {
        {.sid = a,
         .cpu_us = 700,
         .memory_peak_bytes = 4096,
         .memory_byte_seconds = 10,
         .wakes = 1,
         .requests = 3},
        {.sid = 999, .cpu_us = 5}, /* no such ship: nothing */
    };
    buf_init(&e);
    assert_int_equal(record_encode_usage(&e, items, 2), 0);
    int res;
    assert_int_equal(store_apply_entry(s, 7, e.data, e.len, NULL, &res), 0);
    assert_int_equal(store_apply_entry(s, 7, e.data, e.len, NULL, &res), 0);
    items[0].memory_peak_bytes = 1024;
    buf_free(&e);
    buf_init(&e);
    assert_int_equal(record_encode_usage(&e, items, 1), 0);
    assert_int_equal(store_apply_entry(s, 8, e.data, e.len, NULL, &res), 0);
    buf_free(&e);
    struct store_usage u;
    struct store_account acct;
    assert_int_equal(store_ship_usage(s, a, &u), 0);
    assert_int_equal(u.cpu_us, 1400);
    assert_int_equal(u.memory_peak_bytes, 4096);
    assert_int_equal(u.memory_byte_seconds, 20);
    assert_int_equal(u.wakes, 2);
    assert_int_equal(u.requests, 6);
    assert_int_equal(u.events, 12);
    assert_int_equal(store_account_get_id(s, ACCOUNT_ANONYMOUS, &acct), 0);
    assert_int_equal(acct.usage.cpu_us, 1400);
    assert_int_equal(acct.usage.memory_peak_bytes, 4096);
    assert_int_equal(acct.usage.events, 12);

    /* A removed ship leaves its account, but for its events. */
    buf_init(&e);
    assert_int_equal(record_encode_ship_remove(&e, a), 0);
    apply(s, &e, 0, 0);
    apply(s, &e, 0, 0);
    buf_free(&e);
    assert_int_equal(store_account_get_id(s, ACCOUNT_ANONYMOUS, &acct), 0);
    assert_int_equal(acct.usage.ships, 0);
    assert_int_equal(acct.usage.storage_bytes, 0);
    assert_int_equal(acct.usage.events, 12);
    buf_free(&ev);
}

/* The crawler's walk: a ship's and an account's recorded figures that
 * drifted are set to what the store holds, and changes to ships the walk
 * has passed count in its sums (without them the account would be set
 * wrong). */
static void test_crawl_corrects_drift(void **state)
{
    struct store *s = *state;
    uint64_t a = new_ship(s, "aaaa", "ann");
    uint64_t b = new_ship(s, "bbbb", "bob");
    uint64_t c = new_ship(s, "cccc", "cid");
    uint8_t ha[RECORD_HASH_SIZE] = {0}, hb[RECORD_HASH_SIZE] = {0};
    struct buf ev;
    buf_init(&ev);
    add_events(&ev, a, 1, 5, ha);
    apply(s, &ev, 0, 0);
    buf_free(&ev);
    /* Drift: ship a's figure (and so its account's), then the account's
     * alone. */
    assert_int_equal(store_usage_add(s, a, 100), 0);
    assert_int_equal(store_usage_ships(s, ACCOUNT_ANONYMOUS, 2, -50, 0), 0);

    assert_int_equal(store_crawl_begin(s, 0), 0);
    uint64_t cursor;
    unsigned walked;
    bool done;
    assert_int_equal(
        store_crawl_step(s, 1, UINT64_MAX, &cursor, &walked, &done), 0);
    assert_int_equal(cursor, a);
    assert_int_equal(walked, 1);
    assert_false(done);
    /* Behind the walk: ship a grows, and so does b ahead of it. */
    buf_init(&ev);
    add_events(&ev, a, 6, 9, ha);
    add_events(&ev, b, 1, 3, hb);
    apply(s, &ev, 0, 0);
    buf_free(&ev);
    while (!done) {
        assert_int_equal(
            store_crawl_step(s, 1, UINT64_MAX, &cursor, &walked, &done), 0);
    }
    assert_int_equal(cursor, c);
    struct store_crawl_report r;
    assert_int_equal(store_crawl_finish(s, &r), 0);
    assert_true(r.accounts_checked);
    assert_int_equal(r.ships_walked, 3);
    assert_int_equal(r.ships_fixed, 1);
    assert_int_equal(r.bytes_fixed, -100);
    uint64_t ca, cb, cc;
    assert_int_equal(store_usage_recount(s, a, &ca), 0);
    assert_int_equal(store_usage_recount(s, b, &cb), 0);
    assert_int_equal(store_usage_recount(s, c, &cc), 0);
    assert_int_equal(r.n_accounts, 1);
    assert_int_equal(r.accounts[0].ships, 3);
    assert_int_equal(r.accounts[0].recorded_ships, 5);
    assert_int_equal(r.accounts[0].storage_bytes, ca + cb + cc);
    struct store_usage u;
    assert_int_equal(store_ship_usage(s, a, &u), 0);
    assert_int_equal(u.storage_bytes, ca);
    struct store_account acct;
    assert_int_equal(store_account_get_id(s, ACCOUNT_ANONYMOUS, &acct), 0);
    assert_int_equal(acct.usage.ships, 3);
    assert_int_equal(acct.usage.storage_bytes, ca + cb + cc);

    /* A pass resumed in the middle corrects ships, and leaves accounts. */
    assert_int_equal(store_usage_add(s, c, 7), 0);
    assert_int_equal(store_crawl_begin(s, a), 0);
    done = false;
    while (!done) {
        assert_int_equal(
            store_crawl_step(s, 8, UINT64_MAX, &cursor, &walked, &done), 0);
    }
    assert_int_equal(store_crawl_finish(s, &r), 0);
    assert_false(r.accounts_checked);
    assert_int_equal(r.ships_walked, 2);
    assert_int_equal(r.ships_fixed, 1);
    assert_int_equal(store_ship_usage(s, c, &u), 0);
    assert_int_equal(u.storage_bytes, cc);
    assert_int_equal(store_account_get_id(s, ACCOUNT_ANONYMOUS, &acct), 0);
    assert_int_equal(acct.usage.storage_bytes, ca + cb + cc + 7);
}

static void test_remove_then_late_events(void **state)
{
    struct store *s = *state;
    uint64_t a = new_ship(s, "aaaa", "ann");
    struct buf e;
    buf_init(&e);
    assert_int_equal(record_encode_ship_remove(&e, a), 0);
    apply(s, &e, 0, 0);
    apply(s, &e, 0, 0); /* absent: nothing to do */
    buf_free(&e);
    struct store_ship ship;
    assert_int_equal(store_ship_get(s, "ann", &ship), BERTH_ENOTFOUND);
    /* Events of a removed ship, replayed from the log, are dropped. */
    uint8_t h[RECORD_HASH_SIZE] = {0};
    buf_init(&e);
    add_events(&e, a, 1, 2, h);
    apply(s, &e, 0, 0);
    buf_free(&e);
    assert_int_equal(count_events(s, a), 0);
    /* The name is free again. */
    new_ship(s, "dddd", "ann");
}

static void test_garbage_entries(void **state)
{
    struct store *s = *state;
    int res;
    uint8_t junk[] = {1, 99, 0, 0};
    assert_int_equal(store_apply_entry(s, 0, junk, sizeof junk, NULL, &res),
                     BERTH_ECORRUPT);
    assert_int_equal(store_apply_entry(s, 0, junk, 1, NULL, &res),
                     BERTH_ECORRUPT);
    uint8_t events[] = {1, RECORD_ENTRY_EVENTS, 1, 0, 0, 0, 200, 0, 0, 0};
    assert_int_equal(store_apply_entry(s, 0, events, sizeof events, NULL, &res),
                     BERTH_ECORRUPT);
    /* A batch whose public keys do not add up. */
    uint8_t pk[32] = {0};
    struct record_ship_batch b = {.program = "/bin/true",
                                  .program_len = 9,
                                  .count = 1,
                                  .public_keys = pk};
    struct buf e;
    buf_init(&e);
    assert_int_equal(record_encode_ship_batch(&e, &b, NULL, NULL), 0);
    e.len -= 1;
    assert_int_equal(store_apply_entry(s, 0, e.data, e.len, NULL, &res),
                     BERTH_ECORRUPT);
    buf_free(&e);
}

/* Encode a batch of n ships named prefix-first... (or one ship named
 * exactly prefix when exact), with key pairs derived as the host does. */
static void make_batch(struct buf *e, const char *prefix, bool exact,
                       uint32_t first, uint32_t n, uint8_t *key, uint8_t *pks)
{
    randombytes_buf(key, 32);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t seed[32], sk[64];
        record_ship_seed(key, first + i, seed);
        crypto_sign_seed_keypair(pks + 32 * i, sk, seed);
    }
    struct record_ship_batch b = {
        .program = "/bin/true",
        .program_len = 9,
        .name = prefix,
        .name_len = strlen(prefix),
        .flags = exact ? 0 : RECORD_BATCH_PREFIX,
        .created_ns = 77,
        .idle_timeout_ms = 5,
        .freeze_timeout_ms = 6,
        .args = "--port\0"
                "80\0",
        .args_len = 10,
        .env = "K=V\0",
        .env_len = 4,
        .first = first,
        .count = n,
        .public_keys = pks,
    };
    memcpy(b.key, key, 32);
    buf_init(e);
    assert_int_equal(record_encode_ship_batch(e, &b, NULL, NULL), 0);
}

static void test_batch_creates_ships(void **state)
{
    struct store *s = *state;
    uint8_t key[32], pks[3 * 32];
    struct buf e;
    int res = -1;
    make_batch(&e, "p", false, 1, 3, key, pks);
    assert_int_equal(store_apply_entry(s, 5, e.data, e.len, NULL, &res), 0);
    assert_int_equal(res, 0);
    uint64_t count;
    assert_int_equal(store_ship_count(s, &count), 0);
    assert_int_equal(count, 3);
    for (uint32_t i = 0; i < 3; i++) {
        char id[REGISTRY_ID_LEN + 1], name[16];
        struct store_ship ship;
        registry_id_encode(pks + 32 * i, REGISTRY_KEY_SIZE, id);
        snprintf(name, sizeof name, "p-%u", i + 1);
        assert_int_equal(store_ship_get(s, name, &ship), 0);
        assert_string_equal(ship.id, id);
        assert_int_equal(ship.sid, i + 1);
        assert_int_equal(ship.created_ns, 77);
        assert_int_equal(ship.idle_timeout_ms, 5);
        assert_int_equal(ship.freeze_timeout_ms, 6);
        /* Every ship of the batch gets its program's arguments and
         * environment. */
        assert_int_equal(ship.args_len, 10);
        assert_memory_equal(ship.args,
                            "--port\0"
                            "80\0",
                            10);
        assert_int_equal(ship.env_len, 4);
        assert_memory_equal(ship.env, "K=V\0", 4);
        assert_memory_equal(ship.public_key, pks + 32 * i, 32);
        /* The secret key signs for the public key: the seed was derived
         * from the batch key on apply, not carried in the entry. */
        uint8_t sig[64], sk[64];
        assert_int_equal(record_ship_secret(NULL, ship.secret, ship.secret_len,
                                            ship.public_key, sk),
                         0);
        crypto_sign_detached(sig, NULL, (const uint8_t *)"m", 1, sk);
        assert_int_equal(crypto_sign_verify_detached(sig, (const uint8_t *)"m",
                                                     1, ship.public_key),
                         0);
        store_ship_clear(&ship);
    }
    /* The same position again is skipped: the store has it. */
    res = -1;
    assert_int_equal(store_apply_entry(s, 5, e.data, e.len, NULL, &res), 0);
    assert_int_equal(res, 0);
    assert_int_equal(store_ship_count(s, &count), 0);
    assert_int_equal(count, 3);
    uint64_t applied;
    assert_int_equal(store_meta_get(s, "applied_index", &applied), 0);
    assert_int_equal(applied, 5);
    /* At a new position the ids clash: nothing is created, the position
     * still counts as applied. */
    assert_int_equal(store_apply_entry(s, 6, e.data, e.len, NULL, &res), 0);
    assert_int_equal(res, BERTH_EEXIST);
    assert_int_equal(store_ship_count(s, &count), 0);
    assert_int_equal(count, 3);
    assert_int_equal(store_meta_get(s, "applied_index", &applied), 0);
    assert_int_equal(applied, 6);
    buf_free(&e);
}

static void test_batch_is_all_or_nothing(void **state)
{
    struct store *s = *state;
    uint8_t key[32], pks[3 * 32];
    struct buf e;
    int res = -1;
    new_ship(s, "aaaa", "q-2");
    make_batch(&e, "q", false, 1, 3, key, pks);
    assert_int_equal(store_apply_entry(s, 0, e.data, e.len, NULL, &res), 0);
    assert_int_equal(res, BERTH_EEXIST);
    struct store_ship ship;
    assert_int_equal(store_ship_get(s, "q-1", &ship), BERTH_ENOTFOUND);
    assert_int_equal(store_ship_get(s, "q-3", &ship), BERTH_ENOTFOUND);
    buf_free(&e);
    /* One exact name, and the next sid follows the ships that exist. */
    make_batch(&e, "solo", true, 1, 1, key, pks);
    assert_int_equal(store_apply_entry(s, 0, e.data, e.len, NULL, &res), 0);
    assert_int_equal(res, 0);
    assert_int_equal(store_ship_get(s, "solo", &ship), 0);
    assert_int_equal(ship.sid, 2);
    store_ship_clear(&ship);
    buf_free(&e);
}

static void test_events_carry_the_alarm(void **state)
{
    struct store *s = *state;
    uint64_t a = new_ship(s, "aaaa", "ann");
    struct buf e;
    buf_init(&e);
    assert_int_equal(record_events_begin(&e), 0);
    uint8_t head[RECORD_HASH_SIZE] = {0};
    for (uint64_t n = 1; n <= 2; n++) {
        struct record_event ev = {.sid = a, .number = n, .kind = 3};
        ev.alarm_ns = n == 1 ? 1234 : 5678;
        memcpy(ev.prev_hash, head, RECORD_HASH_SIZE);
        struct buf r;
        buf_init(&r);
        assert_int_equal(record_encode_event(&r, &ev, NULL, NULL, NULL), 0);
        record_hash(r.data, r.len, head);
        assert_int_equal(record_events_add(&e, r.data, r.len), 0);
        buf_free(&r);
    }
    apply(s, &e, 0, 0);
    buf_free(&e);
    struct store_ship ship;
    assert_int_equal(store_ship_get(s, "ann", &ship), 0);
    assert_int_equal(ship.last_event, 2);
    assert_int_equal(ship.alarm_ns, 5678); /* the last event's */
    store_ship_clear(&ship);
}

/* Copy a store's files, as a crash would leave them, and open the copy. */
static struct store *crash_copy(const char *dir)
{
    char cmd[600], path[300], errmsg[ERRMSG_SIZE];
    snprintf(cmd, sizeof cmd,
             "rm -rf %s/copy && mkdir %s/copy && cp %s/store.db* %s/copy/", dir,
             dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof path, "%s/copy/store.db", dir);
    struct store *c;
    assert_int_equal(store_open(&c, path, errmsg), 0);
    return c;
}

/* Applied entries are read back at once but reach the file only at a
 * flush; an entry that fails leaves the batch before it intact. */
static void test_batch_reaches_the_file_at_flush(void **state)
{
    (void)state;
    char dir[] = "/tmp/berth-apply-XXXXXX", path[300], errmsg[ERRMSG_SIZE];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/store.db", dir);
    struct store *s;
    assert_int_equal(store_open(&s, path, errmsg), 0);
    struct record_ship_new r = {.id = "ffff", .name = "f", .program = "/x"};
    struct buf e;
    uint8_t head[RECORD_HASH_SIZE] = {0};
    int res;
    buf_init(&e);
    assert_int_equal(record_encode_ship_new(&e, &r), 0);
    assert_int_equal(store_apply_entry(s, 1, e.data, e.len, NULL, &res), 0);
    buf_free(&e);
    add_events(&e, 1, 1, 3, head);
    assert_int_equal(store_apply_entry(s, 2, e.data, e.len, NULL, &res), 0);
    buf_free(&e);
    assert_int_equal(store_unflushed(s), 2);
    assert_int_equal(store_flush(s), 0);
    assert_int_equal(store_unflushed(s), 0);
    add_events(&e, 1, 4, 5, head);
    assert_int_equal(store_apply_entry(s, 3, e.data, e.len, NULL, &res), 0);
    buf_free(&e);
    assert_int_equal(count_events(s, 1), 5);

    /* The file holds the flushed entries only. */
    struct store *c = crash_copy(dir);
    uint64_t applied;
    assert_int_equal(store_meta_get(c, "applied_index", &applied), 0);
    assert_int_equal(applied, 2);
    assert_int_equal(count_events(c, 1), 3);
    store_close(c);

    /* A corrupt entry fails alone. */
    uint8_t junk[] = {RECORD_ENTRY_EVENTS, 0xff, 0xff};
    assert_int_equal(store_apply_entry(s, 4, junk, sizeof junk, NULL, &res),
                     BERTH_ECORRUPT);
    assert_int_equal(store_flush(s), 0);
    assert_int_equal(store_meta_get(s, "applied_index", &applied), 0);
    assert_int_equal(applied, 3);
    assert_int_equal(count_events(s, 1), 5);
    store_close(s);
    c = crash_copy(dir);
    assert_int_equal(count_events(c, 1), 5);
    store_close(c);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void token_entry(struct buf *e, uint8_t op, uint8_t fill,
                        const char *name_or_id)
{
    struct record_token t = {.op = op,
                             .scope = 1,
                             .created_ns = 5,
                             .name = name_or_id,
                             .name_len = strlen(name_or_id)};
    memset(t.hash, fill, sizeof t.hash);
    buf_init(e);
    assert_int_equal(record_encode_token(e, &t), 0);
}

static void apply_token(struct store *s, uint64_t index, uint8_t op,
                        uint8_t fill, const char *name_or_id, int want_res)
{
    struct buf e;
    int res = -1;
    token_entry(&e, op, fill, name_or_id);
    assert_int_equal(store_apply_entry(s, index, e.data, e.len, NULL, &res), 0);
    assert_int_equal(res, want_res);
    buf_free(&e);
}

/* A TOKEN entry adds a token by its hash, idempotently; a clash of name or
 * hash changes nothing and says so; a revoke deletes it. */
static void test_token_entries(void **state)
{
    struct store *s = *state;
    struct store_token t;
    uint8_t hash[32];
    char id[AUTH_ID_SIZE];
    memset(hash, 0x11, sizeof hash);
    auth_token_id(hash, id);
    apply_token(s, 0, RECORD_TOKEN_ADD, 0x11, "ci", 0);
    assert_int_equal(store_token_get(s, id, &t), 0);
    assert_string_equal(t.name, "ci");
    assert_int_equal(t.scope, 1);
    assert_int_equal(t.account, 0);
    assert_memory_equal(t.hash, hash, sizeof hash);
    /* The same entry again, as a replay: no change, no error. */
    apply_token(s, 0, RECORD_TOKEN_ADD, 0x11, "ci", 0);
    /* Another token with the name, or the same hash with another name. */
    apply_token(s, 0, RECORD_TOKEN_ADD, 0x22, "ci", BERTH_EEXIST);
    apply_token(s, 0, RECORD_TOKEN_ADD, 0x11, "other", BERTH_EEXIST);
    memset(hash, 0x22, sizeof hash);
    auth_token_id(hash, id);
    assert_int_equal(store_token_get(s, id, &t), BERTH_ENOTFOUND);
    /* Revoked by id; a second revoke finds nothing. */
    memset(hash, 0x11, sizeof hash);
    auth_token_id(hash, id);
    apply_token(s, 0, RECORD_TOKEN_REVOKE, 0, id, 0);
    assert_int_equal(store_token_get(s, "ci", &t), BERTH_ENOTFOUND);
    apply_token(s, 0, RECORD_TOKEN_REVOKE, 0, id, BERTH_ENOTFOUND);
    /* An entry at or below the applied index is skipped. */
    apply_token(s, 10, RECORD_TOKEN_ADD, 0x33, "", 0);
    apply_token(s, 10, RECORD_TOKEN_ADD, 0x44, "", 0);
    memset(hash, 0x44, sizeof hash);
    auth_token_id(hash, id);
    assert_int_equal(store_token_get(s, id, &t), BERTH_ENOTFOUND);
    /* A revoke without an id does not decode. */
    struct buf e;
    int res;
    token_entry(&e, RECORD_TOKEN_REVOKE, 0, "");
    assert_int_equal(store_apply_entry(s, 0, e.data, e.len, NULL, &res),
                     BERTH_ECORRUPT);
    buf_free(&e);
}

static void apply_account(struct store *s, uint8_t op, uint64_t account,
                          const char *name, uint8_t fill, int want_res)
{
    struct record_account r = {.op = op,
                               .account = account,
                               .value = fill,
                               .created_ns = 9,
                               .name = name,
                               .name_len = strlen(name)};
    memset(r.hash, fill, sizeof r.hash);
    struct buf e;
    int res = -1;
    buf_init(&e);
    assert_int_equal(record_encode_account(&e, &r), 0);
    assert_int_equal(store_apply_entry(s, 0, e.data, e.len, NULL, &res), 0);
    assert_int_equal(res, want_res);
    buf_free(&e);
}

/* A LIMIT entry sets an account's limits: each a value, the host's
 * default, or kept; a value out of range, or no such account, changes
 * nothing. */
static void test_account_limits(void **state)
{
    struct store *s = *state;
    apply_account(s, ACCOUNT_OP_NEW, 0, "alice", 1, 0);
    struct store_account a;
    assert_int_equal(store_account_get(s, "alice", &a), 0);
    for (int i = 0; i < QUOTA__COUNT; i++) {
        assert_true(a.limits[i] == QUOTA_DEFAULT);
    }
    uint64_t n = 9;
    assert_int_equal(store_account_limited_count(s, &n), 0);
    assert_int_equal(n, 0);
    struct record_account r = {.op = ACCOUNT_OP_LIMIT, .account = a.id};
    uint64_t want[QUOTA__COUNT] = {3, 1000, QUOTA_KEEP, QUOTA_NONE, 50};
    memcpy(r.limits, want, sizeof want);
    struct buf e;
    int res = -1;
    buf_init(&e);
    assert_int_equal(record_encode_account(&e, &r), 0);
    assert_int_equal(store_apply_entry(s, 0, e.data, e.len, NULL, &res), 0);
    assert_int_equal(res, 0);
    buf_free(&e);
    assert_int_equal(store_account_get(s, "alice", &a), 0);
    assert_int_equal(a.limits[QUOTA_SHIPS], 3);
    assert_int_equal(a.limits[QUOTA_STORAGE], 1000);
    assert_true(a.limits[QUOTA_AWAKE] == QUOTA_DEFAULT);
    assert_int_equal(a.limits[QUOTA_CPU], QUOTA_NONE);
    assert_int_equal(a.limits[QUOTA_EVENTS], 50);
    assert_int_equal(store_account_limited_count(s, &n), 0);
    assert_int_equal(n, 1);
    /* Back to the default for one, the others kept. */
    for (int i = 0; i < QUOTA__COUNT; i++) {
        r.limits[i] = QUOTA_KEEP;
    }
    r.limits[QUOTA_SHIPS] = QUOTA_DEFAULT;
    buf_init(&e);
    assert_int_equal(record_encode_account(&e, &r), 0);
    assert_int_equal(store_apply_entry(s, 0, e.data, e.len, NULL, &res), 0);
    buf_free(&e);
    assert_int_equal(store_account_get(s, "alice", &a), 0);
    assert_true(a.limits[QUOTA_SHIPS] == QUOTA_DEFAULT);
    assert_int_equal(a.limits[QUOTA_STORAGE], 1000);
    /* Out of range, or no such account: nothing, said in the result. */
    r.limits[QUOTA_SHIPS] = QUOTA_MAX + 1;
    buf_init(&e);
    assert_int_equal(record_encode_account(&e, &r), 0);
    assert_int_equal(store_apply_entry(s, 0, e.data, e.len, NULL, &res), 0);
    assert_int_equal(res, BERTH_EINVAL);
    buf_free(&e);
    r.limits[QUOTA_SHIPS] = 5;
    r.account = 77;
    buf_init(&e);
    assert_int_equal(record_encode_account(&e, &r), 0);
    assert_int_equal(store_apply_entry(s, 0, e.data, e.len, NULL, &res), 0);
    assert_int_equal(res, BERTH_ENOTFOUND);
    buf_free(&e);
    assert_int_equal(store_account_get(s, "alice", &a), 0);
    assert_true(a.limits[QUOTA_SHIPS] == QUOTA_DEFAULT);
}

/* Apply a LIMIT entry to account that sets the caps which names to caps
 * and keeps every limit; return its result. */
static int apply_caps(struct store *s, uint64_t account, uint8_t which,
                      struct caps caps)
{
    struct record_account r = {.op = ACCOUNT_OP_LIMIT,
                               .account = account,
                               .caps_which = which,
                               .caps = caps};
    for (int i = 0; i < QUOTA__COUNT; i++) {
        r.limits[i] = QUOTA_KEEP;
    }
    struct buf e;
    int res = -1;
    buf_init(&e);
    assert_int_equal(record_encode_account(&e, &r), 0);
    assert_int_equal(store_apply_entry(s, 0, e.data, e.len, NULL, &res), 0);
    buf_free(&e);
    return res;
}

/* A LIMIT entry with caps sets those it names, keeps the others and the
 * limits; a LIMIT without caps keeps them; a cap out of bounds, or no such
 * account, changes nothing. */
static void test_account_caps(void **state)
{
    struct store *s = *state;
    apply_account(s, ACCOUNT_OP_NEW, 0, "carol", 3, 0);
    struct store_account a;
    struct caps c;
    assert_int_equal(store_account_get(s, "carol", &a), 0);
    assert_true(caps_none(&a.caps));
    uint64_t id = a.id;
    assert_int_equal(apply_caps(s, id, RECORD_ACCOUNT_CAPS_ALL,
                                (struct caps){64 << 20, 500, 32}),
                     0);
    assert_int_equal(store_account_caps(s, id, &c), 0);
    assert_int_equal(c.memory_bytes, 64 << 20);
    assert_int_equal(c.cpu_millis, 500);
    assert_int_equal(c.pids, 32);
    assert_int_equal(store_account_get(s, "carol", &a), 0);
    assert_memory_equal(&a.caps, &c, sizeof c);
    assert_true(a.limits[QUOTA_SHIPS] == QUOTA_DEFAULT);
    /* One cleared (0), the others kept, whatever the entry says of them. */
    assert_int_equal(
        apply_caps(s, id, RECORD_ACCOUNT_CAPS_CPU, (struct caps){1, 0, 1}), 0);
    assert_int_equal(store_account_caps(s, id, &c), 0);
    assert_int_equal(c.memory_bytes, 64 << 20);
    assert_int_equal(c.cpu_millis, 0);
    assert_int_equal(c.pids, 32);
    /* A LIMIT of limits alone leaves the caps. */
    struct record_account r = {.op = ACCOUNT_OP_LIMIT, .account = id};
    for (int i = 0; i < QUOTA__COUNT; i++) {
        r.limits[i] = QUOTA_KEEP;
    }
    r.limits[QUOTA_SHIPS] = 4;
    struct buf e;
    int res = -1;
    buf_init(&e);
    assert_int_equal(record_encode_account(&e, &r), 0);
    assert_int_equal(store_apply_entry(s, 0, e.data, e.len, NULL, &res), 0);
    assert_int_equal(res, 0);
    buf_free(&e);
    assert_int_equal(store_account_get(s, "carol", &a), 0);
    assert_int_equal(a.limits[QUOTA_SHIPS], 4);
    assert_int_equal(a.caps.memory_bytes, 64 << 20);
    assert_int_equal(a.caps.pids, 32);
    /* Out of bounds: refused whole, limits too; no such account. */
    r.limits[QUOTA_SHIPS] = 9;
    r.caps_which = RECORD_ACCOUNT_CAPS_MEMORY | RECORD_ACCOUNT_CAPS_PIDS;
    r.caps = (struct caps){1 << 20, 0, 8};
    buf_init(&e);
    assert_int_equal(record_encode_account(&e, &r), 0);
    assert_int_equal(store_apply_entry(s, 0, e.data, e.len, NULL, &res), 0);
    assert_int_equal(res, BERTH_EINVAL);
    buf_free(&e);
    assert_int_equal(
        apply_caps(s, id, RECORD_ACCOUNT_CAPS_PIDS, (struct caps){0, 0, 1}),
        BERTH_EINVAL);
    assert_int_equal(
        apply_caps(s, 99, RECORD_ACCOUNT_CAPS_PIDS, (struct caps){0, 0, 8}),
        BERTH_ENOTFOUND);
    assert_int_equal(store_account_get(s, "carol", &a), 0);
    assert_int_equal(a.limits[QUOTA_SHIPS], 4);
    assert_int_equal(a.caps.memory_bytes, 64 << 20);
    assert_int_equal(a.caps.pids, 32);
    assert_int_equal(store_account_caps(s, 99, &c), BERTH_ENOTFOUND);
    /* All cleared: the account has no caps. */
    assert_int_equal(
        apply_caps(s, id, RECORD_ACCOUNT_CAPS_ALL, (struct caps){0, 0, 0}), 0);
    assert_int_equal(store_account_caps(s, id, &c), 0);
    assert_true(caps_none(&c));
}

static int count_ship(uint64_t sid, uint64_t alarm_ns, void *arg)
{
    (*(int *)arg)++;
    return 0;
}

/* ACCOUNT entries make an account with its token, disable and enable it,
 * open and close anonymous creation, and remove an account only once it
 * has no ships; what cannot be done changes nothing and says why. */
static void test_account_entries(void **state)
{
    struct store *s = *state;
    struct store_account a;
    struct store_token t;
    uint64_t n;
    /* A fresh store has the anonymous account, 0. */
    assert_int_equal(store_account_get_id(s, 0, &a), 0);
    assert_string_equal(a.name, "anonymous");
    assert_false(a.disabled);

    apply_account(s, ACCOUNT_OP_NEW, 0, "alice", 0x51, 0);
    assert_int_equal(store_account_get(s, "alice", &a), 0);
    assert_int_equal(a.id, 1);
    assert_int_equal(a.created_ns, 9);
    uint8_t hash[32];
    char id[AUTH_ID_SIZE];
    memset(hash, 0x51, sizeof hash);
    auth_token_id(hash, id);
    assert_int_equal(store_token_get(s, id, &t), 0);
    assert_int_equal(t.account, 1);
    assert_int_equal(t.scope, AUTH_SCOPE_OPERATE);
    /* A name taken, or a token's hash taken: nothing changes. */
    apply_account(s, ACCOUNT_OP_NEW, 0, "alice", 0x52, BERTH_EEXIST);
    apply_account(s, ACCOUNT_OP_NEW, 0, "bob", 0x51, BERTH_EEXIST);
    assert_int_equal(store_account_get(s, "bob", &a), BERTH_ENOTFOUND);
    apply_account(s, ACCOUNT_OP_NEW, 0, "Bad Name", 0x53, BERTH_EINVAL);
    apply_account(s, ACCOUNT_OP_NEW, 0, "bob", 0x54, 0);
    assert_int_equal(store_account_get(s, "bob", &a), 0);
    assert_int_equal(a.id, 2);

    apply_account(s, ACCOUNT_OP_DISABLE, 1, "", 0, 0);
    assert_int_equal(store_account_get_id(s, 1, &a), 0);
    assert_true(a.disabled);
    assert_int_equal(store_account_disabled_count(s, &n), 0);
    assert_int_equal(n, 1);
    apply_account(s, ACCOUNT_OP_ENABLE, 1, "", 0, 0);
    assert_int_equal(store_account_disabled_count(s, &n), 0);
    assert_int_equal(n, 0);
    apply_account(s, ACCOUNT_OP_DISABLE, 99, "", 0, BERTH_ENOTFOUND);

    apply_account(s, ACCOUNT_OP_ANONYMOUS, 0, "", 0, 0);
    assert_int_equal(store_meta_get(s, "anonymous_closed", &n), 0);
    assert_int_equal(n, 1);
    apply_account(s, ACCOUNT_OP_ANONYMOUS, 0, "", 1, 0);
    assert_int_equal(store_meta_get(s, "anonymous_closed", &n), 0);
    assert_int_equal(n, 0);

    /* Ships made in account 1 are its. */
    struct buf e;
    uint8_t key[32], pks[2 * 32];
    int res;
    struct record_ship_batch b = {
        .program = "/bin/true",
        .program_len = 9,
        .name = "al",
        .name_len = 2,
        .flags = RECORD_BATCH_PREFIX,
        .first = 1,
        .count = 2,
        .account = 1,
        .public_keys = pks,
    };
    randombytes_buf(key, sizeof key);
    for (uint32_t i = 0; i < 2; i++) {
        uint8_t seed[32], sk[64];
        record_ship_seed(key, 1 + i, seed);
        crypto_sign_seed_keypair(pks + 32 * i, sk, seed);
    }
    memcpy(b.key, key, sizeof key);
    buf_init(&e);
    assert_int_equal(record_encode_ship_batch(&e, &b, NULL, NULL), 0);
    assert_int_equal(store_apply_entry(s, 0, e.data, e.len, NULL, &res), 0);
    assert_int_equal(res, 0);
    buf_free(&e);
    struct store_ship ship;
    assert_int_equal(store_ship_get(s, "al-2", &ship), 0);
    assert_int_equal(ship.account, 1);
    uint64_t owner;
    assert_int_equal(store_ship_account(s, ship.sid, &owner), 0);
    assert_int_equal(owner, 1);
    store_ship_clear(&ship);
    assert_int_equal(store_account_ship_count(s, 1, &n), 0);
    assert_int_equal(n, 2);
    int seen = 0;
    assert_int_equal(store_account_ships(s, 1, 0, count_ship, &seen), 0);
    assert_int_equal(seen, 2);
    seen = 0;
    assert_int_equal(store_account_ships(s, 2, 0, count_ship, &seen), 0);
    assert_int_equal(seen, 0);

    /* Ships of an account that does not exist are not made. */
    b.account = 77;
    b.name = "zz";
    buf_init(&e);
    assert_int_equal(record_encode_ship_batch(&e, &b, NULL, NULL), 0);
    assert_int_equal(store_apply_entry(s, 0, e.data, e.len, NULL, &res), 0);
    assert_int_equal(res, BERTH_ENOTFOUND);
    buf_free(&e);
    assert_int_equal(store_ship_get(s, "zz-1", &ship), BERTH_ENOTFOUND);
    /* Not removed while it has ships; the anonymous one never. */
    apply_account(s, ACCOUNT_OP_REMOVE, 1, "", 0, BERTH_EBUSY);
    assert_int_equal(store_account_get(s, "alice", &a), 0);
    apply_account(s, ACCOUNT_OP_REMOVE, 0, "", 0, BERTH_EINVAL);
    assert_int_equal(store_account_delete(s, 0), BERTH_EINVAL);
    assert_int_equal(store_account_get_id(s, 0, &a), 0);
    apply_account(s, ACCOUNT_OP_REMOVE, 2, "", 0, 0);
    assert_int_equal(store_account_get(s, "bob", &a), BERTH_ENOTFOUND);
    memset(hash, 0x54, sizeof hash);
    auth_token_id(hash, id);
    assert_int_equal(store_token_get(s, id, &t), BERTH_ENOTFOUND);
    apply_account(s, ACCOUNT_OP_REMOVE, 2, "", 0, BERTH_ENOTFOUND);
    /* A new account takes an id never given before, not the removed 2. */
    apply_account(s, ACCOUNT_OP_NEW, 0, "carol", 0x55, 0);
    assert_int_equal(store_account_get(s, "carol", &a), 0);
    assert_int_equal(a.id, 3);
}

/* --- Children, destroys and mail: effects items. --- */

/* A ship whose key pair the test knows. */
struct kin {
    uint64_t sid;
    char id[REGISTRY_ID_LEN + 1];
    uint8_t pk[32], sk[64];
    uint8_t head[RECORD_HASH_SIZE];
    uint64_t last;
};

/* What the hook heard of besides damage. */
struct heard {
    unsigned removed, added, mailed;
    uint64_t last_removed;
};

static void on_removed(void *arg, uint64_t sid)
{
    struct heard *h = arg;
    h->removed++;
    h->last_removed = sid;
}

static void on_added(void *arg)
{
    ((struct heard *)arg)->added++;
}

static void on_mailed(void *arg, uint64_t target)
{
    (void)target;
    ((struct heard *)arg)->mailed++;
}

static void apply_heard(struct store *s, struct buf *e, struct heard *h)
{
    int res = -1;
    struct store_apply_hook hook = {.removed = on_removed,
                                    .added = on_added,
                                    .mailed = on_mailed,
                                    .arg = h};
    assert_int_equal(store_apply_entry(s, 0, e->data, e->len, &hook, &res), 0);
}

/* A root ship made by the operator, with a key pair of its own. */
static void kin_root(struct store *s, const char *name, struct kin *k)
{
    memset(k, 0, sizeof *k);
    crypto_sign_keypair(k->pk, k->sk);
    registry_id_encode(k->pk, REGISTRY_KEY_SIZE, k->id);
    struct record_ship_new r = {
        .id = k->id, .name = name, .program = "/bin/true"};
    memcpy(r.public_key, k->pk, 32);
    memcpy(r.secret_key, k->sk, 64);
    struct buf e;
    buf_init(&e);
    assert_int_equal(record_encode_ship_new(&e, &r), 0);
    apply(s, &e, 0, 0);
    buf_free(&e);
    struct store_ship ship;
    assert_int_equal(store_ship_get(s, k->id, &ship), 0);
    k->sid = ship.sid;
    store_ship_clear(&ship);
}

/* Append to entries the SHIP_BATCH of a child of parent, whose keys go to
 * *child (its sid once applied: next_sid). */
static void kin_spawn_entry(struct buf *entries, const struct kin *parent,
                            uint8_t lifetime, uint32_t tag, struct kin *child)
{
    memset(child, 0, sizeof *child);
    uint8_t key[32], seed[32];
    randombytes_buf(key, sizeof key);
    record_ship_seed(key, 1, seed);
    crypto_sign_seed_keypair(child->pk, child->sk, seed);
    registry_id_encode(child->pk, REGISTRY_KEY_SIZE, child->id);
    struct record_ship_batch b = {.program = "/bin/true",
                                  .program_len = 9,
                                  .name = "",
                                  .first = 1,
                                  .count = 1,
                                  .public_keys = child->pk,
                                  .parent = parent->sid,
                                  .lifetime = lifetime,
                                  .tag = tag};
    memcpy(b.key, key, 32);
    struct buf e;
    buf_init(&e);
    assert_int_equal(record_encode_ship_batch(&e, &b, NULL, NULL), 0);
    assert_int_equal(record_effects_add(entries, e.data, e.len), 0);
    buf_free(&e);
}

/* Append to entries a destroy of target by by, signed with signer's key. */
static void kin_destroy_entry(struct buf *entries, const struct kin *target,
                              uint8_t by, const struct kin *signer)
{
    struct record_destroy d = {.sid = target->sid, .by = by};
    uint8_t msg[RECORD_DESTROY_MESSAGE_MAX];
    size_t n = record_destroy_message(target->id, msg);
    crypto_sign_detached(d.signature, NULL, msg, n, signer->sk);
    struct buf e;
    buf_init(&e);
    assert_int_equal(record_encode_destroy(&e, &d), 0);
    assert_int_equal(record_effects_add(entries, e.data, e.len), 0);
    buf_free(&e);
}

/* An EVENTS entry with k's next event and an effects item of entries
 * behind it, taking mail mail_taken (0: none). */
static void kin_event(struct buf *e, struct kin *k, const struct buf *entries,
                      uint64_t mail_taken)
{
    buf_init(e);
    add_events(e, k->sid, k->last + 1, k->last + 1, k->head);
    k->last++;
    struct record_effects fx = {.sid = k->sid,
                                .number = k->last,
                                .mail_taken = mail_taken,
                                .entries = entries->data,
                                .entries_len = entries->len};
    struct buf item;
    buf_init(&item);
    assert_int_equal(record_encode_effects(&item, &fx), 0);
    assert_int_equal(record_events_add(e, item.data, item.len), 0);
    buf_free(&item);
}

/* Make child of parent with lifetime, through an event of parent's. */
static void kin_child(struct store *s, struct kin *parent, uint8_t lifetime,
                      struct kin *child)
{
    struct buf entries, e;
    buf_init(&entries);
    kin_spawn_entry(&entries, parent, lifetime, 9, child);
    kin_event(&e, parent, &entries, 0);
    struct heard h = {0};
    apply_heard(s, &e, &h);
    assert_int_equal(h.added, 1);
    assert_int_equal(h.mailed, 1);
    buf_free(&e);
    buf_free(&entries);
    struct store_ship ship;
    assert_int_equal(store_ship_get(s, child->id, &ship), 0);
    child->sid = ship.sid;
    assert_int_equal(ship.parent, parent->sid);
    assert_int_equal(ship.lifetime, lifetime);
    assert_int_equal(ship.spawn_tag, 9);
    store_ship_clear(&ship);
}

static bool exists(struct store *s, const struct kin *k)
{
    struct store_ship ship;
    int rv = store_ship_get_sid(s, k->sid, &ship);
    if (rv == 0) {
        store_ship_clear(&ship);
    }
    return rv == 0;
}

/* Take all of ship sid's mail, checking each is a CHILD event saying what
 * with detail; returns how many there were. */
static unsigned take_child_mail(struct store *s, uint64_t sid, uint8_t what,
                                const char *detail)
{
    unsigned n = 0;
    struct store_mail m;
    while (store_mail_next(s, sid, 0, &m) == 0) {
        struct buf plain;
        buf_init(&plain);
        assert_int_equal(m.kind, FRAME_EVENT_CHILD);
        assert_int_equal(
            record_open_mail(&plain, NULL, NULL, sid, m.kind, m.body, m.len),
            0);
        struct frame_child c;
        assert_int_equal(frame_decode_child(plain.data, plain.len, &c), 0);
        assert_int_equal(c.what, what);
        assert_int_equal(c.detail_len, strlen(detail));
        assert_memory_equal(c.detail, detail, c.detail_len);
        assert_int_equal(store_mail_take(s, sid, m.seq), 0);
        buf_free(&plain);
        store_mail_clear(&m);
        n++;
    }
    return n;
}

/* A child is made with the event that spawns it, and only then: the same
 * entry again, or the event proposed again with other effects, makes
 * nothing more. The parent is told once. */
static void test_spawn_with_its_event_only(void **state)
{
    struct store *s = *state;
    struct kin p, c, c2;
    kin_root(s, "pa", &p);
    struct buf entries, e;
    buf_init(&entries);
    kin_spawn_entry(&entries, &p, FRAME_LIFETIME_LINKED, 9, &c);
    uint8_t head[RECORD_HASH_SIZE];
    memcpy(head, p.head, sizeof head);
    kin_event(&e, &p, &entries, 0);
    struct heard h = {0};
    apply_heard(s, &e, &h);
    apply_heard(s, &e, &h); /* replayed */
    assert_int_equal(h.added, 1);
    assert_int_equal(take_child_mail(s, p.sid, FRAME_CHILD_SPAWNED, ""), 1);
    buf_free(&e);
    /* Event 1 again, from another leader, with another child: skipped. */
    buf_free(&entries);
    buf_init(&entries);
    kin_spawn_entry(&entries, &p, FRAME_LIFETIME_ROOT, 3, &c2);
    memcpy(p.head, head, sizeof head);
    p.last = 0;
    kin_event(&e, &p, &entries, 0);
    apply_heard(s, &e, &h);
    assert_int_equal(h.added, 1);
    struct store_ship ship;
    assert_int_equal(store_ship_get(s, c2.id, &ship), BERTH_ENOTFOUND);
    assert_int_equal(store_ship_get(s, c.id, &ship), 0);
    store_ship_clear(&ship);
    buf_free(&e);
    buf_free(&entries);
}

/* Destroys carry a proof that every host checks, and take the linked and
 * ephemeral descendants first; a root child stays, without a parent. */
static void test_destroy_proofs_and_cascade(void **state)
{
    struct store *s = *state;
    struct kin p, linked, eph, root, grand, stranger;
    kin_root(s, "pa", &p);
    kin_root(s, "st", &stranger);
    kin_child(s, &p, FRAME_LIFETIME_LINKED, &linked);
    kin_child(s, &p, FRAME_LIFETIME_EPHEMERAL, &eph);
    kin_child(s, &p, FRAME_LIFETIME_ROOT, &root);
    kin_child(s, &linked, FRAME_LIFETIME_LINKED, &grand);
    take_child_mail(s, p.sid, FRAME_CHILD_SPAWNED, "");
    take_child_mail(s, linked.sid, FRAME_CHILD_SPAWNED, "");
    struct buf entries, e;
    struct heard h = {0};

    /* Signed by another key, asked by another ship, a release of a linked
     * child: nothing happens. */
    buf_init(&entries);
    kin_destroy_entry(&entries, &linked, RECORD_DESTROY_PARENT, &stranger);
    kin_destroy_entry(&entries, &linked, RECORD_DESTROY_RELEASED, &p);
    kin_event(&e, &p, &entries, 0);
    apply_heard(s, &e, &h);
    buf_free(&e);
    buf_free(&entries);
    buf_init(&entries);
    kin_destroy_entry(&entries, &linked, RECORD_DESTROY_PARENT, &stranger);
    kin_event(&e, &stranger, &entries, 0);
    apply_heard(s, &e, &h);
    buf_free(&e);
    buf_free(&entries);
    assert_int_equal(h.removed, 0);
    assert_true(exists(s, &linked));

    /* The parent's proof: the child and its linked grandchild go. */
    buf_init(&entries);
    kin_destroy_entry(&entries, &linked, RECORD_DESTROY_PARENT, &p);
    kin_event(&e, &p, &entries, 0);
    apply_heard(s, &e, &h);
    buf_free(&e);
    buf_free(&entries);
    assert_int_equal(h.removed, 2);
    assert_int_equal(h.last_removed, linked.sid); /* the deepest first */
    assert_false(exists(s, &linked));
    assert_false(exists(s, &grand));
    assert_int_equal(take_child_mail(s, p.sid, FRAME_CHILD_DESTROYED, "parent"),
                     1);

    /* Released: an ephemeral child goes. */
    buf_init(&entries);
    kin_destroy_entry(&entries, &eph, RECORD_DESTROY_RELEASED, &p);
    kin_event(&e, &p, &entries, 0);
    apply_heard(s, &e, &h);
    buf_free(&e);
    buf_free(&entries);
    assert_false(exists(s, &eph));
    assert_int_equal(
        take_child_mail(s, p.sid, FRAME_CHILD_DESTROYED, "released"), 1);

    /* The parent destroys itself: the root child stays, parentless, and
     * is not told. */
    buf_init(&entries);
    kin_destroy_entry(&entries, &p, RECORD_DESTROY_SELF, &p);
    kin_event(&e, &p, &entries, 0);
    apply_heard(s, &e, &h);
    buf_free(&e);
    buf_free(&entries);
    assert_false(exists(s, &p));
    struct store_ship ship;
    assert_int_equal(store_ship_get_sid(s, root.sid, &ship), 0);
    assert_int_equal(ship.parent, 0);
    store_ship_clear(&ship);
    assert_int_equal(take_child_mail(s, root.sid, 0, ""), 0);
    /* The operator's removal of a parent takes its linked children too. */
    struct kin q, qc;
    kin_root(s, "qq", &q);
    kin_child(s, &q, FRAME_LIFETIME_EPHEMERAL, &qc);
    buf_init(&e);
    assert_int_equal(record_encode_ship_remove(&e, q.sid), 0);
    apply(s, &e, 0, 0);
    buf_free(&e);
    assert_false(exists(s, &q));
    assert_false(exists(s, &qc));
    /* Its mail went with it. */
    assert_int_equal(take_child_mail(s, q.sid, 0, ""), 0);
}

/* Mail is taken by the logged event that delivered it, once; a standalone
 * item drops it only while it is there, and its entries apply with it. */
static void test_mail_taken_once(void **state)
{
    struct store *s = *state;
    struct kin a, b;
    kin_root(s, "aa", &a);
    kin_root(s, "bb", &b);
    /* a mails b twice. */
    struct buf entries, e, body;
    buf_init(&entries);
    buf_init(&body);
    assert_int_equal(record_seal_mail(&body, NULL, NULL, b.sid,
                                      FRAME_EVENT_MESSAGE, NULL,
                                      (const uint8_t *)"hi", 2),
                     0);
    for (int i = 0; i < 2; i++) {
        struct record_mail m = {.target = b.sid,
                                .kind = FRAME_EVENT_MESSAGE,
                                .body = body.data,
                                .len = body.len};
        struct buf me;
        buf_init(&me);
        assert_int_equal(record_encode_mail(&me, &m), 0);
        assert_int_equal(record_effects_add(&entries, me.data, me.len), 0);
        buf_free(&me);
    }
    kin_event(&e, &a, &entries, 0);
    struct heard h = {0};
    apply_heard(s, &e, &h);
    assert_int_equal(h.mailed, 2);
    buf_free(&e);
    buf_free(&entries);
    struct store_mail m1, m2;
    assert_int_equal(store_mail_next(s, b.sid, 0, &m1), 0);
    assert_int_equal(store_mail_next(s, b.sid, m1.seq, &m2), 0);
    struct buf plain;
    buf_init(&plain);
    assert_int_equal(
        record_open_mail(&plain, NULL, NULL, b.sid, m1.kind, m1.body, m1.len),
        0);
    assert_memory_equal(plain.data, "hi", 2);
    buf_free(&plain);
    /* b's event takes the first. */
    buf_init(&entries);
    kin_event(&e, &b, &entries, m1.seq);
    apply_heard(s, &e, &h);
    buf_free(&e);
    struct store_mail next;
    assert_int_equal(store_mail_next(s, b.sid, 0, &next), 0);
    assert_int_equal(next.seq, m2.seq);
    store_mail_clear(&next);
    /* A standalone drop of the second, twice: the second finds nothing,
     * so its receipt (mail for a) is not made again. */
    struct record_mail r = {.target = a.sid,
                            .kind = FRAME_EVENT_RECEIPT,
                            .body = body.data,
                            .len = body.len};
    struct buf re;
    buf_init(&re);
    assert_int_equal(record_encode_mail(&re, &r), 0);
    assert_int_equal(record_effects_add(&entries, re.data, re.len), 0);
    buf_free(&re);
    struct record_effects fx = {.sid = b.sid,
                                .mail_taken = m2.seq,
                                .entries = entries.data,
                                .entries_len = entries.len};
    struct buf item;
    buf_init(&item);
    buf_init(&e);
    assert_int_equal(record_encode_effects(&item, &fx), 0);
    assert_int_equal(record_events_begin(&e), 0);
    assert_int_equal(record_events_add(&e, item.data, item.len), 0);
    h.mailed = 0;
    apply_heard(s, &e, &h);
    apply_heard(s, &e, &h);
    assert_int_equal(h.mailed, 1);
    assert_int_equal(store_mail_next(s, b.sid, 0, &next), BERTH_ENOTFOUND);
    assert_int_equal(store_mail_next(s, a.sid, 0, &next), 0);
    store_mail_clear(&next);
    buf_free(&item);
    buf_free(&e);
    buf_free(&entries);
    buf_free(&body);
    store_mail_clear(&m1);
    store_mail_clear(&m2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ship_resize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ship_new_and_name_race, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_events_idempotent_and_chained,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_snapshot_truncates_and_replay_is_noop, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_events_cut_short_complete_on_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crawl_corrects_drift, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_usage_recorded_as_entries_apply,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_then_late_events, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_garbage_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_creates_ships, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_batch_is_all_or_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_events_carry_the_alarm, setup,
                                        teardown),
        cmocka_unit_test(test_batch_reaches_the_file_at_flush),
        cmocka_unit_test_setup_teardown(test_token_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_account_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_account_caps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_account_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spawn_with_its_event_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_destroy_proofs_and_cascade, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mail_taken_once, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
