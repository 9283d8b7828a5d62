#include "proto/frame.h"

#include <string.h>

#include "lib/err.h"
#include "lib/utf8.h"

/* Offset of n_effects from the start of a DONE frame: len, type, number,
 * flags. */
#define FRAME__DONE_COUNT_AT (4 + 1 + 8 + 1)

/* Return whether fixed + a + b fits in the u32 len field, without letting the
 * sum wrap first. */
static bool frame__fits(size_t fixed, size_t a, size_t b)
{
    return fixed <= UINT32_MAX && a <= UINT32_MAX - fixed &&
           b <= UINT32_MAX - fixed - a;
}

int frame_split(const uint8_t *p, size_t len, size_t max, struct frame *f,
                size_t *consumed)
{
    if (len < 4) {
        return BERTH_EPARTIAL;
    }
    uint32_t n = get_le32(p);
    if (n == 0) {
        return BERTH_EMALFORMED;
    }
    if (n > max) {
        return BERTH_ETOOBIG;
    }
    if (len - 4 < n) {
        return BERTH_EPARTIAL;
    }
    f->type = p[4];
    f->body = p + FRAME_HEADER_SIZE;
    f->body_len = n - 1;
    *consumed = 4 + (size_t)n;
    return 0;
}

/* Start a frame in out and return the offset of its length field, which
 * frame__end fills in once the body is complete. */
static int frame__begin(struct buf *out, uint8_t type, size_t *mark)
{
    int rv = buf_reserve(out, FRAME_HEADER_SIZE);
    if (rv != 0) {
        return rv;
    }
    *mark = out->len;
    buf_put_u32(out, 0);
    buf_put_u8(out, type);
    return 0;
}

/* Fill in the length of the frame that starts at mark; callers checked that
 * it fits. */
static void frame__end(struct buf *out, size_t mark)
{
    put_le32(out->data + mark, (uint32_t)(out->len - mark - 4));
}

/* Undo a frame that could not be finished, so out is as it was. */
static int frame__abort(struct buf *out, size_t mark, int rv)
{
    out->len = mark;
    return rv;
}

int frame_encode_boot(struct buf *out, const struct frame_boot *b)
{
    if (b->id_len > UINT16_MAX ||
        !frame__fits(1 + 2 + 8, b->id_len, b->snapshot_len)) {
        return BERTH_ETOOBIG;
    }
    size_t mark;
    int rv = frame__begin(out, FRAME_BOOT, &mark);
    if (rv != 0) {
        return rv;
    }
    if ((rv = buf_put_u16(out, (uint16_t)b->id_len)) != 0 ||
        (rv = buf_append(out, b->id, b->id_len)) != 0 ||
        (rv = buf_put_u64(out, b->snapshot_event)) != 0 ||
        (rv = buf_append(out, b->snapshot, b->snapshot_len)) != 0) {
        return frame__abort(out, mark, rv);
    }
    frame__end(out, mark);
    return 0;
}

int frame_encode_event(struct buf *out, const struct frame_event *e)
{
    if (!frame__fits(1 + 8 + 8 + FRAME_ENTROPY_SIZE + 1, e->payload_len, 0)) {
        return BERTH_ETOOBIG;
    }
    size_t mark;
    int rv = frame__begin(out, FRAME_EVENT, &mark);
    if (rv != 0) {
        return rv;
    }
    if ((rv = buf_put_u64(out, e->number)) != 0 ||
        (rv = buf_put_u64(out, e->time_ns)) != 0 ||
        (rv = buf_append(out, e->entropy, sizeof e->entropy)) != 0 ||
        (rv = buf_put_u8(out, e->kind)) != 0 ||
        (rv = buf_append(out, e->payload, e->payload_len)) != 0) {
        return frame__abort(out, mark, rv);
    }
    frame__end(out, mark);
    return 0;
}

/* Encode a frame whose body is a u64 and then opaque bytes. */
static int frame__u64(struct buf *out, uint8_t type, uint64_t v,
                      const void *rest, size_t rest_len)
{
    if (!frame__fits(1 + 8, rest_len, 0)) {
        return BERTH_ETOOBIG;
    }
    size_t mark;
    int rv = frame__begin(out, type, &mark);
    if (rv != 0) {
        return rv;
    }
    if ((rv = buf_put_u64(out, v)) != 0 ||
        (rv = buf_append(out, rest, rest_len)) != 0) {
        return frame__abort(out, mark, rv);
    }
    frame__end(out, mark);
    return 0;
}

