/* Sandboxes and budgets (core/sandbox.h): the blob, and what a child may
 * be given. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/sandbox.h"
#include "lib/err.h"

/* A blob gives back what was put in, and every cut or extra byte, unknown
 * flag or version is refused. */
static void test_blob_round_trip_and_damage(void **state)
{
    (void)state;
    struct sandbox sb = {.flags = SANDBOX_NO_SPAWN | SANDBOX_SEND_LIST,
                         .memory_bytes = 64 << 20,
                         .cpu_millis = 500,
                         .events_per_s = 10,
                         .budget_ships = 3,
                         .budget_bytes = 1 << 20,
                         .budget_cpu_ms = 60000,
                         .send = "abc\0def\0",
                         .send_len = 8,
                         .pids = 32};
    struct buf b;
    buf_init(&b);
    assert_int_equal(sandbox_encode(&b, &sb), 0);
    struct sandbox got;
    assert_int_equal(sandbox_decode(b.data, b.len, &got), 0);
    assert_int_equal(got.flags, sb.flags);
    assert_int_equal(got.memory_bytes, sb.memory_bytes);
    assert_int_equal(got.cpu_millis, 500);
    assert_int_equal(got.events_per_s, 10);
    assert_int_equal(got.budget_ships, 3);
    assert_int_equal(got.budget_bytes, 1 << 20);
    assert_int_equal(got.budget_cpu_ms, 60000);
    assert_int_equal(got.send_len, 8);
    assert_memory_equal(got.send, "abc\0def\0", 8);
    assert_int_equal(got.pids, 32);
    for (size_t n = 1; n < b.len; n++) {
        assert_int_equal(sandbox_decode(b.data, n, &got), BERTH_EMALFORMED);
    }
    assert_int_equal(buf_put_u8(&b, 0), 0);
    assert_int_equal(sandbox_decode(b.data, b.len, &got), BERTH_EMALFORMED);
    b.len--;
    b.data[1] |= 0x80; /* unknown flag */
    assert_int_equal(sandbox_decode(b.data, b.len, &got), BERTH_EMALFORMED);
    b.data[1] &= 0x7f;
    b.data[0] = 3; /* unknown version */
    assert_int_equal(sandbox_decode(b.data, b.len, &got), BERTH_EMALFORMED);
    b.data[0] = 0;
    assert_int_equal(sandbox_decode(b.data, b.len, &got), BERTH_EMALFORMED);
    /* Version 1 is version 2 without the pids cap at the end: it still
     * decodes, with no pids cap; with the field it is too long. */
    b.data[0] = 1;
    assert_int_equal(sandbox_decode(b.data, b.len, &got), BERTH_EMALFORMED);
    assert_int_equal(sandbox_decode(b.data, b.len - 4, &got), 0);
    assert_int_equal(got.pids, 0);
    assert_int_equal(got.memory_bytes, sb.memory_bytes);
    assert_memory_equal(got.send, "abc\0def\0", 8);
    b.data[0] = 2;
    b.data[b.len - 5] = 'x'; /* the list no longer ends in a NUL */
    assert_int_equal(sandbox_decode(b.data, b.len, &got), BERTH_EMALFORMED);
    buf_free(&b);
    /* No blob: the empty sandbox, which allows everything. */
    assert_int_equal(sandbox_decode(NULL, 0, &got), 0);
    assert_true(sandbox_empty(&got));
    assert_true(sandbox_may_send(&got, "anyone"));
}

/* A child never gets more than its parent: flags add up, caps and
 * budgets take the smaller (0 being none), a send list stays within the
 * parent's. */
static void test_inherit_never_more_than_the_parent(void **state)
{
    (void)state;
    struct sandbox parent = {.flags = SANDBOX_NO_SPAWN,
                             .memory_bytes = 100,
                             .events_per_s = 5,
                             .pids = 16,
                             .budget_ships = 10};
    struct sandbox want = {.flags = SANDBOX_HIDDEN,
                           .memory_bytes = 500,
                           .cpu_millis = 250,
                           .events_per_s = 2,
                           .budget_ships = 20,
                           .budget_bytes = 7};
    struct sandbox child;
    const char *why = NULL;
    assert_int_equal(sandbox_inherit(&parent, &want, &child, &why), 0);
    assert_int_equal(child.flags, SANDBOX_NO_SPAWN | SANDBOX_HIDDEN);
    assert_int_equal(child.memory_bytes, 100);
    assert_int_equal(child.cpu_millis, 250);
    assert_int_equal(child.events_per_s, 2);
    assert_int_equal(child.budget_ships, 10);
    assert_int_equal(child.budget_bytes, 7);
    assert_int_equal(child.pids, 16); /* the parent's, as it asked none */
    assert_true(sandbox_may_send(&child, "anyone"));

    /* A parent with a send list passes it on, and a child may not widen
     * it. */
    struct sandbox lister = {
        .flags = SANDBOX_SEND_LIST, .send = "friend\0", .send_len = 7};
    struct sandbox none = {0};
    assert_int_equal(sandbox_inherit(&lister, &none, &child, &why), 0);
    assert_true(sandbox_may_send(&child, "friend"));
    assert_false(sandbox_may_send(&child, "stranger"));
    struct sandbox wider = {.flags = SANDBOX_SEND_LIST,
                            .send = "friend\0stranger\0",
                            .send_len = 16};
    assert_int_equal(sandbox_inherit(&lister, &wider, &child, &why),
                     BERTH_EINVAL);
    assert_non_null(why);
    struct sandbox narrower = {
        .flags = SANDBOX_SEND_LIST, .send = "", .send_len = 0};
    assert_int_equal(sandbox_inherit(&lister, &narrower, &child, &why), 0);
    assert_false(sandbox_may_send(&child, "friend"));
}

/* The network is granted, not restricted: a child has it only when it
 * asks and its parent has it, and the restrictions still add up. */
static void test_inherit_network_only_from_a_parent_that_has_it(void **state)
{
    (void)state;
    struct sandbox net = {.flags = SANDBOX_NETWORK};
    struct sandbox net_hidden = {.flags = SANDBOX_NETWORK | SANDBOX_HIDDEN};
    struct sandbox none = {0};
    struct sandbox no_spawn = {.flags = SANDBOX_NO_SPAWN};
    struct sandbox child;
    const char *why = NULL;

    assert_int_equal(sandbox_inherit(&net, &net_hidden, &child, &why), 0);
    assert_int_equal(child.flags, SANDBOX_NETWORK | SANDBOX_HIDDEN);
    /* Not asked for: not given, though the parent has it. */
    assert_int_equal(sandbox_inherit(&net, &none, &child, &why), 0);
    assert_int_equal(child.flags, 0);
    /* Asked for from a parent without it: not given. */
    assert_int_equal(sandbox_inherit(&no_spawn, &net, &child, &why), 0);
    assert_int_equal(child.flags, SANDBOX_NO_SPAWN);
    assert_int_equal(sandbox_inherit(&none, &net, &child, &why), 0);
    assert_int_equal(child.flags, 0);

    /* The flag survives its blob. */
    struct buf b;
    buf_init(&b);
    assert_int_equal(sandbox_encode(&b, &net_hidden), 0);
    struct sandbox got;
    assert_int_equal(sandbox_decode(b.data, b.len, &got), 0);
    assert_int_equal(got.flags, SANDBOX_NETWORK | SANDBOX_HIDDEN);
    assert_false(sandbox_empty(&got));
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blob_round_trip_and_damage),
        cmocka_unit_test(test_inherit_never_more_than_the_parent),
        cmocka_unit_test(test_inherit_network_only_from_a_parent_that_has_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
