/* The output gate releases in order, and only what is durable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/gate.h"
#include "lib/err.h"

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

static void test_acks_levels(void **state)
{
    /* 0 leaves before anything is durable. */
    assert_true(gate_acks_met(0, 0, 3, false));
    /* k waits for k hosts, or for a commit when k is within a majority. */
    assert_false(gate_acks_met(1, 0, 3, false));
    assert_true(gate_acks_met(1, 1, 3, false));
    assert_false(gate_acks_met(2, 1, 3, false));
    assert_true(gate_acks_met(2, 2, 3, false));
    assert_true(gate_acks_met(2, 0, 3, true));
    assert_false(gate_acks_met(3, 2, 3, true));
    assert_true(gate_acks_met(3, 3, 3, false));
    /* quorum is the commit, whatever the counts; all needs both. */
    assert_false(gate_acks_met(GATE_ACKS_QUORUM, 3, 3, false));
    assert_true(gate_acks_met(GATE_ACKS_QUORUM, 0, 3, true));
    assert_true(gate_acks_met(GATE_ACKS_DEFAULT, 0, 3, true));
    assert_false(gate_acks_met(GATE_ACKS_ALL, 2, 3, true));
    assert_false(gate_acks_met(GATE_ACKS_ALL, 3, 3, false));
    assert_true(gate_acks_met(GATE_ACKS_ALL, 3, 3, true));
    /* One host: every level is its own fsync and commit. */
    assert_true(gate_acks_met(GATE_ACKS_ALL, 1, 1, true));
    assert_true(gate_acks_met(1, 0, 1, true));
    /* More hosts than voters (a host alone, a cluster made smaller) is
     * every voter: never a wait that no count can end. */
    assert_true(gate_acks_met(3, 1, 1, true));
    assert_false(gate_acks_met(3, 1, 1, false));
    assert_true(gate_acks_met(7, 2, 2, true));
    assert_false(gate_acks_met(7, 1, 2, true));
    assert_true(gate_acks_met(GATE_ACKS_MAX, 3, 3, true));
}

static void test_acks_names(void **state)
{
    uint8_t v;
    char name[8];
    assert_int_equal(gate_acks_parse("quorum", &v), 0);
    assert_int_equal(v, GATE_ACKS_QUORUM);
    assert_string_equal(gate_acks_name(v, name), "quorum");
    assert_int_equal(gate_acks_parse("all", &v), 0);
    assert_string_equal(gate_acks_name(v, name), "all");
    assert_int_equal(gate_acks_parse("0", &v), 0);
    assert_string_equal(gate_acks_name(v, name), "0");
    assert_int_equal(gate_acks_parse("99", &v), 0);
    assert_int_equal(v, 99);
    assert_string_equal(gate_acks_name(GATE_ACKS_DEFAULT, name), "default");
    assert_int_equal(gate_acks_parse("100", &v), BERTH_EINVAL);
    assert_int_equal(gate_acks_parse("-1", &v), BERTH_EINVAL);
    assert_int_equal(gate_acks_parse("2x", &v), BERTH_EINVAL);
    assert_int_equal(gate_acks_parse("", &v), BERTH_EINVAL);
    assert_int_equal(gate_acks_parse("majority", &v), BERTH_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_alone_leaves_at_once),
        cmocka_unit_test(test_read_waits_behind_write),
        cmocka_unit_test(test_durable_marks_up_to),
        cmocka_unit_test(test_pop_any_drains),
        cmocka_unit_test(test_acks_levels),
        cmocka_unit_test(test_acks_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
