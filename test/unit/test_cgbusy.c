/* The list of cgroups that refused removal: retried at later removals,
 * dropped once gone or out of tries, bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "proc/cgbusy.h"

/* The fake cgroups: busy[pid] says whether pid's still refuses removal;
 * tries[pid] counts the tries. */
static bool busy[256];
static int tries[256];

static bool try_remove(pid_t pid)
{
    tries[pid]++;
    return busy[pid];
}

static int reset(void **state)
{
    (void)state;
    memset(busy, 0, sizeof busy);
    memset(tries, 0, sizeof tries);
    return 0;
}

static void test_gone_at_once_is_not_held(void **state)
{
    (void)state;
    struct cgbusy b = {0};
    cgbusy_remove(&b, 10, try_remove);
    assert_int_equal(b.n, 0);
    assert_int_equal(tries[10], 1);
}

static void test_busy_is_retried_until_gone(void **state)
{
    (void)state;
    struct cgbusy b = {0};
    busy[10] = true;
    cgbusy_remove(&b, 10, try_remove);
    assert_int_equal(b.n, 1);
    cgbusy_remove(&b, 11, try_remove);
    assert_int_equal(tries[10], 2);
    assert_int_equal(b.n, 1);
    busy[10] = false; /* its last process was reaped */
    cgbusy_remove(&b, 12, try_remove);
    assert_int_equal(tries[10], 3);
    assert_int_equal(b.n, 0);
    cgbusy_remove(&b, 13, try_remove);
    assert_int_equal(tries[10], 3); /* gone: never tried again */
}

/* A retry alone tries the held ones and holds nothing new. */
static void test_retry_alone_tries_the_held(void **state)
{
    (void)state;
    struct cgbusy b = {0};
    busy[10] = true;
    cgbusy_remove(&b, 10, try_remove);
    cgbusy_retry(&b, try_remove);
    assert_int_equal(tries[10], 2);
    assert_int_equal(b.n, 1);
    busy[10] = false;
    cgbusy_retry(&b, try_remove);
    assert_int_equal(tries[10], 3);
    assert_int_equal(b.n, 0);
    cgbusy_retry(&b, try_remove);
    assert_int_equal(tries[10], 3);
}

static void test_out_of_tries_is_dropped(void **state)
{
    (void)state;
    struct cgbusy b = {0};
    busy[10] = true;
    cgbusy_remove(&b, 10, try_remove);
    for (int i = 0; i < 3 * CGBUSY_TRIES; i++) {
        cgbusy_remove(&b, 20 + i, try_remove);
    }
    /* The first try and CGBUSY_TRIES retries, no more. */
    assert_int_equal(tries[10], 1 + CGBUSY_TRIES);
    assert_int_equal(b.n, 0);
}

static void test_held_stay_bounded(void **state)
{
    (void)state;
    struct cgbusy b = {0};
    for (int pid = 1; pid < 100; pid++) {
        busy[pid] = true;
        cgbusy_remove(&b, pid, try_remove);
        assert_true(b.n <= CGBUSY_MAX);
    }
    /* Each stays for its retries only: the last CGBUSY_TRIES are held. */
    assert_int_equal(b.n, CGBUSY_TRIES);
    assert_int_equal(tries[1], 1 + CGBUSY_TRIES);
    cgbusy_clear(&b);
    assert_int_equal(b.n, 0);
    cgbusy_remove(&b, 200, try_remove);
    assert_int_equal(tries[99], 1); /* forgotten by the clear */
}

static void test_dropping_keeps_the_others(void **state)
{
    (void)state;
    struct cgbusy b = {0};
    busy[1] = busy[2] = busy[3] = true;
    cgbusy_remove(&b, 1, try_remove);
    cgbusy_remove(&b, 2, try_remove);
    cgbusy_remove(&b, 3, try_remove);
    assert_int_equal(b.n, 3);
    busy[1] = false; /* the first goes; the last takes its place */
    cgbusy_remove(&b, 4, try_remove);
    assert_int_equal(b.n, 2);
    int before2 = tries[2];
    int before3 = tries[3];
    cgbusy_remove(&b, 5, try_remove);
    assert_int_equal(tries[2], before2 + 1);
    assert_int_equal(tries[3], before3 + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_gone_at_once_is_not_held, reset),
        cmocka_unit_test_setup(test_busy_is_retried_until_gone, reset),
        cmocka_unit_test_setup(test_retry_alone_tries_the_held, reset),
        cmocka_unit_test_setup(test_out_of_tries_is_dropped, reset),
        cmocka_unit_test_setup(test_held_stay_bounded, reset),
        cmocka_unit_test_setup(test_dropping_keeps_the_others, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
