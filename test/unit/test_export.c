/* A ship in one file (core/export.h): the entry's encoding, the file's
 * seal that any changed or missing byte breaks, and a copy sealed again for
 * another sid (store/shipcopy.h) that a SHIP_IMPORT entry makes into a ship
 * that fsck finds right, only at the sid it was sealed for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "core/export.h"
#include "core/record.h"
#include "fx_events.h"
#include "lib/err.h"
#include "store/apply.h"
#include "store/fsck.h"
#include "store/shipcopy.h"

static const uint8_t master[SEAL_KEY_SIZE] = {9};

struct fx {
    struct store *a; /* holds ann, sid 1 */
    struct seal_keys keys;
    uint64_t sid;
    uint8_t head[RECORD_HASH_SIZE];
    struct store_ship ship;
};

static void apply(struct store *s, struct buf *e, int *res)
{
    assert_int_equal(store_apply_entry(s, 0, e->data, e->len, NULL, res), 0);
}

static void events(struct fx *x, uint64_t from, uint64_t to)
{
    struct buf e;
    int res;
    fx_events_entry(&e, x->sid, from, to, x->head, &x->keys);
    apply(x->a, &e, &res);
    buf_free(&e);
}

static void snapshot(struct fx *x, uint64_t number)
{
    uint8_t nonce[SEAL_NONCE_SIZE] = {3};
    struct record_snapshot snap = {.sid = x->sid,
                                   .number = number,
                                   .data = (const uint8_t *)"st",
                                   .len = 2};
    struct buf e;
    int res;
    buf_init(&e);
    assert_int_equal(record_encode_snapshot(&e, &snap, &x->keys, NULL, nonce),
                     0);
    apply(x->a, &e, &res);
    buf_free(&e);
}

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof *x);
    char errmsg[ERRMSG_SIZE];
    int res;
    assert_int_equal(store_open(&x->a, ":memory:", errmsg), 0);
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
    apply(x->a, &e, &res);
    buf_free(&e);
    assert_int_equal(store_ship_get(x->a, "ann", &x->ship), 0);
    x->sid = x->ship.sid;
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
    store_ship_clear(&x->ship);
    store_close(x->a);
    free(x);
    return 0;
}

/* The export entry of ann, with copy (the caller's) as its data. */
static void entry_of(struct fx *x, uint64_t sid, const struct buf *copy,
                     struct buf *out)
{
    struct export_ship s = {
        .sid = sid,
        .account = 0,
        .account_name = "anonymous",
        .account_name_len = 9,
        .id = x->ship.id,
        .id_len = strlen(x->ship.id),
        .name = x->ship.name,
        .name_len = strlen(x->ship.name),
        .program = x->ship.program,
        .program_len = strlen(x->ship.program),
        .env = "A=1",
        .env_len = 4,
        .created_ns = 5,
        .acks = 255,
        .secret = x->ship.secret,
        .secret_len = x->ship.secret_len,
        .copy = copy->data,
        .copy_len = copy->len,
    };
    memcpy(s.public_key, x->ship.public_key, 32);
    buf_init(out);
    assert_int_equal(export_encode_entry(out, &s), 0);
}

static void test_entry_round_trip(void **state)
{
    struct fx *x = *state;
    struct buf copy, e;
    buf_init(&copy);
    assert_int_equal(shipcopy_encode(x->a, x->sid, &copy), 0);
    entry_of(x, x->sid, &copy, &e);
    struct export_ship d;
    assert_int_equal(export_decode_entry(e.data, e.len, &d), 0);
    assert_int_equal(d.sid, x->sid);
    assert_int_equal(d.name_len, 3);
    assert_memory_equal(d.name, "ann", 3);
    assert_int_equal(d.env_len, 4);
    assert_int_equal(d.acks, 255);
    assert_int_equal(d.copy_len, copy.len);
    assert_memory_equal(d.public_key, x->ship.public_key, 32);
    /* Every cut is refused. */
    for (size_t n = 0; n < e.len; n += 7) {
        assert_int_equal(export_decode_entry(e.data, n, &d), BERTH_EMALFORMED);
    }
    buf_free(&copy);
    buf_free(&e);
}

