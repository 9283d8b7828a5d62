/* The check of libraft's segment files on made-up directories: a clean log
 * gives its last index, a torn last write beyond the applied index is let
 * through, and damage that would drop an applied entry, damage with entries
 * after it, and a segment cut short are refused with a message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "consensus/segments.h"
#include "lib/buf.h"
#include "lib/err.h"

#define SEGMENT_SIZE 65536

struct fixture {
    char dir[64];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s", "segments-test.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Append one batch of n command entries of 8 bytes each to b; returns the
 * batch's offset. */
static size_t add_batch(struct buf *b, unsigned n, uint8_t fill)
{
    size_t at = b->len;
    uint8_t header[8 + 16 * 8];
    uint8_t data[8 * 8];
    assert_true(n <= 8);
    memset(header, 0, sizeof header);
    put_le64(header, n);
    for (unsigned i = 0; i < n; i++) {
        put_le64(header + 8 + 16 * i, 1); /* term */
        header[8 + 16 * i + 8] = 1;       /* command */
        put_le32(header + 8 + 16 * i + 12, 8);
    }
    memset(data, fill, sizeof data);
    size_t hlen = 8 + 16 * (size_t)n, dlen = 8 * (size_t)n;
    buf_put_u32(b, segments_crc32(header, hlen, 0));
    buf_put_u32(b, segments_crc32(data, dlen, 0));
    assert_int_equal(buf_append(b, header, hlen), 0);
    assert_int_equal(buf_append(b, data, dlen), 0);
    return at;
}

static void segment_begin(struct buf *b)
{
    buf_init(b);
    buf_put_u64(b, 1); /* format */
}

/* Write size bytes to dir/name: b, cut or padded with zeros (as libraft
 * preallocates). */
static void write_file(const char *dir, const char *name, struct buf *b,
                       size_t size)
{
    char path[128];
    size_t n = b->len < size ? b->len : size;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b->data, 1, n, fp), n);
    for (size_t i = b->len; i < size; i++) {
        fputc(0, fp);
    }
    fclose(fp);
}

static int check(struct fixture *f, uint64_t applied, struct segments_report *r,
                 char *errmsg)
{
    errmsg[0] = '\0';
    return segments_check(f->dir, applied, r, errmsg);
}

/* The bytes of a snapshot's metadata file, as libraft writes it, into b
 * (which the caller frees). */
static void meta_bytes(struct buf *b)
{
    buf_init(b);
    buf_put_u64(b, 1); /* format */
    buf_put_u64(b, 0); /* checksum, below */
    buf_put_u64(b, 1); /* configuration index */
    buf_put_u64(b, 5); /* configuration length */
    assert_int_equal(buf_append(b, "conf!", 5), 0);
    put_le64(b->data + 8, segments_crc32(b->data + 16, b->len - 16, 0));
}

/* Write a snapshot's metadata file named name into f's directory. */
static void write_meta(struct fixture *f, const char *name)
{
    struct buf b;
    meta_bytes(&b);
    write_file(f->dir, name, &b, b.len);
    buf_free(&b);
}

static void test_crc32_matches_libraft(void **state)
{
    /* CRC-32 with polynomial 0x04C11DB7, unreflected, initial value 0 and
     * no final xor: "123456789" gives 0x89A1897F. */
    assert_int_equal(segments_crc32("123456789", 9, 0), 0x89A1897Fu);
    assert_int_equal(segments_crc32("", 0, 0), 0);
}

static void test_clean_log_gives_its_last_index(void **state)
{
    struct fixture *f = *state;
    struct segments_report r;
    char errmsg[ERRMSG_SIZE];
    struct buf b;
    /* A missing directory holds nothing. */
    assert_int_equal(segments_check("no-such-dir", 0, &r, errmsg), 0);
    assert_int_equal(r.last_index, 0);

    segment_begin(&b);
    add_batch(&b, 1, 0xaa);
    write_file(f->dir, "0000000000000001-0000000000000001", &b, b.len);
    buf_free(&b);
    segment_begin(&b);
    add_batch(&b, 3, 0x11);
    add_batch(&b, 2, 0x22);
    write_file(f->dir, "open-1", &b, SEGMENT_SIZE);
    buf_free(&b);
    /* Never written, as libraft leaves its spares. */
    segment_begin(&b);
    b.len = 0;
    write_file(f->dir, "open-2", &b, SEGMENT_SIZE);
    buf_free(&b);

    assert_int_equal(check(f, 6, &r, errmsg), 0);
    assert_int_equal(r.last_index, 6);
    assert_int_equal(r.torn_index, 0);
}

