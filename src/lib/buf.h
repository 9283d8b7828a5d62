/* Growable byte buffers and bounds-checked readers.
 *
 * All multi-byte integers that berth writes to frames, log entries and
 * records are little-endian. A writer (struct buf) grows on demand; a reader
 * (struct cursor) never reads past its end and remembers the first error, so
 * a decoder can read every field and check once at the end. */
#ifndef BERTH_LIB_BUF_H
#define BERTH_LIB_BUF_H

#include <stddef.h>
#include <stdint.h>

/* A growable byte array; data is owned by the buffer. */
struct buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

/* Initialize an empty buffer; it allocates nothing yet. */
void buf_init(struct buf *b);

/* Free the buffer's memory and make it empty. */
void buf_free(struct buf *b);

/* Make room for n more bytes; returns 0 or BERTH_ENOMEM. */
int buf_reserve(struct buf *b, size_t n);

/* Make room for n more bytes, growing to exactly that much rather than by
 * doubling: for a size known in advance. Returns 0 or BERTH_ENOMEM. */
int buf_reserve_exact(struct buf *b, size_t n);

/* Append n bytes; returns 0 or BERTH_ENOMEM. */
int buf_append(struct buf *b, const void *p, size_t n);

/* Append one integer, little-endian; returns 0 or BERTH_ENOMEM. */
int buf_put_u8(struct buf *b, uint8_t v);
int buf_put_u16(struct buf *b, uint16_t v);
int buf_put_u32(struct buf *b, uint32_t v);
int buf_put_u64(struct buf *b, uint64_t v);

/* Take the buffer's bytes; the caller frees them with mem_free(). */
uint8_t *buf_detach(struct buf *b, size_t *len);

/* Store an integer little-endian at p, which has room for it. */
void put_le16(uint8_t *p, uint16_t v);
void put_le32(uint8_t *p, uint32_t v);
void put_le64(uint8_t *p, uint64_t v);

/* Load an integer stored little-endian at p. */
uint16_t get_le16(const uint8_t *p);
uint32_t get_le32(const uint8_t *p);
uint64_t get_le64(const uint8_t *p);

/* A read position in bytes it does not own. */
struct cursor {
    const uint8_t *p;
    size_t len;
    size_t off;
    int err; /* 0, or BERTH_EMALFORMED after a read past the end. */
};

/* Start reading len bytes at p. */
void cursor_init(struct cursor *c, const void *p, size_t len);

/* Read one integer; on a short read returns 0 and sets c->err. */
uint8_t cursor_u8(struct cursor *c);
uint16_t cursor_u16(struct cursor *c);
uint32_t cursor_u32(struct cursor *c);
uint64_t cursor_u64(struct cursor *c);

/* Return a pointer to the next n bytes inside the cursor's memory and skip
 * them; on a short read returns NULL and sets c->err. */
const uint8_t *cursor_bytes(struct cursor *c, size_t n);

/* Return how many bytes are left. */
size_t cursor_left(const struct cursor *c);

#endif
