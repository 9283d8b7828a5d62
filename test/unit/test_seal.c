/* Seals open only with their key, use, subject and associated data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "crypto/keywrap.h"
#include "crypto/seal.h"
#include "lib/err.h"

static const uint8_t master[SEAL_KEY_SIZE] = {1, 2, 3, 4, 5, 6, 7, 8};
static const uint8_t nonce[SEAL_NONCE_SIZE] = {9, 9, 9};
static const uint8_t ad[] = "identity";
static const uint8_t secret[] = "a distinctive value";

static void seal(struct buf *out, const struct seal_keys *k)
{
    buf_init(out);
    assert_int_equal(seal_put(out, k, SEAL_USE_SHIP, 7, NULL, nonce, ad,
                              sizeof ad, secret, sizeof secret),
                     0);
}

static int open_seal(const struct buf *in, const struct seal_keys *k,
                     enum seal_use use, uint64_t subject, const uint8_t *a,
                     size_t a_len)
{
    struct buf out;
    buf_init(&out);
    int rv =
        seal_open(&out, k, use, subject, NULL, a, a_len, in->data, in->len);
    /* Bytes that open to something else (an id flipped to 0 reads as
     * unsealed) count as a failure too. */
    if (rv == 0 && (out.len != sizeof secret ||
                    memcmp(out.data, secret, sizeof secret) != 0)) {
        rv = BERTH_ECORRUPT;
    }
    buf_free(&out);
    return rv;
}

static void test_round_trip(void **state)
{
    struct seal_keys k;
    seal_keys_init(&k, master, true);
    struct buf b;
    seal(&b, &k);
    assert_int_equal(b.len, seal_size(&k, sizeof secret));
    assert_int_equal(seal_key_id(b.data, b.len), 1);
    assert_null(memmem(b.data, b.len, secret, 10));
    assert_int_equal(open_seal(&b, &k, SEAL_USE_SHIP, 7, ad, sizeof ad), 0);
    buf_free(&b);
    seal_keys_wipe(&k);
}

static void test_anything_else_fails(void **state)
{
    struct seal_keys k, other;
    seal_keys_init(&k, master, true);
    uint8_t master2[SEAL_KEY_SIZE] = {2};
    seal_keys_init(&other, master2, true);
    struct buf b;
    seal(&b, &k);
    /* Another subject, use, associated data or master key. */
    assert_int_equal(open_seal(&b, &k, SEAL_USE_SHIP, 8, ad, sizeof ad),
                     BERTH_ECORRUPT);
    assert_int_equal(open_seal(&b, &k, SEAL_USE_BATCH, 7, ad, sizeof ad),
                     BERTH_ECORRUPT);
    assert_int_equal(open_seal(&b, &k, SEAL_USE_SHIP, 7, ad, sizeof ad - 1),
                     BERTH_ECORRUPT);
    assert_int_equal(open_seal(&b, &other, SEAL_USE_SHIP, 7, ad, sizeof ad),
                     BERTH_ECORRUPT);
    assert_int_equal(open_seal(&b, NULL, SEAL_USE_SHIP, 7, ad, sizeof ad),
                     BERTH_ECORRUPT);
    /* Every flipped bit. */
    for (size_t i = 0; i < b.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            b.data[i] ^= (uint8_t)(1u << bit);
            assert_int_equal(open_seal(&b, &k, SEAL_USE_SHIP, 7, ad, sizeof ad),
                             BERTH_ECORRUPT);
            b.data[i] ^= (uint8_t)(1u << bit);
        }
    }
    /* Every truncation. */
    for (size_t n = 0; n < b.len; n++) {
        struct buf cut = {.data = b.data, .len = n, .cap = n};
        assert_int_not_equal(
            open_seal(&cut, &k, SEAL_USE_SHIP, 7, ad, sizeof ad), 0);
    }
    buf_free(&b);
}

static void test_unsealed(void **state)
{
    struct seal_keys k;
    seal_keys_init(&k, master, false);
    struct buf b;
    seal(&b, &k);
    assert_int_equal(seal_key_id(b.data, b.len), 0);
    assert_int_equal(b.len, SEAL_PLAIN_OVERHEAD + sizeof secret);
    assert_non_null(memmem(b.data, b.len, secret, sizeof secret));
    /* An unsealed seal opens with no keys at all. */
    assert_int_equal(open_seal(&b, NULL, SEAL_USE_SHIP, 7, ad, sizeof ad), 0);
    buf_free(&b);
    seal(&b, NULL);
    assert_int_equal(seal_key_id(b.data, b.len), 0);
    buf_free(&b);
    /* A host started unsealed still opens what was sealed before. */
    struct seal_keys sealed;
    seal_keys_init(&sealed, master, true);
    seal(&b, &sealed);
    assert_int_equal(open_seal(&b, &k, SEAL_USE_SHIP, 7, ad, sizeof ad), 0);
    buf_free(&b);
}

