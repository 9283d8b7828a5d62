/* The string table finds, replaces and deletes, through growth and
 * tombstones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "daemon/table.h"
#include "lib/err.h"
#include "lib/mem.h"

static void count(const char *key, void *value, void *arg)
{
    (*(int *)arg)++;
}

static void test_put_get_del(void **state)
{
    static char keys[5000][16];
    struct table t;
    table_init(&t);
    for (int i = 0; i < 5000; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        assert_int_equal(table_put(&t, keys[i], &keys[i]), 0);
    }
    assert_int_equal(t.len, 5000);
    for (int i = 0; i < 5000; i += 2) {
        table_del(&t, keys[i]);
    }
    assert_int_equal(t.len, 2500);
    for (int i = 0; i < 5000; i++) {
        void *v = table_get(&t, keys[i]);
        assert_ptr_equal(v, i % 2 ? &keys[i] : NULL);
    }
    int n = 0;
    table_foreach(&t, count, &n);
    assert_int_equal(n, 2500);
    /* Churn through tombstones without unbounded growth. */
    for (int r = 0; r < 10; r++) {
        for (int i = 0; i < 5000; i += 2) {
            assert_int_equal(table_put(&t, keys[i], &keys[i]), 0);
        }
        for (int i = 0; i < 5000; i += 2) {
            table_del(&t, keys[i]);
        }
    }
    assert_true(t.cap <= 16384);
    assert_null(table_get(&t, "missing"));
    table_free(&t);
}

static void test_put_out_of_memory(void **state)
{
    struct table t;
    table_init(&t);
    mem_fault_countdown(0);
    assert_int_equal(table_put(&t, "a", &t), BERTH_ENOMEM);
    mem_fault_countdown(-1);
    assert_null(table_get(&t, "a"));
    assert_int_equal(table_put(&t, "a", &t), 0);
    assert_ptr_equal(table_get(&t, "a"), &t);
    table_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_del),
        cmocka_unit_test(test_put_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
