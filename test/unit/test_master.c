/* The master key file: made once, the same key at every open, sealed under
 * a passphrase or a key file when one is given, and refused with a clear
 * message without its secret, with a wrong one, or when altered. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "crypto/master.h"
#include "lib/err.h"
#include "fx_dir.h"

static int setup(void **state)
{
    return fx_dir_setup_named(state, "master-test", "master.key");
}

#define teardown fx_dir_teardown

static const struct master_secret pass = {.how = MASTER_PASSPHRASE,
                                          .bytes =
                                              (const uint8_t *)"correct horse",
                                          .len = 13};

static int open_key(const char *path, const struct master_secret *s,
                    uint8_t *key, enum master_how *how, char *errmsg)
{
    errmsg[0] = '\0';
    return master_open(path, s, key, how, NULL, errmsg);
}

static long file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    return (long)st.st_size;
}

static void flip_byte(const char *path, long at)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, at, SEEK_SET), 0);
    int c = fgetc(f);
    assert_int_equal(fseek(f, at, SEEK_SET), 0);
    fputc(c ^ 1, f);
    fclose(f);
}

/* No secret: one key, made once, kept as it is (and said so). */
static void test_plain_key_is_made_once(void **state)
{
    struct fx *x = *state;
    uint8_t a[MASTER_KEY_SIZE], b[MASTER_KEY_SIZE], zero[MASTER_KEY_SIZE] = {0};
    enum master_how how;
    char errmsg[ERRMSG_SIZE];
    assert_int_equal(open_key(x->path, NULL, a, &how, errmsg), 0);
    assert_int_equal(how, MASTER_PLAIN);
    assert_memory_not_equal(a, zero, sizeof a);
    assert_int_equal(file_size(x->path), 72 + 32);
    assert_int_equal(open_key(x->path, NULL, b, &how, errmsg), 0);
    assert_memory_equal(a, b, sizeof a);
    assert_string_equal(master_how_text(how), "beside the data");
}

/* A passphrase seals the key; it opens with the passphrase only. */
static void test_passphrase_seals(void **state)
{
    struct fx *x = *state;
    uint8_t a[MASTER_KEY_SIZE], b[MASTER_KEY_SIZE];
    enum master_how how;
    char errmsg[ERRMSG_SIZE];
    assert_int_equal(open_key(x->path, &pass, a, &how, errmsg), 0);
    assert_int_equal(how, MASTER_PASSPHRASE);
    assert_int_equal(file_size(x->path), 72 + 32 + 16);
    assert_int_equal(open_key(x->path, &pass, b, &how, errmsg), 0);
    assert_memory_equal(a, b, sizeof a);

    struct master_secret wrong = pass;
    wrong.bytes = (const uint8_t *)"correct horsf";
    assert_int_equal(open_key(x->path, &wrong, b, &how, errmsg),
                     BERTH_EREJECTED);
    assert_non_null(strstr(errmsg, "does not open with this passphrase"));
    assert_int_equal(open_key(x->path, NULL, b, &how, errmsg), BERTH_EINVAL);
    assert_non_null(strstr(errmsg, "sealed under a passphrase"));
    assert_non_null(strstr(errmsg, "BERTH_PASSPHRASE"));
    uint8_t kf[MASTER_KEY_SIZE] = {1};
    struct master_secret file = {
        .how = MASTER_KEY_FILE, .bytes = kf, .len = sizeof kf};
    assert_int_equal(open_key(x->path, &file, b, &how, errmsg), BERTH_EINVAL);

    /* A changed salt stretches the passphrase into another key. (Each
     * stretch takes 64 MiB and a moment: the other bytes are tried with a
     * key file.) */
    flip_byte(x->path, 16);
    assert_int_equal(open_key(x->path, &pass, b, &how, errmsg),
                     BERTH_EREJECTED);
    /* Limits no honest file holds are refused before any stretching. */
    flip_byte(x->path, 39);
    assert_int_equal(open_key(x->path, &pass, b, &how, errmsg), BERTH_ECORRUPT);
    assert_non_null(strstr(errmsg, "out of range"));
}

/* A plain key is sealed when a key file is first given, and stays the same
 * key. */
static void test_key_file_seals_a_plain_key(void **state)
{
    struct fx *x = *state;
    uint8_t a[MASTER_KEY_SIZE], b[MASTER_KEY_SIZE];
    enum master_how how;
    char errmsg[ERRMSG_SIZE];
    assert_int_equal(open_key(x->path, NULL, a, &how, errmsg), 0);

    char kpath[160];
    snprintf(kpath, sizeof kpath, "%s/k.hex", x->dir);
    FILE *f = fopen(kpath, "w");
    fprintf(f, "%064x\n", 7);
    fclose(f);
    uint8_t kf[MASTER_KEY_SIZE];
    assert_int_equal(master_read_key_file(kpath, kf, errmsg), 0);
    assert_int_equal(kf[31], 7);
    struct master_secret file = {
        .how = MASTER_KEY_FILE, .bytes = kf, .len = sizeof kf};
    assert_int_equal(open_key(x->path, &file, b, &how, errmsg), 0);
    assert_int_equal(how, MASTER_KEY_FILE);
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(file_size(x->path), 72 + 32 + 16);
    assert_int_equal(open_key(x->path, NULL, b, &how, errmsg), BERTH_EINVAL);
    assert_non_null(strstr(errmsg, "--master-key-file"));
    /* Every byte counts: a changed limit, nonce, sealed key or tag, and
     * the key does not open. */
    long at[] = {33, 41, 50, 80, 110};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        flip_byte(x->path, at[i]);
        assert_int_equal(open_key(x->path, &file, b, &how, errmsg),
                         BERTH_EREJECTED);
        flip_byte(x->path, at[i]);
    }
    assert_int_equal(open_key(x->path, &file, b, &how, errmsg), 0);
    assert_memory_equal(a, b, sizeof a);
    kf[0] ^= 1;
    assert_int_equal(open_key(x->path, &file, b, &how, errmsg),
                     BERTH_EREJECTED);

    f = fopen(kpath, "w");
    fprintf(f, "not a key\n");
    fclose(f);
    assert_int_equal(master_read_key_file(kpath, kf, errmsg), BERTH_EINVAL);
    assert_non_null(strstr(errmsg, "64 hex digits"));
}