static void test_torn_tail_beyond_applied_is_let_through(void **state)
{
    struct fixture *f = *state;
    struct segments_report r;
    char errmsg[ERRMSG_SIZE];
    struct buf b;
    segment_begin(&b);
    add_batch(&b, 2, 0x11);
    size_t torn = add_batch(&b, 1, 0x22);
    b.data[b.len - 1] ^= 1; /* the last batch's data fails its checksum */
    write_file(f->dir, "open-1", &b, SEGMENT_SIZE);
    buf_free(&b);

    assert_int_equal(check(f, 2, &r, errmsg), 0);
    assert_int_equal(r.last_index, 2);
    assert_int_equal(r.torn_index, 3);
    assert_int_equal(r.torn_offset, torn);
    assert_string_equal(r.torn_file, "open-1");

    /* The same damage on an entry that was applied is refused. */
    assert_int_equal(check(f, 3, &r, errmsg), BERTH_ECORRUPT);
    assert_non_null(strstr(errmsg, "open-1"));
    assert_non_null(strstr(errmsg, "entry 3"));
}

static void test_damage_before_entries_is_refused(void **state)
{
    struct fixture *f = *state;
    struct segments_report r;
    char errmsg[ERRMSG_SIZE];
    struct buf b;
    segment_begin(&b);
    add_batch(&b, 1, 0x11);
    size_t bad = add_batch(&b, 1, 0x22);
    add_batch(&b, 1, 0x33);
    b.data[bad + 16 + 16 + 3] ^= 1; /* data of the second batch */
    write_file(f->dir, "open-1", &b, SEGMENT_SIZE);
    buf_free(&b);
    /* Even with nothing applied: entries follow the damage. */
    assert_int_equal(check(f, 0, &r, errmsg), BERTH_ECORRUPT);
    assert_non_null(strstr(errmsg, "entries after it"));
}

static void test_damage_before_a_later_segment_is_refused(void **state)
{
    struct fixture *f = *state;
    struct segments_report r;
    char errmsg[ERRMSG_SIZE];
    struct buf b;
    segment_begin(&b);
    add_batch(&b, 1, 0x11);
    add_batch(&b, 1, 0x22);
    b.data[b.len - 1] ^= 1;
    write_file(f->dir, "open-1", &b, SEGMENT_SIZE);
    buf_free(&b);
    segment_begin(&b);
    add_batch(&b, 1, 0x33);
    write_file(f->dir, "open-2", &b, SEGMENT_SIZE);
    buf_free(&b);
    /* libraft would go on to number open-2's entry 2. */
    assert_int_equal(check(f, 0, &r, errmsg), BERTH_ECORRUPT);
    assert_non_null(strstr(errmsg, "open-1"));
}

static void test_cut_short_is_refused(void **state)
{
    struct fixture *f = *state;
    struct segments_report r;
    char errmsg[ERRMSG_SIZE];
    struct buf b;
    segment_begin(&b);
    add_batch(&b, 2, 0x11);
    add_batch(&b, 2, 0x22);
    size_t full = b.len;
    for (size_t cut = full - 30; cut < full; cut += 7) {
        write_file(f->dir, "open-1", &b, cut);
        assert_int_equal(check(f, 0, &r, errmsg), BERTH_ECORRUPT);
        assert_non_null(strstr(errmsg, "cut short"));
    }
    buf_free(&b);
}

static void test_damaged_count_is_refused(void **state)
{
    struct fixture *f = *state;
    struct segments_report r;
    char errmsg[ERRMSG_SIZE];
    struct buf b;
    segment_begin(&b);
    add_batch(&b, 1, 0x11);
    size_t bad = add_batch(&b, 1, 0x22);
    put_le64(b.data + bad + 8, 0); /* a zero count with a batch after it */
    write_file(f->dir, "open-1", &b, SEGMENT_SIZE);
    assert_int_equal(check(f, 0, &r, errmsg), BERTH_ECORRUPT);
    put_le64(b.data + bad + 8, 1u << 30); /* a count far too large */
    write_file(f->dir, "open-1", &b, SEGMENT_SIZE);
    assert_int_equal(check(f, 2, &r, errmsg), BERTH_ECORRUPT);
    buf_free(&b);
}

static void test_open_segment_follows_closed_or_snapshot(void **state)
{
    struct fixture *f = *state;
    struct segments_report r;
    char errmsg[ERRMSG_SIZE];
    struct buf b;
    segment_begin(&b);
    add_batch(&b, 2, 0x11);
    write_file(f->dir, "open-7", &b, SEGMENT_SIZE);
    buf_free(&b);
    /* No closed segment: the open one follows the snapshot. */
    write_meta(f, "snapshot-1-40-123.meta");
    assert_int_equal(check(f, 42, &r, errmsg), 0);
    assert_int_equal(r.last_index, 42);
    /* Closed segments from before the snapshot on, as libraft keeps some
     * entries behind a snapshot. */
    segment_begin(&b);
    add_batch(&b, 6, 0x11);
    write_file(f->dir, "0000000000000035-0000000000000040", &b, b.len);
    buf_free(&b);
    segment_begin(&b);
    add_batch(&b, 4, 0x12);
    add_batch(&b, 6, 0x13);
    write_file(f->dir, "0000000000000041-0000000000000050", &b, b.len);
    buf_free(&b);
    assert_int_equal(check(f, 52, &r, errmsg), 0);
    assert_int_equal(r.last_index, 52);
}

