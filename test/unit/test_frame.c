/* The frame codec: every frame and payload round-trips, partial input asks
 * for more at every split point, bad lengths never decode, and encoders that
 * fail leave their output as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "lib/err.h"
#include "lib/mem.h"
#include "proto/frame.h"

/* Split the one frame in b, check it used all of it and that every shorter
 * prefix asks for more bytes. */
static struct frame split_one(const struct buf *b)
{
    struct frame f;
    size_t used;
    assert_int_equal(frame_split(b->data, b->len, FRAME_MAX_DEFAULT, &f, &used),
                     0);
    assert_int_equal(used, b->len);
    assert_ptr_equal(f.body, b->data + FRAME_HEADER_SIZE);
    assert_int_equal(f.body_len, b->len - FRAME_HEADER_SIZE);
    for (size_t n = 0; n < b->len; n++) {
        struct frame g;
        assert_int_equal(frame_split(b->data, n, FRAME_MAX_DEFAULT, &g, &used),
                         BERTH_EPARTIAL);
    }
    return f;
}

/* Try every decoder on f and return a bit mask of the types that accepted
 * it, so a test can check that exactly the right one did. */
static unsigned decoders_accepting(const struct frame *f)
{
    struct frame_boot boot;
    struct frame_event ev;
    struct frame_done done;
    struct frame_reject rej;
    struct frame_snapshot snap;
    uint64_t n;
    bool accepted;
    unsigned mask = 0;
    mask |= frame_decode_boot(f, &boot) == 0 ? 1u << 0 : 0;
    mask |= frame_decode_event(f, &ev) == 0 ? 1u << 1 : 0;
    mask |= frame_decode_snap_req(f, &n) == 0 ? 1u << 2 : 0;
    mask |= frame_decode_ready(f, &accepted) == 0 ? 1u << 3 : 0;
    mask |= frame_decode_done(f, &done) == 0 ? 1u << 4 : 0;
    mask |= frame_decode_reject(f, &rej) == 0 ? 1u << 5 : 0;
    mask |= frame_decode_snapshot(f, &snap) == 0 ? 1u << 6 : 0;
    return mask;
}

/* Check that f decodes with exactly the decoder of bit `bit`, and that no
 * body shorter than min_len decodes with it. */
static void check_only_and_truncations(struct frame f, unsigned bit,
                                       size_t min_len)
{
    assert_int_equal(decoders_accepting(&f), 1u << bit);
    for (size_t n = 0; n < min_len && n <= f.body_len; n++) {
        struct frame g = f;
        g.body_len = n;
        assert_int_equal(decoders_accepting(&g) & (1u << bit), 0);
    }
}

static void test_split_limits(void **state)
{
    uint8_t zero[5] = {0, 0, 0, 0, 1};
    uint8_t big[4] = {0, 0, 0, 0x10};
    uint8_t max[4] = {0xff, 0xff, 0xff, 0xff};
    uint8_t one[5] = {1, 0, 0, 0, FRAME_STOP};
    struct frame f;
    size_t used;
    assert_int_equal(frame_split(zero, 5, 1024, &f, &used), BERTH_EMALFORMED);
    assert_int_equal(frame_split(zero, 4, 1024, &f, &used), BERTH_EMALFORMED);
    /* An oversized length is refused from its four bytes alone, before the
     * body that would never fit arrives. */
    assert_int_equal(frame_split(big, 4, 1024, &f, &used), BERTH_ETOOBIG);
    assert_int_equal(frame_split(max, 4, FRAME_MAX_DEFAULT, &f, &used),
                     BERTH_ETOOBIG);
    uint8_t limit[4];
    put_le32(limit, FRAME_MAX_DEFAULT + 1);
    assert_int_equal(frame_split(limit, 4, FRAME_MAX_DEFAULT, &f, &used),
                     BERTH_ETOOBIG);
    put_le32(limit, FRAME_MAX_DEFAULT);
    assert_int_equal(frame_split(limit, 4, FRAME_MAX_DEFAULT, &f, &used),
                     BERTH_EPARTIAL);
    /* len equal to max is allowed; one more is not. */
    assert_int_equal(frame_split(one, 5, 1, &f, &used), 0);
    assert_int_equal(used, 5);
    assert_int_equal(f.type, FRAME_STOP);
    assert_int_equal(f.body_len, 0);
    one[0] = 2;
    assert_int_equal(frame_split(one, 5, 1, &f, &used), BERTH_ETOOBIG);
    assert_int_equal(frame_split(NULL, 0, 1024, &f, &used), BERTH_EPARTIAL);
}

/* Two frames back to back split apart at every point of the stream. */
static void test_split_stream(void **state)
{
    struct buf b;
    buf_init(&b);
    assert_int_equal(frame_encode_snap_req(&b, 7), 0);
    size_t first = b.len;
    assert_int_equal(frame_encode_reject(&b, 8, "why", 3), 0);
    for (size_t n = 0; n <= b.len; n++) {
        struct frame f;
        size_t used;
        int rv = frame_split(b.data, n, FRAME_MAX_DEFAULT, &f, &used);
        if (n < first) {
            assert_int_equal(rv, BERTH_EPARTIAL);
            continue;
        }
        assert_int_equal(rv, 0);
        assert_int_equal(used, first);
        assert_int_equal(f.type, FRAME_SNAP_REQ);
        rv = frame_split(b.data + used, n - used, FRAME_MAX_DEFAULT, &f, &used);
        if (n < b.len) {
            assert_int_equal(rv, BERTH_EPARTIAL);
        } else {
            assert_int_equal(rv, 0);
            assert_int_equal(f.type, FRAME_REJECT);
            assert_int_equal(used, b.len - first);
        }
    }
    buf_free(&b);
}

static void test_boot(void **state)
{
    struct buf b;
    buf_init(&b);
    struct frame_boot in = {.id = "abc",
                            .id_len = 3,
                            .snapshot_event = 9,
                            .snapshot = (const uint8_t *)"snap",
                            .snapshot_len = 4};
    assert_int_equal(frame_encode_boot(&b, &in), 0);
    struct frame f = split_one(&b);
    assert_int_equal(f.type, FRAME_BOOT);
    struct frame_boot out;
    assert_int_equal(frame_decode_boot(&f, &out), 0);
    assert_int_equal(out.id_len, 3);
    assert_memory_equal(out.id, "abc", 3);
    assert_int_equal(out.snapshot_event, 9);
    assert_int_equal(out.snapshot_len, 4);
    assert_memory_equal(out.snapshot, "snap", 4);
    check_only_and_truncations(f, 0, 2 + 3 + 8);
    /* An id length past the end of the body. */
    b.data[FRAME_HEADER_SIZE] = 200;
    assert_int_equal(frame_decode_boot(&f, &out), BERTH_EMALFORMED);

    /* No snapshot and an empty id. */
    b.len = 0;
    struct frame_boot empty = {.id = "", .id_len = 0};
    assert_int_equal(frame_encode_boot(&b, &empty), 0);
    f = split_one(&b);
    assert_int_equal(frame_decode_boot(&f, &out), 0);
    assert_int_equal(out.id_len, 0);
    assert_int_equal(out.snapshot_event, 0);
    assert_int_equal(out.snapshot_len, 0);
    check_only_and_truncations(f, 0, 2 + 8);
    buf_free(&b);
}

