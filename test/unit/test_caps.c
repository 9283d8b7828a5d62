/* Caps (core/caps.h): the smallest of host, account and ship, and the
 * parsers of `--memory`, `--cpu` and `--pids`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/caps.h"
#include "lib/err.h"

/* Each cap is the smallest that is set; 0 at a level leaves it to the
 * others, and no level at all is no cap. */
static void test_resolve_takes_the_smallest(void **state)
{
    (void)state;
    struct caps host = {.memory_bytes = 64 << 20, .cpu_millis = 500};
    struct caps account = {.memory_bytes = 128 << 20, .pids = 64};
    struct caps ship = {.memory_bytes = 32 << 20, .pids = 100, .cpu_millis = 0};
    struct caps out;
    caps_resolve(&host, &account, &ship, &out);
    assert_int_equal(out.memory_bytes, 32 << 20);
    assert_int_equal(out.cpu_millis, 500);
    assert_int_equal(out.pids, 64);
    caps_resolve(&host, NULL, NULL, &out);
    assert_int_equal(out.memory_bytes, 64 << 20);
    assert_int_equal(out.pids, 0);
    caps_resolve(NULL, NULL, &ship, &out);
    assert_int_equal(out.memory_bytes, 32 << 20);
    assert_int_equal(out.pids, 100);
    caps_resolve(NULL, NULL, NULL, &out);
    assert_true(caps_none(&out));
    /* A ship may not raise itself above the host. */
    struct caps big = {.memory_bytes = 1ULL << 30, .cpu_millis = 4000};
    caps_resolve(&host, NULL, &big, &out);
    assert_int_equal(out.memory_bytes, 64 << 20);
    assert_int_equal(out.cpu_millis, 500);
}

