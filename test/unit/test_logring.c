/* The log ring: a file that keeps the last bytes of a stream, read by
 * offset, resized, and never growing past its capacity. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/logring.h"

static char dir[64];
static char path[128];

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/berth-logring-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        return -1;
    }
    snprintf(path, sizeof path, "%s/ring", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    rmdir(dir);
    return 0;
}

/* Read [from, ...) at most max bytes as a C string. */
static char *get(uint64_t from, size_t max, uint64_t *start, uint64_t *end)
{
    struct buf b;
    buf_init(&b);
    assert_int_equal(logring_read(path, from, max, &b, start, end), 0);
    buf_put_u8(&b, 0);
    return (char *)b.data;
}

static void test_missing_reads_empty(void **state)
{
    (void)state;
    uint64_t s = 9, e = 9;
    char *t = get(0, 100, &s, &e);
    assert_string_equal(t, "");
    assert_int_equal(s, 0);
    assert_int_equal(e, 0);
    free(t);
    assert_int_equal(logring_append(path, 0, "x", 1), BERTH_EINVAL);
}

static void test_wraps_and_keeps_the_last_bytes(void **state)
{
    (void)state;
    uint64_t s, e;
    assert_int_equal(logring_append(path, 10, "abcdef", 6), 0);
    char *t = get(0, 100, &s, &e);
    assert_string_equal(t, "abcdef");
    assert_int_equal(e, 6);
    free(t);
    assert_int_equal(logring_append(path, 10, "ghijkl", 6), 0);
    /* 12 written, 10 kept: "cdefghijkl". */
    t = get(0, 100, &s, &e);
    assert_string_equal(t, "cdefghijkl");
    assert_int_equal(s, 2);
    assert_int_equal(e, 12);
    free(t);
    /* After an offset, and a bounded count. */
    t = get(7, 3, &s, &e);
    assert_string_equal(t, "hij");
    assert_int_equal(s, 7);
    free(t);
    /* The last bytes. */
    t = get(UINT64_MAX, 4, &s, &e);
    assert_string_equal(t, "ijkl");
    assert_int_equal(s, 8);
    free(t);
    /* Nothing new after the end; past it (another ring): from the oldest. */
    t = get(12, 100, &s, &e);
    assert_string_equal(t, "");
    assert_int_equal(s, 12);
    free(t);
    t = get(50, 100, &s, &e);
    assert_string_equal(t, "cdefghijkl");
    free(t);
    /* More than the capacity at once: only its end is kept. */
    assert_int_equal(logring_append(path, 10, "0123456789ABCDE", 15), 0);
    t = get(0, 100, &s, &e);
    assert_string_equal(t, "56789ABCDE");
    assert_int_equal(e, 27);
    free(t);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size <= LOGRING_HEADER + 10);
}

static void test_a_new_capacity_keeps_the_newest(void **state)
{
    (void)state;
    uint64_t s, e;
    assert_int_equal(logring_append(path, 10, "abcdefghijkl", 12), 0);
    assert_int_equal(logring_append(path, 4, "m", 1), 0);
    char *t = get(0, 100, &s, &e);
    assert_string_equal(t, "jklm");
    assert_int_equal(e, 13);
    free(t);
    assert_int_equal(logring_append(path, 100, "n", 1), 0);
    t = get(0, 100, &s, &e);
    assert_string_equal(t, "jklmn");
    assert_int_equal(s, 9);
    free(t);
}

static void test_not_a_ring(void **state)
{
    (void)state;
    FILE *f = fopen(path, "w");
    fputs("this is not a ring file, but it is long enough", f);
    fclose(f);
    struct buf b;
    buf_init(&b);
    uint64_t s, e;
    assert_int_equal(logring_read(path, 0, 10, &b, &s, &e), BERTH_ECORRUPT);
    /* A write starts it anew. */
    assert_int_equal(logring_append(path, 8, "ok", 2), 0);
    char *t = get(0, 100, &s, &e);
    assert_string_equal(t, "ok");
    free(t);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_missing_reads_empty, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_wraps_and_keeps_the_last_bytes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_new_capacity_keeps_the_newest,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_ring, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