int frame_encode_snap_req(struct buf *out, uint64_t number)
{
    return frame__u64(out, FRAME_SNAP_REQ, number, NULL, 0);
}

int frame_encode_stop(struct buf *out)
{
    size_t mark;
    int rv = frame__begin(out, FRAME_STOP, &mark);
    if (rv == 0) {
        frame__end(out, mark);
    }
    return rv;
}

int frame_encode_ready(struct buf *out, bool accepted)
{
    size_t mark;
    int rv = frame__begin(out, FRAME_READY, &mark);
    if (rv != 0) {
        return rv;
    }
    if ((rv = buf_put_u8(out, accepted ? 1 : 0)) != 0) {
        return frame__abort(out, mark, rv);
    }
    frame__end(out, mark);
    return 0;
}

int frame_encode_reject(struct buf *out, uint64_t number, const char *reason,
                        size_t reason_len)
{
    return frame__u64(out, FRAME_REJECT, number, reason, reason_len);
}

int frame_encode_snapshot(struct buf *out, uint64_t number, const void *data,
                          size_t len)
{
    return frame__u64(out, FRAME_SNAPSHOT, number, data, len);
}

int frame_done_begin(struct buf *out, uint64_t number, uint8_t flags,
                     size_t *mark)
{
    int rv = frame__begin(out, FRAME_DONE, mark);
    if (rv != 0) {
        return rv;
    }
    if ((rv = buf_put_u64(out, number)) != 0 ||
        (rv = buf_put_u8(out, flags)) != 0 || (rv = buf_put_u32(out, 0)) != 0) {
        return frame__abort(out, *mark, rv);
    }
    return 0;
}

int frame_done_add_effect(struct buf *out, size_t mark, uint8_t kind,
                          const void *data, size_t len)
{
    size_t before = out->len;
    uint8_t *count = out->data + mark + FRAME__DONE_COUNT_AT;
    /* The frame so far (type byte included) plus this effect must still fit
     * the len field, and the count its u32. */
    if (!frame__fits(before - mark - 4, 1 + 4, len) ||
        get_le32(count) == UINT32_MAX) {
        return BERTH_ETOOBIG;
    }
    int rv;
    if ((rv = buf_put_u8(out, kind)) != 0 ||
        (rv = buf_put_u32(out, (uint32_t)len)) != 0 ||
        (rv = buf_append(out, data, len)) != 0) {
        out->len = before;
        return rv;
    }
    /* The append may have moved the buffer. */
    count = out->data + mark + FRAME__DONE_COUNT_AT;
    put_le32(count, get_le32(count) + 1);
    return 0;
}

void frame_done_end(struct buf *out, size_t mark)
{
    frame__end(out, mark);
}

int frame_encode_http_request(struct buf *out,
                              const struct frame_http_request *r,
                              const struct frame_header *headers)
{
    size_t start = out->len;
    int rv = BERTH_ETOOBIG;
    if (r->method_len > UINT16_MAX || r->target_len > UINT32_MAX) {
        return rv;
    }
    if ((rv = buf_put_u16(out, (uint16_t)r->method_len)) != 0 ||
        (rv = buf_append(out, r->method, r->method_len)) != 0 ||
        (rv = buf_put_u32(out, (uint32_t)r->target_len)) != 0 ||
        (rv = buf_append(out, r->target, r->target_len)) != 0 ||
        (rv = buf_put_u16(out, r->n_headers)) != 0) {
        goto err;
    }
    for (unsigned i = 0; i < r->n_headers; i++) {
        const struct frame_header *h = &headers[i];
        if (h->name_len > UINT16_MAX || h->value_len > UINT32_MAX) {
            rv = BERTH_ETOOBIG;
            goto err;
        }
        if ((rv = buf_put_u16(out, (uint16_t)h->name_len)) != 0 ||
            (rv = buf_append(out, h->name, h->name_len)) != 0 ||
            (rv = buf_put_u32(out, (uint32_t)h->value_len)) != 0 ||
            (rv = buf_append(out, h->value, h->value_len)) != 0) {
            goto err;
        }
    }
    if ((rv = buf_append(out, r->body, r->body_len)) != 0) {
        goto err;
    }
    return 0;
err:
    out->len = start;
    return rv;
}

