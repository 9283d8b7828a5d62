/* fsck finds what is wrong in a ship's stored data: a seal that does not
 * open (its hash chain rewritten around it or not), a snapshot altered, a
 * secret key that does not open, keys the host does not have; and passes
 * what is right. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "core/record.h"
#include "fx_events.h"
#include "lib/err.h"
#include "store/apply.h"
#include "store/fsck.h"

static const uint8_t master[SEAL_KEY_SIZE] = {5};

struct fx {
    struct store *s;
    struct seal_keys keys;
    uint64_t sid;
    uint8_t head[RECORD_HASH_SIZE];
};

static void apply(struct fx *x, struct buf *e)
{
    int res = -1;
    assert_int_equal(store_apply_entry(x->s, 0, e->data, e->len, NULL, &res),
                     0);
    assert_int_equal(res, 0);
    buf_free(e);
}

static void events(struct fx *x, uint64_t from, uint64_t to)
{
    struct buf e;
    fx_events_entry(&e, x->sid, from, to, x->head, &x->keys);
    apply(x, &e);
}

/* A ship made as admin.c makes them, events 1..6 and a snapshot at 4. */
static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof *x);
    char errmsg[ERRMSG_SIZE];
    assert_int_equal(store_open(&x->s, ":memory:", errmsg), 0);
    seal_keys_init(&x->keys, master, true);
    uint8_t seed[32], sk[64], pk[32], nonce[SEAL_NONCE_SIZE] = {1};
    struct record_ship_batch b = {.program = "/bin/kv",
                                  .program_len = 7,
                                  .name = "ann",
                                  .name_len = 3,
                                  .first = 1,
                                  .count = 1,
                                  .public_keys = pk};
    randombytes_buf(b.key, sizeof b.key);
    record_ship_seed(b.key, 1, seed);
    crypto_sign_seed_keypair(pk, sk, seed);
    struct buf e;
    buf_init(&e);
    assert_int_equal(record_encode_ship_batch(&e, &b, &x->keys, nonce), 0);
    apply(x, &e);
    struct store_ship ship;
    assert_int_equal(store_ship_get(x->s, "ann", &ship), 0);
    x->sid = ship.sid;
    store_ship_clear(&ship);
    events(x, 1, 4);
    struct record_snapshot snap = {
        .sid = x->sid, .number = 4, .data = (const uint8_t *)"state", .len = 5};
    buf_init(&e);
    assert_int_equal(record_encode_snapshot(&e, &snap, &x->keys, NULL, nonce),
                     0);
    apply(x, &e);
    events(x, 5, 6);
    assert_int_equal(store_flush(x->s), 0);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    struct fx *x = *state;
    store_close(x->s);
    free(x);
    return 0;
}

static void check(struct fx *x, const struct seal_keys *keys, bool ok,
                  const char *words)
{
    struct fsck_result r;
    assert_int_equal(fsck_ship(x->s, keys, x->sid, &r), 0);
    if (r.ok != ok || strstr(r.problem, words) == NULL) {
        fail_msg("ok %d, problem \"%s\"; wanted %d, \"%s\"", r.ok, r.problem,
                 ok, words);
    }
    assert_string_equal(r.name, "ann");
    if (ok) {
        assert_int_equal(r.events, 6); /* the first snapshot kept them */
        assert_int_equal(r.snapshot_event, 4);
        assert_int_equal(r.last_event, 6);
    }
}

static void test_right_data_passes(void **state)
{
    struct fx *x = *state;
    check(x, &x->keys, true, "");
    struct fsck_result r;
    assert_int_equal(fsck_ship(x->s, &x->keys, x->sid + 1, &r),
                     BERTH_ENOTFOUND);
}

static void test_another_master_key(void **state)
{
    struct fx *x = *state;
    struct seal_keys other;
    uint8_t m2[SEAL_KEY_SIZE] = {6};
    seal_keys_init(&other, m2, true);
    check(x, &other, false, "its secret key does not open");
}

/* A record altered and the chain rewritten around it (its hash made the
 * ship's head): only its seal tells. */
static void test_event_seal_altered(void **state)
{
    struct fx *x = *state;
    struct buf rec;
    buf_init(&rec);
    assert_int_equal(store_event_get(x->s, x->sid, 6, &rec), 0);
    rec.data[rec.len - 1] ^= 1;
    uint8_t head[RECORD_HASH_SIZE], last[RECORD_HASH_SIZE];
    uint64_t last_event, alarm;
    record_hash(rec.data, rec.len, head);
    assert_int_equal(store_event_put(x->s, x->sid, 6, rec.data, rec.len), 0);
    assert_int_equal(
        store_ship_head_get(x->s, x->sid, &last_event, last, &alarm), 0);
    assert_int_equal(store_ship_head_put(x->s, x->sid, 6, head, alarm, 0, 0),
                     0);
    buf_free(&rec);
    check(x, &x->keys, false, "event 6 does not open");
}

/* A record altered as it lies: the chain breaks first. */
static void test_event_altered(void **state)
{
    struct fx *x = *state;
    struct buf rec;
    buf_init(&rec);
    assert_int_equal(store_event_get(x->s, x->sid, 5, &rec), 0);
    rec.data[rec.len - 3] ^= 1;
    assert_int_equal(store_event_put(x->s, x->sid, 5, rec.data, rec.len), 0);
    buf_free(&rec);
    /* Its seal is opened as it is walked, before event 6's link. */
    check(x, &x->keys, false, "event 5 does not open");
}

static void test_event_missing(void **state)
{
    struct fx *x = *state;
    assert_int_equal(store_event_truncate(x->s, x->sid, 5), 0);
    assert_int_equal(store_sweep(x->s), 0);
    check(x, &x->keys, false, "event 1 is missing");
}

/* A second snapshot: the first is kept as its prior, the events it stood
 * for go, and the walk starts from the prior's link. */
static void test_prior_snapshot(void **state)
{
    struct fx *x = *state;
    uint8_t nonce[SEAL_NONCE_SIZE] = {2};
    struct record_snapshot snap = {
        .sid = x->sid, .number = 6, .data = (const uint8_t *)"later", .len = 5};
    struct buf e;
    buf_init(&e);
    assert_int_equal(record_encode_snapshot(&e, &snap, &x->keys, NULL, nonce),
                     0);
    apply(x, &e);
    events(x, 7, 7);
    struct fsck_result r;
    assert_int_equal(fsck_ship(x->s, &x->keys, x->sid, &r), 0);
    assert_true(r.ok);
    assert_int_equal(r.first_event, 5);
    assert_int_equal(r.events, 3); /* 5, 6 and 7 */
    assert_int_equal(r.snapshot_event, 6);
}

static void test_secret_altered(void **state)
{
    struct fx *x = *state;
    struct store_ship ship;
    assert_int_equal(store_ship_get_sid(x->s, x->sid, &ship), 0);
    ship.secret[ship.secret_len - 1] ^= 1;
    assert_int_equal(store_ship_put(x->s, &ship), 0);
    store_ship_clear(&ship);
    check(x, &x->keys, false, "its secret key does not open");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_right_data_passes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_another_master_key, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_event_seal_altered, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_event_altered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_altered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prior_snapshot, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