/* Write a closed segment of n entries in one batch, named first-last. */
static void write_closed(struct fixture *f, uint64_t first, uint64_t last,
                         unsigned n)
{
    struct buf b;
    char name[40];
    segment_begin(&b);
    add_batch(&b, n, 0x31);
    snprintf(name, sizeof name, "%016llu-%016llu", (unsigned long long)first,
             (unsigned long long)last);
    write_file(f->dir, name, &b, b.len);
    buf_free(&b);
}

static void test_closed_segment_damage_is_refused(void **state)
{
    struct fixture *f = *state;
    struct segments_report r;
    char errmsg[ERRMSG_SIZE], path[4200];
    write_closed(f, 1, 3, 3);
    write_closed(f, 4, 5, 2);
    assert_int_equal(check(f, 5, &r, errmsg), 0);
    assert_int_equal(r.last_index, 5);

    /* A flipped byte in an entry's data, whatever was applied. */
    snprintf(path, sizeof path, "%s/0000000000000004-0000000000000005", f->dir);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, -3, SEEK_END);
    int c = fgetc(fp);
    fseek(fp, -3, SEEK_END);
    fputc(c ^ 0x40, fp);
    fclose(fp);
    assert_int_equal(check(f, 0, &r, errmsg), BERTH_ECORRUPT);
    assert_non_null(strstr(errmsg, "0000000000000004-0000000000000005"));
    assert_non_null(strstr(errmsg, "checksum mismatch"));

    /* Fewer entries than the name says. */
    write_closed(f, 4, 5, 1);
    assert_int_equal(check(f, 0, &r, errmsg), BERTH_ECORRUPT);
    assert_non_null(strstr(errmsg, "entries are missing"));

    /* A segment missing between two. */
    write_closed(f, 4, 5, 2);
    write_closed(f, 8, 9, 2);
    assert_int_equal(check(f, 0, &r, errmsg), BERTH_ECORRUPT);
    assert_non_null(strstr(errmsg, "do not follow each other"));
}

static void test_closed_segments_must_reach_the_snapshot(void **state)
{
    struct fixture *f = *state;
    struct segments_report r;
    char errmsg[ERRMSG_SIZE], path[4200];
    write_meta(f, "snapshot-1-40-123.meta");
    write_closed(f, 41, 42, 2);
    assert_int_equal(check(f, 42, &r, errmsg), 0);
    snprintf(path, sizeof path, "%s/0000000000000041-0000000000000042", f->dir);
    assert_int_equal(unlink(path), 0);
    write_closed(f, 43, 44, 2);
    assert_int_equal(check(f, 0, &r, errmsg), BERTH_ECORRUPT);
    assert_non_null(strstr(errmsg, "start at entry 43"));
}

static void test_snapshot_meta_is_checked(void **state)
{
    struct fixture *f = *state;
    struct segments_report r;
    char errmsg[ERRMSG_SIZE], why[64], path[4200];
    struct buf b;
    meta_bytes(&b);
    assert_int_equal(segments_check_meta(b.data, b.len, why), 0);
    write_file(f->dir, "snapshot-2-40-7.meta", &b, b.len);
    write_file(f->dir, "snapshot-1-30-9.meta", &b, b.len);
    assert_int_equal(check(f, 40, &r, errmsg), 0);
    assert_string_equal(r.snapshot_file, "snapshot-2-40-7");

    b.data[36] ^= 1; /* in the configuration */
    assert_int_equal(segments_check_meta(b.data, b.len, why), BERTH_ECORRUPT);
    assert_string_equal(why, "checksum mismatch");
    write_file(f->dir, "snapshot-2-40-7.meta", &b, b.len);
    assert_int_equal(check(f, 40, &r, errmsg), BERTH_ECORRUPT);
    assert_non_null(strstr(errmsg, "snapshot-2-40-7.meta is damaged"));
    assert_int_equal(segments_check_meta(b.data, 31, why), BERTH_ECORRUPT);
    b.data[36] ^= 1;
    b.data[0] = 2;
    assert_int_equal(segments_check_meta(b.data, b.len, why), BERTH_ECORRUPT);
    assert_string_equal(why, "unknown format");
    buf_free(&b);
    snprintf(path, sizeof path, "%s/snapshot-2-40-7.meta", f->dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(check(f, 30, &r, errmsg), 0);
    assert_string_equal(r.snapshot_file, "snapshot-1-30-9");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32_matches_libraft),
        cmocka_unit_test_setup_teardown(test_clean_log_gives_its_last_index,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_torn_tail_beyond_applied_is_let_through, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damage_before_entries_is_refused,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_damage_before_a_later_segment_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_short_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_damaged_count_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_open_segment_follows_closed_or_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_closed_segment_damage_is_refused,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_closed_segments_must_reach_the_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_meta_is_checked, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
