/* Tokens of the admin API: scopes by route, token text and hash, and the
 * limiter of failed attempts on a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "core/auth.h"
#include "lib/err.h"

static void test_scope_names(void **state)
{
    enum auth_scope s;
    assert_int_equal(auth_scope_parse("read", &s), 0);
    assert_int_equal(s, AUTH_SCOPE_READ);
    assert_int_equal(auth_scope_parse("operate", &s), 0);
    assert_int_equal(s, AUTH_SCOPE_OPERATE);
    assert_int_equal(auth_scope_parse("admin", &s), 0);
    assert_int_equal(s, AUTH_SCOPE_ADMIN);
    assert_int_equal(auth_scope_parse("none", &s), BERTH_EINVAL);
    assert_int_equal(auth_scope_parse("Admin", &s), BERTH_EINVAL);
    assert_int_equal(auth_scope_parse("", &s), BERTH_EINVAL);
    assert_string_equal(auth_scope_name(AUTH_SCOPE_OPERATE), "operate");
    assert_true(AUTH_SCOPE_READ < AUTH_SCOPE_OPERATE);
    assert_true(AUTH_SCOPE_OPERATE < AUTH_SCOPE_ADMIN);
}

static void test_route_scopes(void **state)
{
    assert_int_equal(auth_route_scope("GET", "/v1/stats"), AUTH_SCOPE_READ);
    assert_int_equal(auth_route_scope("GET", "/healthz"), AUTH_SCOPE_READ);
    assert_int_equal(auth_route_scope("GET", "/v1/cluster"), AUTH_SCOPE_READ);
    assert_int_equal(auth_route_scope("GET", "/v1/ships"), AUTH_SCOPE_READ);
    assert_int_equal(auth_route_scope("GET", "/v1/ships/ann"), AUTH_SCOPE_READ);
    assert_int_equal(auth_route_scope("POST", "/v1/ships"), AUTH_SCOPE_OPERATE);
    assert_int_equal(auth_route_scope("DELETE", "/v1/ships/ann"),
                     AUTH_SCOPE_OPERATE);
    assert_int_equal(auth_route_scope("POST", "/v1/ships/ann/send"),
                     AUTH_SCOPE_OPERATE);
    assert_int_equal(auth_route_scope("POST", "/v1/ships/ann/sleep"),
                     AUTH_SCOPE_OPERATE);
    assert_int_equal(auth_route_scope("POST", "/v1/ships/ann/wake"),
                     AUTH_SCOPE_OPERATE);
    assert_int_equal(auth_route_scope("POST", "/v1/cluster/join"),
                     AUTH_SCOPE_ADMIN);
    assert_int_equal(auth_route_scope("DELETE", "/v1/cluster/hosts/2"),
                     AUTH_SCOPE_ADMIN);
    assert_int_equal(auth_route_scope("POST", "/v1/tokens"), AUTH_SCOPE_ADMIN);
    assert_int_equal(auth_route_scope("GET", "/v1/tokens"), AUTH_SCOPE_ADMIN);
    assert_int_equal(auth_route_scope("DELETE", "/v1/tokens/abc"),
                     AUTH_SCOPE_ADMIN);
    /* A ship's tree is a look; only GET is one. */
    assert_int_equal(auth_route_scope("GET", "/v1/ships/a/tree"),
                     AUTH_SCOPE_READ);
    assert_int_equal(auth_route_scope("POST", "/v1/ships/a/tree"),
                     AUTH_SCOPE_ADMIN);
    /* A "*" is one segment, never empty and never two. */
    assert_int_equal(auth_route_scope("GET", "/v1/ships/a/send"),
                     AUTH_SCOPE_ADMIN);
    assert_int_equal(auth_route_scope("GET", "/v1/ships/"), AUTH_SCOPE_ADMIN);
    assert_int_equal(auth_route_scope("POST", "/v1/ships//send"),
                     AUTH_SCOPE_ADMIN);
    /* Anything not in the table needs admin: it fails closed. */
    assert_int_equal(auth_route_scope("PUT", "/v1/stats"), AUTH_SCOPE_ADMIN);
    assert_int_equal(auth_route_scope("GET", "/v1/secret"), AUTH_SCOPE_ADMIN);
    assert_int_equal(auth_route_scope("GET", "/v1/statsx"), AUTH_SCOPE_ADMIN);
}