static void test_event(void **state)
{
    struct buf b;
    buf_init(&b);
    struct frame_event in = {.number = 5,
                             .time_ns = 1700000000123456789ull,
                             .kind = FRAME_EVENT_POKE,
                             .payload = (const uint8_t *)"poke",
                             .payload_len = 4};
    for (int i = 0; i < FRAME_ENTROPY_SIZE; i++) {
        in.entropy[i] = (uint8_t)(i * 7 + 1);
    }
    assert_int_equal(frame_encode_event(&b, &in), 0);
    struct frame f = split_one(&b);
    assert_int_equal(f.type, FRAME_EVENT);
    struct frame_event out;
    assert_int_equal(frame_decode_event(&f, &out), 0);
    assert_int_equal(out.number, 5);
    assert_true(out.time_ns == in.time_ns);
    assert_memory_equal(out.entropy, in.entropy, sizeof in.entropy);
    assert_int_equal(out.kind, FRAME_EVENT_POKE);
    assert_int_equal(out.payload_len, 4);
    assert_memory_equal(out.payload, "poke", 4);
    check_only_and_truncations(f, 1, 8 + 8 + FRAME_ENTROPY_SIZE + 1);
    /* An empty payload is allowed. */
    f.body_len = 8 + 8 + FRAME_ENTROPY_SIZE + 1;
    assert_int_equal(frame_decode_event(&f, &out), 0);
    assert_int_equal(out.payload_len, 0);
    buf_free(&b);
}

static void test_small_frames(void **state)
{
    struct buf b;
    buf_init(&b);
    struct frame f;
    uint64_t n;
    bool accepted;

    assert_int_equal(frame_encode_snap_req(&b, UINT64_MAX - 1), 0);
    f = split_one(&b);
    assert_int_equal(f.type, FRAME_SNAP_REQ);
    assert_int_equal(frame_decode_snap_req(&f, &n), 0);
    assert_true(n == UINT64_MAX - 1);
    check_only_and_truncations(f, 2, 8);
    assert_int_equal(buf_put_u8(&b, 0), 0); /* a trailing byte */
    f.body_len++;
    assert_int_equal(frame_decode_snap_req(&f, &n), BERTH_EMALFORMED);

    for (int a = 0; a <= 1; a++) {
        b.len = 0;
        assert_int_equal(frame_encode_ready(&b, a == 1), 0);
        f = split_one(&b);
        assert_int_equal(f.type, FRAME_READY);
        assert_int_equal(frame_decode_ready(&f, &accepted), 0);
        assert_int_equal(accepted, a == 1);
        check_only_and_truncations(f, 3, 1);
    }
    b.data[FRAME_HEADER_SIZE] = 7; /* neither 0 nor 1 */
    assert_int_equal(frame_decode_ready(&f, &accepted), BERTH_EMALFORMED);
    b.data[FRAME_HEADER_SIZE] = 1;
    assert_int_equal(buf_put_u8(&b, 0), 0);
    f.body_len++;
    assert_int_equal(frame_decode_ready(&f, &accepted), BERTH_EMALFORMED);

    b.len = 0;
    assert_int_equal(frame_encode_reject(&b, 3, "no", 2), 0);
    f = split_one(&b);
    assert_int_equal(f.type, FRAME_REJECT);
    struct frame_reject rj;
    assert_int_equal(frame_decode_reject(&f, &rj), 0);
    assert_int_equal(rj.number, 3);
    assert_int_equal(rj.reason_len, 2);
    assert_memory_equal(rj.reason, "no", 2);
    check_only_and_truncations(f, 5, 8);
    b.len = 0;
    assert_int_equal(frame_encode_reject(&b, 4, NULL, 0), 0);
    f = split_one(&b);
    assert_int_equal(frame_decode_reject(&f, &rj), 0);
    assert_int_equal(rj.reason_len, 0);

    b.len = 0;
    assert_int_equal(frame_encode_snapshot(&b, 8, "abc", 3), 0);
    f = split_one(&b);
    assert_int_equal(f.type, FRAME_SNAPSHOT);
    struct frame_snapshot sn;
    assert_int_equal(frame_decode_snapshot(&f, &sn), 0);
    assert_int_equal(sn.number, 8);
    assert_int_equal(sn.len, 3);
    assert_memory_equal(sn.data, "abc", 3);
    check_only_and_truncations(f, 6, 8);
    b.len = 0;
    assert_int_equal(frame_encode_snapshot(&b, 9, NULL, 0), 0);
    f = split_one(&b);
    assert_int_equal(frame_decode_snapshot(&f, &sn), 0);
    assert_int_equal(sn.len, 0);

    b.len = 0;
    assert_int_equal(frame_encode_stop(&b), 0);
    assert_int_equal(b.len, FRAME_HEADER_SIZE);
    f = split_one(&b);
    assert_int_equal(f.type, FRAME_STOP);
    assert_int_equal(f.body_len, 0);
    assert_int_equal(decoders_accepting(&f), 0);
    buf_free(&b);
}

/* Build a DONE frame with an HTTP reply and a log line into b. */
static void build_done(struct buf *b)
{
    size_t mark;
    assert_int_equal(frame_done_begin(b, 12, FRAME_DONE_CHANGED, &mark), 0);
    struct buf reply;
    buf_init(&reply);
    struct frame_http_reply r = {.status = 201,
                                 .content_type = "text/plain",
                                 .content_type_len = 10,
                                 .body = (const uint8_t *)"ok",
                                 .body_len = 2};
    assert_int_equal(frame_encode_http_reply(&reply, &r), 0);
    assert_int_equal(frame_done_add_effect(b, mark, FRAME_EFFECT_HTTP_REPLY,
                                           reply.data, reply.len),
                     0);
    assert_int_equal(
        frame_done_add_effect(b, mark, FRAME_EFFECT_LOG, "line", 4), 0);
    assert_int_equal(frame_done_add_effect(b, mark, FRAME_EFFECT_LOG, NULL, 0),
                     0);
    frame_done_end(b, mark);
    buf_free(&reply);
}

