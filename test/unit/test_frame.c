/* The frame codec: every frame round-trips, partial input asks for more,
 * and no truncation or bad length decodes. */
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

/* Split the one frame in b and check it used all of it. */
static struct frame split_one(const struct buf *b)
{
    struct frame f;
    size_t used;
    assert_int_equal(frame_split(b->data, b->len, FRAME_MAX_DEFAULT, &f, &used),
                     0);
    assert_int_equal(used, b->len);
    /* Every shorter prefix is partial. */
    for (size_t n = 0; n < b->len; n++) {
        struct frame g;
        assert_int_equal(frame_split(b->data, n, FRAME_MAX_DEFAULT, &g, &used),
                         BERTH_EPARTIAL);
    }
    return f;
}

static void test_split_limits(void **state)
{
    uint8_t zero[5] = {0, 0, 0, 0, 1};
    uint8_t big[5] = {0, 0, 0, 0x10, 1};
    struct frame f;
    size_t used;
    assert_int_equal(frame_split(zero, 5, 1024, &f, &used), BERTH_EMALFORMED);
    assert_int_equal(frame_split(big, 5, 1024, &f, &used), BERTH_ETOOBIG);
}

static void test_boot(void **state)
{
    struct buf b;
    buf_init(&b);
    struct frame_boot in = {.id = "abc", .id_len = 3, .snapshot_event = 9,
                            .snapshot = (const uint8_t *)"snap",
                            .snapshot_len = 4};
    assert_int_equal(frame_encode_boot(&b, &in), 0);
    struct frame f = split_one(&b);
    struct frame_boot out;
    assert_int_equal(frame_decode_boot(&f, &out), 0);
    assert_int_equal(out.id_len, 3);
    assert_memory_equal(out.id, "abc", 3);
    assert_int_equal(out.snapshot_event, 9);
    assert_int_equal(out.snapshot_len, 4);
    /* The wrong decoder refuses it. */
    struct frame_event ev;
    assert_int_equal(frame_decode_event(&f, &ev), BERTH_EMALFORMED);
    f.body_len = 4;
    assert_int_equal(frame_decode_boot(&f, &out), BERTH_EMALFORMED);
    buf_free(&b);
}

static void test_event(void **state)
{
    struct buf b;
    buf_init(&b);
    struct frame_event in = {.number = 5, .time_ns = 77, .kind = 2,
                             .payload = (const uint8_t *)"poke",
                             .payload_len = 4};
    memset(in.entropy, 3, sizeof in.entropy);
    assert_int_equal(frame_encode_event(&b, &in), 0);
    struct frame f = split_one(&b);
    struct frame_event out;
    assert_int_equal(frame_decode_event(&f, &out), 0);
    assert_int_equal(out.number, 5);
    assert_int_equal(out.time_ns, 77);
    assert_memory_equal(out.entropy, in.entropy, sizeof in.entropy);
    assert_int_equal(out.kind, 2);
    assert_memory_equal(out.payload, "poke", 4);
    for (size_t n = 0; n < 8 + 8 + 32 + 1; n++) {
        f.body_len = n;
        assert_int_equal(frame_decode_event(&f, &out), BERTH_EMALFORMED);
    }
    buf_free(&b);
}

static void test_done_with_effects(void **state)
{
    struct buf b;
    size_t mark;
    buf_init(&b);
    assert_int_equal(frame_done_begin(&b, 12, FRAME_DONE_CHANGED, &mark), 0);
    struct buf reply;
    buf_init(&reply);
    struct frame_http_reply r = {.status = 201, .content_type = "text/plain",
                                 .content_type_len = 10,
                                 .body = (const uint8_t *)"ok", .body_len = 2};
    assert_int_equal(frame_encode_http_reply(&reply, &r), 0);
    assert_int_equal(frame_done_add_effect(&b, mark, FRAME_EFFECT_HTTP_REPLY,
                                           reply.data, reply.len),
                     0);
    assert_int_equal(
        frame_done_add_effect(&b, mark, FRAME_EFFECT_LOG, "line", 4), 0);
    frame_done_end(&b, mark);
    struct frame f = split_one(&b);
    struct frame_done d;
    assert_int_equal(frame_decode_done(&f, &d), 0);
    assert_int_equal(d.number, 12);
    assert_int_equal(d.flags, FRAME_DONE_CHANGED);
    assert_int_equal(d.n_effects, 2);
    size_t off = 0;
    struct frame_effect e;
    assert_int_equal(frame_effects_next(&d, &off, &e), 0);
    assert_int_equal(e.kind, FRAME_EFFECT_HTTP_REPLY);
    struct frame_http_reply rr;
    assert_int_equal(frame_decode_http_reply(e.data, e.len, &rr), 0);
    assert_int_equal(rr.status, 201);
    assert_memory_equal(rr.content_type, "text/plain", 10);
    assert_int_equal(rr.body_len, 2);
    assert_int_equal(frame_effects_next(&d, &off, &e), 0);
    assert_int_equal(e.kind, FRAME_EFFECT_LOG);
    assert_int_equal(frame_effects_next(&d, &off, &e), 1);
    /* A count that disagrees with the effects, or a truncated effect, is
     * malformed. */
    b.data[14]++;
    f = split_one(&b);
    assert_int_equal(frame_decode_done(&f, &d), BERTH_EMALFORMED);
    b.data[14]--;
    f.body_len -= 1;
    assert_int_equal(frame_decode_done(&f, &d), BERTH_EMALFORMED);
    assert_int_equal(frame_decode_http_reply(reply.data, 3, &rr),
                     BERTH_EMALFORMED);
    buf_free(&reply);
    buf_free(&b);
}

