/* WebSocket framing (http/websocket.h) and UTF-8 (lib/utf8.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "http/websocket.h"
#include "lib/err.h"
#include "lib/utf8.h"

static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Append a client frame (masked) to out at *n. */
static void frame(uint8_t *out, size_t *n, bool fin, uint8_t op, const void *p,
                  size_t len)
{
    size_t h = ws_head_encode(out + *n, fin, op, len);
    out[*n + 1] |= 0x80;
    memcpy(out + *n + h, mask, 4);
    memcpy(out + *n + h + 4, p, len);
    ws_mask(out + *n + h + 4, len, mask, 0);
    *n += h + 4 + len;
}

static void test_accept_key_of_the_rfc(void **state)
{
    char out[WS_ACCEPT_LEN + 1];
    assert_int_equal(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_int_equal(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=", out),
                     BERTH_EINVAL);
    assert_int_equal(ws_accept_key("dGhlIHNhbXBsZSBub25j*Q==", out),
                     BERTH_EINVAL);
    assert_int_equal(ws_accept_key("", out), BERTH_EINVAL);
}

static void test_masked_hello_of_the_rfc(void **state)
{
    uint8_t in[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                    0x7f, 0x9f, 0x4d, 0x51, 0x58};
    struct ws_reader r;
    ws_reader_init(&r, 1024);
    struct ws_item it;
    size_t used;
    for (size_t n = 0; n < sizeof in; n++) {
        assert_int_equal(ws_read(&r, in, n, &used, &it), WS_READ_MORE);
        assert_int_equal(used, 0);
    }
    assert_int_equal(ws_read(&r, in, sizeof in, &used, &it), WS_READ_ITEM);
    assert_int_equal(used, sizeof in);
    assert_int_equal(it.opcode, WS_OP_TEXT);
    assert_int_equal(it.len, 5);
    assert_memory_equal(it.data, "Hello", 5);
    ws_reader_free(&r);
}

static void test_fragments_with_a_ping_between(void **state)
{
    uint8_t in[256];
    size_t n = 0;
    frame(in, &n, false, WS_OP_TEXT, "Hel", 3);
    frame(in, &n, true, WS_OP_PING, "p", 1);
    frame(in, &n, false, WS_OP_CONT, "lo ", 3);
    frame(in, &n, true, WS_OP_CONT, "world", 5);
    struct ws_reader r;
    ws_reader_init(&r, 1024);
    struct ws_item it;
    size_t used, off = 0;
    assert_int_equal(ws_read(&r, in, n, &used, &it), WS_READ_AGAIN);
    off += used;
    assert_int_equal(ws_read(&r, in + off, n - off, &used, &it), WS_READ_ITEM);
    assert_int_equal(it.opcode, WS_OP_PING);
    assert_memory_equal(it.data, "p", 1);
    off += used;
    assert_int_equal(ws_read(&r, in + off, n - off, &used, &it), WS_READ_AGAIN);
    off += used;
    assert_int_equal(ws_read(&r, in + off, n - off, &used, &it), WS_READ_ITEM);
    off += used;
    assert_int_equal(off, n);
    assert_int_equal(it.opcode, WS_OP_TEXT);
    assert_int_equal(it.len, 11);
    assert_memory_equal(it.data, "Hello world", 11);
    /* The next call frees the reassembled message: an idle reader holds
     * nothing. */
    assert_int_equal(ws_read(&r, in, 0, &used, &it), WS_READ_MORE);
    assert_null(r.msg.data);
    ws_reader_free(&r);
}

static int read_one(uint8_t *in, size_t n, size_t max, struct ws_item *it)
{
    struct ws_reader r;
    ws_reader_init(&r, max);
    size_t used;
    int rv;
    size_t off = 0;
    while ((rv = ws_read(&r, in + off, n - off, &used, it)) == WS_READ_AGAIN) {
        off += used;
    }
    ws_reader_free(&r);
    return rv;
}

static void test_protocol_errors(void **state)
{
    struct ws_item it;
    /* Unmasked. */
    uint8_t a[] = {0x81, 0x01, 'x'};
    assert_int_equal(read_one(a, sizeof a, 100, &it), WS_READ_ERROR);
    assert_int_equal(it.code, WS_CLOSE_PROTOCOL);
    /* Reserved bits, unknown opcode, a long or fragmented ping. */
    uint8_t in[512];
    size_t n = 0;
    frame(in, &n, true, WS_OP_TEXT, "x", 1);
    in[0] |= 0x40;
    assert_int_equal(read_one(in, n, 100, &it), WS_READ_ERROR);
    assert_int_equal(it.code, WS_CLOSE_PROTOCOL);
    n = 0;
    frame(in, &n, true, 3, "x", 1);
    assert_int_equal(read_one(in, n, 100, &it), WS_READ_ERROR);
    n = 0;
    uint8_t big[126] = {0};
    frame(in, &n, true, WS_OP_PING, big, sizeof big);
    assert_int_equal(read_one(in, n, 1000, &it), WS_READ_ERROR);
    n = 0;
    frame(in, &n, false, WS_OP_PING, "x", 1);
    assert_int_equal(read_one(in, n, 100, &it), WS_READ_ERROR);
    /* A continuation without a message; a message inside a message. */
    n = 0;
    frame(in, &n, true, WS_OP_CONT, "x", 1);
    assert_int_equal(read_one(in, n, 100, &it), WS_READ_ERROR);
    n = 0;
    frame(in, &n, false, WS_OP_TEXT, "x", 1);
    frame(in, &n, true, WS_OP_BINARY, "x", 1);
    assert_int_equal(read_one(in, n, 100, &it), WS_READ_ERROR);
    assert_int_equal(it.code, WS_CLOSE_PROTOCOL);
}

static void test_limits_and_utf8(void **state)
{
    struct ws_item it;
    uint8_t in[512];
    uint8_t body[200] = {0};
    size_t n = 0;
    frame(in, &n, true, WS_OP_BINARY, body, sizeof body);
    assert_int_equal(read_one(in, n, 199, &it), WS_READ_ERROR);
    assert_int_equal(it.code, WS_CLOSE_TOO_BIG);
    assert_int_equal(read_one(in, n, 200, &it), WS_READ_ITEM);
    /* Fragments adding up past the limit; refused from the head alone. */
    n = 0;
    frame(in, &n, false, WS_OP_BINARY, body, 150);
    frame(in, &n, true, WS_OP_CONT, body, 60);
    assert_int_equal(read_one(in, n - 60, 200, &it), WS_READ_ERROR);
    assert_int_equal(it.code, WS_CLOSE_TOO_BIG);
    /* Text must be UTF-8, whole: a character split across fragments is
     * fine. */
    n = 0;
    frame(in, &n, true, WS_OP_TEXT, "\xc3\x28", 2);
    assert_int_equal(read_one(in, n, 100, &it), WS_READ_ERROR);
    assert_int_equal(it.code, WS_CLOSE_INVALID_DATA);
    n = 0;
    frame(in, &n, false, WS_OP_TEXT, "\xc3", 1);
    frame(in, &n, true, WS_OP_CONT, "\xa9", 1);
    assert_int_equal(read_one(in, n, 100, &it), WS_READ_ITEM);
    assert_int_equal(it.len, 2);
    /* A head announcing 2^63 bytes. */
    uint8_t huge[] = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
    assert_int_equal(read_one(huge, sizeof huge, 100, &it), WS_READ_ERROR);
}

static void test_close_frames(void **state)
{
    struct ws_item it;
    uint8_t in[256];
    size_t n = 0;
    frame(in, &n, true, WS_OP_CLOSE, "", 0);
    assert_int_equal(read_one(in, n, 100, &it), WS_READ_ITEM);
    assert_int_equal(it.opcode, WS_OP_CLOSE);
    assert_int_equal(it.code, WS_CLOSE_NO_STATUS);
    n = 0;
    frame(in, &n, true, WS_OP_CLOSE,
          "\x03\xe8"
          "bye",
          5);
    assert_int_equal(read_one(in, n, 100, &it), WS_READ_ITEM);
    assert_int_equal(it.code, 1000);
    assert_int_equal(it.len, 3);
    assert_memory_equal(it.data, "bye", 3);
    n = 0;
    frame(in, &n, true, WS_OP_CLOSE, "\x03", 1);
    assert_int_equal(read_one(in, n, 100, &it), WS_READ_ERROR);
    n = 0;
    frame(in, &n, true, WS_OP_CLOSE, "\x03\xed", 2); /* 1005: not sent */
    assert_int_equal(read_one(in, n, 100, &it), WS_READ_ERROR);
    assert_int_equal(it.code, WS_CLOSE_PROTOCOL);
    n = 0;
    frame(in, &n, true, WS_OP_CLOSE, "\x0f\xa0\xff", 3); /* 4000, bad UTF-8 */
    assert_int_equal(read_one(in, n, 100, &it), WS_READ_ERROR);
    assert_int_equal(it.code, WS_CLOSE_INVALID_DATA);
    assert_true(ws_close_code_valid(1000));
    assert_true(ws_close_code_valid(4999));
    assert_false(ws_close_code_valid(1004));
    assert_false(ws_close_code_valid(1006));
    assert_false(ws_close_code_valid(2999));
    assert_false(ws_close_code_valid(5000));
}

static void test_head_encoding(void **state)
{
    uint64_t lens[] = {0, 125, 126, 65535, 65536, 1ULL << 40};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        uint8_t out[WS_HEAD_MAX];
        size_t n = ws_head_encode(out, true, WS_OP_BINARY, lens[i]);
        struct ws_head h;
        assert_int_equal(ws_head_parse(out, n, &h), 0);
        assert_int_equal(h.head_len, n);
        assert_int_equal(h.len, lens[i]);
        assert_true(h.fin);
        assert_false(h.masked);
        assert_int_equal(h.opcode, WS_OP_BINARY);
        assert_int_equal(ws_head_parse(out, n - 1, &h), BERTH_EPARTIAL);
    }
}