static void test_done_with_effects(void **state)
{
    struct buf b;
    buf_init(&b);
    build_done(&b);
    struct frame f = split_one(&b);
    assert_int_equal(f.type, FRAME_DONE);
    struct frame_done d;
    assert_int_equal(frame_decode_done(&f, &d), 0);
    assert_int_equal(d.number, 12);
    assert_int_equal(d.flags, FRAME_DONE_CHANGED);
    assert_int_equal(d.n_effects, 3);
    size_t off = 0;
    struct frame_effect e;
    assert_int_equal(frame_effects_next(&d, &off, &e), 0);
    assert_int_equal(e.kind, FRAME_EFFECT_HTTP_REPLY);
    struct frame_http_reply rr;
    assert_int_equal(frame_decode_http_reply(e.data, e.len, &rr), 0);
    assert_int_equal(rr.status, 201);
    assert_int_equal(rr.content_type_len, 10);
    assert_memory_equal(rr.content_type, "text/plain", 10);
    assert_int_equal(rr.body_len, 2);
    assert_memory_equal(rr.body, "ok", 2);
    assert_int_equal(frame_effects_next(&d, &off, &e), 0);
    assert_int_equal(e.kind, FRAME_EFFECT_LOG);
    assert_int_equal(e.len, 4);
    assert_memory_equal(e.data, "line", 4);
    assert_int_equal(frame_effects_next(&d, &off, &e), 0);
    assert_int_equal(e.len, 0);
    assert_int_equal(frame_effects_next(&d, &off, &e), 1);
    assert_int_equal(frame_effects_next(&d, &off, &e), 1);

    /* Every truncation fails: inside the fixed part, inside an effect, and
     * at an effect boundary, where the count no longer matches. */
    check_only_and_truncations(f, 4, f.body_len);

    /* A count that disagrees with the effects, either way. */
    size_t count_at = FRAME_HEADER_SIZE + 8 + 1;
    b.data[count_at]++;
    assert_int_equal(frame_decode_done(&f, &d), BERTH_EMALFORMED);
    b.data[count_at] -= 2;
    assert_int_equal(frame_decode_done(&f, &d), BERTH_EMALFORMED);
    b.data[count_at]++;
    /* An effect length past the end, and one that wraps a 32-bit sum. */
    size_t len_at = FRAME_HEADER_SIZE + 13 + 1;
    uint32_t good = get_le32(b.data + len_at);
    put_le32(b.data + len_at, good + 1);
    assert_int_equal(frame_decode_done(&f, &d), BERTH_EMALFORMED);
    put_le32(b.data + len_at, UINT32_MAX);
    assert_int_equal(frame_decode_done(&f, &d), BERTH_EMALFORMED);
    put_le32(b.data + len_at, good);
    assert_int_equal(frame_decode_done(&f, &d), 0);
    /* A stray byte after the last effect. */
    assert_int_equal(buf_put_u8(&b, FRAME_EFFECT_LOG), 0);
    put_le32(b.data, get_le32(b.data) + 1);
    f = split_one(&b);
    assert_int_equal(frame_decode_done(&f, &d), BERTH_EMALFORMED);

    /* No effects at all. */
    b.len = 0;
    size_t mark;
    assert_int_equal(frame_done_begin(&b, 1, 0, &mark), 0);
    frame_done_end(&b, mark);
    f = split_one(&b);
    assert_int_equal(frame_decode_done(&f, &d), 0);
    assert_int_equal(d.n_effects, 0);
    assert_int_equal(d.flags, 0);
    off = 0;
    assert_int_equal(frame_effects_next(&d, &off, &e), 1);
    check_only_and_truncations(f, 4, 13);
    buf_free(&b);
}

/* The walker on its own checks every length, for callers that build a
 * frame_done by hand. */
static void test_effects_walk_malformed(void **state)
{
    static const uint8_t bytes[] = {
        FRAME_EFFECT_LOG, 2, 0, 0, 0, 'h', 'i', /* good */
        FRAME_EFFECT_LOG, 9, 0, 0, 0, 'x',      /* claims 9, has 1 */
    };
    struct frame_done d = {
        .n_effects = 2, .effects = bytes, .effects_len = sizeof bytes};
    size_t off = 0;
    struct frame_effect e;
    assert_int_equal(frame_effects_next(&d, &off, &e), 0);
    assert_int_equal(e.len, 2);
    assert_int_equal(off, 7);
    assert_int_equal(frame_effects_next(&d, &off, &e), BERTH_EMALFORMED);
    assert_int_equal(off, 7); /* a failed step does not move */
    /* A header cut short, at each of its lengths. */
    for (size_t n = 8; n < 12; n++) {
        d.effects_len = n;
        off = 7;
        assert_int_equal(frame_effects_next(&d, &off, &e), BERTH_EMALFORMED);
    }
    /* An offset past the end. */
    d.effects_len = 7;
    off = 8;
    assert_int_equal(frame_effects_next(&d, &off, &e), BERTH_EMALFORMED);
    off = SIZE_MAX;
    assert_int_equal(frame_effects_next(&d, &off, &e), BERTH_EMALFORMED);
    /* Nothing to walk. */
    struct frame_done none = {0};
    off = 0;
    assert_int_equal(frame_effects_next(&none, &off, &e), 1);
}

