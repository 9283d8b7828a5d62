/* The latency histogram: its sum, and the cumulative counts that Prometheus
 * buckets are made of. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/hist.h"

static void test_sum_and_counts(void **state)
{
    (void)state;
    struct hist h;
    hist_init(&h);
    assert_int_equal(hist_count_at_most(&h, 1000000), 0);
    hist_record(&h, 3);
    hist_record(&h, 1000);
    hist_record(&h, 2000000);
    assert_int_equal(h.count, 3);
    assert_int_equal(h.sum, 2001003);
    /* Small values have a bucket each: exact. */
    assert_int_equal(hist_count_at_most(&h, 2), 0);
    assert_int_equal(hist_count_at_most(&h, 3), 1);
    /* A value is never counted below itself. */
    assert_int_equal(hist_count_at_most(&h, 999), 1);
    assert_int_equal(hist_count_at_most(&h, 1999999), 2);
    /* ... and always within 1/16 above it. */
    assert_int_equal(hist_count_at_most(&h, 1000 + 1000 / 16), 2);
    assert_int_equal(hist_count_at_most(&h, 2000000 + 2000000 / 16), 3);
    assert_int_equal(hist_count_at_most(&h, UINT64_MAX), 3);
}

static void test_counts_are_cumulative(void **state)
{
    (void)state;
    struct hist h;
    hist_init(&h);
    for (uint64_t v = 1; v < 100000000; v = v * 3 + 7) {
        hist_record(&h, v);
    }
    uint64_t last = 0;
    for (uint64_t v = 0; v < 200000000; v = v * 2 + 1) {
        uint64_t n = hist_count_at_most(&h, v);
        assert_true(n >= last);
        assert_true(n <= h.count);
        last = n;
    }
    assert_int_equal(last, h.count);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sum_and_counts),
        cmocka_unit_test(test_counts_are_cumulative),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