static void test_parse_memory(void **state)
{
    (void)state;
    uint64_t v = 1;
    assert_int_equal(caps_parse_memory("64M", &v), 0);
    assert_int_equal(v, 64ULL << 20);
    assert_int_equal(caps_parse_memory("1G", &v), 0);
    assert_int_equal(v, 1ULL << 30);
    assert_int_equal(caps_parse_memory("8192k", &v), 0);
    assert_int_equal(v, 8ULL << 20);
    assert_int_equal(caps_parse_memory("64MiB", &v), 0);
    assert_int_equal(v, 64ULL << 20);
    assert_int_equal(caps_parse_memory("16777216", &v), 0);
    assert_int_equal(v, 16ULL << 20);
    assert_int_equal(caps_parse_memory("none", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(caps_parse_memory("0", &v), 0);
    assert_int_equal(v, 0);
    const char *bad[] = {"",
                         "M",
                         "64X",
                         "-1",
                         "1M",
                         "64 M",
                         "2T",
                         "4096G",
                         "1.5G",
                         "64M1",
                         "0x10",
                         "3M",
                         "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(caps_parse_memory(bad[i], &v), BERTH_EINVAL);
    }
    char text[24];
    caps_format_memory(64ULL << 20, text, sizeof text);
    assert_string_equal(text, "64M");
    caps_format_memory(3ULL << 30, text, sizeof text);
    assert_string_equal(text, "3G");
    caps_format_memory(1536ULL << 10, text, sizeof text);
    assert_string_equal(text, "1536K");
    caps_format_memory(0, text, sizeof text);
    assert_string_equal(text, "none");
}

static void test_parse_cpu_and_pids(void **state)
{
    (void)state;
    uint32_t v = 1;
    assert_int_equal(caps_parse_cpu("0.5", &v), 0);
    assert_int_equal(v, 500);
    assert_int_equal(caps_parse_cpu("2", &v), 0);
    assert_int_equal(v, 2000);
    assert_int_equal(caps_parse_cpu(".25", &v), 0);
    assert_int_equal(v, 250);
    assert_int_equal(caps_parse_cpu("1.125", &v), 0);
    assert_int_equal(v, 1125);
    assert_int_equal(caps_parse_cpu("none", &v), 0);
    assert_int_equal(v, 0);
    const char *bad[] = {"",    ".",  "0.001", "1.2345", "abc",
                         "1e3", "-1", "2000",  "0.5x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(caps_parse_cpu(bad[i], &v), BERTH_EINVAL);
    }
    assert_int_equal(caps_parse_pids("32", &v), 0);
    assert_int_equal(v, 32);
    assert_int_equal(caps_parse_pids("0", &v), 0);
    assert_int_equal(v, 0);
    const char *badp[] = {"", "1", "-3", "32x", "5000000", "3.5"};
    for (size_t i = 0; i < sizeof badp / sizeof badp[0]; i++) {
        assert_int_equal(caps_parse_pids(badp[i], &v), BERTH_EINVAL);
    }
}

/* Where each cap in force comes from: the level that set the smallest;
 * of levels that set the same, the narrowest; none when no level sets it.
 * An account's cap bounds a ship's larger own, and the host's bounds the
 * account's. */
static void test_resolve_says_where_each_comes_from(void **state)
{
    (void)state;
    struct caps host = {.memory_bytes = 512 << 20, .cpu_millis = 1000};
    struct caps account = {.memory_bytes = 64 << 20, .cpu_millis = 2000};
    struct caps ship = {.memory_bytes = 128 << 20, .pids = 16};
    struct caps out;
    struct caps_origin from;
    caps_resolve_from(&host, &account, &ship, &out, &from);
    assert_int_equal(out.memory_bytes, 64 << 20);
    assert_int_equal(from.memory, CAPS_LEVEL_ACCOUNT);
    assert_int_equal(out.cpu_millis, 1000);
    assert_int_equal(from.cpu, CAPS_LEVEL_HOST);
    assert_int_equal(out.pids, 16);
    assert_int_equal(from.pids, CAPS_LEVEL_SHIP);
    /* The same as caps_resolve says. */
    struct caps plain;
    caps_resolve(&host, &account, &ship, &plain);
    assert_memory_equal(&plain, &out, sizeof out);
    /* Ties go to the narrower level. */
    struct caps same = {.memory_bytes = 64 << 20, .cpu_millis = 1000};
    caps_resolve_from(&host, &same, &same, &out, &from);
    assert_int_equal(from.memory, CAPS_LEVEL_SHIP);
    assert_int_equal(from.cpu, CAPS_LEVEL_SHIP);
    caps_resolve_from(&same, &same, NULL, &out, &from);
    assert_int_equal(from.memory, CAPS_LEVEL_ACCOUNT);
    /* Nothing set anywhere: none, from no level. */
    caps_resolve_from(NULL, NULL, NULL, &out, &from);
    assert_true(caps_none(&out));
    assert_int_equal(from.memory, CAPS_LEVEL_NONE);
    assert_int_equal(from.pids, CAPS_LEVEL_NONE);
    /* An account alone, on a host without defaults. */
    caps_resolve_from(NULL, &account, NULL, &out, NULL);
    assert_int_equal(out.memory_bytes, 64 << 20);
    assert_int_equal(out.cpu_millis, 2000);
    assert_string_equal(caps_level_name(CAPS_LEVEL_HOST), "host");
    assert_string_equal(caps_level_name(CAPS_LEVEL_ACCOUNT), "account");
    assert_string_equal(caps_level_name(CAPS_LEVEL_SHIP), "ship");
    assert_string_equal(caps_level_name(CAPS_LEVEL_NONE), "none");
    assert_string_equal(caps_level_name(9), "none");
}

/* A level's caps are each none or within what the parsers accept. */
static void test_check(void **state)
{
    (void)state;
    struct caps ok = {0};
    assert_int_equal(caps_check(&ok), 0);
    ok = (struct caps){CAPS_MEMORY_MIN, CAPS_CPU_MIN, CAPS_PIDS_MIN};
    assert_int_equal(caps_check(&ok), 0);
    ok = (struct caps){1ULL << 40, CAPS_CPU_MAX, 4194304};
    assert_int_equal(caps_check(&ok), 0);
    const struct caps bad[] = {
        {CAPS_MEMORY_MIN - 1, 0, 0},
        {(1ULL << 40) + 1, 0, 0},
        {0, CAPS_CPU_MIN - 1, 0},
        {0, CAPS_CPU_MAX + 1, 0},
        {0, 0, 1},
        {0, 0, 4194305},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(caps_check(&bad[i]), BERTH_EINVAL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolve_takes_the_smallest),
        cmocka_unit_test(test_parse_memory),
        cmocka_unit_test(test_parse_cpu_and_pids),
        cmocka_unit_test(test_resolve_says_where_each_comes_from),
        cmocka_unit_test(test_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