static void test_route_table_is_whole(void **state)
{
    size_t n;
    const struct auth_route *r = auth_routes(&n);
    assert_true(n >= 15);
    for (size_t i = 0; i < n; i++) {
        assert_true(r[i].scope >= AUTH_SCOPE_READ &&
                    r[i].scope <= AUTH_SCOPE_ADMIN);
        /* Each pattern matches itself with a segment in place of "*". */
        char path[128];
        size_t k = 0;
        for (const char *p = r[i].path; *p != '\0'; p++) {
            if (*p == '*') {
                memcpy(path + k, "x1", 2);
                k += 2;
            } else {
                path[k++] = *p;
            }
        }
        path[k] = '\0';
        assert_int_equal(auth_route_scope(r[i].method, path), r[i].scope);
        /* Only GETs are read. */
        if (r[i].scope == AUTH_SCOPE_READ) {
            assert_string_equal(r[i].method, "GET");
        }
    }
}

static void test_token_text_and_hash(void **state)
{
    char text[AUTH_TOKEN_TEXT_SIZE], other[AUTH_TOKEN_TEXT_SIZE];
    uint8_t hash[AUTH_HASH_SIZE], again[AUTH_HASH_SIZE], h2[AUTH_HASH_SIZE];
    auth_token_new(text, hash);
    assert_int_equal(strlen(text), AUTH_TOKEN_TEXT_SIZE - 1);
    assert_memory_equal(text, "bt_", 3);
    assert_int_equal(auth_token_hash(text, again), 0);
    assert_true(auth_hash_equal(hash, again));
    auth_token_new(other, h2);
    assert_string_not_equal(text, other);
    assert_false(auth_hash_equal(hash, h2));

    /* One character changed: another hash, or no token at all. */
    char changed[AUTH_TOKEN_TEXT_SIZE];
    memcpy(changed, text, sizeof changed);
    changed[10] = changed[10] == 'A' ? 'B' : 'A';
    assert_int_equal(auth_token_hash(changed, again), 0);
    assert_false(auth_hash_equal(hash, again));

    assert_int_equal(auth_token_hash("", again), BERTH_EINVAL);
    assert_int_equal(auth_token_hash("bt_short", again), BERTH_EINVAL);
    memcpy(changed, text, sizeof changed);
    changed[0] = 'x';
    assert_int_equal(auth_token_hash(changed, again), BERTH_EINVAL);
    memcpy(changed, text, sizeof changed);
    changed[20] = '+'; /* not base64url */
    assert_int_equal(auth_token_hash(changed, again), BERTH_EINVAL);
    char longer[AUTH_TOKEN_TEXT_SIZE + 1];
    memcpy(longer, text, AUTH_TOKEN_TEXT_SIZE - 1);
    memcpy(longer + AUTH_TOKEN_TEXT_SIZE - 1, "A", 2);
    assert_int_equal(auth_token_hash(longer, again), BERTH_EINVAL);
}

static void test_known_hash(void **state)
{
    /* 32 zero bytes: the hash is fixed, on every host and every version. */
    const char *zero = "bt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    uint8_t hash[AUTH_HASH_SIZE], again[AUTH_HASH_SIZE];
    char id[AUTH_ID_SIZE], id2[AUTH_ID_SIZE];
    assert_int_equal(auth_token_hash(zero, hash), 0);
    assert_int_equal(auth_token_hash(zero, again), 0);
    assert_memory_equal(hash, again, sizeof hash);
    auth_token_id(hash, id);
    assert_int_equal(strlen(id), AUTH_ID_LEN);
    for (int i = 0; i < AUTH_ID_LEN; i++) {
        assert_true((id[i] >= '0' && id[i] <= '9') ||
                    (id[i] >= 'a' && id[i] <= 'f'));
    }
    auth_token_id(again, id2);
    assert_string_equal(id, id2);
}

static void test_bearer(void **state)
{
    char text[AUTH_TOKEN_TEXT_SIZE], value[128];
    uint8_t hash[AUTH_HASH_SIZE], got[AUTH_HASH_SIZE];
    auth_token_new(text, hash);
    snprintf(value, sizeof value, "Bearer %s", text);
    assert_int_equal(auth_bearer_hash(value, got), 0);
    assert_true(auth_hash_equal(hash, got));
    snprintf(value, sizeof value, "  bearer   %s  ", text);
    assert_int_equal(auth_bearer_hash(value, got), 0);
    assert_true(auth_hash_equal(hash, got));
    snprintf(value, sizeof value, "Basic %s", text);
    assert_int_equal(auth_bearer_hash(value, got), BERTH_EINVAL);
    snprintf(value, sizeof value, "Bearer%s", text);
    assert_int_equal(auth_bearer_hash(value, got), BERTH_EINVAL);
    snprintf(value, sizeof value, "Bearer %s x", text);
    assert_int_equal(auth_bearer_hash(value, got), BERTH_EINVAL);
    assert_int_equal(auth_bearer_hash("Bearer", got), BERTH_EINVAL);
    assert_int_equal(auth_bearer_hash("", got), BERTH_EINVAL);
}

