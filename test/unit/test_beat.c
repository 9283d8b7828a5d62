/* Heartbeats as bytes and back: every field survives the trip at the
 * offsets the format names, a longer message of a later version is read
 * as far as this one knows, and a short one or another version is
 * refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/beat.h"
#include "lib/buf.h"
#include "lib/err.h"

static struct beat beat__sample(void)
{
    struct beat b;
    memset(&b, 0, sizeof b);
    b.sent_ns = 1764806400123456789ULL;
    b.rss_bytes = 48ULL << 20;
    b.programs = 3;
    b.live = 2;
    b.fds = 41;
    b.load_milli = 1250;
    b.cpus = 2;
    b.leading = true;
    b.front_port = 8080;
    return b;
}

static void test_beat_round_trip(void **state)
{
    (void)state;
    struct beat b = beat__sample(), back;
    uint8_t m[BEAT_SIZE];
    beat_encode(&b, m);
    assert_int_equal(m[0], BEAT_VERSION);
    assert_int_equal(m[1], 1);
    assert_int_equal(get_le32(m + 4), 1250);
    assert_true(get_le64(m + 8) == b.sent_ns);
    assert_int_equal(get_le64(m + 40), 41);
    assert_int_equal(get_le32(m + 48), 2);
    memset(&back, 0, sizeof back);
    assert_int_equal(beat_decode(m, sizeof m, &back), 0);
    assert_memory_equal(&b, &back, sizeof b);

    b.leading = false;
    beat_encode(&b, m);
    assert_int_equal(beat_decode(m, sizeof m, &back), 0);
    assert_false(back.leading);
}

static void test_beat_reads_a_longer_one(void **state)
{
    (void)state;
    struct beat b = beat__sample(), back;
    uint8_t m[BEAT_SIZE + 16];
    memset(m, 0xee, sizeof m);
    beat_encode(&b, m);
    m[1] |= 0x80; /* a flag of a later version */
    memset(&back, 0, sizeof back);
    assert_int_equal(beat_decode(m, sizeof m, &back), 0);
    assert_memory_equal(&b, &back, sizeof b);
}

static void test_beat_refuses_short_and_unknown(void **state)
{
    (void)state;
    struct beat b = beat__sample(), back;
    uint8_t m[BEAT_SIZE];
    beat_encode(&b, m);
    memset(&back, 0x5a, sizeof back);
    assert_int_equal(beat_decode(m, BEAT_SIZE - 1, &back), BERTH_EMALFORMED);
    assert_int_equal(beat_decode(m, 0, &back), BERTH_EMALFORMED);
    m[0] = BEAT_VERSION + 1;
    assert_int_equal(beat_decode(m, sizeof m, &back), BERTH_EMALFORMED);
    /* Refused leaves the fields as they were. */
    assert_int_equal(back.cpus, 0x5a5a5a5a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_beat_round_trip),
        cmocka_unit_test(test_beat_reads_a_longer_one),
        cmocka_unit_test(test_beat_refuses_short_and_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