int frame_encode_http_reply(struct buf *out, const struct frame_http_reply *r)
{
    size_t start = out->len;
    int rv;
    if (r->content_type_len > UINT16_MAX) {
        return BERTH_ETOOBIG;
    }
    if ((rv = buf_put_u16(out, r->status)) != 0 ||
        (rv = buf_put_u16(out, (uint16_t)r->content_type_len)) != 0 ||
        (rv = buf_append(out, r->content_type, r->content_type_len)) != 0 ||
        (rv = buf_append(out, r->body, r->body_len)) != 0) {
        out->len = start;
        return rv;
    }
    return 0;
}

/* Check the frame's type and start a cursor over its body. */
static int frame__open(const struct frame *f, uint8_t type, struct cursor *c)
{
    if (f->type != type) {
        return BERTH_EMALFORMED;
    }
    cursor_init(c, f->body, f->body_len);
    return 0;
}

int frame_decode_boot(const struct frame *f, struct frame_boot *b)
{
    struct cursor c;
    if (frame__open(f, FRAME_BOOT, &c) != 0) {
        return BERTH_EMALFORMED;
    }
    b->id_len = cursor_u16(&c);
    b->id = (const char *)cursor_bytes(&c, b->id_len);
    b->snapshot_event = cursor_u64(&c);
    if (c.err != 0) {
        return BERTH_EMALFORMED;
    }
    b->snapshot_len = cursor_left(&c);
    b->snapshot = cursor_bytes(&c, b->snapshot_len);
    return 0;
}

int frame_decode_event(const struct frame *f, struct frame_event *e)
{
    struct cursor c;
    if (frame__open(f, FRAME_EVENT, &c) != 0) {
        return BERTH_EMALFORMED;
    }
    e->number = cursor_u64(&c);
    e->time_ns = cursor_u64(&c);
    const uint8_t *entropy = cursor_bytes(&c, sizeof e->entropy);
    e->kind = cursor_u8(&c);
    if (c.err != 0) {
        return BERTH_EMALFORMED;
    }
    memcpy(e->entropy, entropy, sizeof e->entropy);
    e->payload_len = cursor_left(&c);
    e->payload = cursor_bytes(&c, e->payload_len);
    return 0;
}

int frame_decode_snap_req(const struct frame *f, uint64_t *number)
{
    struct cursor c;
    if (frame__open(f, FRAME_SNAP_REQ, &c) != 0) {
        return BERTH_EMALFORMED;
    }
    *number = cursor_u64(&c);
    return c.err != 0 || cursor_left(&c) != 0 ? BERTH_EMALFORMED : 0;
}

int frame_decode_ready(const struct frame *f, bool *accepted)
{
    struct cursor c;
    if (frame__open(f, FRAME_READY, &c) != 0) {
        return BERTH_EMALFORMED;
    }
    uint8_t v = cursor_u8(&c);
    if (c.err != 0 || cursor_left(&c) != 0 || v > 1) {
        return BERTH_EMALFORMED;
    }
    *accepted = v == 1;
    return 0;
}

int frame_decode_done(const struct frame *f, struct frame_done *d)
{
    struct cursor c;
    if (frame__open(f, FRAME_DONE, &c) != 0) {
        return BERTH_EMALFORMED;
    }
    d->number = cursor_u64(&c);
    d->flags = cursor_u8(&c);
    d->n_effects = cursor_u32(&c);
    if (c.err != 0) {
        return BERTH_EMALFORMED;
    }
    d->effects_len = cursor_left(&c);
    d->effects = cursor_bytes(&c, d->effects_len);
    /* Walk once so that callers can trust the count and the lengths. */
    size_t off = 0;
    struct frame_effect e;
    uint32_t n = 0;
    int rv;
    while ((rv = frame_effects_next(d, &off, &e)) == 0) {
        n++;
    }
    if (rv < 0 || n != d->n_effects) {
        return BERTH_EMALFORMED;
    }
    return 0;
}

