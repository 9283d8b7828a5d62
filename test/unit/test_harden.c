/* Hardening's setup and its working directories: the pool made ahead, a
 * directory given back empty is reused with its mode as made, one left
 * with files goes, a bad user is refused, and a range of uids gives each
 * running program one of its own. What a hardened program can
 * and cannot do is tested on real hosts (test/integration/test_hardening.py).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/err.h"
#include "proc/harden.h"

/* How many entries the directory at path holds, . and .. aside; -1 when
 * it is not there. */
static int entries(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL) {
        return -1;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    }
    closedir(d);
    return n;
}

static void test_directories_made_ahead_and_given_back(void **state)
{
    (void)state;
    char data[] = "/tmp/berth-harden-XXXXXX";
    assert_non_null(mkdtemp(data));
    char root[PATH_MAX], errmsg[ERRMSG_SIZE];
    snprintf(root, sizeof root, "%s/programs", data);
    /* Something an earlier run left is removed at setup. */
    assert_int_equal(mkdir(root, 0700), 0);
    char old[PATH_MAX + 16];
    snprintf(old, sizeof old, "%s/run.9999", root);
    assert_int_equal(mkdir(old, 0700), 0);

    struct harden_config cfg = {.parts = HARDEN_DIR, .data_dir = data};
    assert_int_equal(harden_setup(&cfg, errmsg), 0);
    assert_int_equal(harden_parts(), HARDEN_DIR);
    assert_int_equal(entries(old), -1);
    int made = entries(root);
    assert_true(made >= 32);
    assert_false(harden_dir_low());

    char a[PATH_MAX], b[PATH_MAX];
    assert_int_equal(harden_dir_take(a, -1), 0);
    assert_int_equal(harden_dir_take(b, -1), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(entries(a), 0);
    struct stat st;
    assert_int_equal(stat(a, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    /* A program left a file: the directory goes, file and all. */
    char file[PATH_MAX + 8];
    snprintf(file, sizeof file, "%s/left", a);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    /* And directories within, and a link out, which is removed and not
     * followed. */
    char sub[PATH_MAX + 64], outside[64], link[PATH_MAX + 32];
    snprintf(sub, sizeof sub, "%s/d1", a);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(sub, sizeof sub, "%s/d1/d2", a);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(sub, sizeof sub, "%s/d1/d2/f", a);
    assert_non_null(f = fopen(sub, "w"));
    fclose(f);
    snprintf(outside, sizeof outside, "%s/outside", data);
    assert_int_equal(mkdir(outside, 0700), 0);
    snprintf(sub, sizeof sub, "%s/keep", outside);
    assert_non_null(f = fopen(sub, "w"));
    fclose(f);
    snprintf(link, sizeof link, "%s/d1/out", a);
    assert_int_equal(symlink(outside, link), 0);
    harden_dir_give(a);
    assert_int_equal(entries(a), -1);
    assert_int_equal(entries(outside), 1);

    /* An empty one goes back, its mode as made, and is taken again. */
    assert_int_equal(chmod(b, 0755), 0);
    harden_dir_give(b);
    assert_int_equal(stat(b, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    char again[PATH_MAX];
    assert_int_equal(harden_dir_take(again, -1), 0);
    assert_string_equal(again, b);

    /* Taken down past half, the pool asks for a refill, which fills it. */
    char taken[64][PATH_MAX];
    int n = 0;
    while (!harden_dir_low() && n < 64) {
        assert_int_equal(harden_dir_take(taken[n++], -1), 0);
    }
    assert_true(harden_dir_low());
    harden_dir_refill();
    assert_false(harden_dir_low());
    /* An empty pool still gives a directory: made at once. */
    for (int i = 0; i < 64; i++) {
        char p[PATH_MAX];
        assert_int_equal(harden_dir_take(p, -1), 0);
        assert_int_equal(entries(p), 0);
    }

    /* Off, no directory at all. */
    cfg.parts = 0;
    assert_int_equal(harden_setup(&cfg, errmsg), 0);
    assert_int_equal(harden_dir_take(a, -1), 0);
    assert_string_equal(a, "");
    harden_cleanup();
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf %s", data);
    assert_int_equal(system(cmd), 0);
}

static void test_filter_builds_and_a_bad_user_is_refused(void **state)
{
    (void)state;
    char errmsg[ERRMSG_SIZE];
    struct harden_config cfg = {.parts = HARDEN_SECCOMP | HARDEN_RLIMITS};
    assert_int_equal(harden_setup(&cfg, errmsg), 0);
    assert_int_equal(harden_parts(), HARDEN_SECCOMP | HARDEN_RLIMITS);
    assert_string_equal(harden_network(), "host");
    assert_int_equal(harden_uid(), -1);

    cfg.user = "no-such-user-for-berth";
    assert_int_equal(harden_setup(&cfg, errmsg), BERTH_EINVAL);
    assert_non_null(strstr(errmsg, "no user named no-such-user-for-berth"));
    cfg.user = "0";
    assert_int_equal(harden_setup(&cfg, errmsg), 0);
    assert_int_equal(harden_uid(), 0);
    harden_cleanup();
}

static void test_a_uid_of_its_own_for_each_run(void **state)
{
    (void)state;
    char errmsg[ERRMSG_SIZE];
    struct harden_config cfg = {.uids = "300000-300002"};
    if (geteuid() != 0) {
        /* Only root can change a program's uid. */
        assert_int_equal(harden_setup(&cfg, errmsg), BERTH_EINVAL);
        assert_non_null(strstr(errmsg, "only when the host runs as root"));
        return;
    }
    assert_int_equal(harden_setup(&cfg, errmsg), 0);
    long first = 0;
    assert_int_equal(harden_uids(&first), 3);
    assert_int_equal(first, 300000);
    assert_int_equal(harden_uid(), -1);

    /* Three runs, three uids; a fourth finds none free. */
    long u[4];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(harden_uid_take(&u[i]), 0);
        assert_int_equal(u[i], 300000 + i);
    }
    assert_int_equal(harden_uid_take(&u[3]), EUSERS);
    /* One given back is taken again; the range is taken round, so a uid
     * given back waits behind the others that are free. */
    harden_uid_give(u[1]);
    assert_int_equal(harden_uid_take(&u[3]), 0);
    assert_int_equal(u[3], 300001);
    harden_uid_give(u[0]);
    harden_uid_give(u[2]);
    assert_int_equal(harden_uid_take(&u[0]), 0);
    assert_int_equal(u[0], 300002);
    assert_int_equal(harden_uid_take(&u[2]), 0);
    assert_int_equal(u[2], 300000);
    /* Uids outside the range, and the host's own, are no one's to give. */
    harden_uid_give(-1);
    harden_uid_give(299999);
    harden_uid_give(300003);
    assert_int_equal(harden_uid_take(&u[3]), EUSERS);

    /* Bad ranges, and a range with a user, are refused. */
    const char *bad[] = {"5-4",  "0-3",  "abc", "1-",
                         "-1-3", "1-2x", "1",   "1-2000000"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct harden_config b = {.uids = bad[i]};
        assert_int_equal(harden_setup(&b, errmsg), BERTH_EINVAL);
        assert_non_null(strstr(errmsg, "FIRST-LAST"));
    }
    struct harden_config both = {.user = "0", .uids = "300000-300002"};
    assert_int_equal(harden_setup(&both, errmsg), BERTH_EINVAL);
    assert_non_null(strstr(errmsg, "one or the other"));
    harden_cleanup();
    assert_int_equal(harden_uids(&first), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_directories_made_ahead_and_given_back),
        cmocka_unit_test(test_filter_builds_and_a_bad_user_is_refused),
        cmocka_unit_test(test_a_uid_of_its_own_for_each_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
