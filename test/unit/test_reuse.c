/* Kept replies: found by their exact request, bounded, cleared by epoch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "core/reuse.h"
#include "lib/err.h"
#include "lib/mem.h"

static int put(struct reuse *r, struct reuse_pool *p, const char *key,
               const char *body)
{
    return reuse_put(r, p, r->epoch, key, strlen(key), 200, "text/plain", body,
                     strlen(body));
}

static const char *body_of(struct reuse *r, const char *key)
{
    static char out[64];
    const struct reuse_entry *e = reuse_find(r, key, strlen(key));
    if (e == NULL) {
        return NULL;
    }
    snprintf(out, sizeof out, "%.*s", (int)e->body_len, (const char *)e->body);
    return out;
}

static void test_find_exact_key(void **state)
{
    struct reuse_pool p;
    struct reuse r;
    reuse_pool_init(&p, 1 << 20);
    reuse_init(&r);
    assert_int_equal(put(&r, &p, "GET /a", "one"), 0);
    assert_string_equal(body_of(&r, "GET /a"), "one");
    assert_null(body_of(&r, "GET /a "));
    assert_null(body_of(&r, "GET /"));
    const struct reuse_entry *e = reuse_find(&r, "GET /a", 6);
    assert_int_equal(e->status, 200);
    assert_string_equal(e->content_type, "text/plain");
    /* The same key again replaces the reply. */
    assert_int_equal(put(&r, &p, "GET /a", "two"), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(body_of(&r, "GET /a"), "two");
    /* No content type, empty body. */
    assert_int_equal(reuse_put(&r, &p, r.epoch, "k", 1, 204, NULL, NULL, 0), 0);
    e = reuse_find(&r, "k", 1);
    assert_null(e->content_type);
    assert_int_equal(e->body_len, 0);
    reuse_clear(&r, &p);
    assert_int_equal(p.bytes, 0);
}

static void test_least_recent_makes_way(void **state)
{
    struct reuse_pool p;
    struct reuse r;
    char key[8];
    reuse_pool_init(&p, 1 << 20);
    reuse_init(&r);
    for (int i = 0; i < REUSE_PER_SHIP; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(put(&r, &p, key, "v"), 0);
    }
    assert_non_null(body_of(&r, "k0")); /* k1 is now the oldest */
    assert_int_equal(put(&r, &p, "new", "v"), 0);
    assert_int_equal(r.n, REUSE_PER_SHIP);
    assert_null(body_of(&r, "k1"));
    assert_non_null(body_of(&r, "k0"));
    assert_non_null(body_of(&r, "new"));
    reuse_clear(&r, &p);
    assert_int_equal(r.n, 0);
    assert_int_equal(p.bytes, 0);
}

static void test_epoch_and_bounds(void **state)
{
    struct reuse_pool p;
    struct reuse r;
    reuse_pool_init(&p, 1 << 20);
    reuse_init(&r);
    uint64_t before = r.epoch;
    reuse_clear(&r, &p);
    assert_int_equal(r.epoch, before + 1);
    /* A reply of the epoch before the clear is not kept. */
    assert_int_equal(reuse_put(&r, &p, before, "k", 1, 200, NULL, "v", 1),
                     BERTH_EINVAL);
    assert_int_equal(r.n, 0);
    static char big[REUSE_ENTRY_MAX + 1];
    memset(big, 'x', sizeof big);
    assert_int_equal(
        reuse_put(&r, &p, r.epoch, "k", 1, 200, NULL, big, sizeof big),
        BERTH_ETOOBIG);
    assert_int_equal(
        reuse_put(&r, &p, r.epoch, big, sizeof big, 200, NULL, "v", 1),
        BERTH_ETOOBIG);
    /* The pool's bound holds over every ship. */
    struct reuse other;
    reuse_init(&other);
    /* Each entry: a 1-byte key, "text/plain" and its NUL, a 1-byte body. */
    reuse_pool_init(&p, 2 * (sizeof(struct reuse_entry) + 1 + 11 + 1));
    assert_int_equal(put(&r, &p, "a", "1"), 0);
    assert_int_equal(put(&other, &p, "b", "2"), 0);
    assert_int_equal(put(&other, &p, "c", "3"), BERTH_ETOOBIG);
    reuse_clear(&r, &p);
    assert_int_equal(put(&other, &p, "c", "3"), 0);
    reuse_clear(&other, &p);
    assert_int_equal(p.bytes, 0);
}

static void test_out_of_memory(void **state)
{
    struct reuse_pool p;
    struct reuse r;
    reuse_pool_init(&p, 1 << 20);
    reuse_init(&r);
    mem_fault_countdown(0);
    assert_int_equal(put(&r, &p, "a", "1"), BERTH_ENOMEM);
    mem_fault_countdown(-1);
    assert_int_equal(r.n, 0);
    assert_int_equal(p.bytes, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_exact_key),
        cmocka_unit_test(test_least_recent_makes_way),
        cmocka_unit_test(test_epoch_and_bounds),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