static void test_http_request_payload(void **state)
{
    struct frame_header hs[3] = {
        {.name = "host", .name_len = 4, .value = "x", .value_len = 1},
        {.name = "a", .name_len = 1, .value = "bc", .value_len = 2},
        {.name = "empty", .name_len = 5, .value = "", .value_len = 0},
    };
    struct frame_http_request in = {.method = "PUT",
                                    .method_len = 3,
                                    .target = "/k/a?x=1",
                                    .target_len = 8,
                                    .n_headers = 3,
                                    .body = (const uint8_t *)"value",
                                    .body_len = 5};
    struct buf b;
    buf_init(&b);
    assert_int_equal(frame_encode_http_request(&b, &in, hs), 0);
    struct frame_http_request out;
    assert_int_equal(frame_decode_http_request(b.data, b.len, &out), 0);
    assert_int_equal(out.method_len, 3);
    assert_memory_equal(out.method, "PUT", 3);
    assert_int_equal(out.target_len, 8);
    assert_memory_equal(out.target, "/k/a?x=1", 8);
    assert_int_equal(out.n_headers, 3);
    assert_int_equal(out.body_len, 5);
    assert_memory_equal(out.body, "value", 5);
    size_t off = 0;
    struct frame_header h;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(frame_http_next_header(&out, &off, &h), 0);
        assert_int_equal(h.name_len, hs[i].name_len);
        assert_memory_equal(h.name, hs[i].name, h.name_len);
        assert_int_equal(h.value_len, hs[i].value_len);
        assert_memory_equal(h.value, hs[i].value, h.value_len);
    }
    assert_int_equal(frame_http_next_header(&out, &off, &h), 1);

    /* Every cut before the body is malformed; every cut inside the body
     * only shortens it. */
    size_t body_at = b.len - in.body_len;
    for (size_t n = 0; n <= b.len; n++) {
        int rv = frame_decode_http_request(b.data, n, &out);
        if (n < body_at) {
            assert_int_equal(rv, BERTH_EMALFORMED);
        } else {
            assert_int_equal(rv, 0);
            assert_int_equal(out.body_len, n - body_at);
            assert_int_equal(out.headers_len, body_at - (2 + 3 + 4 + 8 + 2));
        }
    }
    /* A header count larger than the headers present. */
    size_t count_at = 2 + 3 + 4 + 8;
    put_le16(b.data + count_at, 4);
    b.len = body_at; /* no body, so the fourth header cannot hide in it */
    assert_int_equal(frame_decode_http_request(b.data, b.len, &out),
                     BERTH_EMALFORMED);
    put_le16(b.data + count_at, UINT16_MAX);
    assert_int_equal(frame_decode_http_request(b.data, b.len, &out),
                     BERTH_EMALFORMED);
    /* Lengths that point past the end. */
    put_le16(b.data + count_at, 3);
    put_le32(b.data + 2 + 3, UINT32_MAX);
    assert_int_equal(frame_decode_http_request(b.data, b.len, &out),
                     BERTH_EMALFORMED);
    put_le32(b.data + 2 + 3, 8);
    put_le16(b.data, UINT16_MAX);
    assert_int_equal(frame_decode_http_request(b.data, b.len, &out),
                     BERTH_EMALFORMED);
    put_le16(b.data, 3);
    assert_int_equal(frame_decode_http_request(b.data, b.len, &out), 0);

    /* The header walker checks lengths too when given a struct by hand. */
    static const uint8_t bad[] = {2, 0, 'a', 'b', 9, 0, 0, 0, 'v'};
    struct frame_http_request hand = {
        .n_headers = 1, .headers = bad, .headers_len = sizeof bad};
    off = 0;
    assert_int_equal(frame_http_next_header(&hand, &off, &h), BERTH_EMALFORMED);
    off = sizeof bad + 1;
    assert_int_equal(frame_http_next_header(&hand, &off, &h), BERTH_EMALFORMED);

    /* No headers, no body. */
    b.len = 0;
    struct frame_http_request bare = {
        .method = "GET", .method_len = 3, .target = "/", .target_len = 1};
    assert_int_equal(frame_encode_http_request(&b, &bare, NULL), 0);
    assert_int_equal(b.len, 2 + 3 + 4 + 1 + 2);
    assert_int_equal(frame_decode_http_request(b.data, b.len, &out), 0);
    assert_int_equal(out.n_headers, 0);
    assert_int_equal(out.body_len, 0);
    off = 0;
    assert_int_equal(frame_http_next_header(&out, &off, &h), 1);
    buf_free(&b);
}

static void test_http_reply_payload(void **state)
{
    struct frame_http_reply in = {.status = 404,
                                  .content_type = "application/json",
                                  .content_type_len = 16,
                                  .body = (const uint8_t *)"{}",
                                  .body_len = 2};
    struct buf b;
    buf_init(&b);
    assert_int_equal(frame_encode_http_reply(&b, &in), 0);
    struct frame_http_reply out;
    for (size_t n = 0; n <= b.len; n++) {
        int rv = frame_decode_http_reply(b.data, n, &out);
        if (n < 4 + 16) {
            assert_int_equal(rv, BERTH_EMALFORMED);
        } else {
            assert_int_equal(rv, 0);
            assert_int_equal(out.status, 404);
            assert_memory_equal(out.content_type, "application/json", 16);
            assert_int_equal(out.body_len, n - 20);
        }
    }
    assert_memory_equal(out.body, "{}", 2);
    b.len = 0;
    struct frame_http_reply bare = {.status = 204};
    assert_int_equal(frame_encode_http_reply(&b, &bare), 0);
    assert_int_equal(b.len, 4);
    assert_int_equal(frame_decode_http_reply(b.data, b.len, &out), 0);
    assert_int_equal(out.status, 204);
    assert_int_equal(out.content_type_len, 0);
    assert_int_equal(out.body_len, 0);
    buf_free(&b);
}

/* The ALARM effect and the TIMER payload are one little-endian u64, exactly
 * eight bytes: a shorter or longer one never decodes, and a failed decode
 * leaves the output alone. */
