/* The peer channel: two sides with the cluster secret open it and carry
 * bytes both ways; a wrong secret fails on both sides; a record altered,
 * replayed, dropped or put out of order fails to open; garbage is not a
 * channel. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "crypto/channel.h"
#include "lib/err.h"

static const uint8_t secret[CHANNEL_SECRET_SIZE] =
    "0123456789abcdef0123456789abcde";
static const uint8_t other[CHANNEL_SECRET_SIZE] =
    "0123456789abcdef0123456789abcdX";

struct pair {
    struct channel d, l;
    struct buf to_l, to_d; /* wire bytes in flight */
    struct buf plain_d, plain_l;
};

static void pair_init(struct pair *p, const uint8_t *ds, const uint8_t *ls)
{
    memset(p, 0, sizeof *p);
    channel_init(&p->d, ds, true);
    channel_init(&p->l, ls, false);
    assert_int_equal(channel_start(&p->d, &p->to_l), 0);
    assert_int_equal(p->to_l.len, CHANNEL_HELLO_SIZE);
    assert_int_equal(channel_start(&p->l, &p->to_d), 0);
    assert_int_equal(p->to_d.len, 0);
}

static void pair_free(struct pair *p)
{
    channel_wipe(&p->d);
    channel_wipe(&p->l);
    buf_free(&p->to_l);
    buf_free(&p->to_d);
    buf_free(&p->plain_d);
    buf_free(&p->plain_l);
}

/* Deliver what is in flight to one side, in pieces of step bytes. */
static int deliver(struct channel *ch, struct buf *wire, struct buf *back,
                   struct buf *plain, size_t step)
{
    struct buf w = *wire;
    buf_init(wire);
    int rv = 0;
    for (size_t i = 0; i < w.len && rv == 0; i += step) {
        size_t n = w.len - i < step ? w.len - i : step;
        rv = channel_feed(ch, w.data + i, n, back, plain);
    }
    buf_free(&w);
    return rv;
}

static void handshake(struct pair *p, size_t step)
{
    assert_int_equal(deliver(&p->l, &p->to_l, &p->to_d, &p->plain_l, step), 0);
    assert_int_equal(p->to_d.len, CHANNEL_ANSWER_SIZE);
    assert_false(channel_ready(&p->l));
    assert_int_equal(deliver(&p->d, &p->to_d, &p->to_l, &p->plain_d, step), 0);
    assert_true(channel_ready(&p->d));
    assert_int_equal(p->to_l.len, CHANNEL_PROOF_SIZE);
}

static void test_channel_opens_and_carries(void **state)
{
    (void)state;
    for (size_t step = 1; step <= 4096; step *= 8) {
        struct pair p;
        pair_init(&p, secret, secret);
        handshake(&p, step);
        /* The dialer's first records may follow its proof at once. */
        static const char hi[] = "hello listener";
        assert_int_equal(
            channel_seal(&p.d, (const uint8_t *)hi, sizeof hi, &p.to_l), 0);
        assert_int_equal(p.to_l.len,
                         CHANNEL_PROOF_SIZE + CHANNEL_OVERHEAD + sizeof hi);
        assert_null(memmem(p.to_l.data, p.to_l.len, "listener", 8));
        assert_int_equal(deliver(&p.l, &p.to_l, &p.to_d, &p.plain_l, step), 0);
        assert_true(channel_ready(&p.l));
        assert_int_equal(p.plain_l.len, sizeof hi);
        assert_memory_equal(p.plain_l.data, hi, sizeof hi);

        /* A big write goes in several records, and back the other way. */
        size_t big = 3 * CHANNEL_MAX_RECORD + 17;
        uint8_t *data = malloc(big);
        for (size_t i = 0; i < big; i++) {
            data[i] = (uint8_t)(i * 7);
        }
        assert_int_equal(channel_seal(&p.l, data, big, &p.to_d), 0);
        assert_int_equal(p.to_d.len, big + 4 * CHANNEL_OVERHEAD);
        assert_int_equal(deliver(&p.d, &p.to_d, &p.to_l, &p.plain_d, step), 0);
        assert_int_equal(p.plain_d.len, big);
        assert_memory_equal(p.plain_d.data, data, big);
        assert_int_equal(p.to_l.len, 0);
        free(data);
        pair_free(&p);
    }
}

static void test_channel_wrong_secret_fails_both_sides(void **state)
{
    (void)state;
    struct pair p;
    pair_init(&p, secret, other);
    assert_int_equal(deliver(&p.l, &p.to_l, &p.to_d, &p.plain_l, 1000), 0);
    /* The dialer refuses the answer, and still sends its proof. */
    assert_int_equal(deliver(&p.d, &p.to_d, &p.to_l, &p.plain_d, 1000),
                     BERTH_EREJECTED);
    assert_false(channel_ready(&p.d));
    assert_int_equal(p.to_l.len, CHANNEL_PROOF_SIZE);
    assert_int_equal(deliver(&p.l, &p.to_l, &p.to_d, &p.plain_l, 1000),
                     BERTH_EREJECTED);
    assert_false(channel_ready(&p.l));
    assert_int_equal(channel_seal(&p.l, (const uint8_t *)"x", 1, &p.to_d),
                     BERTH_EINVAL);
    /* A failed channel takes nothing more. */
    assert_int_equal(
        channel_feed(&p.l, (const uint8_t *)"x", 1, &p.to_d, &p.plain_l),
        BERTH_EMALFORMED);
    pair_free(&p);
}

