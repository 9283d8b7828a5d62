/* The codec of forwarded HTTP requests and answers: round trips, and
 * truncated, padded and hostile messages, which must decode to an error
 * and never read out of bounds (ASan watches). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "http/forward.h"
#include "lib/err.h"
#include "lib/mem.h"

/* Decode from a copy of exactly len bytes on the heap, so that ASan sees
 * any read past the end. */
static int decode_request(const uint8_t *p, size_t len,
                          struct http_forward_request *out, uint8_t **copy)
{
    *copy = mem_alloc(len ? len : 1);
    assert_non_null(*copy);
    memcpy(*copy, p, len);
    return http_forward_decode_request(*copy, len, out);
}

static int decode_answer(const uint8_t *p, size_t len,
                         struct http_forward_answer *out, uint8_t **copy)
{
    *copy = mem_alloc(len ? len : 1);
    assert_non_null(*copy);
    memcpy(*copy, p, len);
    return http_forward_decode_answer(*copy, len, out);
}

static void set_header(struct http_forward_header *h, const char *name,
                       const char *value)
{
    h->name = name;
    h->name_len = strlen(name);
    h->value = value;
    h->value_len = strlen(value);
}

/* A request with every kind of field, and a body with NULs in it. */
static void sample_request(struct http_forward_request *r)
{
    static const uint8_t body[] = {'a', 0, 'b', '\r', '\n', 0xff};
    memset(r, 0, sizeof *r);
    r->server = HTTP_FORWARD_FRONT;
    r->method = "PUT";
    r->method_len = 3;
    r->target = "/s/ann/k/x?y=%20z";
    r->target_len = strlen(r->target);
    set_header(&r->headers[0], "host", "example.org");
    set_header(&r->headers[1], "x-empty", "");
    set_header(&r->headers[2], "x-odd", "tab\there \x80\xff");
    r->n_headers = 3;
    r->body = body;
    r->body_len = sizeof body;
}

static void assert_field(const char *p, size_t len, const char *want)
{
    assert_int_equal(len, strlen(want));
    assert_memory_equal(p, want, len);
}

static void test_request_round_trip(void **state)
{
    struct http_forward_request r, d;
    struct buf b;
    uint8_t *copy;
    sample_request(&r);
    buf_init(&b);
    assert_int_equal(http_forward_encode_request(&b, &r), 0);
    assert_int_equal(decode_request(b.data, b.len, &d, &copy), 0);
    assert_int_equal(d.server, HTTP_FORWARD_FRONT);
    assert_field(d.method, d.method_len, "PUT");
    assert_field(d.target, d.target_len, r.target);
    assert_int_equal(d.n_headers, 3);
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(d.headers[i].name_len, r.headers[i].name_len);
        assert_memory_equal(d.headers[i].name, r.headers[i].name,
                            r.headers[i].name_len);
        assert_int_equal(d.headers[i].value_len, r.headers[i].value_len);
        assert_memory_equal(d.headers[i].value, r.headers[i].value,
                            r.headers[i].value_len);
    }
    assert_int_equal(d.body_len, r.body_len);
    assert_memory_equal(d.body, r.body, r.body_len);
    mem_free(copy);

    /* No headers, no body, the admin API. */
    memset(&r, 0, sizeof r);
    r.server = HTTP_FORWARD_ADMIN;
    r.method = "GET";
    r.method_len = 3;
    r.target = "/v1/ships";
    r.target_len = 9;
    buf_free(&b);
    assert_int_equal(http_forward_encode_request(&b, &r), 0);
    assert_int_equal(decode_request(b.data, b.len, &d, &copy), 0);
    assert_int_equal(d.server, HTTP_FORWARD_ADMIN);
    assert_int_equal(d.n_headers, 0);
    assert_int_equal(d.body_len, 0);
    mem_free(copy);

    /* As many headers as a request may have. */
    static char names[HTTP_MAX_HEADERS][16];
    for (unsigned i = 0; i < HTTP_MAX_HEADERS; i++) {
        snprintf(names[i], sizeof names[i], "x-h%u", i);
        set_header(&r.headers[i], names[i], names[i]);
    }
    r.n_headers = HTTP_MAX_HEADERS;
    buf_free(&b);
    assert_int_equal(http_forward_encode_request(&b, &r), 0);
    assert_int_equal(decode_request(b.data, b.len, &d, &copy), 0);
    assert_int_equal(d.n_headers, HTTP_MAX_HEADERS);
    assert_field(d.headers[63].value, d.headers[63].value_len, "x-h63");
    mem_free(copy);
    buf_free(&b);
}