static void test_unknown_key_id(void **state)
{
    struct seal_keys k;
    seal_keys_init(&k, master, true);
    struct buf b;
    seal(&b, &k);
    put_le32(b.data, 2); /* a data key this host does not have */
    assert_int_equal(open_seal(&b, &k, SEAL_USE_SHIP, 7, ad, sizeof ad),
                     BERTH_ECORRUPT);
    buf_free(&b);
}

/* An empty plaintext seals and opens into an empty buffer (the fuzzer
 * found its open pointing into no memory). */
static void test_empty(void **state)
{
    struct seal_keys k;
    seal_keys_init(&k, master, true);
    struct buf b, out;
    buf_init(&b);
    buf_init(&out);
    assert_int_equal(
        seal_put(&b, &k, SEAL_USE_SHIP, 1, NULL, nonce, NULL, 0, NULL, 0), 0);
    assert_int_equal(b.len, SEAL_OVERHEAD);
    assert_int_equal(
        seal_open(&out, &k, SEAL_USE_SHIP, 1, NULL, NULL, 0, b.data, b.len), 0);
    assert_int_equal(out.len, 0);
    buf_free(&b);
    buf_free(&out);
}

/* With several data keys, new seals use the current one and old key ids
 * still open; a key the set lacks does not. */
static void test_several_keys(void **state)
{
    struct seal_keys one, three;
    uint8_t data[3 * SEAL_KEY_SIZE];
    seal_keys_init(&one, master, true);
    memcpy(data, one.data[0], SEAL_KEY_SIZE);
    memset(data + SEAL_KEY_SIZE, 7, 2 * SEAL_KEY_SIZE);
    assert_int_equal(seal_keys_set(&three, data, 0, true), BERTH_EINVAL);
    assert_int_equal(seal_keys_set(&three, data, SEAL_KEYS_MAX + 1, true),
                     BERTH_EINVAL);
    assert_int_equal(seal_keys_set(&three, data, 3, true), 0);
    assert_int_equal(three.current, 3);
    struct buf old, now;
    seal(&old, &one);
    seal(&now, &three);
    assert_int_equal(seal_key_id(old.data, old.len), 1);
    assert_int_equal(seal_key_id(now.data, now.len), 3);
    assert_int_equal(open_seal(&old, &three, SEAL_USE_SHIP, 7, ad, sizeof ad),
                     0);
    assert_int_equal(open_seal(&now, &three, SEAL_USE_SHIP, 7, ad, sizeof ad),
                     0);
    assert_int_equal(open_seal(&now, &one, SEAL_USE_SHIP, 7, ad, sizeof ad),
                     BERTH_ECORRUPT);
    /* Unsealed: every key opens, new seals are plain. */
    assert_int_equal(seal_keys_set(&three, data, 3, false), 0);
    assert_int_equal(three.current, 0);
    assert_int_equal(open_seal(&now, &three, SEAL_USE_SHIP, 7, ad, sizeof ad),
                     0);
    buf_free(&old);
    buf_free(&now);
    seal_keys_wipe(&one);
    seal_keys_wipe(&three);
}

/* A wrapped key opens only with its master key, kind and id. */
static void test_keywrap(void **state)
{
    uint8_t key[KEYWRAP_KEY_SIZE] = {42, 43}, got[KEYWRAP_KEY_SIZE];
    uint8_t w[KEYWRAP_SIZE], w2[KEYWRAP_SIZE];
    uint8_t master2[SEAL_KEY_SIZE] = {2};
    keywrap_wrap_key(w, master, KEYWRAP_DATA, 3, key);
    keywrap_wrap_key(w2, master, KEYWRAP_DATA, 3, key);
    assert_memory_not_equal(w, w2, sizeof w); /* a new nonce each time */
    assert_null(memmem(w, sizeof w, key, sizeof key));
    assert_int_equal(
        keywrap_unwrap_key(got, master, KEYWRAP_DATA, 3, w, sizeof w), 0);
    assert_memory_equal(got, key, sizeof key);
    assert_int_equal(
        keywrap_unwrap_key(got, master2, KEYWRAP_DATA, 3, w, sizeof w),
        BERTH_ECORRUPT);
    uint8_t zero[KEYWRAP_KEY_SIZE] = {0};
    assert_memory_equal(got, zero, sizeof zero);
    assert_int_equal(
        keywrap_unwrap_key(got, master, KEYWRAP_DATA, 4, w, sizeof w),
        BERTH_ECORRUPT);
    assert_int_equal(
        keywrap_unwrap_key(got, master, KEYWRAP_MASTER, 3, w, sizeof w),
        BERTH_ECORRUPT);
    assert_int_equal(
        keywrap_unwrap_key(got, master, KEYWRAP_DATA, 3, w, sizeof w - 1),
        BERTH_ECORRUPT);
    for (size_t i = 0; i < sizeof w; i++) {
        memcpy(w2, w, sizeof w);
        w2[i] ^= 1;
        assert_int_equal(
            keywrap_unwrap_key(got, master, KEYWRAP_DATA, 3, w2, sizeof w2),
            BERTH_ECORRUPT);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_anything_else_fails),
        cmocka_unit_test(test_unsealed),
        cmocka_unit_test(test_unknown_key_id),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_several_keys),
        cmocka_unit_test(test_keywrap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