static void test_small_frames(void **state)
{
    struct buf b;
    buf_init(&b);
    struct frame f;
    uint64_t n;
    bool accepted;
    assert_int_equal(frame_encode_snap_req(&b, 44), 0);
    f = split_one(&b);
    assert_int_equal(frame_decode_snap_req(&f, &n), 0);
    assert_int_equal(n, 44);
    b.len = 0;
    assert_int_equal(frame_encode_ready(&b, true), 0);
    f = split_one(&b);
    assert_int_equal(frame_decode_ready(&f, &accepted), 0);
    assert_true(accepted);
    b.data[5] = 7; /* neither 0 nor 1 */
    assert_int_equal(frame_decode_ready(&f, &accepted), BERTH_EMALFORMED);
    b.len = 0;
    assert_int_equal(frame_encode_reject(&b, 3, "no", 2), 0);
    f = split_one(&b);
    struct frame_reject rj;
    assert_int_equal(frame_decode_reject(&f, &rj), 0);
    assert_int_equal(rj.number, 3);
    assert_memory_equal(rj.reason, "no", 2);
    b.len = 0;
    assert_int_equal(frame_encode_snapshot(&b, 8, "abc", 3), 0);
    f = split_one(&b);
    struct frame_snapshot sn;
    assert_int_equal(frame_decode_snapshot(&f, &sn), 0);
    assert_int_equal(sn.number, 8);
    assert_int_equal(sn.len, 3);
    b.len = 0;
    assert_int_equal(frame_encode_stop(&b), 0);
    f = split_one(&b);
    assert_int_equal(f.type, FRAME_STOP);
    assert_int_equal(f.body_len, 0);
    buf_free(&b);
}

static void test_http_request_payload(void **state)
{
    struct frame_header hs[2] = {
        {.name = "host", .name_len = 4, .value = "x", .value_len = 1},
        {.name = "a", .name_len = 1, .value = "bc", .value_len = 2},
    };
    struct frame_http_request in = {
        .method = "PUT", .method_len = 3, .target = "/k/a", .target_len = 4,
        .n_headers = 2, .body = (const uint8_t *)"v", .body_len = 1};
    struct buf b;
    buf_init(&b);
    assert_int_equal(frame_encode_http_request(&b, &in, hs), 0);
    struct frame_http_request out;
    assert_int_equal(frame_decode_http_request(b.data, b.len, &out), 0);
    assert_memory_equal(out.method, "PUT", 3);
    assert_memory_equal(out.target, "/k/a", 4);
    assert_int_equal(out.n_headers, 2);
    assert_int_equal(out.body_len, 1);
    size_t off = 0;
    struct frame_header h;
    assert_int_equal(frame_http_next_header(&out, &off, &h), 0);
    assert_memory_equal(h.name, "host", 4);
    assert_int_equal(frame_http_next_header(&out, &off, &h), 0);
    assert_memory_equal(h.value, "bc", 2);
    assert_int_equal(frame_http_next_header(&out, &off, &h), 1);
    /* Truncations inside the header section are malformed. */
    for (size_t n = 0; n < b.len - 1; n++) {
        int rv = frame_decode_http_request(b.data, n, &out);
        assert_true(rv == BERTH_EMALFORMED || out.body_len == 0 ||
                    n >= b.len - 1);
    }
    buf_free(&b);
}

static void test_encoders_out_of_memory(void **state)
{
    struct buf b;
    buf_init(&b);
    struct frame_event ev = {.number = 1};
    mem_fault_countdown(0);
    assert_int_equal(frame_encode_event(&b, &ev), BERTH_ENOMEM);
    assert_int_equal(frame_encode_stop(&b), BERTH_ENOMEM);
    mem_fault_countdown(-1);
    assert_int_equal(b.len, 0);
    /* A failure midway leaves out as it was. */
    assert_int_equal(frame_encode_stop(&b), 0);
    size_t before = b.len;
    uint8_t big[256] = {0};
    ev.payload = big;
    ev.payload_len = sizeof big;
    mem_fault_countdown(0);
    assert_int_equal(frame_encode_event(&b, &ev), BERTH_ENOMEM);
    mem_fault_countdown(-1);
    assert_int_equal(b.len, before);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_limits),
        cmocka_unit_test(test_boot),
        cmocka_unit_test(test_event),
        cmocka_unit_test(test_done_with_effects),
        cmocka_unit_test(test_small_frames),
        cmocka_unit_test(test_http_request_payload),
        cmocka_unit_test(test_encoders_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