static void test_answer_round_trip(void **state)
{
    struct http_forward_answer a;
    struct buf b;
    uint8_t *copy;
    buf_init(&b);
    assert_int_equal(http_forward_encode_answer(
                         &b, 503, "application/json",
                         "Retry-After: 1\r\nX-A:\tb c\r\n", "{}\n", 3),
                     0);
    assert_int_equal(decode_answer(b.data, b.len, &a, &copy), 0);
    assert_int_equal(a.status, 503);
    assert_field(a.content_type, a.content_type_len, "application/json");
    assert_field(a.extra, a.extra_len, "Retry-After: 1\r\nX-A:\tb c\r\n");
    assert_field((const char *)a.body, a.body_len, "{}\n");
    mem_free(copy);

    /* Nothing but a status. */
    buf_free(&b);
    assert_int_equal(http_forward_encode_answer(&b, 204, NULL, NULL, NULL, 0),
                     0);
    assert_int_equal(decode_answer(b.data, b.len, &a, &copy), 0);
    assert_int_equal(a.status, 204);
    assert_int_equal(a.content_type_len, 0);
    assert_int_equal(a.extra_len, 0);
    assert_int_equal(a.body_len, 0);
    mem_free(copy);
    buf_free(&b);
}

/* Every proper prefix of a good message, and the message with a byte
 * more, fail to decode. */
static void test_truncated_and_padded(void **state)
{
    struct http_forward_request r, d;
    struct http_forward_answer a;
    struct buf b;
    uint8_t *copy;
    sample_request(&r);
    buf_init(&b);
    assert_int_equal(http_forward_encode_request(&b, &r), 0);
    for (size_t n = 0; n < b.len; n++) {
        assert_int_equal(decode_request(b.data, n, &d, &copy),
                         BERTH_EMALFORMED);
        mem_free(copy);
    }
    assert_int_equal(buf_put_u8(&b, 0), 0);
    assert_int_equal(decode_request(b.data, b.len, &d, &copy),
                     BERTH_EMALFORMED);
    mem_free(copy);

    buf_free(&b);
    assert_int_equal(http_forward_encode_answer(&b, 200, "text/plain",
                                                "X: y\r\n", "hello", 5),
                     0);
    for (size_t n = 0; n < b.len; n++) {
        assert_int_equal(decode_answer(b.data, n, &a, &copy), BERTH_EMALFORMED);
        mem_free(copy);
    }
    assert_int_equal(buf_put_u8(&b, 0), 0);
    assert_int_equal(decode_answer(b.data, b.len, &a, &copy), BERTH_EMALFORMED);
    mem_free(copy);
    buf_free(&b);
}

/* A request built by hand, field by field, so that any field can be
 * hostile. */
struct raw_request {
    uint8_t server;
    const char *method;
    uint32_t target_len; /* UINT32_MAX: strlen(target) */
    const char *target;
    uint16_t n_headers;
    const char *name;  /* every header has this name and value */
    const char *value; /* (lengths from strlen) */
    uint32_t body_len; /* claimed */
    size_t body_have;  /* bytes actually appended */
};

static void raw_request(struct buf *b, const struct raw_request *r)
{
    buf_init(b);
    buf_append(b, "bfq1", 4);
    buf_put_u8(b, r->server);
    buf_put_u8(b, (uint8_t)strlen(r->method));
    buf_append(b, r->method, strlen(r->method));
    size_t tl = strlen(r->target);
    buf_put_u32(b, r->target_len == UINT32_MAX ? (uint32_t)tl : r->target_len);
    buf_append(b, r->target, tl);
    buf_put_u16(b, r->n_headers);
    for (unsigned i = 0; i < r->n_headers; i++) {
        buf_put_u16(b, (uint16_t)strlen(r->name));
        buf_append(b, r->name, strlen(r->name));
        buf_put_u32(b, (uint32_t)strlen(r->value));
        buf_append(b, r->value, strlen(r->value));
    }
    buf_put_u32(b, r->body_len);
    for (size_t i = 0; i < r->body_have; i++) {
        buf_put_u8(b, 'x');
    }
}

