#include "http/websocket.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <string.h>
#include <strings.h>

#include "lib/err.h"
#include "lib/utf8.h"

int ws_head_parse(const uint8_t *p, size_t n, struct ws_head *h)
{
    if (n < 2) {
        return BERTH_EPARTIAL;
    }
    h->fin = (p[0] & 0x80) != 0;
    h->rsv = (uint8_t)((p[0] >> 4) & 7);
    h->opcode = p[0] & 0x0f;
    h->masked = (p[1] & 0x80) != 0;
    uint64_t len = p[1] & 0x7f;
    size_t off = 2;
    if (len == 126) {
        if (n < 4) {
            return BERTH_EPARTIAL;
        }
        len = (uint64_t)p[2] << 8 | p[3];
        off = 4;
    } else if (len == 127) {
        if (n < 10) {
            return BERTH_EPARTIAL;
        }
        len = 0;
        for (int i = 0; i < 8; i++) {
            len = len << 8 | p[2 + i];
        }
        if (len >> 63) {
            return BERTH_EMALFORMED;
        }
        off = 10;
    }
    if (h->masked) {
        if (n < off + 4) {
            return BERTH_EPARTIAL;
        }
        memcpy(h->mask, p + off, 4);
        off += 4;
    } else {
        memset(h->mask, 0, 4);
    }
    h->len = len;
    h->head_len = off;
    return 0;
}

size_t ws_head_encode(uint8_t *out, bool fin, uint8_t opcode, uint64_t len)
{
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++) {
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    }
    return 10;
}

void ws_mask(uint8_t *p, size_t n, const uint8_t *mask, uint64_t offset)
{
    for (size_t i = 0; i < n; i++) {
        p[i] ^= mask[(offset + i) & 3];
    }
}

bool ws_close_code_valid(uint16_t code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

void ws_reader_init(struct ws_reader *r, size_t max_message)
{
    buf_init(&r->msg);
    r->msg_op = 0;
    r->handed = false;
    r->max_message = max_message;
}

void ws_reader_free(struct ws_reader *r)
{
    buf_free(&r->msg);
    r->msg_op = 0;
    r->handed = false;
}

static int ws__fail(struct ws_item *item, uint16_t code, const char *why)
{
    item->opcode = 0;
    item->data = NULL;
    item->len = 0;
    item->code = code;
    item->why = why;
    return WS_READ_ERROR;
}

/* Hand out a whole message at p, checking a text's UTF-8. */
static int ws__message(struct ws_item *item, uint8_t op, const uint8_t *p,
                       size_t len)
{
    if (op == WS_OP_TEXT && !utf8_valid(p, len)) {
        return ws__fail(item, WS_CLOSE_INVALID_DATA, "text is not UTF-8");
    }
    item->opcode = op;
    item->data = p;
    item->len = len;
    item->code = 0;
    item->why = NULL;
    return WS_READ_ITEM;
}

/* A close frame's payload: nothing, or a valid code and a UTF-8 reason. */
static int ws__close(struct ws_item *item, const uint8_t *p, size_t len)
{
    if (len == 0) {
        item->code = WS_CLOSE_NO_STATUS;
        item->data = p;
        item->len = 0;
    } else if (len == 1) {
        return ws__fail(item, WS_CLOSE_PROTOCOL, "close frame of one byte");
    } else {
        uint16_t code = (uint16_t)(p[0] << 8 | p[1]);
        if (!ws_close_code_valid(code)) {
            return ws__fail(item, WS_CLOSE_PROTOCOL, "invalid close code");
        }
        if (!utf8_valid(p + 2, len - 2)) {
            return ws__fail(item, WS_CLOSE_INVALID_DATA,
                            "close reason is not UTF-8");
        }
        item->code = code;
        item->data = p + 2;
        item->len = len - 2;
    }
    item->opcode = WS_OP_CLOSE;
    item->why = NULL;
    return WS_READ_ITEM;
}

int ws_read(struct ws_reader *r, uint8_t *in, size_t n, size_t *used,
            struct ws_item *item)
{
    *used = 0;
    if (r->handed) {
        /* The message handed out last time is done with. */
        buf_free(&r->msg);
        r->handed = false;
    }
    struct ws_head h;
    int rv = ws_head_parse(in, n, &h);
    if (rv == BERTH_EMALFORMED) {
        return ws__fail(item, WS_CLOSE_PROTOCOL, "frame length too large");
    }
    if (rv != 0) {
        return WS_READ_MORE;
    }
    if (h.rsv != 0) {
        return ws__fail(item, WS_CLOSE_PROTOCOL, "reserved bits set");
    }
    if (!h.masked) {
        return ws__fail(item, WS_CLOSE_PROTOCOL, "client frame not masked");
    }
    bool control = h.opcode >= 8;
    switch (h.opcode) {
    case WS_OP_CONT:
        if (r->msg_op == 0) {
            return ws__fail(item, WS_CLOSE_PROTOCOL,
                            "continuation without a message");
        }
        break;
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        if (r->msg_op != 0) {
            return ws__fail(item, WS_CLOSE_PROTOCOL,
                            "new message inside a fragmented one");
        }
        break;
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        if (!h.fin || h.len > WS_CONTROL_MAX) {
            return ws__fail(item, WS_CLOSE_PROTOCOL,
                            "fragmented or long control frame");
        }
        break;
    default:
        return ws__fail(item, WS_CLOSE_PROTOCOL, "unknown opcode");
    }
    /* Checked before the payload is in, so that a client cannot make the
     * host hold more than the limit. */
    if (!control &&
        (h.len > r->max_message || r->msg.len > r->max_message - h.len)) {
        return ws__fail(item, WS_CLOSE_TOO_BIG, "message too big");
    }
    if (n - h.head_len < h.len) {
        return WS_READ_MORE;
    }
    uint8_t *p = in + h.head_len;
    size_t len = (size_t)h.len;
    ws_mask(p, len, h.mask, 0);
    *used = h.head_len + len;
    if (control) {
        if (h.opcode == WS_OP_CLOSE) {
            return ws__close(item, p, len);
        }
        item->opcode = h.opcode;
        item->data = p;
        item->len = len;
        item->code = 0;
        item->why = NULL;
        return WS_READ_ITEM;
    }
    if (h.opcode != WS_OP_CONT && h.fin) {
        return ws__message(item, h.opcode, p, len); /* where it lies */
    }
    if (h.opcode != WS_OP_CONT) {
        r->msg_op = h.opcode;
    }
    if (buf_append(&r->msg, p, len) != 0) {
        return ws__fail(item, WS_CLOSE_INTERNAL, "out of memory");
    }
    if (!h.fin) {
        return WS_READ_AGAIN;
    }
    uint8_t op = r->msg_op;
    r->msg_op = 0;
    r->handed = true;
    return ws__message(item, op, r->msg.data, r->msg.len);
}

int ws_accept_key(const char *key, char *out)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    uint8_t raw[18];
    size_t klen = strlen(key);
    /* 16 bytes in base64: 22 characters and "==". */
    if (klen != 24 || key[22] != '=' || key[23] != '=' ||
        EVP_DecodeBlock(raw, (const unsigned char *)key, 24) != 18) {
        return BERTH_EINVAL;
    }
    for (size_t i = 0; i < 22; i++) {
        if (!isalnum((unsigned char)key[i]) && key[i] != '+' && key[i] != '/') {
            return BERTH_EINVAL;
        }
    }
    uint8_t text[24 + sizeof guid];
    memcpy(text, key, 24);
    memcpy(text + 24, guid, sizeof guid - 1);
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    if (EVP_Digest(text, 24 + sizeof guid - 1, md, &md_len, EVP_sha1(), NULL) !=
            1 ||
        md_len != 20) {
        return BERTH_EINVAL;
    }
    EVP_EncodeBlock((unsigned char *)out, md, 20);
    out[WS_ACCEPT_LEN] = '\0';
    return 0;
}

