/* The registry: compact per-ship entries, found by id or name, in sid order;
 * the alarm heap; the latency histogram. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/alarms.h"
#include "core/registry.h"
#include "lib/err.h"
#include "lib/hist.h"
#include "lib/mem.h"

static void make_id(uint32_t i, char *id)
{
    uint8_t key[REGISTRY_KEY_SIZE];
    /* Spread the bits like a public key would. */
    uint64_t x = (uint64_t)i * 0x9e3779b97f4a7c15ULL + 1;
    for (int k = 0; k < REGISTRY_KEY_SIZE; k++) {
        x ^= x >> 29;
        x *= 0xbf58476d1ce4e5b9ULL;
        key[k] = (uint8_t)(x >> 56);
    }
    registry_id_encode(key, REGISTRY_KEY_SIZE, id);
}

static void test_id_round_trip(void **state)
{
    uint8_t key[REGISTRY_KEY_SIZE] = {0xff, 0, 1, 2, 3, 4, 5, 6, 7, 0x80};
    uint8_t back[REGISTRY_KEY_SIZE];
    char id[REGISTRY_ID_LEN + 1];
    registry_id_encode(key, sizeof key, id);
    assert_int_equal(strlen(id), REGISTRY_ID_LEN);
    assert_int_equal(registry_id_decode(id, back), 0);
    assert_memory_equal(key, back, sizeof key);
    assert_int_equal(registry_id_decode("short", back), BERTH_EINVAL);
    assert_int_equal(registry_id_decode("abcdefghijklmnopq", back),
                     BERTH_EINVAL);
    assert_int_equal(registry_id_decode("abcdefghijklmno1", back),
                     BERTH_EINVAL); /* '1' is not base32 */
    assert_int_equal(registry_id_decode("ABCDEFGHIJKLMNOP", back),
                     BERTH_EINVAL);
}

static void test_add_find_remove(void **state)
{
    struct registry r;
    char a[REGISTRY_ID_LEN + 1], b[REGISTRY_ID_LEN + 1];
    uint32_t sa, sb, sc;
    registry_init(&r);
    make_id(1, a);
    make_id(2, b);
    assert_int_equal(registry_add(&r, 10, a, "ann", "/bin/kv", &sa), 0);
    assert_int_equal(registry_add(&r, 11, b, NULL, "/bin/kv", &sb), 0);
    assert_int_equal(registry_find(&r, a), sa);
    assert_int_equal(registry_find(&r, "ann"), sa);
    assert_int_equal(registry_find(&r, b), sb);
    assert_int_equal(registry_find(&r, "bob"), REGISTRY_NONE);
    assert_string_equal(registry_name(&r, sa), "ann");
    assert_string_equal(registry_name(&r, sb), "");
    /* Programs are interned: one copy for both. */
    assert_ptr_equal(registry_program(&r, sa), registry_program(&r, sb));
    char id[REGISTRY_ID_LEN + 1];
    registry_id(&r, sb, id);
    assert_string_equal(id, b);
    /* Taken ids and names, and sids out of order, are refused. */
    char c[REGISTRY_ID_LEN + 1];
    make_id(3, c);
    assert_int_equal(registry_add(&r, 12, a, "x", "/bin/kv", &sc),
                     BERTH_EEXIST);
    assert_int_equal(registry_add(&r, 12, c, "ann", "/bin/kv", &sc),
                     BERTH_EEXIST);
    assert_int_equal(registry_add(&r, 11, c, "cat", "/bin/kv", &sc),
                     BERTH_EINVAL);
    assert_int_equal(registry_add(&r, 12, "not-an-id", "cat", "/bin/kv", &sc),
                     BERTH_EINVAL);
    assert_int_equal(registry_count(&r), 2);
    /* A removed ship is gone, and its name is free again. */
    registry_remove(&r, sa);
    assert_int_equal(registry_find(&r, a), REGISTRY_NONE);
    assert_int_equal(registry_find(&r, "ann"), REGISTRY_NONE);
    assert_int_equal(registry_count(&r), 1);
    assert_int_equal(registry_add(&r, 12, c, "ann", "/bin/other", &sc), 0);
    assert_int_equal(registry_find(&r, "ann"), sc);
    assert_string_equal(registry_program(&r, sc), "/bin/other");
    /* Seeking by sid finds the slot after it, holes included. */
    assert_int_equal(registry_seek(&r, 0), 0);
    assert_int_equal(registry_seek(&r, 10), 1);
    assert_int_equal(registry_seek(&r, 11), 2);
    assert_int_equal(registry_seek(&r, 12), 3);
    assert_int_equal(registry_max_sid(&r), 12);
    registry_free(&r);
}