static int raw_decode(const struct raw_request *r)
{
    struct buf b;
    struct http_forward_request d;
    uint8_t *copy;
    raw_request(&b, r);
    int rv = decode_request(b.data, b.len, &d, &copy);
    mem_free(copy);
    buf_free(&b);
    return rv;
}

static void test_hostile_requests(void **state)
{
    const struct raw_request good = {
        .server = HTTP_FORWARD_FRONT,
        .method = "GET",
        .target_len = UINT32_MAX,
        .target = "/s/a/",
        .n_headers = 1,
        .name = "host",
        .value = "x",
        .body_len = 2,
        .body_have = 2,
    };
    struct raw_request r = good;
    assert_int_equal(raw_decode(&r), 0);

    r = good, r.server = 0;
    assert_int_equal(raw_decode(&r), BERTH_EMALFORMED);
    r = good, r.server = 3;
    assert_int_equal(raw_decode(&r), BERTH_EMALFORMED);
    r = good, r.method = "";
    assert_int_equal(raw_decode(&r), BERTH_EMALFORMED);
    r = good, r.method = "GE T";
    assert_int_equal(raw_decode(&r), BERTH_EMALFORMED);
    r = good, r.method = "GET\r\nX";
    assert_int_equal(raw_decode(&r), BERTH_EMALFORMED);
    r = good, r.method = "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG"; /* 33 */
    assert_int_equal(raw_decode(&r), BERTH_EMALFORMED);
    r = good, r.target = "";
    assert_int_equal(raw_decode(&r), BERTH_EMALFORMED);
    r = good, r.target = "/s/a b";
    assert_int_equal(raw_decode(&r), BERTH_EMALFORMED);
    r = good, r.target = "/s/a\r\nHost: evil";
    assert_int_equal(raw_decode(&r), BERTH_EMALFORMED);
    r = good, r.target = "/s/a\x7f";
    assert_int_equal(raw_decode(&r), BERTH_EMALFORMED);
    /* Lengths that claim more than there is, up to the largest. */
    r = good, r.target_len = 6;
    assert_int_equal(raw_decode(&r), BERTH_EMALFORMED);
    r = good, r.target_len = UINT32_MAX - 1;
    assert_int_equal(raw_decode(&r), BERTH_EMALFORMED);
    r = good, r.body_len = 3;
    assert_int_equal(raw_decode(&r), BERTH_EMALFORMED);
    r = good, r.body_len = UINT32_MAX;
    assert_int_equal(raw_decode(&r), BERTH_EMALFORMED);
    r = good, r.body_len = 1;
    assert_int_equal(raw_decode(&r), BERTH_EMALFORMED);
    /* Headers: too many, or a name or a value that is not one. */
    r = good, r.n_headers = HTTP_MAX_HEADERS + 1;
    assert_int_equal(raw_decode(&r), BERTH_EMALFORMED);
    r = good, r.n_headers = UINT16_MAX;
    assert_int_equal(raw_decode(&r), BERTH_EMALFORMED);
    r = good, r.name = "";
    assert_int_equal(raw_decode(&r), BERTH_EMALFORMED);
    r = good, r.name = "a:b";
    assert_int_equal(raw_decode(&r), BERTH_EMALFORMED);
    r = good, r.name = "a b";
    assert_int_equal(raw_decode(&r), BERTH_EMALFORMED);
    r = good, r.value = "a\rb";
    assert_int_equal(raw_decode(&r), BERTH_EMALFORMED);
    r = good, r.value = "a\nb";
    assert_int_equal(raw_decode(&r), BERTH_EMALFORMED);

    /* A NUL inside a field, which strlen above cannot build. */
    struct buf b;
    struct http_forward_request d;
    uint8_t *copy;
    r = good, r.value = "aXb";
    raw_request(&b, &r);
    uint8_t *x = memchr(b.data, 'X', b.len);
    *x = '\0';
    assert_int_equal(decode_request(b.data, b.len, &d, &copy),
                     BERTH_EMALFORMED);
    mem_free(copy);
    buf_free(&b);
    r = good, r.target = "/s/X";
    raw_request(&b, &r);
    x = memchr(b.data, 'X', b.len);
    *x = '\0';
    assert_int_equal(decode_request(b.data, b.len, &d, &copy),
                     BERTH_EMALFORMED);
    mem_free(copy);
    buf_free(&b);
    /* A bad magic, and an answer where a request is expected. */
    raw_request(&b, &good);
    b.data[3] = '2';
    assert_int_equal(decode_request(b.data, b.len, &d, &copy),
                     BERTH_EMALFORMED);
    mem_free(copy);
    b.data[2] = 'a';
    b.data[3] = '1';
    assert_int_equal(decode_request(b.data, b.len, &d, &copy),
                     BERTH_EMALFORMED);
    mem_free(copy);
    buf_free(&b);
}

