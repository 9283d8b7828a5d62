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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolve_takes_the_smallest),
        cmocka_unit_test(test_parse_memory),
        cmocka_unit_test(test_parse_cpu_and_pids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
