/* The Host label under the front door's domain (http/hostname.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "http/hostname.h"

static enum hostname_kind label_of(const char *host, char *out)
{
    return hostname_label(host, "example.org", out, 64);
}

static void test_a_label_names_a_ship(void **state)
{
    char l[64];
    assert_int_equal(label_of("ann.example.org", l), HOSTNAME_LABEL);
    assert_string_equal(l, "ann");
    assert_int_equal(label_of("ann.example.org:8443", l), HOSTNAME_LABEL);
    assert_string_equal(l, "ann");
    assert_int_equal(label_of("ann.example.org.", l), HOSTNAME_LABEL);
    assert_string_equal(l, "ann");
    assert_int_equal(label_of("ann.example.org.:80", l), HOSTNAME_LABEL);
    assert_string_equal(l, "ann");
}

static void test_case_does_not_matter(void **state)
{
    char l[64];
    assert_int_equal(label_of("ANN.Example.ORG", l), HOSTNAME_LABEL);
    assert_string_equal(l, "ann");
    assert_int_equal(hostname_label("Bob.EXAMPLE.org", "Example.Org", l, 64),
                     HOSTNAME_LABEL);
    assert_string_equal(l, "bob");
}

static void test_the_bare_domain(void **state)
{
    char l[64];
    assert_int_equal(label_of("example.org", l), HOSTNAME_DOMAIN);
    assert_int_equal(label_of("EXAMPLE.ORG:8080", l), HOSTNAME_DOMAIN);
    assert_int_equal(label_of("example.org.", l), HOSTNAME_DOMAIN);
}

static void test_other_names(void **state)
{
    char l[64];
    assert_int_equal(label_of("127.0.0.1:8080", l), HOSTNAME_OTHER);
    assert_int_equal(label_of("[::1]:8080", l), HOSTNAME_OTHER);
    assert_int_equal(label_of("", l), HOSTNAME_OTHER);
    assert_int_equal(label_of("localhost", l), HOSTNAME_OTHER);
    assert_int_equal(label_of("xexample.org", l), HOSTNAME_OTHER);
    assert_int_equal(label_of("ann.example.org.evil", l), HOSTNAME_OTHER);
    assert_int_equal(label_of("org", l), HOSTNAME_OTHER);
    assert_int_equal(hostname_label("ann.example.org", "", l, 64),
                     HOSTNAME_OTHER);
}

static void test_deep_or_empty_labels_name_nothing(void **state)
{
    char l[64];
    assert_int_equal(label_of("a.b.example.org", l), HOSTNAME_DEEP);
    assert_int_equal(label_of(".example.org", l), HOSTNAME_DEEP);
    /* A label that does not fit the caller's buffer. */
    assert_int_equal(
        hostname_label("abcdefgh.example.org", "example.org", l, 8),
        HOSTNAME_DEEP);
    assert_int_equal(hostname_label("abcdefg.example.org", "example.org", l, 8),
                     HOSTNAME_LABEL);
    assert_string_equal(l, "abcdefg");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_label_names_a_ship),
        cmocka_unit_test(test_case_does_not_matter),
        cmocka_unit_test(test_the_bare_domain),
        cmocka_unit_test(test_other_names),
        cmocka_unit_test(test_deep_or_empty_labels_name_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