int frame_effects_next(const struct frame_done *d, size_t *off,
                       struct frame_effect *e)
{
    struct cursor c;
    if (*off > d->effects_len) {
        return BERTH_EMALFORMED;
    }
    cursor_init(&c, d->effects, d->effects_len);
    c.off = *off;
    if (cursor_left(&c) == 0) {
        return 1;
    }
    e->kind = cursor_u8(&c);
    uint32_t n = cursor_u32(&c);
    e->data = cursor_bytes(&c, n);
    e->len = n;
    if (c.err != 0) {
        return BERTH_EMALFORMED;
    }
    *off = c.off;
    return 0;
}

int frame_decode_reject(const struct frame *f, struct frame_reject *r)
{
    struct cursor c;
    if (frame__open(f, FRAME_REJECT, &c) != 0) {
        return BERTH_EMALFORMED;
    }
    r->number = cursor_u64(&c);
    if (c.err != 0) {
        return BERTH_EMALFORMED;
    }
    r->reason_len = cursor_left(&c);
    r->reason = (const char *)cursor_bytes(&c, r->reason_len);
    return 0;
}

int frame_decode_snapshot(const struct frame *f, struct frame_snapshot *s)
{
    struct cursor c;
    if (frame__open(f, FRAME_SNAPSHOT, &c) != 0) {
        return BERTH_EMALFORMED;
    }
    s->number = cursor_u64(&c);
    if (c.err != 0) {
        return BERTH_EMALFORMED;
    }
    s->len = cursor_left(&c);
    s->data = cursor_bytes(&c, s->len);
    return 0;
}

int frame_decode_http_request(const uint8_t *p, size_t len,
                              struct frame_http_request *r)
{
    struct cursor c;
    cursor_init(&c, p, len);
    r->method_len = cursor_u16(&c);
    r->method = (const char *)cursor_bytes(&c, r->method_len);
    r->target_len = cursor_u32(&c);
    r->target = (const char *)cursor_bytes(&c, r->target_len);
    r->n_headers = cursor_u16(&c);
    if (c.err != 0) {
        return BERTH_EMALFORMED;
    }
    size_t start = c.off;
    for (unsigned i = 0; i < r->n_headers; i++) {
        cursor_bytes(&c, cursor_u16(&c));
        cursor_bytes(&c, cursor_u32(&c));
    }
    if (c.err != 0) {
        return BERTH_EMALFORMED;
    }
    r->headers = p + start;
    r->headers_len = c.off - start;
    r->body_len = cursor_left(&c);
    r->body = cursor_bytes(&c, r->body_len);
    return 0;
}

int frame_http_next_header(const struct frame_http_request *r, size_t *off,
                           struct frame_header *h)
{
    struct cursor c;
    if (*off > r->headers_len) {
        return BERTH_EMALFORMED;
    }
    cursor_init(&c, r->headers, r->headers_len);
    c.off = *off;
    if (cursor_left(&c) == 0) {
        return 1;
    }
    h->name_len = cursor_u16(&c);
    h->name = (const char *)cursor_bytes(&c, h->name_len);
    h->value_len = cursor_u32(&c);
    h->value = (const char *)cursor_bytes(&c, h->value_len);
    if (c.err != 0) {
        return BERTH_EMALFORMED;
    }
    *off = c.off;
    return 0;
}

int frame_decode_http_reply(const uint8_t *p, size_t len,
                            struct frame_http_reply *r)
{
    struct cursor c;
    cursor_init(&c, p, len);
    r->status = cursor_u16(&c);
    r->content_type_len = cursor_u16(&c);
    r->content_type = (const char *)cursor_bytes(&c, r->content_type_len);
    if (c.err != 0) {
        return BERTH_EMALFORMED;
    }
    r->body_len = cursor_left(&c);
    r->body = cursor_bytes(&c, r->body_len);
    return 0;
}

/* ALARM effects and TIMER payloads are both one u64 and nothing else; they
 * are kept apart in the API so that each can grow on its own. */