static void test_alarm_and_timer(void **state)
{
    /* The wire values are fixed by docs/protocol.md. */
    assert_int_equal(FRAME_EVENT_TIMER, 3);
    assert_int_equal(FRAME_EFFECT_ALARM, 3);
    assert_int_equal(FRAME_ALARM_SIZE, 8);
    static const uint64_t times[] = {0, 1, 1700000005000000000ull, UINT64_MAX};
    static const uint8_t le[] = {0x00, 0xf2, 0x2f, 0x60,
                                 0xff, 0x9c, 0x97, 0x17};
    int (*encode[2])(struct buf *, uint64_t) = {frame_encode_alarm,
                                                frame_encode_timer};
    int (*decode[2])(const uint8_t *, size_t,
                     uint64_t *) = {frame_decode_alarm, frame_decode_timer};
    struct buf b;
    buf_init(&b);
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
            b.len = 0;
            assert_int_equal(buf_append(&b, "xyz", 3), 0);
            assert_int_equal(encode[k](&b, times[i]), 0);
            /* Appended after what was there, and nothing else. */
            assert_int_equal(b.len, 3 + 8);
            assert_memory_equal(b.data, "xyz", 3);
            assert_true(get_le64(b.data + 3) == times[i]);
            uint64_t t = 42;
            assert_int_equal(decode[k](b.data + 3, 8, &t), 0);
            assert_true(t == times[i]);
        }
        b.len = 0;
        assert_int_equal(encode[k](&b, 1700000005000000000ull), 0);
        assert_memory_equal(b.data, le, sizeof le);
        /* Every other length, shorter and longer, is malformed. */
        uint8_t wide[17] = {0};
        for (size_t n = 0; n <= sizeof wide; n++) {
            uint64_t t = 42;
            int rv = decode[k](wide, n, &t);
            if (n == 8) {
                assert_int_equal(rv, 0);
                assert_true(t == 0);
            } else {
                assert_int_equal(rv, BERTH_EMALFORMED);
                assert_true(t == 42);
            }
        }
        uint64_t t = 42;
        assert_int_equal(decode[k](NULL, 0, &t), BERTH_EMALFORMED);
        assert_true(t == 42);
    }

    /* A DONE that sets an alarm without saying CHANGED (the host logs it
     * all the same), byte for byte as in docs/protocol.md. */
    static const uint8_t want[] = {
        0x1b, 0x00, 0x00, 0x00, 0x82,                   /* len 27, DONE */
        0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* number 9 */
        0x00,                                           /* flags */
        0x01, 0x00, 0x00, 0x00,                         /* 1 effect */
        0x03, 0x08, 0x00, 0x00, 0x00,                   /* ALARM, 8 bytes */
        0x00, 0xf2, 0x2f, 0x60, 0xff, 0x9c, 0x97, 0x17, /* the time */
    };
    struct buf alarm;
    buf_init(&alarm);
    assert_int_equal(frame_encode_alarm(&alarm, 1700000005000000000ull), 0);
    b.len = 0;
    size_t mark;
    assert_int_equal(frame_done_begin(&b, 9, 0, &mark), 0);
    assert_int_equal(frame_done_add_effect(&b, mark, FRAME_EFFECT_ALARM,
                                           alarm.data, alarm.len),
                     0);
    frame_done_end(&b, mark);
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    struct frame f = split_one(&b);
    struct frame_done d;
    assert_int_equal(frame_decode_done(&f, &d), 0);
    assert_int_equal(d.flags, 0);
    size_t off = 0;
    struct frame_effect e;
    assert_int_equal(frame_effects_next(&d, &off, &e), 0);
    assert_int_equal(e.kind, FRAME_EFFECT_ALARM);
    uint64_t t;
    assert_int_equal(frame_decode_alarm(e.data, e.len, &t), 0);
    assert_true(t == 1700000005000000000ull);
    assert_int_equal(frame_effects_next(&d, &off, &e), 1);
    buf_free(&alarm);

    /* A TIMER event carries the alarm's time as its whole payload. */
    struct buf payload;
    buf_init(&payload);
    assert_int_equal(frame_encode_timer(&payload, 1700000005000000000ull), 0);
    struct frame_event in = {.number = 10,
                             .time_ns = 1700000005000000123ull,
                             .kind = FRAME_EVENT_TIMER,
                             .payload = payload.data,
                             .payload_len = payload.len};
    b.len = 0;
    assert_int_equal(frame_encode_event(&b, &in), 0);
    f = split_one(&b);
    struct frame_event ev;
    assert_int_equal(frame_decode_event(&f, &ev), 0);
    assert_int_equal(ev.kind, FRAME_EVENT_TIMER);
    assert_int_equal(frame_decode_timer(ev.payload, ev.payload_len, &t), 0);
    assert_true(t == 1700000005000000000ull);
    /* The event still decodes with a payload cut short (the frame does not
     * know payload formats), but the payload does not. */
    f.body_len--;
    assert_int_equal(frame_decode_event(&f, &ev), 0);
    assert_int_equal(frame_decode_timer(ev.payload, ev.payload_len, &t),
                     BERTH_EMALFORMED);
    buf_free(&payload);
    buf_free(&b);
}

/* A SPAWN effect's bytes: the fixed part, the program and the options, each
 * walked back in order; every cut inside a field or an option is malformed,
 * and a cut between options is a SPAWN with fewer. */