/* An answer built by hand. */
static int raw_answer(uint16_t status, const char *ct, const char *extra,
                      uint32_t body_len, size_t body_have)
{
    struct buf b;
    struct http_forward_answer a;
    uint8_t *copy;
    buf_init(&b);
    buf_append(&b, "bfa1", 4);
    buf_put_u16(&b, status);
    buf_put_u16(&b, (uint16_t)strlen(ct));
    buf_append(&b, ct, strlen(ct));
    buf_put_u16(&b, (uint16_t)strlen(extra));
    buf_append(&b, extra, strlen(extra));
    buf_put_u32(&b, body_len);
    for (size_t i = 0; i < body_have; i++) {
        buf_put_u8(&b, 'x');
    }
    int rv = decode_answer(b.data, b.len, &a, &copy);
    mem_free(copy);
    buf_free(&b);
    return rv;
}

static void test_hostile_answers(void **state)
{
    assert_int_equal(raw_answer(200, "text/plain", "A: b\r\n", 1, 1), 0);
    assert_int_equal(raw_answer(99, "", "", 0, 0), BERTH_EMALFORMED);
    assert_int_equal(raw_answer(600, "", "", 0, 0), BERTH_EMALFORMED);
    assert_int_equal(raw_answer(0, "", "", 0, 0), BERTH_EMALFORMED);
    assert_int_equal(raw_answer(200, "text/plain\r\nSet-Cookie: x", "", 0, 0),
                     BERTH_EMALFORMED);
    assert_int_equal(raw_answer(200, "text/plain\n", "", 0, 0),
                     BERTH_EMALFORMED);
    /* Extra headers: each a whole "Name: value\r\n" line. */
    assert_int_equal(raw_answer(200, "", "A: b", 0, 0), BERTH_EMALFORMED);
    assert_int_equal(raw_answer(200, "", "A: b\r", 0, 0), BERTH_EMALFORMED);
    assert_int_equal(raw_answer(200, "", "A: b\n", 0, 0), BERTH_EMALFORMED);
    assert_int_equal(raw_answer(200, "", "A: b\r\nC", 0, 0), BERTH_EMALFORMED);
    assert_int_equal(raw_answer(200, "", "A: b\nC: d\r\n", 0, 0),
                     BERTH_EMALFORMED);
    assert_int_equal(raw_answer(200, "", "A: b\rC: d\r\n", 0, 0),
                     BERTH_EMALFORMED);
    assert_int_equal(raw_answer(200, "", "\r\n", 0, 0), BERTH_EMALFORMED);
    assert_int_equal(raw_answer(200, "", ": b\r\n", 0, 0), BERTH_EMALFORMED);
    assert_int_equal(raw_answer(200, "", "A b\r\n", 0, 0), BERTH_EMALFORMED);
    assert_int_equal(raw_answer(200, "", "A: b\r\n\r\n", 0, 0),
                     BERTH_EMALFORMED);
    /* A body shorter or longer than it says. */
    assert_int_equal(raw_answer(200, "", "", 2, 1), BERTH_EMALFORMED);
    assert_int_equal(raw_answer(200, "", "", UINT32_MAX, 1), BERTH_EMALFORMED);
    assert_int_equal(raw_answer(200, "", "", 1, 2), BERTH_EMALFORMED);
    /* Too long for a header block. */
    char big[HTTP_FORWARD_MAX_EXTRA + 16];
    memset(big, 'a', sizeof big);
    memcpy(big, "A: ", 3);
    memcpy(big + sizeof big - 3, "\r\n", 3);
    assert_int_equal(raw_answer(200, "", big, 0, 0), BERTH_EMALFORMED);
    big[HTTP_FORWARD_MAX_CONTENT_TYPE + 1] = '\0';
    assert_int_equal(raw_answer(200, big, "", 0, 0), BERTH_EMALFORMED);
    big[HTTP_FORWARD_MAX_CONTENT_TYPE] = '\0';
    assert_int_equal(raw_answer(200, big, "", 0, 0), 0);
}

