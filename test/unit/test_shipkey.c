/* A ship's keys open from its row, and a bound child's only through its
 * parent's: the lineage is walked up and opened down, and a child whose
 * parent's row is gone has a key nobody can open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "core/record.h"
#include "lib/err.h"
#include "proto/frame.h"
#include "store/apply.h"
#include "store/shipkey.h"

static const uint8_t test_master[SEAL_KEY_SIZE] = {7};

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

/* Make a ship from seed with a SHIP_SEEDS entry, as a child of parent
 * (0: none) whose own key is parent_own (NULL: sealed under the batch-key
 * key); return its row. */
static void make(struct store *s, const struct seal_keys *keys,
                 const char *name, const uint8_t *seed, uint64_t parent,
                 const uint8_t *parent_own, struct store_ship *row)
{
    uint8_t pk[32], sk[64], nonce[SEAL_NONCE_SIZE];
    crypto_sign_seed_keypair(pk, sk, seed);
    randombytes_buf(nonce, sizeof nonce);
    struct record_ship_batch b = {.program = "/bin/true",
                                  .program_len = 9,
                                  .name = name,
                                  .name_len = strlen(name),
                                  .parent = parent,
                                  .lifetime = FRAME_LIFETIME_LINKED,
                                  .first = 1,
                                  .count = 1,
                                  .public_keys = pk,
                                  .seeds = seed,
                                  .parent_own = parent_own};
    struct buf e;
    buf_init(&e);
    assert_int_equal(record_encode_ship_batch(&e, &b, keys, nonce), 0);
    int res = -1;
    struct store_apply_hook hook = {0};
    assert_int_equal(store_apply_entry(s, 0, e.data, e.len, &hook, &res), 0);
    assert_int_equal(res, 0);
    buf_free(&e);
    assert_int_equal(store_ship_get(s, name, row), 0);
}

static void test_lineage(void **state)
{
    struct store *s = *state;
    struct seal_keys keys;
    seal_keys_init(&keys, test_master, true);
    uint8_t seeds[3][32], own[3][SEAL_OWN_KEY_SIZE], got[SEAL_OWN_KEY_SIZE],
        sk[64];
    struct store_ship rows[3];
    bool has;
    for (int i = 0; i < 3; i++) {
        memset(seeds[i], 0x21 + i, 32);
        seal_own_key(seeds[i], own[i]);
    }
    make(s, &keys, "root", seeds[0], 0, NULL, &rows[0]);
    make(s, &keys, "child", seeds[1], rows[0].sid, own[0], &rows[1]);
    make(s, &keys, "grandchild", seeds[2], rows[1].sid, own[1], &rows[2]);
    assert_false(
        record_ship_secret_in_parent(rows[0].secret, rows[0].secret_len));
    assert_true(
        record_ship_secret_in_parent(rows[2].secret, rows[2].secret_len));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(shipkey_open(s, &keys, &rows[i], sk, got, &has), 0);
        assert_true(has);
        assert_memory_equal(got, own[i], sizeof got);
        assert_memory_equal(sk, seeds[i], 32);
        assert_memory_equal(sk + 32, rows[i].public_key, 32);
    }
    /* The child's row alone, with the data keys, does not open it: the
     * seal wants its parent's key. */
    assert_int_equal(record_ship_own_key(&keys, rows[1].secret,
                                         rows[1].secret_len, rows[1].public_key,
                                         got),
                     BERTH_EINVAL);
    /* With its parent's row gone, the grandchild's key opens no more. */
    struct buf e;
    buf_init(&e);
    assert_int_equal(record_encode_ship_remove(&e, rows[1].sid), 0);
    int res = -1;
    struct store_apply_hook hook = {0};
    assert_int_equal(store_apply_entry(s, 0, e.data, e.len, &hook, &res), 0);
    buf_free(&e);
    assert_int_equal(shipkey_open(s, &keys, &rows[2], NULL, got, &has),
                     BERTH_ECORRUPT);
    /* Another master key opens nothing. */
    struct seal_keys other;
    uint8_t master2[SEAL_KEY_SIZE] = {8};
    seal_keys_init(&other, master2, true);
    assert_int_equal(shipkey_open(s, &other, &rows[0], NULL, got, &has),
                     BERTH_ECORRUPT);
    for (int i = 0; i < 3; i++) {
        store_ship_clear(&rows[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lineage, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
