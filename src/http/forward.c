#include "http/forward.h"

#include <stdbool.h>
#include <string.h>

#include "lib/err.h"

static const uint8_t forward__request_magic[4] = {'b', 'f', 'q', '1'};
static const uint8_t forward__answer_magic[4] = {'b', 'f', 'a', '1'};

/* A token character (RFC 9110 5.6.2): what methods and header names are
 * made of. */
static bool forward__tchar(uint8_t ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
        (ch >= '0' && ch <= '9')) {
        return true;
    }
    return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static bool forward__token(const char *s, size_t n, size_t max)
{
    if (n == 0 || n > max) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!forward__tchar((uint8_t)s[i])) {
            return false;
        }
    }
    return true;
}

/* A request target: visible characters only (no space, no control byte),
 * as the parser lets through. */
static bool forward__target(const char *s, size_t n)
{
    if (n == 0 || n > HTTP_FORWARD_MAX_TARGET) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = (uint8_t)s[i];
        if (ch <= 0x20 || ch == 0x7f) {
            return false;
        }
    }
    return true;
}

/* A header value as a request carries it: anything but NUL, CR and LF
 * (a NUL would cut the C string the leader makes of it short). */
static bool forward__value(const char *s, size_t n)
{
    if (n > HTTP_FORWARD_MAX_VALUE) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\0' || s[i] == '\r' || s[i] == '\n') {
            return false;
        }
    }
    return true;
}

/* Text that goes into an answer's header block as it is: no control byte
 * but a tab, so that nothing can end a header line early. */
static bool forward__field_text(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = (uint8_t)s[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            return false;
        }
    }
    return true;
}

/* Extra header lines of an answer: "Name: value\r\n", one or more, and
 * nothing else. */
static bool forward__extra(const char *s, size_t n)
{
    if (n > HTTP_FORWARD_MAX_EXTRA) {
        return false;
    }
    size_t i = 0;
    while (i < n) {
        const char *line = s + i;
        const char *end = memchr(line, '\r', n - i);
        if (end == NULL || (size_t)(end - s) + 1 >= n || end[1] != '\n') {
            return false;
        }
        size_t len = (size_t)(end - line);
        const char *colon = memchr(line, ':', len);
        if (colon == NULL ||
            !forward__token(line, (size_t)(colon - line), len) ||
            !forward__field_text(colon + 1, len - (size_t)(colon - line) - 1)) {
            return false;
        }
        i += len + 2;
    }
    return true;
}

static bool forward__content_type(const char *s, size_t n)
{
    return n <= HTTP_FORWARD_MAX_CONTENT_TYPE && forward__field_text(s, n);
}

static bool forward__status(int status)
{
    return status >= 100 && status <= 599;
}

void http_forward_view(struct http_forward_request *out,
                       enum http_forward_server server,
                       const struct http_request *req)
{
    memset(out, 0, sizeof *out);
    out->server = (uint8_t)server;
    out->method = req->method;
    out->method_len = strlen(req->method);
    out->target = req->target;
    out->target_len = strlen(req->target);
    out->n_headers = req->n_headers;
    for (unsigned i = 0; i < req->n_headers && i < HTTP_MAX_HEADERS; i++) {
        out->headers[i].name = req->headers[i].name;
        out->headers[i].name_len = strlen(req->headers[i].name);
        out->headers[i].value = req->headers[i].value;
        out->headers[i].value_len = strlen(req->headers[i].value);
    }
    out->body = req->body.data;
    out->body_len = req->body.len;
}

/* Whether every field of r is one that decoding accepts. */
static bool forward__request_ok(const struct http_forward_request *r)
{
    if ((r->server != HTTP_FORWARD_FRONT && r->server != HTTP_FORWARD_ADMIN) ||
        !forward__token(r->method, r->method_len, HTTP_FORWARD_MAX_METHOD) ||
        !forward__target(r->target, r->target_len) ||
        r->n_headers > HTTP_MAX_HEADERS || r->body_len > UINT32_MAX) {
        return false;
    }
    for (unsigned i = 0; i < r->n_headers; i++) {
        const struct http_forward_header *hd = &r->headers[i];
        if (!forward__token(hd->name, hd->name_len, HTTP_FORWARD_MAX_NAME) ||
            !forward__value(hd->value, hd->value_len)) {
            return false;
        }
    }
    return true;
}