static const uint8_t addr_a[16] = {[10] = 0xff, [11] = 0xff, 127, 0, 0, 1};
static const uint8_t addr_b[16] = {[10] = 0xff, [11] = 0xff, 10, 0, 0, 2};

static void test_limiter_burst_then_refill(void **state)
{
    static struct auth_limiter l;
    auth_limiter_init(&l, 3, 2); /* 3 at once, then 2 a second */
    uint64_t t = 1000000;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(auth_limiter_check(&l, addr_a, t), 0);
        auth_limiter_fail(&l, addr_a, t);
    }
    /* Empty: refused, and told for how long (half a second). */
    assert_int_equal(auth_limiter_check(&l, addr_a, t), 500);
    assert_int_equal(auth_limiter_check(&l, addr_a, t + 100), 400);
    /* Another address is not touched. */
    assert_int_equal(auth_limiter_check(&l, addr_b, t), 0);
    /* Half a second later one more try. */
    assert_int_equal(auth_limiter_check(&l, addr_a, t + 500), 0);
    auth_limiter_fail(&l, addr_a, t + 500);
    assert_true(auth_limiter_check(&l, addr_a, t + 500) > 0);
    /* Long after, the whole burst again, no more. */
    t += 60000;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(auth_limiter_check(&l, addr_a, t), 0);
        auth_limiter_fail(&l, addr_a, t);
    }
    assert_true(auth_limiter_check(&l, addr_a, t) > 0);
    /* A clock that goes back refills nothing and breaks nothing. */
    assert_true(auth_limiter_check(&l, addr_a, t - 5000) > 0);
    assert_int_equal(auth_limiter_check(&l, addr_a, t + 500), 0);
}

static void test_limiter_table_full(void **state)
{
    static struct auth_limiter l;
    auth_limiter_init(&l, 1, 1);
    uint64_t t = 5000;
    uint8_t addr[16] = {0};
    /* Fill every slot with an address that failed once (bucket empty). */
    for (int i = 0; i < AUTH_LIMIT_SLOTS; i++) {
        addr[0] = (uint8_t)i;
        addr[1] = (uint8_t)(i >> 8);
        auth_limiter_fail(&l, addr, t + (uint64_t)i);
    }
    addr[0] = 7;
    addr[1] = 0;
    assert_true(auth_limiter_check(&l, addr, t + 300) > 0);
    /* A new address takes the least recently failed slot (address 0). */
    auth_limiter_fail(&l, addr_a, t + 300);
    assert_true(auth_limiter_check(&l, addr_a, t + 300) > 0);
    memset(addr, 0, sizeof addr);
    assert_int_equal(auth_limiter_check(&l, addr, t + 300), 0);
    addr[0] = 7;
    assert_true(auth_limiter_check(&l, addr, t + 300) > 0);
}

static void test_limiter_log_throttle(void **state)
{
    static struct auth_limiter l;
    uint64_t suppressed = 99;
    auth_limiter_init(&l, 10, 1);
    l.log_burst = 2;
    l.log_per_sec = 1;
    l.log.level = 2000;
    uint64_t t = 0;
    assert_true(auth_limiter_log(&l, t, &suppressed));
    assert_int_equal(suppressed, 0);
    assert_true(auth_limiter_log(&l, t, &suppressed));
    for (int i = 0; i < 1000; i++) {
        assert_false(auth_limiter_log(&l, t + 10, &suppressed));
    }
    /* A second later one line, which says what was left out. */
    assert_true(auth_limiter_log(&l, t + 1010, &suppressed));
    assert_int_equal(suppressed, 1000);
    assert_false(auth_limiter_log(&l, t + 1010, &suppressed));
    assert_true(auth_limiter_log(&l, t + 2010, &suppressed));
    assert_int_equal(suppressed, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scope_names),
        cmocka_unit_test(test_route_scopes),
        cmocka_unit_test(test_route_table_is_whole),
        cmocka_unit_test(test_token_text_and_hash),
        cmocka_unit_test(test_known_hash),
        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_limiter_burst_then_refill),
        cmocka_unit_test(test_limiter_table_full),
        cmocka_unit_test(test_limiter_log_throttle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
