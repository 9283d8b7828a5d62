/* The output gate releases in order, and only what is durable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/gate.h"

static void item(struct gate_item *i, uint64_t number, bool needs_log)
{
    i->number = number;
    i->needs_log = needs_log;
}

static void test_read_alone_leaves_at_once(void **state)
{
    struct gate g;
    struct gate_item r;
    gate_init(&g);
    item(&r, 1, false);
    gate_push(&g, &r);
    assert_ptr_equal(gate_pop(&g), &r);
    assert_null(gate_pop(&g));
    assert_int_equal(g.len, 0);
}

static void test_read_waits_behind_write(void **state)
{
    struct gate g;
    struct gate_item w, r;
    gate_init(&g);
    item(&w, 1, true);
    item(&r, 2, false);
    gate_push(&g, &w);
    gate_push(&g, &r);
    /* The read may reveal the write's state: nothing leaves yet. */
    assert_null(gate_pop(&g));
    gate_mark_durable(&g, 1);
    assert_ptr_equal(gate_pop(&g), &w);
    assert_ptr_equal(gate_pop(&g), &r);
    assert_null(gate_pop(&g));
}

static void test_durable_marks_up_to(void **state)
{
    struct gate g;
    struct gate_item a, b, c;
    gate_init(&g);
    item(&a, 1, true);
    item(&b, 2, true);
    item(&c, 3, true);
    gate_push(&g, &a);
    gate_push(&g, &b);
    gate_push(&g, &c);
    gate_mark_durable(&g, 2);
    assert_ptr_equal(gate_pop(&g), &a);
    assert_ptr_equal(gate_pop(&g), &b);
    assert_null(gate_pop(&g));
    gate_mark_durable(&g, 3);
    assert_ptr_equal(gate_pop(&g), &c);
}

static void test_pop_any_drains(void **state)
{
    struct gate g;
    struct gate_item a, b;
    gate_init(&g);
    item(&a, 1, true);
    item(&b, 2, false);
    gate_push(&g, &a);
    gate_push(&g, &b);
    assert_ptr_equal(gate_pop_any(&g), &a);
    assert_ptr_equal(gate_pop_any(&g), &b);
    assert_null(gate_pop_any(&g));
    assert_null(g.tail);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_alone_leaves_at_once),
        cmocka_unit_test(test_read_waits_behind_write),
        cmocka_unit_test(test_durable_marks_up_to),
        cmocka_unit_test(test_pop_any_drains),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
