/* The log level: names parse to levels, "fatal" is no level to ask for,
 * and a level set filters what is below it and nothing above. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/err.h"
#include "lib/loglevel.h"

static void test_loglevel_parse(void **state)
{
    (void)state;
    int level = -7;
    assert_int_equal(loglevel_parse("debug", &level), 0);
    assert_int_equal(level, LOGLEVEL_DEBUG);
    assert_int_equal(loglevel_parse("error", &level), 0);
    assert_int_equal(level, LOGLEVEL_ERROR);
    assert_int_equal(loglevel_parse("fatal", &level), BERTH_EINVAL);
    assert_int_equal(loglevel_parse("loud", &level), BERTH_EINVAL);
    assert_int_equal(loglevel_parse("", &level), BERTH_EINVAL);
    assert_int_equal(level, LOGLEVEL_ERROR);
    assert_int_equal(loglevel_of("fatal"), LOGLEVEL_FATAL);
    assert_int_equal(loglevel_of("Info"), -1);
}

static void test_loglevel_filters_below(void **state)
{
    (void)state;
    assert_false(loglevel_enabled(LOGLEVEL_DEBUG)); /* the default: info */
    assert_true(loglevel_enabled(LOGLEVEL_INFO));
    loglevel_set(LOGLEVEL_WARN);
    assert_false(loglevel_enabled(LOGLEVEL_INFO));
    assert_true(loglevel_enabled(LOGLEVEL_WARN));
    assert_true(loglevel_enabled(LOGLEVEL_FATAL));
    loglevel_set(LOGLEVEL_DEBUG);
    assert_true(loglevel_enabled(LOGLEVEL_DEBUG));
    loglevel_set(LOGLEVEL_INFO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loglevel_parse),
        cmocka_unit_test(test_loglevel_filters_below),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
