#include "lib/buf.h"

#include <string.h>

#include "lib/err.h"
#include "lib/mem.h"

void buf_init(struct buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void buf_free(struct buf *b)
{
    mem_free(b->data);
    buf_init(b);
}

int buf_reserve(struct buf *b, size_t n)
{
    if (b->cap - b->len >= n) {
        return 0;
    }
    if (n > SIZE_MAX / 2 - b->len) {
        return BERTH_ENOMEM;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len < n) {
        cap *= 2;
    }
    uint8_t *data = mem_realloc(b->data, cap);
    if (data == NULL) {
        return BERTH_ENOMEM;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

int buf_reserve_exact(struct buf *b, size_t n)
{
    if (b->cap - b->len >= n) {
        return 0;
    }
    if (n > SIZE_MAX / 2 - b->len) {
        return BERTH_ENOMEM;
    }
    uint8_t *data = mem_realloc(b->data, b->len + n);
    if (data == NULL) {
        return BERTH_ENOMEM;
    }
    b->data = data;
    b->cap = b->len + n;
    return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    if (n == 0) {
        return 0;
    }
    int rv = buf_reserve(b, n);
    if (rv != 0) {
        return rv;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int buf_put_u8(struct buf *b, uint8_t v)
{
    return buf_append(b, &v, 1);
}

int buf_put_u16(struct buf *b, uint16_t v)
{
    uint8_t p[2];
    put_le16(p, v);
    return buf_append(b, p, sizeof p);
}

int buf_put_u32(struct buf *b, uint32_t v)
{
    uint8_t p[4];
    put_le32(p, v);
    return buf_append(b, p, sizeof p);
}

int buf_put_u64(struct buf *b, uint64_t v)
{
    uint8_t p[8];
    put_le64(p, v);
    return buf_append(b, p, sizeof p);
}

uint8_t *buf_detach(struct buf *b, size_t *len)
{
    uint8_t *data = b->data;
    *len = b->len;
    buf_init(b);
    return data;
}

void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

uint16_t get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

uint32_t get_le32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

void cursor_init(struct cursor *c, const void *p, size_t len)
{
    c->p = p;
    c->len = len;
    c->off = 0;
    c->err = 0;
}

const uint8_t *cursor_bytes(struct cursor *c, size_t n)
{
    if (c->err != 0 || c->len - c->off < n) {
        c->err = BERTH_EMALFORMED;
        return NULL;
    }
    const uint8_t *p = c->p + c->off;
    c->off += n;
    return p;
}

uint8_t cursor_u8(struct cursor *c)
{
    const uint8_t *p = cursor_bytes(c, 1);
    return p ? p[0] : 0;
}

uint16_t cursor_u16(struct cursor *c)
{
    const uint8_t *p = cursor_bytes(c, 2);
    return p ? get_le16(p) : 0;
}

uint32_t cursor_u32(struct cursor *c)
{
    const uint8_t *p = cursor_bytes(c, 4);
    return p ? get_le32(p) : 0;
}

uint64_t cursor_u64(struct cursor *c)
{
    const uint8_t *p = cursor_bytes(c, 8);
    return p ? get_le64(p) : 0;
}

size_t cursor_left(const struct cursor *c)
{
    return c->len - c->off;
}