/* The encoder refuses what the decoder would, and fails cleanly out of
 * memory. */
static void test_encode_refuses(void **state)
{
    struct http_forward_request r;
    struct buf b;
    buf_init(&b);
    sample_request(&r);
    r.target = "/s/a\nb";
    r.target_len = strlen(r.target);
    assert_int_equal(http_forward_encode_request(&b, &r), BERTH_EINVAL);
    sample_request(&r);
    r.server = 7;
    assert_int_equal(http_forward_encode_request(&b, &r), BERTH_EINVAL);
    sample_request(&r);
    r.n_headers = HTTP_MAX_HEADERS + 1;
    assert_int_equal(http_forward_encode_request(&b, &r), BERTH_EINVAL);
    assert_int_equal(http_forward_encode_answer(&b, 200, "a\r\nb", NULL, "", 0),
                     BERTH_EINVAL);
    assert_int_equal(http_forward_encode_answer(&b, 200, NULL, "X: y", "", 0),
                     BERTH_EINVAL);
    assert_int_equal(http_forward_encode_answer(&b, 1000, NULL, NULL, "", 0),
                     BERTH_EINVAL);
    assert_int_equal(b.len, 0);

    sample_request(&r);
    mem_fault_countdown(0);
    assert_int_equal(http_forward_encode_request(&b, &r), BERTH_ENOMEM);
    assert_int_equal(http_forward_encode_answer(&b, 200, NULL, NULL, "x", 1),
                     BERTH_ENOMEM);
    mem_fault_countdown(-1);
    buf_free(&b);
}

/* Good messages with bytes flipped at random decode or fail, and what
 * decodes encodes back to the same bytes. */
static void test_flipped_bytes(void **state)
{
    struct http_forward_request r, d;
    struct http_forward_answer a;
    struct buf req, ans, again;
    uint8_t *copy;
    sample_request(&r);
    buf_init(&req);
    buf_init(&ans);
    assert_int_equal(http_forward_encode_request(&req, &r), 0);
    assert_int_equal(http_forward_encode_answer(&ans, 200, "text/plain",
                                                "A: b\r\n", "hi", 2),
                     0);
    srand(9);
    for (int round = 0; round < 20000; round++) {
        struct buf *src = round % 2 ? &ans : &req;
        uint8_t m[256];
        assert_true(src->len <= sizeof m);
        memcpy(m, src->data, src->len);
        for (int k = 0; k < 1 + rand() % 3; k++) {
            m[rand() % src->len] = (uint8_t)rand();
        }
        buf_init(&again);
        if (round % 2 == 0) {
            if (decode_request(m, src->len, &d, &copy) == 0) {
                assert_int_equal(http_forward_encode_request(&again, &d), 0);
                assert_int_equal(again.len, src->len);
                assert_memory_equal(again.data, m, src->len);
            }
        } else if (decode_answer(m, src->len, &a, &copy) == 0) {
            char ct[256], ex[1100];
            snprintf(ct, sizeof ct, "%.*s", (int)a.content_type_len,
                     a.content_type);
            snprintf(ex, sizeof ex, "%.*s", (int)a.extra_len, a.extra);
            assert_int_equal(http_forward_encode_answer(&again, a.status, ct,
                                                        ex, a.body, a.body_len),
                             0);
            assert_int_equal(again.len, src->len);
            assert_memory_equal(again.data, m, src->len);
        }
        mem_free(copy);
        buf_free(&again);
    }
    buf_free(&req);
    buf_free(&ans);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_round_trip),
        cmocka_unit_test(test_answer_round_trip),
        cmocka_unit_test(test_truncated_and_padded),
        cmocka_unit_test(test_hostile_requests),
        cmocka_unit_test(test_hostile_answers),
        cmocka_unit_test(test_encode_refuses),
        cmocka_unit_test(test_flipped_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
