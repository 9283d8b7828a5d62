/* A fixture for tests that work on files: a fresh directory in the
 * current one, made by fx_dir_setup_named and removed with everything in it
 * by fx_dir_teardown, and one file's path in it. Include after cmocka.h. */
#ifndef BERTH_TEST_FX_DIR_H
#define BERTH_TEST_FX_DIR_H

#include <stdio.h>
#include <stdlib.h>

struct fx {
    char dir[64];
    char path[128]; /* dir/file, the file named at setup */
};

/* For a cmocka setup: *state gets a struct fx whose dir is new, named
 * prefix.XXXXXX, and whose path is dir/file; fx_dir_teardown frees it. */
static inline int fx_dir_setup_named(void **state, const char *prefix,
                                     const char *file)
{
    struct fx *x = calloc(1, sizeof *x);
    snprintf(x->dir, sizeof x->dir, "%s.XXXXXX", prefix);
    assert_non_null(mkdtemp(x->dir));
    snprintf(x->path, sizeof x->path, "%s/%s", x->dir, file);
    *state = x;
    return 0;
}

/* teardown for cmocka: the directory goes, with all it holds. */
static inline int fx_dir_teardown(void **state)
{
    struct fx *x = *state;
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", x->dir);
    assert_int_equal(system(cmd), 0);
    free(x);
    return 0;
}

#endif
