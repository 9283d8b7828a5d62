/* The byte budget: counting, the cap, draining bytes, and the change
 * callback that fires only when the picture changes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/budget.h"

static void count_cb(void *arg)
{
    (*(int *)arg)++;
}

static void test_over_and_draining(void **state)
{
    int changes = 0;
    struct budget b;
    budget_init(&b, 100, count_cb, &changes);
    budget_add(&b, 60, false);
    assert_false(budget_over(&b));
    assert_int_equal(changes, 0);
    budget_add(&b, 60, false); /* 120: over */
    assert_true(budget_over(&b));
    assert_int_equal(changes, 1);
    budget_add(&b, 10, false); /* still over: no news */
    assert_int_equal(changes, 1);
    budget_drain(&b, 50); /* some of it drains now */
    assert_int_equal(b.draining, 50);
    assert_int_equal(changes, 2);
    budget_sub(&b, 50, true); /* 80, none draining */
    assert_false(budget_over(&b));
    assert_int_equal(b.draining, 0);
    assert_int_equal(changes, 3);
    assert_int_equal(b.peak, 130);
    budget_add(&b, 5, true);
    assert_int_equal(changes, 4);
    budget_sub(&b, 5, true);
    budget_sub(&b, 80, false);
    assert_int_equal(b.held, 0);
    assert_int_equal(changes, 5);
}

static void test_no_cap_and_no_budget(void **state)
{
    struct budget b;
    budget_init(&b, 0, NULL, NULL);
    budget_add(&b, UINT64_C(1) << 40, false);
    assert_false(budget_over(&b)); /* no cap: never over */
    /* A slip in the accounting must not wrap to a huge count. */
    budget_sub(&b, UINT64_C(1) << 41, true);
    assert_int_equal(b.held, 0);
    assert_int_equal(b.draining, 0);
    budget_drain(&b, 10);
    assert_int_equal(b.draining, 0);
    /* Code without a budget counts nothing and does not crash. */
    budget_add(NULL, 1, false);
    budget_sub(NULL, 1, true);
    budget_drain(NULL, 1);
    assert_false(budget_over(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_over_and_draining),
        cmocka_unit_test(test_no_cap_and_no_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