/* Return whether the comma-separated list value has token (any case). */
static bool ws__has_token(const char *value, const char *token)
{
    size_t tl = strlen(token);
    const char *p = value;
    while (p != NULL && *p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ',') {
            p++;
        }
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m > 0 && (p[m - 1] == ' ' || p[m - 1] == '\t')) {
            m--;
        }
        if (m == tl && strncasecmp(p, token, tl) == 0) {
            return true;
        }
        p += n;
    }
    return false;
}

/* The value of req's header name, or NULL (as http_request_header, kept
 * here so that the codec stands apart from the server). */
static const char *ws__header(const struct http_request *req, const char *name)
{
    for (unsigned i = 0; i < req->n_headers; i++) {
        if (strcmp(req->headers[i].name, name) == 0) {
            return req->headers[i].value;
        }
    }
    return NULL;
}

enum ws_upgrade ws_upgrade_kind(const struct http_request *req)
{
    const char *up = ws__header(req, "upgrade");
    if (up == NULL || !ws__has_token(up, "websocket")) {
        return WS_UPGRADE_NONE;
    }
    const char *conn = ws__header(req, "connection");
    if (strcmp(req->method, "GET") != 0 || conn == NULL ||
        !ws__has_token(conn, "upgrade") || req->body.len > 0) {
        return WS_UPGRADE_BAD;
    }
    const char *version = ws__header(req, "sec-websocket-version");
    if (version == NULL || strcmp(version, "13") != 0) {
        return WS_UPGRADE_VERSION;
    }
    const char *key = ws__header(req, "sec-websocket-key");
    char accept[WS_ACCEPT_LEN + 1];
    if (key == NULL || ws_accept_key(key, accept) != 0) {
        return WS_UPGRADE_BAD;
    }
    return WS_UPGRADE_OK;
}