static void test_spawn(void **state)
{
    /* The wire values are fixed by docs/protocol.md. */
    assert_int_equal(FRAME_EFFECT_SPAWN, 4);
    assert_int_equal(FRAME_EFFECT_RELEASE, 6);
    assert_int_equal(FRAME_EFFECT_DESTROY, 7);
    assert_int_equal(FRAME_EFFECT_IDLE, 8);
    assert_int_equal(FRAME_LIFETIME_ROOT, 1);
    assert_int_equal(FRAME_LIFETIME_LINKED, 2);
    assert_int_equal(FRAME_LIFETIME_EPHEMERAL, 3);
    assert_int_equal(FRAME_SPAWN_ARG, 1);
    assert_int_equal(FRAME_SPAWN_ENV, 2);

    struct buf b;
    buf_init(&b);
    assert_int_equal(buf_append(&b, "xyz", 3), 0);
    struct frame_spawn in = {.tag = 0xdeadbeef,
                             .lifetime = FRAME_LIFETIME_EPHEMERAL,
                             .lifetime_ms = 0x0102030405060708ull,
                             .program = "/bin/p",
                             .program_len = 6};
    assert_int_equal(frame_encode_spawn(&b, &in), 0);
    size_t fixed_end = b.len;
    assert_int_equal(frame_encode_spawn_option(&b, FRAME_SPAWN_ARG, "a", 1), 0);
    size_t opt1_end = b.len;
    assert_int_equal(frame_encode_spawn_option(&b, FRAME_SPAWN_ARG, "", 0), 0);
    assert_int_equal(frame_encode_spawn_option(&b, FRAME_SPAWN_ENV, "K=V", 3),
                     0);
    /* Appended after what was there, laid out as the table says. */
    const uint8_t *p = b.data + 3;
    size_t len = b.len - 3;
    assert_memory_equal(b.data, "xyz", 3);
    assert_int_equal(len, 4 + 1 + 8 + 2 + 6 + (5 + 1) + 5 + (5 + 3));
    assert_int_equal(get_le32(p), 0xdeadbeef);
    assert_int_equal(p[4], 3);
    assert_true(get_le64(p + 5) == 0x0102030405060708ull);
    assert_int_equal(get_le16(p + 13), 6);
    assert_memory_equal(p + 15, "/bin/p", 6);
    assert_int_equal(p[21], FRAME_SPAWN_ARG);
    assert_int_equal(get_le32(p + 22), 1);
    assert_int_equal(p[26], 'a');

    struct frame_spawn s;
    assert_int_equal(frame_decode_spawn(p, len, &s), 0);
    assert_int_equal(s.tag, 0xdeadbeef);
    assert_int_equal(s.lifetime, FRAME_LIFETIME_EPHEMERAL);
    assert_true(s.lifetime_ms == 0x0102030405060708ull);
    assert_int_equal(s.program_len, 6);
    assert_memory_equal(s.program, "/bin/p", 6);
    assert_ptr_equal(s.options, b.data + fixed_end);
    assert_int_equal(s.options_len, b.len - fixed_end);
    static const struct {
        uint8_t kind;
        const char *data;
    } want[] = {{FRAME_SPAWN_ARG, "a"},
                {FRAME_SPAWN_ARG, ""},
                {FRAME_SPAWN_ENV, "K=V"}};
    size_t off = 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        uint8_t kind;
        const uint8_t *data;
        size_t n;
        assert_int_equal(frame_spawn_next_option(&s, &off, &kind, &data, &n),
                         0);
        assert_int_equal(kind, want[i].kind);
        assert_int_equal(n, strlen(want[i].data));
        assert_memory_equal(data, want[i].data, n);
    }
    uint8_t kind;
    const uint8_t *data;
    size_t n;
    assert_int_equal(frame_spawn_next_option(&s, &off, &kind, &data, &n), 1);
    assert_int_equal(off, s.options_len);

    /* Every cut: inside the fixed part, the program or an option it is
     * malformed; at the end of the program or of an option it decodes with
     * the options before the cut. */
    size_t ends[] = {fixed_end - 3, opt1_end - 3, opt1_end + 5 - 3, len};
    for (size_t cut = 0; cut <= len; cut++) {
        bool whole = false;
        for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
            whole = whole || cut == ends[i];
        }
        struct frame_spawn t;
        int rv = frame_decode_spawn(p, cut, &t);
        assert_int_equal(rv, whole ? 0 : BERTH_EMALFORMED);
    }

    /* An option whose length runs past the end, and the walk of a SPAWN
     * whose options were not checked by the decoder. */
    uint8_t bad[64];
    memcpy(bad, p, len);
    put_le32(bad + 22, 2);
    assert_int_equal(frame_decode_spawn(bad, len, &s), BERTH_EMALFORMED);
    struct frame_spawn raw = {.options = bad + 21, .options_len = 4};
    off = 0;
    assert_int_equal(frame_spawn_next_option(&raw, &off, &kind, &data, &n),
                     BERTH_EMALFORMED);
    assert_int_equal(off, 0);

    /* The usual case: the parent's own program, no options. An unknown
     * lifetime and an unknown option decode: the host refuses them with a
     * reason, in a CHILD event. */
    b.len = 0;
    struct frame_spawn own = {.tag = 7, .lifetime = 9};
    assert_int_equal(frame_encode_spawn(&b, &own), 0);
    assert_int_equal(b.len, 15);
    assert_int_equal(frame_decode_spawn(b.data, b.len, &s), 0);
    assert_int_equal(s.tag, 7);
    assert_int_equal(s.lifetime, 9);
    assert_true(s.lifetime_ms == 0);
    assert_int_equal(s.program_len, 0);
    assert_int_equal(s.options_len, 0);
    off = 0;
    assert_int_equal(frame_spawn_next_option(&s, &off, &kind, &data, &n), 1);
    assert_int_equal(frame_encode_spawn_option(&b, 77, "?", 1), 0);
    assert_int_equal(frame_decode_spawn(b.data, b.len, &s), 0);
    assert_int_equal(frame_spawn_next_option(&s, &off, &kind, &data, &n), 0);
    assert_int_equal(kind, 77);
    assert_int_equal(frame_decode_spawn(NULL, 0, &s), BERTH_EMALFORMED);

    /* Lengths that do not fit their fields are refused, writing nothing;
     * the huge ones are never read. */
    static char wide[UINT16_MAX + 1];
    size_t before = b.len;
    struct frame_spawn long_program = {.program = wide,
                                       .program_len = sizeof wide};
    assert_int_equal(frame_encode_spawn(&b, &long_program), BERTH_ETOOBIG);
    if (SIZE_MAX > UINT32_MAX) {
        assert_int_equal(frame_encode_spawn_option(&b, FRAME_SPAWN_ARG, wide,
                                                   (size_t)UINT32_MAX + 1),
                         BERTH_ETOOBIG);
    }
    assert_int_equal(b.len, before);
    buf_free(&b);
}

/* A CHILD payload: round trips for each kind, the id at its limit and one
 * byte over it, and every cut before the detail. */