static int frame__decode_time(const uint8_t *p, size_t len, uint64_t *time_ns)
{
    if (len != FRAME_ALARM_SIZE) {
        return BERTH_EMALFORMED;
    }
    *time_ns = get_le64(p);
    return 0;
}

int frame_encode_alarm(struct buf *out, uint64_t time_ns)
{
    return buf_put_u64(out, time_ns);
}

int frame_decode_alarm(const uint8_t *p, size_t len, uint64_t *time_ns)
{
    return frame__decode_time(p, len, time_ns);
}

int frame_encode_timer(struct buf *out, uint64_t time_ns)
{
    return buf_put_u64(out, time_ns);
}

int frame_decode_timer(const uint8_t *p, size_t len, uint64_t *time_ns)
{
    return frame__decode_time(p, len, time_ns);
}

int frame_decode_spawn(const uint8_t *p, size_t len, struct frame_spawn *s)
{
    struct cursor c;
    cursor_init(&c, p, len);
    s->tag = cursor_u32(&c);
    s->lifetime = cursor_u8(&c);
    s->lifetime_ms = cursor_u64(&c);
    s->program_len = cursor_u16(&c);
    s->program = (const char *)cursor_bytes(&c, s->program_len);
    if (c.err != 0) {
        return BERTH_EMALFORMED;
    }
    s->options_len = cursor_left(&c);
    s->options = cursor_bytes(&c, s->options_len);
    size_t off = 0;
    uint8_t kind;
    const uint8_t *data;
    size_t n;
    int rv;
    while ((rv = frame_spawn_next_option(s, &off, &kind, &data, &n)) == 0) {
    }
    return rv == 1 ? 0 : BERTH_EMALFORMED;
}

int frame_spawn_next_option(const struct frame_spawn *s, size_t *off,
                            uint8_t *kind, const uint8_t **data, size_t *len)
{
    if (*off == s->options_len) {
        return 1;
    }
    struct cursor c;
    cursor_init(&c, s->options + *off, s->options_len - *off);
    *kind = cursor_u8(&c);
    *len = cursor_u32(&c);
    *data = cursor_bytes(&c, *len);
    if (c.err != 0) {
        return BERTH_EMALFORMED;
    }
    *off = s->options_len - cursor_left(&c);
    return 0;
}

int frame_encode_spawn(struct buf *out, const struct frame_spawn *s)
{
    if (s->program_len > UINT16_MAX) {
        return BERTH_ETOOBIG;
    }
    size_t mark = out->len;
    if (buf_put_u32(out, s->tag) != 0 || buf_put_u8(out, s->lifetime) != 0 ||
        buf_put_u64(out, s->lifetime_ms) != 0 ||
        buf_put_u16(out, (uint16_t)s->program_len) != 0 ||
        buf_append(out, s->program, s->program_len) != 0) {
        out->len = mark;
        return BERTH_ENOMEM;
    }
    return 0;
}

int frame_encode_spawn_option(struct buf *out, uint8_t kind, const void *data,
                              size_t len)
{
    if (len > UINT32_MAX) {
        return BERTH_ETOOBIG;
    }
    size_t mark = out->len;
    if (buf_put_u8(out, kind) != 0 || buf_put_u32(out, (uint32_t)len) != 0 ||
        buf_append(out, data, len) != 0) {
        out->len = mark;
        return BERTH_ENOMEM;
    }
    return 0;
}

int frame_encode_child(struct buf *out, const struct frame_child *c)
{
    if (c->id_len > FRAME_ID_MAX) {
        return BERTH_ETOOBIG;
    }
    size_t mark = out->len;
    if (buf_put_u8(out, c->what) != 0 || buf_put_u32(out, c->tag) != 0 ||
        buf_put_u16(out, (uint16_t)c->id_len) != 0 ||
        buf_append(out, c->id, c->id_len) != 0 ||
        buf_append(out, c->detail, c->detail_len) != 0) {
        out->len = mark;
        return BERTH_ENOMEM;
    }
    return 0;
}

