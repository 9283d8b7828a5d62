/* The rules of limits: what is over, and the token buckets of rates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/quota.h"

#define MS 1000000ULL
#define S (1000 * MS)

static void test_names_codes_statuses(void **state)
{
    assert_string_equal(quota_name(QUOTA_SHIPS), "ships");
    assert_string_equal(quota_name(QUOTA_STORAGE), "storage_bytes");
    assert_string_equal(quota_name(QUOTA_AWAKE), "ships_awake");
    assert_string_equal(quota_name(QUOTA_CPU), "cpu_seconds_per_hour");
    assert_string_equal(quota_name(QUOTA_EVENTS), "events_per_second");
    assert_null(quota_name(QUOTA__COUNT));
    assert_string_equal(quota_code(QUOTA_STORAGE), "limit_storage");
    assert_string_equal(quota_code(QUOTA_EVENTS), "limit_events");
    assert_int_equal(quota_status(QUOTA_SHIPS), 507);
    assert_int_equal(quota_status(QUOTA_STORAGE), 507);
    assert_int_equal(quota_status(QUOTA_AWAKE), 429);
    assert_int_equal(quota_status(QUOTA_CPU), 429);
    assert_int_equal(quota_status(QUOTA_EVENTS), 429);
    assert_int_equal(quota_in_force(QUOTA_DEFAULT, 7), 7);
    assert_int_equal(quota_in_force(QUOTA_NONE, 7), 0);
    assert_int_equal(quota_in_force(3, 7), 3);
}

static void test_counts_and_storage(void **state)
{
    uint64_t l[QUOTA__COUNT] = {
        [QUOTA_SHIPS] = 3, [QUOTA_STORAGE] = 1000, [QUOTA_AWAKE] = 2};
    struct quota_refusal why;
    assert_true(quota_create_ok(l, 2, 0, 1, &why));
    assert_false(quota_create_ok(l, 2, 0, 2, &why));
    assert_int_equal(why.which, QUOTA_SHIPS);
    assert_int_equal(why.limit, 3);
    assert_int_equal(why.used, 2);
    assert_false(quota_create_ok(l, 0, 0, UINT64_MAX, &why));
    /* Storage at the limit refuses new ships too. */
    assert_false(quota_create_ok(l, 0, 1000, 1, &why));
    assert_int_equal(why.which, QUOTA_STORAGE);
    assert_true(quota_storage_ok(l, 999, &why));
    assert_false(quota_storage_ok(l, 1000, &why));
    assert_int_equal(why.used, 1000);
    assert_true(quota_wake_ok(l, 1, &why));
    assert_false(quota_wake_ok(l, 2, &why));
    assert_int_equal(why.which, QUOTA_AWAKE);
    /* No limit: anything goes. */
    uint64_t none[QUOTA__COUNT] = {0};
    assert_true(quota_create_ok(none, UINT64_MAX - 5, UINT64_MAX, 5, &why));
    assert_true(quota_storage_ok(none, UINT64_MAX, &why));
    assert_true(quota_wake_ok(none, 1u << 30, &why));
}

static void test_events_per_second(void **state)
{
    uint64_t l[QUOTA__COUNT] = {[QUOTA_EVENTS] = 5};
    struct quota_bucket b = {0};
    struct quota_refusal why;
    uint64_t t = 1000 * S;
    for (int i = 0; i < 5; i++) {
        assert_true(quota_event_ok(l, &b, t, &why));
    }
    assert_false(quota_event_ok(l, &b, t, &why));
    assert_int_equal(why.which, QUOTA_EVENTS);
    assert_int_equal(why.limit, 5);
    /* A fifth of a second brings one back, a second all five. */
    assert_false(quota_event_ok(l, &b, t + 100 * MS, &why));
    assert_true(quota_event_ok(l, &b, t + 200 * MS, &why));
    assert_false(quota_event_ok(l, &b, t + 200 * MS, &why));
    for (int i = 0; i < 5; i++) {
        assert_true(quota_event_ok(l, &b, t + 2 * S, &why));
    }
    assert_false(quota_event_ok(l, &b, t + 2 * S, &why));
    /* A clock that goes back adds nothing. */
    assert_false(quota_event_ok(l, &b, t, &why));
}

static void test_cpu_per_hour(void **state)
{
    uint64_t l[QUOTA__COUNT] = {[QUOTA_CPU] = 1};
    struct quota_bucket b = {0};
    struct quota_refusal why;
    uint64_t t = 5 * S;
    assert_true(quota_cpu_ok(l, &b, t, &why));
    quota_cpu_charge(l, &b, 500000, t);
    assert_true(quota_cpu_ok(l, &b, t, &why));
    quota_cpu_charge(l, &b, 600000, t); /* measured after the fact */
    assert_false(quota_cpu_ok(l, &b, t, &why));
    assert_int_equal(why.which, QUOTA_CPU);
    assert_int_equal(why.limit, 1);
    assert_int_equal(why.used, 1);
    /* A tenth of the hour gives back a tenth of the second: 0.1 s owed
     * becomes 0, still none left; a little more and there is. */
    assert_false(quota_cpu_ok(l, &b, t + 360 * S, &why));
    assert_true(quota_cpu_ok(l, &b, t + 370 * S, &why));
    /* An hour refills it whole. */
    quota_cpu_charge(l, &b, 5000000, t + 400 * S);
    assert_false(quota_cpu_ok(l, &b, t + 400 * S, &why));
    assert_true(quota_cpu_ok(l, &b, t + 4000 * S, &why));
    /* Without a limit nothing is charged or refused. */
    uint64_t none[QUOTA__COUNT] = {0};
    struct quota_bucket n = {0};
    quota_cpu_charge(none, &n, UINT64_MAX, t);
    assert_true(quota_cpu_ok(none, &n, t, &why));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_codes_statuses),
        cmocka_unit_test(test_counts_and_storage),
        cmocka_unit_test(test_events_per_second),
        cmocka_unit_test(test_cpu_per_hour),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
