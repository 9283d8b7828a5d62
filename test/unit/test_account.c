/* Accounts' rules: names, the caller's scope from its header, what a scope
 * sees and may reach, and when a ship may be made or an account changed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/account.h"
#include "lib/err.h"

static void test_names(void **state)
{
    const char *good[] = {"alice",
                          "a",
                          "team-7",
                          "7up",
                          "a-b-c",
                          "abcdefghijklmnopqrstuvwxyz0123456789-abcdefghijkl"
                          "mnopqrstuvwxyz"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_int_equal(account_name_check(good[i]), 0);
    }
    assert_int_equal(strlen(good[5]), ACCOUNT_NAME_MAX);
    const char *bad[] = {"",  "-a", "Alice",     "a_b", "a b",  "123",
                         "0", "é",  "anonymous", "a/b", "a\nb", "a.b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(account_name_check(bad[i]), BERTH_EINVAL);
    }
    char longer[ACCOUNT_NAME_MAX + 2];
    memset(longer, 'a', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    assert_int_equal(account_name_check(longer), BERTH_EINVAL);
    /* A name that merely contains the reserved one is a name. */
    assert_int_equal(account_name_check("anonymous-2"), 0);
}

static void test_scope_parse(void **state)
{
    uint64_t scope = 7;
    assert_int_equal(account_scope_parse(NULL, &scope), 0);
    assert_true(scope == ACCOUNT_ALL);
    assert_int_equal(account_scope_parse("0", &scope), 0);
    assert_int_equal(scope, 0);
    assert_int_equal(account_scope_parse("42", &scope), 0);
    assert_int_equal(scope, 42);
    assert_int_equal(account_scope_parse("18446744073709551614", &scope), 0);
    assert_true(scope == ACCOUNT_ALL - 1);
    scope = 9;
    const char *bad[] = {"",
                         "-1",
                         "+1",
                         " 1",
                         "1 ",
                         "0x10",
                         "abc",
                         "18446744073709551615",
                         "99999999999999999999",
                         "1.5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(account_scope_parse(bad[i], &scope), BERTH_EINVAL);
        assert_int_equal(scope, 9);
    }
}

static void test_sees_and_routes(void **state)
{
    assert_true(account_scope_sees(ACCOUNT_ALL, 0));
    assert_true(account_scope_sees(ACCOUNT_ALL, 5));
    assert_true(account_scope_sees(5, 5));
    assert_false(account_scope_sees(5, 6));
    assert_false(account_scope_sees(5, ACCOUNT_ANONYMOUS));

    const char *all[] = {"/v1/stats",   "/v1/tokens",     "/v1/accounts",
                         "/v1/cluster", "/v1/key/rotate", "/v1/ships"};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        assert_true(account_route_allowed(ACCOUNT_ALL, "GET", all[i]));
    }
    assert_true(account_route_allowed(3, "GET", "/v1/ships"));
    assert_true(account_route_allowed(3, "POST", "/v1/ships"));
    assert_true(account_route_allowed(3, "GET", "/v1/ships/ann"));
    assert_true(account_route_allowed(3, "POST", "/v1/ships/ann/wake"));
    assert_true(account_route_allowed(3, "POST", "/v1/ships/ann/kill"));
    assert_false(account_route_allowed(3, "POST", "/v1/ships/ann/block"));
    assert_false(account_route_allowed(3, "POST", "/v1/ships/ann/unblock"));
    assert_true(
        account_route_allowed(ACCOUNT_ALL, "POST", "/v1/ships/a/block"));
    assert_true(account_route_allowed(3, "GET", "/healthz"));
    const char *denied[] = {
        "/v1/stats",    "/v1/tokens",     "/v1/tokens/x",
        "/v1/accounts", "/v1/accounts/a", "/v1/anonymous",
        "/v1/cluster",  "/v1/fsck",       "/v1/key/rotate",
        "/v1/ships/",   "/v1/shipsx",     "/v1/cluster/secret"};
    for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++) {
        assert_false(account_route_allowed(3, "GET", denied[i]));
    }
}

static void test_create(void **state)
{
    /* The operator: any account, while it is enabled; the anonymous one
     * only while anonymous creation is on. */
    assert_int_equal(account_create_check(ACCOUNT_ALL, 0, false, true), 0);
    assert_int_equal(account_create_check(ACCOUNT_ALL, 0, false, false),
                     BERTH_EDENIED);
    assert_int_equal(account_create_check(ACCOUNT_ALL, 4, false, false), 0);
    assert_int_equal(account_create_check(ACCOUNT_ALL, 4, true, true),
                     BERTH_EDISABLED);
    /* An account: its own only. */
    assert_int_equal(account_create_check(4, 4, false, false), 0);
    assert_int_equal(account_create_check(4, 5, false, true), BERTH_EDENIED);
    assert_int_equal(account_create_check(4, 0, false, true), BERTH_EDENIED);
    assert_int_equal(account_create_check(4, 4, true, true), BERTH_EDISABLED);
}

static void test_ops(void **state)
{
    for (uint8_t op = ACCOUNT_OP_NEW; op <= ACCOUNT_OP_LIMIT; op++) {
        assert_int_equal(account_op_check(op, 3), 0);
        assert_string_not_equal(account_op_name(op), "unknown");
    }
    assert_int_equal(account_op_check(ACCOUNT_OP_REMOVE, ACCOUNT_ANONYMOUS),
                     BERTH_EINVAL);
    assert_int_equal(account_op_check(ACCOUNT_OP_DISABLE, ACCOUNT_ANONYMOUS),
                     0);
    assert_int_equal(account_op_check(0, 3), BERTH_EINVAL);
    assert_int_equal(account_op_check(ACCOUNT_OP_LIMIT + 1, 3), BERTH_EINVAL);
    assert_string_equal(account_op_name(ACCOUNT_OP_DISABLE), "disable");
    assert_string_equal(account_op_name(77), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_scope_parse),
        cmocka_unit_test(test_sees_and_routes),
        cmocka_unit_test(test_create),
        cmocka_unit_test(test_ops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