int frame_decode_child(const uint8_t *p, size_t len, struct frame_child *c)
{
    struct cursor cur;
    cursor_init(&cur, p, len);
    c->what = cursor_u8(&cur);
    c->tag = cursor_u32(&cur);
    c->id_len = cursor_u16(&cur);
    c->id = (const char *)cursor_bytes(&cur, c->id_len);
    if (cur.err != 0 || c->id_len > FRAME_ID_MAX) {
        return BERTH_EMALFORMED;
    }
    c->detail_len = cursor_left(&cur);
    c->detail = (const char *)cursor_bytes(&cur, c->detail_len);
    return 0;
}

int frame_decode_ship_ref(const uint8_t *p, size_t len)
{
    (void)p;
    return len <= FRAME_ID_MAX ? 0 : BERTH_EMALFORMED;
}

int frame_encode_send(struct buf *out, const struct frame_send *s)
{
    if (s->target_len > FRAME_ID_MAX || s->payload_len > FRAME_MESSAGE_MAX) {
        return BERTH_ETOOBIG;
    }
    size_t mark = out->len;
    if (buf_put_u32(out, s->tag) != 0 ||
        buf_put_u16(out, (uint16_t)s->target_len) != 0 ||
        buf_append(out, s->target, s->target_len) != 0 ||
        buf_append(out, s->payload, s->payload_len) != 0) {
        out->len = mark;
        return BERTH_ENOMEM;
    }
    return 0;
}

int frame_decode_send(const uint8_t *p, size_t len, struct frame_send *s)
{
    struct cursor c;
    cursor_init(&c, p, len);
    s->tag = cursor_u32(&c);
    s->target_len = cursor_u16(&c);
    s->target = (const char *)cursor_bytes(&c, s->target_len);
    if (c.err != 0 || s->target_len == 0 || s->target_len > FRAME_ID_MAX) {
        return BERTH_EMALFORMED;
    }
    s->payload_len = cursor_left(&c);
    s->payload = cursor_bytes(&c, s->payload_len);
    return s->payload_len <= FRAME_MESSAGE_MAX ? 0 : BERTH_EMALFORMED;
}

int frame_encode_message(struct buf *out, const struct frame_message *m)
{
    if (m->sender_len > FRAME_ID_MAX || m->payload_len > FRAME_MESSAGE_MAX) {
        return BERTH_ETOOBIG;
    }
    size_t mark = out->len;
    if (buf_put_u32(out, m->tag) != 0 ||
        buf_put_u16(out, (uint16_t)m->sender_len) != 0 ||
        buf_append(out, m->sender, m->sender_len) != 0 ||
        buf_append(out, m->public_key, sizeof m->public_key) != 0 ||
        buf_put_u64(out, m->number) != 0 || buf_put_u16(out, m->index) != 0 ||
        buf_append(out, m->signature, sizeof m->signature) != 0 ||
        buf_append(out, m->payload, m->payload_len) != 0) {
        out->len = mark;
        return BERTH_ENOMEM;
    }
    return 0;
}

int frame_decode_message(const uint8_t *p, size_t len, struct frame_message *m)
{
    struct cursor c;
    cursor_init(&c, p, len);
    m->tag = cursor_u32(&c);
    m->sender_len = cursor_u16(&c);
    m->sender = (const char *)cursor_bytes(&c, m->sender_len);
    const uint8_t *pk = cursor_bytes(&c, sizeof m->public_key);
    m->number = cursor_u64(&c);
    m->index = cursor_u16(&c);
    const uint8_t *sig = cursor_bytes(&c, sizeof m->signature);
    if (c.err != 0 || m->sender_len == 0 || m->sender_len > FRAME_ID_MAX) {
        return BERTH_EMALFORMED;
    }
    memcpy(m->public_key, pk, sizeof m->public_key);
    memcpy(m->signature, sig, sizeof m->signature);
    m->payload_len = cursor_left(&c);
    m->payload = cursor_bytes(&c, m->payload_len);
    return m->payload_len <= FRAME_MESSAGE_MAX ? 0 : BERTH_EMALFORMED;
}