static void test_child(void **state)
{
    assert_int_equal(FRAME_EVENT_CHILD, 5);
    assert_int_equal(FRAME_CHILD_SPAWNED, 1);
    assert_int_equal(FRAME_CHILD_DESTROYED, 2);
    assert_int_equal(FRAME_CHILD_FAILED, 3);
    static const char id63[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789x";
    assert_int_equal(strlen(id63), FRAME_ID_MAX);
    const struct frame_child cases[] = {
        {.what = FRAME_CHILD_SPAWNED, .tag = 7, .id = "c1", .id_len = 2},
        {.what = FRAME_CHILD_DESTROYED,
         .tag = UINT32_MAX,
         .id = id63,
         .id_len = FRAME_ID_MAX,
         .detail = "cascade",
         .detail_len = 7},
        {.what = FRAME_CHILD_FAILED,
         .tag = 0,
         .detail = "limit_ships: 10",
         .detail_len = 15},
    };
    struct buf b;
    buf_init(&b);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct frame_child *in = &cases[i];
        b.len = 0;
        assert_int_equal(buf_append(&b, "xyz", 3), 0);
        assert_int_equal(frame_encode_child(&b, in), 0);
        const uint8_t *p = b.data + 3;
        size_t len = b.len - 3;
        assert_int_equal(len, 1 + 4 + 2 + in->id_len + in->detail_len);
        assert_int_equal(p[0], in->what);
        assert_int_equal(get_le32(p + 1), in->tag);
        assert_int_equal(get_le16(p + 5), in->id_len);
        struct frame_child c;
        assert_int_equal(frame_decode_child(p, len, &c), 0);
        assert_int_equal(c.what, in->what);
        assert_int_equal(c.tag, in->tag);
        assert_int_equal(c.id_len, in->id_len);
        assert_memory_equal(c.id, in->id ? in->id : "", in->id_len);
        assert_int_equal(c.detail_len, in->detail_len);
        assert_memory_equal(c.detail, in->detail ? in->detail : "",
                            in->detail_len);
        /* Cut before the detail's end: malformed up to the id's end, then a
         * shorter detail. */
        for (size_t cut = 0; cut < len; cut++) {
            int rv = frame_decode_child(p, cut, &c);
            if (cut < 7 + in->id_len) {
                assert_int_equal(rv, BERTH_EMALFORMED);
            } else {
                assert_int_equal(rv, 0);
                assert_int_equal(c.detail_len, cut - 7 - in->id_len);
            }
        }
    }

    /* An id one byte over the limit neither encodes nor decodes. */
    static const char id64[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789xy";
    struct frame_child over = {
        .what = FRAME_CHILD_SPAWNED, .id = id64, .id_len = FRAME_ID_MAX + 1};
    b.len = 0;
    assert_int_equal(frame_encode_child(&b, &over), BERTH_ETOOBIG);
    assert_int_equal(b.len, 0);
    uint8_t raw[1 + 4 + 2 + FRAME_ID_MAX + 1] = {FRAME_CHILD_SPAWNED};
    put_le16(raw + 5, FRAME_ID_MAX + 1);
    memcpy(raw + 7, id64, FRAME_ID_MAX + 1);
    struct frame_child c;
    assert_int_equal(frame_decode_child(raw, sizeof raw, &c), BERTH_EMALFORMED);
    /* An unknown what decodes: a program may see kinds newer than itself. */
    raw[0] = 9;
    put_le16(raw + 5, 1);
    assert_int_equal(frame_decode_child(raw, sizeof raw, &c), 0);
    assert_int_equal(c.what, 9);
    assert_int_equal(c.id_len, 1);
    assert_int_equal(c.detail_len, FRAME_ID_MAX);
    buf_free(&b);
}

/* RELEASE and DESTROY name a ship of at most FRAME_ID_MAX bytes; DESTROY's
 * may be empty (the ship itself). */
static void test_ship_ref(void **state)
{
    static const uint8_t id[FRAME_ID_MAX + 2] = {'a'};
    assert_int_equal(frame_decode_ship_ref(NULL, 0), 0);
    assert_int_equal(frame_decode_ship_ref(id, 1), 0);
    assert_int_equal(frame_decode_ship_ref(id, FRAME_ID_MAX), 0);
    assert_int_equal(frame_decode_ship_ref(id, FRAME_ID_MAX + 1),
                     BERTH_EMALFORMED);
    assert_int_equal(frame_decode_ship_ref(id, sizeof id), BERTH_EMALFORMED);
}

/* Lengths that do not fit their fields are refused rather than truncated,
 * and nothing is written. The huge lengths are never read: the check comes
 * first. */
static void test_encoders_too_big(void **state)
{
    static char wide[UINT16_MAX + 1];
    struct buf b;
    buf_init(&b);
    assert_int_equal(frame_encode_stop(&b), 0);
    size_t before = b.len;

    struct frame_boot boot = {.id = wide, .id_len = sizeof wide};
    assert_int_equal(frame_encode_boot(&b, &boot), BERTH_ETOOBIG);
    struct frame_event ev = {.payload = (const uint8_t *)wide,
                             .payload_len = UINT32_MAX};
    assert_int_equal(frame_encode_event(&b, &ev), BERTH_ETOOBIG);
    assert_int_equal(frame_encode_snapshot(&b, 1, wide, UINT32_MAX - 8),
                     BERTH_ETOOBIG);
    assert_int_equal(frame_encode_reject(&b, 1, wide, UINT32_MAX),
                     BERTH_ETOOBIG);
    assert_int_equal(b.len, before);

    struct frame_http_request r = {.method = wide, .method_len = sizeof wide};
    assert_int_equal(frame_encode_http_request(&b, &r, NULL), BERTH_ETOOBIG);
    struct frame_header h = {.name = wide, .name_len = sizeof wide};
    struct frame_http_request r2 = {
        .method = "GET", .method_len = 3, .n_headers = 1};
    assert_int_equal(frame_encode_http_request(&b, &r2, &h), BERTH_ETOOBIG);
    struct frame_http_reply rep = {.content_type = wide,
                                   .content_type_len = sizeof wide};
    assert_int_equal(frame_encode_http_reply(&b, &rep), BERTH_ETOOBIG);
    assert_int_equal(b.len, before);

    size_t mark;
    assert_int_equal(frame_done_begin(&b, 1, 0, &mark), 0);
    assert_int_equal(frame_done_add_effect(&b, mark, FRAME_EFFECT_LOG, wide,
                                           UINT32_MAX - 10),
                     BERTH_ETOOBIG);
    frame_done_end(&b, mark);
    struct frame f;
    size_t used;
    assert_int_equal(frame_split(b.data + before, b.len - before,
                                 FRAME_MAX_DEFAULT, &f, &used),
                     0);
    struct frame_done d;
    assert_int_equal(frame_decode_done(&f, &d), 0);
    assert_int_equal(d.n_effects, 0);
    buf_free(&b);
}

/* The encoders under test, each appending one frame or payload to b. */
static int encode_nth(int which, struct buf *b)
{
    static uint8_t big[300];
    struct frame_header hs[2] = {
        {.name = "h",
         .name_len = 1,
         .value = (const char *)big,
         .value_len = 100},
        {.name = "i", .name_len = 1, .value = "j", .value_len = 1},
    };
    struct frame_http_request req = {.method = "GET",
                                     .method_len = 3,
                                     .target = "/",
                                     .target_len = 1,
                                     .n_headers = 2,
                                     .body = big,
                                     .body_len = 50};
    struct frame_http_reply rep = {.status = 200,
                                   .content_type = "a/b",
                                   .content_type_len = 3,
                                   .body = big,
                                   .body_len = sizeof big};
    struct frame_boot boot = {.id = "ship",
                              .id_len = 4,
                              .snapshot_event = 3,
                              .snapshot = big,
                              .snapshot_len = sizeof big};
    struct frame_event ev = {.number = 1,
                             .kind = FRAME_EVENT_POKE,
                             .payload = big,
                             .payload_len = sizeof big};
    struct frame_spawn spawn = {.tag = 1,
                                .lifetime = FRAME_LIFETIME_LINKED,
                                .program = (const char *)big,
                                .program_len = sizeof big};
    struct frame_child child = {.what = FRAME_CHILD_FAILED,
                                .id = "c",
                                .id_len = 1,
                                .detail = (const char *)big,
                                .detail_len = sizeof big};
    size_t mark;
    int rv;
    switch (which) {
    case 0:
        return frame_encode_boot(b, &boot);
    case 1:
        return frame_encode_event(b, &ev);
    case 2:
        return frame_encode_snap_req(b, 5);
    case 3:
        return frame_encode_stop(b);
    case 4:
        return frame_encode_ready(b, true);
    case 5:
        return frame_encode_reject(b, 2, (const char *)big, sizeof big);
    case 6:
        return frame_encode_snapshot(b, 2, big, sizeof big);
    case 7:
        return frame_encode_http_request(b, &req, hs);
    case 8:
        return frame_encode_http_reply(b, &rep);
    case 9:
        if ((rv = frame_done_begin(b, 4, 0, &mark)) != 0) {
            return rv;
        }
        if ((rv = frame_done_add_effect(b, mark, FRAME_EFFECT_LOG, big,
                                        sizeof big)) != 0) {
            /* A failed effect leaves the frame whole; drop it to keep the
             * "unchanged on failure" check simple. */
            b->len = mark;
            return rv;
        }
        frame_done_end(b, mark);
        return 0;
    case 10:
        return frame_encode_alarm(b, 1700000005000000000ull);
    case 11:
        return frame_encode_timer(b, UINT64_MAX);
    case 12:
        return frame_encode_spawn(b, &spawn);
    case 13:
        return frame_encode_spawn_option(b, FRAME_SPAWN_ENV, big, sizeof big);
    case 14:
        return frame_encode_child(b, &child);
    }
    return BERTH_EINVAL;
}

/* Each encoder, with allocation failing at each point it allocates and with
 * the output already holding some bytes, fails with BERTH_ENOMEM and leaves
 * the output as it was; with allocation back it succeeds. */
static void test_encoders_out_of_memory(void **state)
{
    static const size_t prefill[] = {0, 3, 60, 64, 200};
    for (int which = 0; which <= 14; which++) {
        for (size_t p = 0; p < sizeof prefill / sizeof prefill[0]; p++) {
            for (int k = 0;; k++) {
                struct buf b;
                buf_init(&b);
                uint8_t junk[200];
                memset(junk, 0xee, sizeof junk);
                assert_int_equal(buf_append(&b, junk, prefill[p]), 0);
                mem_fault_countdown(k);
                int rv = encode_nth(which, &b);
                mem_fault_countdown(-1);
                if (rv == 0) {
                    assert_true(b.len > prefill[p]);
                    buf_free(&b);
                    break;
                }
                assert_int_equal(rv, BERTH_ENOMEM);
                assert_int_equal(b.len, prefill[p]);
                if (prefill[p] > 0) {
                    assert_memory_equal(b.data, junk, prefill[p]);
                }
                buf_free(&b);
                assert_true(k < 16);
            }
        }
    }
    /* The simplest case, as callers meet it. */
    struct buf b;
    buf_init(&b);
    mem_fault_countdown(0);
    assert_int_equal(frame_encode_stop(&b), BERTH_ENOMEM);
    assert_int_equal(frame_encode_ready(&b, false), BERTH_ENOMEM);
    size_t mark;
    assert_int_equal(frame_done_begin(&b, 1, 0, &mark), BERTH_ENOMEM);
    mem_fault_countdown(-1);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

/* An effect that cannot be added leaves the DONE frame valid with the
 * effects added before it. */
static void test_done_effect_out_of_memory(void **state)
{
    static uint8_t big[4096];
    struct buf b;
    buf_init(&b);
    size_t mark;
    assert_int_equal(frame_done_begin(&b, 7, FRAME_DONE_CHANGED, &mark), 0);
    assert_int_equal(frame_done_add_effect(&b, mark, FRAME_EFFECT_LOG, "a", 1),
                     0);
    mem_fault_countdown(0);
    assert_int_equal(
        frame_done_add_effect(&b, mark, FRAME_EFFECT_LOG, big, sizeof big),
        BERTH_ENOMEM);
    mem_fault_countdown(-1);
    frame_done_end(&b, mark);
    struct frame f = split_one(&b);
    struct frame_done d;
    assert_int_equal(frame_decode_done(&f, &d), 0);
    assert_int_equal(d.n_effects, 1);
    buf_free(&b);
}

/* WEBSOCKET payloads and the WS_SEND and WS_CLOSE effects. */
static void test_websocket_codecs(void **state)
{
    struct buf b;
    buf_init(&b);
    struct frame_websocket w = {.conn = 0x500000001ULL,
                                .what = FRAME_WS_TEXT,
                                .data = (const uint8_t *)"hi",
                                .len = 2};
    assert_int_equal(frame_encode_websocket(&b, &w), 0);
    assert_int_equal(b.len, 11);
    struct frame_websocket d;
    assert_int_equal(frame_decode_websocket(b.data, b.len, &d), 0);
    assert_true(d.conn == w.conn);
    assert_int_equal(d.what, FRAME_WS_TEXT);
    assert_int_equal(d.len, 2);
    assert_memory_equal(d.data, "hi", 2);
    b.data[8] = 5; /* no such what */
    assert_int_equal(frame_decode_websocket(b.data, b.len, &d),
                     BERTH_EMALFORMED);
    assert_int_equal(frame_decode_websocket(b.data, 8, &d), BERTH_EMALFORMED);
    buf_free(&b);

    uint8_t p[9 + 3];
    struct frame_ws_send sd;
    put_le64(p, 7);
    p[8] = 1;
    memcpy(p + 9, "abc", 3);
    assert_int_equal(frame_decode_ws_send(p, sizeof p, &sd), 0);
    assert_int_equal(sd.opcode, 1);
    assert_int_equal(sd.len, 3);
    p[9] = 0xff; /* text that is not UTF-8 */
    assert_int_equal(frame_decode_ws_send(p, sizeof p, &sd), BERTH_EMALFORMED);
    p[8] = 2; /* the same bytes as binary */
    assert_int_equal(frame_decode_ws_send(p, sizeof p, &sd), 0);
    p[8] = 9; /* a ping is the host's */
    assert_int_equal(frame_decode_ws_send(p, sizeof p, &sd), BERTH_EMALFORMED);
    put_le64(p, 0); /* conn 0 */
    p[8] = 2;
    assert_int_equal(frame_decode_ws_send(p, sizeof p, &sd), BERTH_EMALFORMED);

    uint8_t c[10 + 124];
    struct frame_ws_close cl;
    put_le64(c, 7);
    put_le16(c + 8, 4000);
    memset(c + 10, 'r', 124);
    assert_int_equal(frame_decode_ws_close(c, 10 + 123, &cl), 0);
    assert_int_equal(cl.code, 4000);
    assert_int_equal(cl.reason_len, 123);
    assert_int_equal(frame_decode_ws_close(c, 10 + 124, &cl), BERTH_EMALFORMED);
    put_le16(c + 8, 1005); /* never sent on the wire */
    assert_int_equal(frame_decode_ws_close(c, 10, &cl), BERTH_EMALFORMED);
    put_le16(c + 8, 1000);
    assert_int_equal(frame_decode_ws_close(c, 10, &cl), 0);
    assert_int_equal(frame_decode_ws_close(c, 9, &cl), BERTH_EMALFORMED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_limits),
        cmocka_unit_test(test_split_stream),
        cmocka_unit_test(test_boot),
        cmocka_unit_test(test_event),
        cmocka_unit_test(test_small_frames),
        cmocka_unit_test(test_done_with_effects),
        cmocka_unit_test(test_effects_walk_malformed),
        cmocka_unit_test(test_http_request_payload),
        cmocka_unit_test(test_http_reply_payload),
        cmocka_unit_test(test_alarm_and_timer),
        cmocka_unit_test(test_spawn),
        cmocka_unit_test(test_child),
        cmocka_unit_test(test_ship_ref),
        cmocka_unit_test(test_encoders_too_big),
        cmocka_unit_test(test_encoders_out_of_memory),
        cmocka_unit_test(test_done_effect_out_of_memory),
        cmocka_unit_test(test_websocket_codecs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
