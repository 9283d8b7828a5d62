/* The dashboard's files as compiled in: every one has a type it is served
 * with, paths find exactly the files of the table, and the page holds no
 * inline script or style, which its policy would refuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "daemon/dashboard.h"

static void test_every_file_has_a_type(void **state)
{
    size_t n = 0;
    for (const struct dashboard_file *f = dashboard_files; f->name != NULL;
         f++, n++) {
        assert_non_null(dashboard_content_type(f->name));
        assert_true(f->len > 0);
        assert_int_equal(f->data[f->len], 0); /* the guard byte */
    }
    assert_true(n >= 3);
    assert_string_equal(dashboard_content_type("a.js"),
                        "text/javascript; charset=utf-8");
    assert_null(dashboard_content_type("a.sock"));
    assert_null(dashboard_content_type("README"));
}

static void test_paths(void **state)
{
    assert_true(dashboard_path("/dashboard"));
    assert_true(dashboard_path("/dashboard/x"));
    assert_false(dashboard_path("/dashboards"));
    assert_false(dashboard_path("/v1/dashboard"));
    assert_string_equal(dashboard_find("/dashboard")->name, "index.html");
    assert_string_equal(dashboard_find("/dashboard/")->name, "index.html");
    assert_string_equal(dashboard_find("/dashboard/app.js")->name, "app.js");
    assert_null(dashboard_find("/dashboard/../admin.sock"));
    assert_null(dashboard_find("/dashboard//app.js"));
    assert_null(dashboard_find("/dashboard/app.js/"));
    assert_null(dashboard_find("/app.js"));
}

static void test_no_inline_script_or_style(void **state)
{
    const struct dashboard_file *f = dashboard_find("/dashboard");
    const char *html = (const char *)f->data;
    assert_null(strstr(html, "<script>"));
    assert_null(strstr(html, "<style"));
    assert_null(strstr(html, " style="));
    assert_null(strstr(html, " onclick="));
    assert_null(strstr(html, "javascript:"));
    for (const char *s = strstr(html, "<script"); s != NULL;
         s = strstr(s + 1, "<script")) {
        assert_true(strncmp(s, "<script src=\"/dashboard/", 24) == 0);
    }
    /* Nothing the page names may come from another origin. */
    assert_null(strstr(html, "http://"));
    assert_null(strstr(html, "https://"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_file_has_a_type),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_no_inline_script_or_style),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