int http_forward_encode_request(struct buf *out,
                                const struct http_forward_request *r)
{
    if (!forward__request_ok(r)) {
        return BERTH_EINVAL;
    }
    /* Sized once: the body may be megabytes. */
    size_t size =
        4 + 1 + 1 + r->method_len + 4 + r->target_len + 2 + 4 + r->body_len;
    for (unsigned i = 0; i < r->n_headers; i++) {
        size += 6 + r->headers[i].name_len + r->headers[i].value_len;
    }
    if (buf_reserve_exact(out, size) != 0) {
        return BERTH_ENOMEM;
    }
    /* With the room reserved, no append below can fail. */
    buf_append(out, forward__request_magic, 4);
    buf_put_u8(out, r->server);
    buf_put_u8(out, (uint8_t)r->method_len);
    buf_append(out, r->method, r->method_len);
    buf_put_u32(out, (uint32_t)r->target_len);
    buf_append(out, r->target, r->target_len);
    buf_put_u16(out, (uint16_t)r->n_headers);
    for (unsigned i = 0; i < r->n_headers; i++) {
        const struct http_forward_header *hd = &r->headers[i];
        buf_put_u16(out, (uint16_t)hd->name_len);
        buf_append(out, hd->name, hd->name_len);
        buf_put_u32(out, (uint32_t)hd->value_len);
        buf_append(out, hd->value, hd->value_len);
    }
    buf_put_u32(out, (uint32_t)r->body_len);
    buf_append(out, r->body, r->body_len);
    return 0;
}

int http_forward_decode_request(const void *p, size_t len,
                                struct http_forward_request *out)
{
    struct cursor c;
    memset(out, 0, sizeof *out);
    cursor_init(&c, p, len);
    const uint8_t *magic = cursor_bytes(&c, 4);
    if (magic == NULL || memcmp(magic, forward__request_magic, 4) != 0) {
        return BERTH_EMALFORMED;
    }
    out->server = cursor_u8(&c);
    out->method_len = cursor_u8(&c);
    out->method = (const char *)cursor_bytes(&c, out->method_len);
    out->target_len = cursor_u32(&c);
    out->target = (const char *)cursor_bytes(&c, out->target_len);
    uint16_t n = cursor_u16(&c);
    if (c.err != 0 || n > HTTP_MAX_HEADERS) {
        return BERTH_EMALFORMED;
    }
    out->n_headers = n;
    for (unsigned i = 0; i < n; i++) {
        struct http_forward_header *hd = &out->headers[i];
        hd->name_len = cursor_u16(&c);
        hd->name = (const char *)cursor_bytes(&c, hd->name_len);
        hd->value_len = cursor_u32(&c);
        hd->value = (const char *)cursor_bytes(&c, hd->value_len);
    }
    out->body_len = cursor_u32(&c);
    out->body = cursor_bytes(&c, out->body_len);
    /* Every read above is checked here, once: a short read leaves a NULL
     * view and the error. */
    if (c.err != 0 || cursor_left(&c) != 0 || !forward__request_ok(out)) {
        return BERTH_EMALFORMED;
    }
    return 0;
}

int http_forward_encode_answer(struct buf *out, int status,
                               const char *content_type,
                               const char *extra_headers, const void *body,
                               size_t len)
{
    size_t ct_len = content_type != NULL ? strlen(content_type) : 0;
    size_t extra_len = extra_headers != NULL ? strlen(extra_headers) : 0;
    if (!forward__status(status) ||
        !forward__content_type(content_type, ct_len) ||
        !forward__extra(extra_headers, extra_len) || len > UINT32_MAX) {
        return BERTH_EINVAL;
    }
    size_t size = 4 + 2 + 2 + ct_len + 2 + extra_len + 4 + len;
    if (buf_reserve_exact(out, size) != 0) {
        return BERTH_ENOMEM;
    }
    buf_append(out, forward__answer_magic, 4);
    buf_put_u16(out, (uint16_t)status);
    buf_put_u16(out, (uint16_t)ct_len);
    buf_append(out, content_type, ct_len);
    buf_put_u16(out, (uint16_t)extra_len);
    buf_append(out, extra_headers, extra_len);
    buf_put_u32(out, (uint32_t)len);
    buf_append(out, body, len);
    return 0;
}

int http_forward_decode_answer(const void *p, size_t len,
                               struct http_forward_answer *out)
{
    struct cursor c;
    memset(out, 0, sizeof *out);
    cursor_init(&c, p, len);
    const uint8_t *magic = cursor_bytes(&c, 4);
    if (magic == NULL || memcmp(magic, forward__answer_magic, 4) != 0) {
        return BERTH_EMALFORMED;
    }
    out->status = cursor_u16(&c);
    out->content_type_len = cursor_u16(&c);
    out->content_type = (const char *)cursor_bytes(&c, out->content_type_len);
    out->extra_len = cursor_u16(&c);
    out->extra = (const char *)cursor_bytes(&c, out->extra_len);
    out->body_len = cursor_u32(&c);
    out->body = cursor_bytes(&c, out->body_len);
    if (c.err != 0 || cursor_left(&c) != 0 || !forward__status(out->status) ||
        !forward__content_type(out->content_type, out->content_type_len) ||
        !forward__extra(out->extra, out->extra_len)) {
        return BERTH_EMALFORMED;
    }
    return 0;
}