static void test_channel_listener_secret_checked_by_dialer(void **state)
{
    (void)state;
    /* A listener without the secret is found out by the dialer, which
     * never seals for it. */
    struct pair p;
    pair_init(&p, other, secret);
    assert_int_equal(deliver(&p.l, &p.to_l, &p.to_d, &p.plain_l, 7), 0);
    assert_int_equal(deliver(&p.d, &p.to_d, &p.to_l, &p.plain_d, 7),
                     BERTH_EREJECTED);
    assert_int_equal(channel_seal(&p.d, (const uint8_t *)"x", 1, &p.to_l),
                     BERTH_EINVAL);
    pair_free(&p);
}

/* An open pair with three records from the dialer in flight, their
 * offsets in off. */
static void open_with_records(struct pair *p, size_t off[3])
{
    pair_init(p, secret, secret);
    handshake(p, 4096);
    assert_int_equal(deliver(&p->l, &p->to_l, &p->to_d, &p->plain_l, 4096), 0);
    assert_true(channel_ready(&p->l));
    static const char *msgs[3] = {"first", "second", "third"};
    for (int i = 0; i < 3; i++) {
        off[i] = p->to_l.len;
        assert_int_equal(channel_seal(&p->d, (const uint8_t *)msgs[i],
                                      strlen(msgs[i]), &p->to_l),
                         0);
    }
}

static void test_channel_altered_byte_fails(void **state)
{
    (void)state;
    size_t off[3];
    for (size_t at = 0; at < CHANNEL_OVERHEAD + 5; at++) {
        struct pair p;
        open_with_records(&p, off);
        p.to_l.data[off[0] + at] ^= 0x01;
        int rv = deliver(&p.l, &p.to_l, &p.to_d, &p.plain_l, 4096);
        /* The length byte may claim more than is there, or too much. */
        assert_true(rv == BERTH_ECORRUPT || rv == BERTH_EMALFORMED ||
                    (rv == 0 && at < 4));
        if (rv == 0) {
            assert_int_equal(p.plain_l.len, 0);
        }
        pair_free(&p);
    }
}

static void test_channel_replay_and_reorder_fail(void **state)
{
    (void)state;
    size_t off[3];
    struct pair p;
    /* The second record before the first. */
    open_with_records(&p, off);
    assert_int_equal(channel_feed(&p.l, p.to_l.data + off[1], off[2] - off[1],
                                  &p.to_d, &p.plain_l),
                     BERTH_ECORRUPT);
    pair_free(&p);
    /* The first twice. */
    open_with_records(&p, off);
    assert_int_equal(
        channel_feed(&p.l, p.to_l.data, off[1], &p.to_d, &p.plain_l), 0);
    assert_int_equal(p.plain_l.len, 5);
    assert_int_equal(
        channel_feed(&p.l, p.to_l.data, off[1], &p.to_d, &p.plain_l),
        BERTH_ECORRUPT);
    pair_free(&p);
    /* A record sent back to its sender (reflected) fails too. */
    open_with_records(&p, off);
    assert_int_equal(
        channel_feed(&p.d, p.to_l.data, off[1], &p.to_d, &p.plain_d),
        BERTH_ECORRUPT);
    pair_free(&p);
}

static void test_channel_garbage_and_old_wire(void **state)
{
    (void)state;
    struct channel l;
    struct buf out, plain;
    buf_init(&out);
    buf_init(&plain);
    channel_init(&l, secret, false);
    /* An old plaintext request is refused at its magic. */
    assert_int_equal(
        channel_feed(&l, (const uint8_t *)"berthp02", 8, &out, &plain),
        BERTH_EMALFORMED);
    assert_int_equal(out.len, 0);
    channel_wipe(&l);
    channel_init(&l, secret, false);
    assert_int_equal(channel_feed(&l, (const uint8_t *)"GET / HTTP/1.1\r\n", 16,
                                  &out, &plain),
                     BERTH_EMALFORMED);
    channel_wipe(&l);
    /* A record claiming more than the most a record holds. */
    struct pair p;
    size_t off[3];
    open_with_records(&p, off);
    uint8_t huge[4] = {0xff, 0xff, 0xff, 0x7f};
    assert_int_equal(channel_feed(&p.l, huge, 4, &p.to_d, &p.plain_l),
                     BERTH_EMALFORMED);
    pair_free(&p);
    buf_free(&out);
    buf_free(&plain);
}

int main(void)
{
    if (sodium_init() < 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_channel_opens_and_carries),
        cmocka_unit_test(test_channel_wrong_secret_fails_both_sides),
        cmocka_unit_test(test_channel_listener_secret_checked_by_dialer),
        cmocka_unit_test(test_channel_altered_byte_fails),
        cmocka_unit_test(test_channel_replay_and_reorder_fail),
        cmocka_unit_test(test_channel_garbage_and_old_wire),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