static void test_file_breaks_on_any_change(void **state)
{
    struct fx *x = *state;
    struct buf copy, e, file, plain;
    uint8_t nonce[SEAL_NONCE_SIZE] = {4};
    uint64_t sid;
    buf_init(&copy);
    buf_init(&file);
    buf_init(&plain);
    assert_int_equal(shipcopy_encode(x->a, x->sid, &copy), 0);
    entry_of(x, x->sid, &copy, &e);
    assert_int_equal(
        export_seal_file(&file, &x->keys, x->sid, nonce, e.data, e.len), 0);
    assert_int_equal(
        export_open_file(file.data, file.len, &x->keys, &plain, &sid), 0);
    assert_int_equal(sid, x->sid);
    assert_int_equal(plain.len, e.len);
    assert_memory_equal(plain.data, e.data, e.len);
    /* The entry is not readable in the file. */
    assert_null(memmem(file.data, file.len, "/bin/kv", 7));
    for (size_t i = 0; i < file.len; i++) {
        file.data[i] ^= 0x20;
        int rv = export_open_file(file.data, file.len, &x->keys, &plain, &sid);
        assert_true(rv == BERTH_ECORRUPT || rv == BERTH_EMALFORMED);
        file.data[i] ^= 0x20;
    }
    for (size_t n = 0; n < file.len; n++) {
        int rv = export_open_file(file.data, n, &x->keys, &plain, &sid);
        assert_true(rv == BERTH_ECORRUPT || rv == BERTH_EMALFORMED);
    }
    /* Another master key's cluster cannot open it. */
    struct seal_keys other;
    uint8_t other_master[SEAL_KEY_SIZE] = {10};
    seal_keys_init(&other, other_master, true);
    assert_int_equal(
        export_open_file(file.data, file.len, &other, &plain, &sid),
        BERTH_ECORRUPT);
    buf_free(&copy);
    buf_free(&e);
    buf_free(&file);
    buf_free(&plain);
}

static void test_resealed_copy_imports_at_its_sid(void **state)
{
    struct fx *x = *state;
    struct buf copy, moved, e;
    char errmsg[ERRMSG_SIZE];
    struct store *b;
    int res;
    buf_init(&copy);
    buf_init(&moved);
    assert_int_equal(shipcopy_encode(x->a, x->sid, &copy), 0);
    assert_int_equal(store_open(&b, ":memory:", errmsg), 0);
    assert_int_equal(store_meta_put(b, "next_sid", 6), 0);
    /* The copy as it lies does not check out at another sid. */
    entry_of(x, 7, &copy, &e);
    apply(b, &e, &res);
    assert_int_equal(res, 0);
    struct fsck_result r;
    assert_int_equal(fsck_ship(b, &x->keys, 7, &r), 0);
    assert_false(r.ok);
    buf_free(&e);
    store_close(b);
    assert_int_equal(store_open(&b, ":memory:", errmsg), 0);
    assert_int_equal(store_meta_put(b, "next_sid", 6), 0);

    /* Sealed again for sid 7, it does, and reads the same events. */
    assert_int_equal(shipcopy_reseal(copy.data, copy.len, &x->keys, NULL,
                                     x->sid, 7, &moved, errmsg),
                     0);
    entry_of(x, 8, &moved, &e);
    apply(b, &e, &res); /* sealed for 7, proposed as 8: not its place */
    assert_int_equal(res, BERTH_EBUSY);
    struct store_ship got;
    assert_int_equal(store_ship_get(b, "ann", &got), BERTH_ENOTFOUND);
    buf_free(&e);
    entry_of(x, 7, &moved, &e);
    apply(b, &e, &res);
    assert_int_equal(res, 0);
    assert_int_equal(fsck_ship(b, &x->keys, 7, &r), 0);
    assert_true(r.ok);
    assert_int_equal(r.last_event, 8);
    assert_int_equal(r.snapshot_event, 6);
    assert_int_equal(store_ship_get(b, "ann", &got), 0);
    assert_int_equal(got.sid, 7);
    assert_string_equal(got.id, x->ship.id);
    store_ship_clear(&got);
    uint64_t next;
    assert_int_equal(store_meta_get(b, "next_sid", &next), 0);
    assert_int_equal(next, 7);
    struct buf rec, plain;
    struct record_event ev;
    buf_init(&rec);
    buf_init(&plain);
    assert_int_equal(store_event_get(b, 7, 8, &rec), 0);
    assert_int_equal(
        record_open_event(rec.data, rec.len, &x->keys, NULL, &plain, &ev), 0);
    assert_int_equal(ev.sid, 7);
    assert_int_equal(ev.number, 8);
    buf_free(&rec);
    buf_free(&plain);
    /* The same again: its name and id are taken, nothing changes. */
    assert_int_equal(store_meta_put(b, "next_sid", 7), 0);
    buf_free(&e);
    buf_free(&moved);
    buf_init(&moved);
    assert_int_equal(shipcopy_reseal(copy.data, copy.len, &x->keys, NULL,
                                     x->sid, 8, &moved, errmsg),
                     0);
    entry_of(x, 8, &moved, &e);
    apply(b, &e, &res);
    assert_int_equal(res, BERTH_EEXIST);
    assert_int_equal(store_ship_get_sid(b, 8, &got), BERTH_ENOTFOUND);
    /* A copy whose seals are another cluster's does not reseal. */
    struct seal_keys other;
    uint8_t other_master[SEAL_KEY_SIZE] = {10};
    seal_keys_init(&other, other_master, true);
    buf_free(&moved);
    buf_init(&moved);
    assert_int_equal(shipcopy_reseal(copy.data, copy.len, &other, NULL, x->sid,
                                     8, &moved, errmsg),
                     BERTH_ECORRUPT);
    assert_non_null(strstr(errmsg, "does not open"));
    store_close(b);
    buf_free(&copy);
    buf_free(&moved);
    buf_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_entry_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_breaks_on_any_change, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_resealed_copy_imports_at_its_sid,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
