/* The store's ship heads in memory: a table against a plain model, under
 * seeded random changes, undone entries and failed allocations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/err.h"
#include "lib/mem.h"
#include "store/heads.h"

#define SIDS 300 /* enough to grow the table a few times */

/* The model: one optional head per sid. */
struct model {
    bool has[SIDS + 1];
    struct heads_entry e[SIDS + 1];
};

static struct heads_entry entry(uint64_t sid, uint64_t n, bool dirty)
{
    struct heads_entry e = {
        .sid = sid, .last_event = n, .alarm_ns = n * 7, .dirty = dirty};
    memset(e.hash, (int)(n & 0xff), sizeof e.hash);
    return e;
}

static void check(const struct heads *h, const struct model *m)
{
    size_t n = 0;
    for (uint64_t sid = 1; sid <= SIDS; sid++) {
        const struct heads_entry *e = heads_find(h, sid);
        if (!m->has[sid]) {
            assert_null(e);
            continue;
        }
        n++;
        assert_non_null(e);
        assert_memory_equal(e, &m->e[sid], sizeof *e);
    }
    assert_int_equal(h->n, n);
}

static void test_set_find_remove(void **state)
{
    (void)state;
    struct heads h;
    heads_init(&h);
    assert_null(heads_find(&h, 1));
    struct heads_entry a = entry(1, 5, true);
    assert_int_equal(heads_set(&h, &a), 0);
    assert_memory_equal(heads_find(&h, 1), &a, sizeof a);
    a = entry(1, 6, false);
    assert_int_equal(heads_set(&h, &a), 0);
    assert_int_equal(heads_find(&h, 1)->last_event, 6);
    assert_int_equal(h.n, 1);
    assert_int_equal(heads_remove(&h, 1), 0);
    assert_null(heads_find(&h, 1));
    assert_int_equal(heads_remove(&h, 1), 0);
    assert_int_equal(h.n, 0);
    heads_close(&h);
}

static int count_dirty(const struct heads_entry *e, void *arg)
{
    (void)e;
    (*(int *)arg)++;
    return 0;
}

static int stop_at_first(const struct heads_entry *e, void *arg)
{
    (void)e;
    (void)arg;
    return 42;
}

static void test_dirty_and_clean(void **state)
{
    (void)state;
    struct heads h;
    heads_init(&h);
    for (uint64_t sid = 1; sid <= 10; sid++) {
        struct heads_entry e = entry(sid, sid, sid % 2 == 0);
        assert_int_equal(heads_set(&h, &e), 0);
    }
    int dirty = 0;
    assert_int_equal(heads_foreach_dirty(&h, count_dirty, &dirty), 0);
    assert_int_equal(dirty, 5);
    assert_int_equal(heads_foreach_dirty(&h, stop_at_first, NULL), 42);
    assert_int_equal(heads_mark_clean(&h), 0);
    dirty = 0;
    assert_int_equal(heads_foreach_dirty(&h, count_dirty, &dirty), 0);
    assert_int_equal(dirty, 0);
    assert_int_equal(h.n, 10);
    heads_clear(&h);
    assert_int_equal(h.n, 0);
    assert_null(heads_find(&h, 3));
    heads_close(&h);
}

/* Random sets, removes and cleanings in entries, each entry ended or
 * undone, checked against the model after every step. Removal shifts
 * heads back along their probe paths, which the many collisions of a
 * growing table exercise. */
static void test_random_entries_match_model(void **state)
{
    (void)state;
    for (unsigned seed = 1; seed <= 20; seed++) {
        srand(seed);
        struct heads h;
        heads_init(&h);
        struct model m, saved;
        memset(&m, 0, sizeof m);
        for (int round = 0; round < 200; round++) {
            saved = m;
            heads_entry_begin(&h);
            int ops = 1 + rand() % 40;
            for (int i = 0; i < ops; i++) {
                uint64_t sid = 1 + (uint64_t)(rand() % SIDS);
                int op = rand() % 10;
                if (op < 6) {
                    struct heads_entry e =
                        entry(sid, (uint64_t)rand(), rand() % 2 == 0);
                    assert_int_equal(heads_set(&h, &e), 0);
                    m.has[sid] = true;
                    m.e[sid] = e;
                } else if (op < 9) {
                    assert_int_equal(heads_remove(&h, sid), 0);
                    m.has[sid] = false;
                } else {
                    assert_int_equal(heads_mark_clean(&h), 0);
                    for (int s = 1; s <= SIDS; s++) {
                        m.e[s].dirty = false;
                    }
                }
                check(&h, &m);
            }
            if (rand() % 3 == 0) {
                heads_entry_undo(&h);
                m = saved;
            } else {
                heads_entry_end(&h);
            }
            check(&h, &m);
            /* Outside an entry nothing is recorded. */
            assert_int_equal(h.undo_n, 0);
        }
        heads_close(&h);
    }
}

/* Every allocation the table makes can fail: the call reports it and the
 * table is as it was. */
static void test_allocation_failures_change_nothing(void **state)
{
    (void)state;
    for (int n = 0;; n++) {
        struct heads h;
        heads_init(&h);
        struct model m;
        memset(&m, 0, sizeof m);
        mem_fault_countdown(n);
        heads_entry_begin(&h);
        bool failed = false;
        for (uint64_t sid = 1; sid <= SIDS && !failed; sid++) {
            struct heads_entry e = entry(sid, sid, true);
            int rv = heads_set(&h, &e);
            if (rv != 0) {
                assert_int_equal(rv, BERTH_ENOMEM);
                failed = true;
            } else {
                m.has[sid] = true;
                m.e[sid] = e;
            }
            check(&h, &m);
        }
        for (uint64_t sid = 1; sid <= SIDS && !failed; sid += 3) {
            int rv = heads_remove(&h, sid);
            if (rv != 0) {
                assert_int_equal(rv, BERTH_ENOMEM);
                failed = true;
            } else {
                m.has[sid] = false;
            }
            check(&h, &m);
        }
        bool hit = mem_fault_hit();
        mem_fault_countdown(-1);
        /* Undoing the entry leaves an empty table, whatever failed. */
        heads_entry_undo(&h);
        assert_int_equal(h.n, 0);
        heads_close(&h);
        if (!hit) {
            assert_false(failed);
            break;
        }
        assert_true(failed);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_find_remove),
        cmocka_unit_test(test_dirty_and_clean),
        cmocka_unit_test(test_random_entries_match_model),
        cmocka_unit_test(test_allocation_failures_change_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
