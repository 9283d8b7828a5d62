/* A ship's stored data copied from one store into another that holds it
 * damaged: the copy is kept only when it checks out and is not behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "core/record.h"
#include "fx_events.h"
#include "lib/err.h"
#include "store/apply.h"
#include "store/fsck.h"
#include "store/shipcopy.h"

static const uint8_t master[SEAL_KEY_SIZE] = {8};

struct fx {
    struct store *a, *b; /* the same entries applied to both */
    struct seal_keys keys;
    uint64_t sid;
    uint8_t head[RECORD_HASH_SIZE];
};

static void apply(struct fx *x, struct buf *e)
{
    int res = -1;
    assert_int_equal(store_apply_entry(x->a, 0, e->data, e->len, NULL, &res),
                     0);
    assert_int_equal(store_apply_entry(x->b, 0, e->data, e->len, NULL, &res),
                     0);
    buf_free(e);
}

static void events(struct fx *x, uint64_t from, uint64_t to)
{
    struct buf e;
    fx_events_entry(&e, x->sid, from, to, x->head, &x->keys);
    apply(x, &e);
}

static void snapshot(struct fx *x, uint64_t number)
{
    uint8_t nonce[SEAL_NONCE_SIZE] = {3};
    struct record_snapshot snap = {.sid = x->sid,
                                   .number = number,
                                   .data = (const uint8_t *)"st",
                                   .len = 2};
    struct buf e;
    buf_init(&e);
    assert_int_equal(record_encode_snapshot(&e, &snap, &x->keys, NULL, nonce),
                     0);
    apply(x, &e);
}

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof *x);
    char errmsg[ERRMSG_SIZE];
    assert_int_equal(store_open(&x->a, ":memory:", errmsg), 0);
    assert_int_equal(store_open(&x->b, ":memory:", errmsg), 0);
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
    assert_int_equal(store_ship_get(x->a, "ann", &ship), 0);
    x->sid = ship.sid;
    store_ship_clear(&ship);
    events(x, 1, 3);
    snapshot(x, 3);
    events(x, 4, 6);
    snapshot(x, 6);
    events(x, 7, 8);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    struct fx *x = *state;
    store_close(x->a);
    store_close(x->b);
    free(x);
    return 0;
}

static bool ok(struct store *s, struct fx *x)
{
    struct fsck_result r;
    assert_int_equal(fsck_ship(s, &x->keys, x->sid, &r), 0);
    return r.ok;
}

/* Damage b's event 7 with the chain rewritten around it. */
static void damage(struct fx *x)
{
    struct buf rec;
    buf_init(&rec);
    assert_int_equal(store_event_get(x->b, x->sid, 8, &rec), 0);
    rec.data[rec.len - 1] ^= 1;
    uint8_t head[RECORD_HASH_SIZE];
    record_hash(rec.data, rec.len, head);
    assert_int_equal(store_event_put(x->b, x->sid, 8, rec.data, rec.len), 0);
    assert_int_equal(store_ship_head_put(x->b, x->sid, 8, head, 0, 0, 0), 0);
    buf_free(&rec);
    assert_false(ok(x->b, x));
}

static void test_a_good_copy_repairs(void **state)
{
    struct fx *x = *state;
    char errmsg[ERRMSG_SIZE];
    damage(x);
    struct buf copy;
    buf_init(&copy);
    assert_int_equal(shipcopy_encode(x->a, x->sid, &copy), 0);
    assert_int_equal(
        shipcopy_install(x->b, &x->keys, x->sid, copy.data, copy.len, errmsg),
        0);
    assert_true(ok(x->b, x));
    /* What b holds now is a's, prior snapshot and all. */
    struct buf c2;
    buf_init(&c2);
    assert_int_equal(shipcopy_encode(x->b, x->sid, &c2), 0);
    assert_int_equal(c2.len, copy.len);
    assert_memory_equal(c2.data, copy.data, copy.len);
    struct store_snapshot prior;
    struct buf data;
    buf_init(&data);
    assert_int_equal(store_prior_snapshot_get(x->b, x->sid, &prior, &data), 0);
    assert_int_equal(prior.number, 3);
    buf_free(&data);
    buf_free(&c2);
    buf_free(&copy);
    /* And the log applies on top of it as before. */
    events(x, 9, 9);
    assert_true(ok(x->b, x));
}

static void test_a_bad_copy_changes_nothing(void **state)
{
    struct fx *x = *state;
    char errmsg[ERRMSG_SIZE];
    struct buf copy, before, after;
    buf_init(&copy);
    buf_init(&before);
    buf_init(&after);
    assert_int_equal(shipcopy_encode(x->a, x->sid, &copy), 0);
    /* A copy damaged on its way (a record's last byte), or by its host. */
    copy.data[copy.len - 1] ^= 1;
    assert_int_equal(shipcopy_encode(x->b, x->sid, &before), 0);
    assert_int_equal(
        shipcopy_install(x->b, &x->keys, x->sid, copy.data, copy.len, errmsg),
        BERTH_EREJECTED);
    assert_non_null(strstr(errmsg, "event 8 does not open"));
    assert_int_equal(shipcopy_encode(x->b, x->sid, &after), 0);
    assert_int_equal(after.len, before.len);
    assert_memory_equal(after.data, before.data, before.len);
    /* Cut short, or not a copy at all. */
    assert_int_equal(shipcopy_install(x->b, &x->keys, x->sid, copy.data,
                                      copy.len - 3, errmsg),
                     BERTH_EMALFORMED);
    assert_int_equal(shipcopy_install(x->b, &x->keys, x->sid,
                                      (const uint8_t *)"x", 1, errmsg),
                     BERTH_EMALFORMED);
    assert_true(ok(x->b, x));
    buf_free(&copy);
    buf_free(&before);
    buf_free(&after);
}

static void test_a_copy_behind_is_refused(void **state)
{
    struct fx *x = *state;
    char errmsg[ERRMSG_SIZE];
    struct buf copy;
    buf_init(&copy);
    assert_int_equal(shipcopy_encode(x->a, x->sid, &copy), 0);
    /* b moves on; a's copy is now behind it. */
    struct buf e;
    buf_init(&e);
    assert_int_equal(record_events_begin(&e), 0);
    uint8_t nonce[SEAL_NONCE_SIZE] = {9};
    struct record_event ev = {.sid = x->sid, .number = 9, .kind = 2};
    memcpy(ev.prev_hash, x->head, RECORD_HASH_SIZE);
    struct buf r;
    buf_init(&r);
    assert_int_equal(record_encode_event(&r, &ev, &x->keys, NULL, nonce), 0);
    assert_int_equal(record_events_add(&e, r.data, r.len), 0);
    int res;
    assert_int_equal(store_apply_entry(x->b, 0, e.data, e.len, NULL, &res), 0);
    assert_int_equal(
        shipcopy_install(x->b, &x->keys, x->sid, copy.data, copy.len, errmsg),
        BERTH_EREJECTED);
    assert_non_null(strstr(errmsg, "behind"));
    buf_free(&r);
    buf_free(&e);
    buf_free(&copy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_good_copy_repairs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_bad_copy_changes_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_copy_behind_is_refused, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
