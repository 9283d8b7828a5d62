/* The Host label under the front door's domain (http/hostname.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "http/hostname.h"
#include "lib/err.h"

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

static void test_sni(void **state)
{
    char n[16];
    const uint8_t one[] = {0, 8, 0, 0, 5, 'a', '.', 'o', 'r', 'g'};
    assert_int_equal(hostname_sni(one, sizeof one, n, sizeof n), 0);
    assert_string_equal(n, "a.org");
    /* An entry of another type first is skipped. */
    const uint8_t two[] = {0, 10, 7, 0, 1, 'x', 0, 0, 3, 'b', '.', 'c'};
    assert_int_equal(hostname_sni(two, sizeof two, n, sizeof n), 0);
    assert_string_equal(n, "b.c");
    const uint8_t none[] = {0, 4, 7, 0, 1, 'x'};
    assert_int_equal(hostname_sni(none, sizeof none, n, sizeof n),
                     BERTH_ENOTFOUND);
    /* Lengths that do not add up, a NUL, a name too long, nothing. */
    const uint8_t bad_list[] = {0, 9, 0, 0, 5, 'a', '.', 'o', 'r', 'g'};
    const uint8_t bad_name[] = {0, 8, 0, 0, 6, 'a', '.', 'o', 'r', 'g'};
    const uint8_t short_entry[] = {0, 2, 0, 0};
    const uint8_t nul[] = {0, 4, 0, 0, 1, 0};
    const uint8_t empty[] = {0, 3, 0, 0, 0};
    assert_int_equal(hostname_sni(bad_list, sizeof bad_list, n, sizeof n),
                     BERTH_EMALFORMED);
    assert_int_equal(hostname_sni(bad_name, sizeof bad_name, n, sizeof n),
                     BERTH_EMALFORMED);
    assert_int_equal(hostname_sni(short_entry, sizeof short_entry, n, sizeof n),
                     BERTH_EMALFORMED);
    assert_int_equal(hostname_sni(nul, sizeof nul, n, sizeof n),
                     BERTH_EMALFORMED);
    assert_int_equal(hostname_sni(empty, sizeof empty, n, sizeof n),
                     BERTH_EMALFORMED);
    assert_int_equal(hostname_sni(one, 1, n, sizeof n), BERTH_EMALFORMED);
    assert_int_equal(hostname_sni(one, sizeof one, n, 5), BERTH_EMALFORMED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_label_names_a_ship),
        cmocka_unit_test(test_case_does_not_matter),
        cmocka_unit_test(test_the_bare_domain),
        cmocka_unit_test(test_other_names),
        cmocka_unit_test(test_deep_or_empty_labels_name_nothing),
        cmocka_unit_test(test_sni),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
