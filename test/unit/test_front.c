/* JSON on the host: jansson allocates through lib/mem.h
 * (host_install_json_heap), so a failed allocation inside jansson is one
 * the fault hook made, and every such failure unwinds without leaks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "daemon/host.h"
#include "lib/err.h"
#include "lib/mem.h"

/* With a fault set, jansson's allocations fail; what it dumps is mem's. */
static void test_jansson_allocates_through_mem(void **state)
{
    mem_fault_countdown(0);
    json_t *o = json_object();
    bool hit = mem_fault_hit();
    mem_fault_countdown(-1);
    json_decref(o);
    assert_true(hit);
    assert_null(o);
    o = json_pack("{s:s}", "id", "a1");
    assert_non_null(o);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    assert_string_equal(text, "{\"id\":\"a1\"}");
    assert_true(mem_usable_size(text) >= strlen(text) + 1);
    mem_free(text);
}

/* Build a ship as GET /v1/ships/ID shows it, the way the admin API does:
 * a failed step leaves a key out, and only the dump says whether it all
 * went through. */
static json_t *ship_json(void)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string("k3jq0vfz4yy1bg6c"));
    json_object_set_new(o, "name", json_string("alpha"));
    json_object_set_new(o, "state", json_string("asleep"));
    json_object_set_new(o, "program", json_string("/usr/bin/kv"));
    json_t *args = json_array();
    json_array_append_new(args, json_string("--verbose"));
    json_array_append_new(args, json_string("x"));
    json_object_set_new(o, "args", args);
    json_object_set_new(o, "env", json_object());
    json_object_set_new(o, "last_event", json_integer(12));
    json_object_set_new(o, "acks", json_string("leader"));
    return o;
}

/* Dump a ship list and an error body as the admin API would answer them.
 * Returns 0 and sets *out (freed with mem_free), or BERTH_ENOMEM. */
static int dump_answer(char **out)
{
    json_t *list = json_object();
    json_t *ships = json_array();
    json_array_append_new(ships, ship_json());
    json_array_append_new(ships, ship_json());
    json_object_set_new(list, "ships", ships);
    json_object_set_new(list, "next", json_null());
    json_t *err = json_pack("{s:{s:s,s:s}}", "error", "code", "not_found",
                            "message", "no ship named beta");
    json_t *both = json_pack("[oo]", list, err);
    *out = json_dumps(both, JSON_COMPACT);
    json_decref(both);
    return *out == NULL ? BERTH_ENOMEM : 0;
}

/* Allocation n fails, for n = 0, 1, 2, ... until the answer is dumped with
 * no fault hit: then it is whole. Every failure leaks nothing (ASan checks
 * at exit). */
static void test_every_json_allocation_can_fail(void **state)
{
    char *text;
    int n, failed = 0;
    for (n = 0;; n++) {
        assert_true(n < 10000);
        mem_fault_countdown(n);
        int rv = dump_answer(&text);
        bool hit = mem_fault_hit();
        mem_fault_countdown(-1);
        if (!hit) {
            assert_int_equal(rv, 0);
            break;
        }
        if (rv == 0) {
            mem_free(text); /* a key was left out; the dump went through */
        } else {
            assert_int_equal(rv, BERTH_ENOMEM);
            failed++;
        }
    }
    json_error_t jerr;
    json_t *v = json_loads(text, 0, &jerr);
    mem_free(text);
    assert_non_null(v);
    json_t *ship =
        json_array_get(json_object_get(json_array_get(v, 0), "ships"), 1);
    assert_int_equal(json_integer_value(json_object_get(ship, "last_event")),
                     12);
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(ship, "args"), 0)),
        "--verbose");
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_array_get(v, 1), "error"), "code")),
        "not_found");
    json_decref(v);
    /* Dozens of allocations, every one of them jansson's. */
    assert_true(n > 20);
    assert_true(failed > 0);
}

int main(void)
{
    host_install_json_heap();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jansson_allocates_through_mem),
        cmocka_unit_test(test_every_json_allocation_can_fail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