/* Anything else in the file's place is refused as corrupt. */
static void test_not_a_key_file(void **state)
{
    struct fx *x = *state;
    uint8_t k[MASTER_KEY_SIZE];
    enum master_how how;
    char errmsg[ERRMSG_SIZE];
    FILE *f = fopen(x->path, "w");
    fprintf(f, "hello");
    fclose(f);
    assert_int_equal(open_key(x->path, NULL, k, &how, errmsg), BERTH_ECORRUPT);
    assert_non_null(strstr(errmsg, "not a master key file"));
}

/* A replaced key opens in place of the old one, kept as the secret given
 * says; its id tells keys apart without showing them. */
static void test_replace_adopts_another_key(void **state)
{
    struct fx *x = *state;
    uint8_t a[MASTER_KEY_SIZE], b[MASTER_KEY_SIZE], theirs[MASTER_KEY_SIZE];
    enum master_how how;
    char errmsg[ERRMSG_SIZE], ida[2 * MASTER_ID_SIZE + 1],
        idb[2 * MASTER_ID_SIZE + 1];
    memset(theirs, 0x5a, sizeof theirs);
    assert_int_equal(open_key(x->path, &pass, a, &how, errmsg), 0);
    assert_int_equal(master_replace(x->path, &pass, theirs, errmsg), 0);
    assert_int_equal(file_size(x->path), 72 + 32 + 16);
    assert_int_equal(open_key(x->path, &pass, b, &how, errmsg), 0);
    assert_int_equal(how, MASTER_PASSPHRASE);
    assert_memory_equal(b, theirs, sizeof b);
    assert_int_equal(open_key(x->path, NULL, b, &how, errmsg), BERTH_EINVAL);
    /* Plain, too. */
    assert_int_equal(master_replace(x->path, NULL, a, errmsg), 0);
    assert_int_equal(open_key(x->path, NULL, b, &how, errmsg), 0);
    assert_int_equal(how, MASTER_PLAIN);
    assert_memory_equal(b, a, sizeof b);
    assert_int_equal(access(x->path, F_OK), 0);
    master_key_id(a, ida);
    master_key_id(theirs, idb);
    assert_int_equal(strlen(ida), 2 * MASTER_ID_SIZE);
    assert_string_not_equal(ida, idb);
    master_key_id(b, idb);
    assert_string_equal(ida, idb);
}

/* A host that rotates keeps the new key as it kept the old one, without
 * the passphrase: master_rewrap with the wrap master_open gave. The same
 * passphrase opens the new file; the wrap of another file does not. */
static void test_rewrap_keeps_a_new_key_the_same_way(void **state)
{
    struct fx *x = *state;
    uint8_t a[MASTER_KEY_SIZE], next[MASTER_KEY_SIZE], b[MASTER_KEY_SIZE];
    enum master_how how;
    char errmsg[ERRMSG_SIZE], path2[4200];
    struct master_wrap wrap;
    assert_int_equal(master_open(x->path, &pass, a, &how, &wrap, errmsg), 0);
    memset(next, 0x42, sizeof next);
    snprintf(path2, sizeof path2, "%s.next", x->path);
    assert_int_equal(master_rewrap(path2, &wrap, next, errmsg), 0);
    assert_int_equal(file_size(path2), 72 + 32 + 16);
    assert_int_equal(master_open_wrapped(path2, &wrap, b, errmsg), 0);
    assert_memory_equal(b, next, sizeof b);
    /* The passphrase itself opens it, as after a restart. */
    assert_int_equal(master_open(path2, &pass, b, &how, NULL, errmsg), 0);
    assert_memory_equal(b, next, sizeof b);
    assert_int_equal(how, MASTER_PASSPHRASE);
    /* A changed byte: refused. */
    flip_byte(path2, 72 + 3);
    assert_int_equal(master_open_wrapped(path2, &wrap, b, errmsg),
                     BERTH_EREJECTED);
    unlink(path2);
    assert_int_equal(master_open_wrapped(path2, &wrap, b, errmsg),
                     BERTH_ENOTFOUND);
    master_wrap_wipe(&wrap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plain_key_is_made_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_passphrase_seals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_file_seals_a_plain_key, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_not_a_key_file, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_rewrap_keeps_a_new_key_the_same_way, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace_adopts_another_key, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