int frame_message_signed(struct buf *out, const struct frame_message *m,
                         const char *target, size_t target_len)
{
    static const char label[] = "berth message";
    size_t mark = out->len;
    if (buf_append(out, label, sizeof label) != 0 ||
        buf_put_u16(out, (uint16_t)m->sender_len) != 0 ||
        buf_append(out, m->sender, m->sender_len) != 0 ||
        buf_put_u16(out, (uint16_t)target_len) != 0 ||
        buf_append(out, target, target_len) != 0 ||
        buf_put_u32(out, m->tag) != 0 || buf_put_u64(out, m->number) != 0 ||
        buf_put_u16(out, m->index) != 0 ||
        buf_append(out, m->payload, m->payload_len) != 0) {
        out->len = mark;
        return BERTH_ENOMEM;
    }
    return 0;
}

int frame_encode_receipt(struct buf *out, const struct frame_receipt *r)
{
    if (r->target_len > FRAME_ID_MAX || r->body_len > FRAME_MESSAGE_MAX) {
        return BERTH_ETOOBIG;
    }
    size_t mark = out->len;
    if (buf_put_u32(out, r->tag) != 0 || buf_put_u8(out, r->outcome) != 0 ||
        buf_put_u16(out, r->status) != 0 ||
        buf_put_u16(out, (uint16_t)r->target_len) != 0 ||
        buf_append(out, r->target, r->target_len) != 0 ||
        buf_append(out, r->body, r->body_len) != 0) {
        out->len = mark;
        return BERTH_ENOMEM;
    }
    return 0;
}

int frame_decode_receipt(const uint8_t *p, size_t len, struct frame_receipt *r)
{
    struct cursor c;
    cursor_init(&c, p, len);
    r->tag = cursor_u32(&c);
    r->outcome = cursor_u8(&c);
    r->status = cursor_u16(&c);
    r->target_len = cursor_u16(&c);
    r->target = (const char *)cursor_bytes(&c, r->target_len);
    if (c.err != 0 || r->target_len > FRAME_ID_MAX) {
        return BERTH_EMALFORMED;
    }
    r->body_len = cursor_left(&c);
    r->body = cursor_bytes(&c, r->body_len);
    return 0;
}

bool frame_lifetime_bound(uint8_t lifetime)
{
    return lifetime == FRAME_LIFETIME_LINKED ||
           lifetime == FRAME_LIFETIME_EPHEMERAL ||
           lifetime == FRAME_LIFETIME_LEASED;
}

int frame_encode_websocket(struct buf *out, const struct frame_websocket *w)
{
    size_t mark = out->len;
    if (buf_put_u64(out, w->conn) != 0 || buf_put_u8(out, w->what) != 0 ||
        buf_append(out, w->data, w->len) != 0) {
        out->len = mark;
        return BERTH_ENOMEM;
    }
    return 0;
}

int frame_decode_websocket(const uint8_t *p, size_t len,
                           struct frame_websocket *w)
{
    if (len < 9) {
        return BERTH_EMALFORMED;
    }
    w->conn = get_le64(p);
    w->what = p[8];
    w->data = p + 9;
    w->len = len - 9;
    return w->conn != 0 && w->what >= FRAME_WS_OPEN &&
                   w->what <= FRAME_WS_CLOSED
               ? 0
               : BERTH_EMALFORMED;
}

int frame_decode_ws_send(const uint8_t *p, size_t len, struct frame_ws_send *s)
{
    if (len < 9) {
        return BERTH_EMALFORMED;
    }
    s->conn = get_le64(p);
    s->opcode = p[8];
    s->data = p + 9;
    s->len = len - 9;
    if (s->conn == 0 || (s->opcode != 1 && s->opcode != 2) ||
        (s->opcode == 1 && !utf8_valid(s->data, s->len))) {
        return BERTH_EMALFORMED;
    }
    return 0;
}

int frame_decode_ws_close(const uint8_t *p, size_t len,
                          struct frame_ws_close *c)
{
    if (len < 10 || len - 10 > 123) {
        return BERTH_EMALFORMED;
    }
    c->conn = get_le64(p);
    c->code = get_le16(p + 8);
    c->reason = (const char *)p + 10;
    c->reason_len = len - 10;
    bool code_ok = (c->code >= 1000 && c->code <= 1003) ||
                   (c->code >= 1007 && c->code <= 1011) ||
                   (c->code >= 3000 && c->code <= 4999);
    if (c->conn == 0 || !code_ok || !utf8_valid(c->reason, c->reason_len)) {
        return BERTH_EMALFORMED;
    }
    return 0;
}