static void test_utf8(void **state)
{
    assert_true(utf8_valid("", 0));
    assert_true(utf8_valid("plain", 5));
    assert_true(utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
    assert_false(utf8_valid("\xc0\xaf", 2));         /* overlong */
    assert_false(utf8_valid("\xe0\x80\xaf", 3));     /* overlong */
    assert_false(utf8_valid("\xed\xa0\x80", 3));     /* a surrogate */
    assert_false(utf8_valid("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
    assert_false(utf8_valid("\xe2\x82", 2));         /* cut short */
    assert_false(utf8_valid("\x80", 1));
    assert_false(utf8_valid("\xff", 1));
}

static struct http_request *upgrade_req(const char *method, const char *up,
                                        const char *conn, const char *version,
                                        const char *key)
{
    static struct http_request req;
    memset(&req, 0, sizeof req);
    req.method = (char *)method;
    req.target = "/";
    const char *names[] = {"upgrade", "connection", "sec-websocket-version",
                           "sec-websocket-key"};
    const char *values[] = {up, conn, version, key};
    for (int i = 0; i < 4; i++) {
        if (values[i] != NULL) {
            req.headers[req.n_headers].name = (char *)names[i];
            req.headers[req.n_headers].value = (char *)values[i];
            req.n_headers++;
        }
    }
    return &req;
}

static void test_upgrade_kind(void **state)
{
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    assert_int_equal(
        ws_upgrade_kind(upgrade_req("GET", NULL, NULL, NULL, NULL)),
        WS_UPGRADE_NONE);
    assert_int_equal(ws_upgrade_kind(upgrade_req(
                         "GET", "WebSocket", "keep-alive, Upgrade", "13", key)),
                     WS_UPGRADE_OK);
    assert_int_equal(
        ws_upgrade_kind(upgrade_req("POST", "websocket", "upgrade", "13", key)),
        WS_UPGRADE_BAD);
    assert_int_equal(ws_upgrade_kind(upgrade_req("GET", "websocket",
                                                 "keep-alive", "13", key)),
                     WS_UPGRADE_BAD);
    assert_int_equal(
        ws_upgrade_kind(upgrade_req("GET", "websocket", "upgrade", "8", key)),
        WS_UPGRADE_VERSION);
    assert_int_equal(ws_upgrade_kind(upgrade_req("GET", "websocket", "upgrade",
                                                 "13", "short")),
                     WS_UPGRADE_BAD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_key_of_the_rfc),
        cmocka_unit_test(test_masked_hello_of_the_rfc),
        cmocka_unit_test(test_fragments_with_a_ping_between),
        cmocka_unit_test(test_protocol_errors),
        cmocka_unit_test(test_limits_and_utf8),
        cmocka_unit_test(test_close_frames),
        cmocka_unit_test(test_head_encoding),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_upgrade_kind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