static void test_many(void **state)
{
    enum { N = 200000 };
    struct registry r;
    registry_init(&r);
    for (uint32_t i = 0; i < N; i++) {
        char id[REGISTRY_ID_LEN + 1], name[32];
        uint32_t slot;
        make_id(i, id);
        snprintf(name, sizeof name, "s-%u", i);
        assert_int_equal(
            registry_add(&r, i + 1, id, i % 2 ? name : NULL, "/bin/kv", &slot),
            0);
        assert_int_equal(slot, i);
    }
    for (uint32_t i = 0; i < N; i += 7) {
        char id[REGISTRY_ID_LEN + 1], name[32];
        make_id(i, id);
        snprintf(name, sizeof name, "s-%u", i);
        assert_int_equal(registry_find(&r, id), i);
        assert_int_equal(registry_find(&r, name), i % 2 ? i : REGISTRY_NONE);
        if (i % 3 == 0) {
            registry_remove(&r, i);
        }
    }
    for (uint32_t i = 0; i < N; i += 7) {
        char id[REGISTRY_ID_LEN + 1];
        make_id(i, id);
        assert_int_equal(registry_find(&r, id), i % 3 == 0 ? REGISTRY_NONE : i);
    }
    /* The per-ship cost the design promises: an entry (with up to half
     * again as spare room), two 4-byte index cells at most half full, and
     * names. */
    assert_int_equal(sizeof(struct registry_ship), 48);
    assert_true(registry_memory(&r) < (size_t)N * (72 + 2 * 4 * 4 + 16));
    registry_free(&r);
}

static void test_add_out_of_memory(void **state)
{
    struct registry r;
    char id[REGISTRY_ID_LEN + 1];
    uint32_t slot;
    registry_init(&r);
    make_id(1, id);
    for (int fail = 0; fail < 6; fail++) {
        mem_fault_countdown(fail);
        int rv = registry_add(&r, 1, id, "ann", "/bin/kv", &slot);
        mem_fault_countdown(-1);
        if (rv == 0) {
            break;
        }
        assert_int_equal(rv, BERTH_ENOMEM);
        /* Nothing half-added. */
        assert_int_equal(registry_find(&r, id), REGISTRY_NONE);
        assert_int_equal(registry_count(&r), 0);
    }
    assert_int_equal(registry_find(&r, "ann"), 0);
    registry_free(&r);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_alarms_order(void **state)
{
    enum { N = 5000 };
    struct alarms a;
    static uint64_t want[N];
    alarms_init(&a);
    srand(7);
    for (uint32_t s = 0; s < N; s++) {
        want[s] = 1 + (uint64_t)(rand() % 100000);
        assert_int_equal(alarms_set(&a, s, want[s]), 0);
    }
    /* Move some, clear some. */
    for (uint32_t s = 0; s < N; s += 5) {
        want[s] = s % 10 == 0 ? 0 : 1 + (uint64_t)(rand() % 100000);
        assert_int_equal(alarms_set(&a, s, want[s]), 0);
    }
    for (uint32_t s = 0; s < N; s++) {
        assert_int_equal(alarms_get(&a, s), want[s]);
    }
    qsort(want, N, sizeof want[0], cmp_u64);
    uint32_t k = 0;
    while (want[k] == 0) {
        k++;
    }
    assert_int_equal(alarms_count(&a), N - k);
    uint32_t slot;
    uint64_t t;
    while ((t = alarms_next(&a, &slot)) != 0) {
        assert_int_equal(t, want[k++]);
        assert_int_equal(alarms_get(&a, slot), t);
        assert_int_equal(alarms_set(&a, slot, 0), 0);
        assert_int_equal(alarms_get(&a, slot), 0);
    }
    assert_int_equal(k, N);
    alarms_free(&a);
}

static void test_hist_quantiles(void **state)
{
    struct hist h;
    hist_init(&h);
    assert_int_equal(hist_quantile(&h, 0.5), 0);
    for (uint64_t v = 1; v <= 100000; v++) {
        hist_record(&h, v * 1000); /* 1 us to 100 ms */
    }
    double p50 = (double)hist_quantile(&h, 0.50);
    double p99 = (double)hist_quantile(&h, 0.99);
    assert_true(p50 > 50e6 * 0.96 && p50 < 50e6 * 1.04);
    assert_true(p99 > 99e6 * 0.96 && p99 < 99e6 * 1.04);
    assert_true(hist_quantile(&h, 1.0) <= h.max);
    assert_int_equal(h.count, 100000);
    hist_init(&h);
    hist_record(&h, 3);
    assert_int_equal(hist_quantile(&h, 0.5), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_round_trip),
        cmocka_unit_test(test_add_find_remove),
        cmocka_unit_test(test_many),
        cmocka_unit_test(test_add_out_of_memory),
        cmocka_unit_test(test_alarms_order),
        cmocka_unit_test(test_hist_quantiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
