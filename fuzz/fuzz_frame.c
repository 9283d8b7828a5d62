/* libFuzzer target for the frame codec: split frames from arbitrary bytes
 * and run every decoder and walker on each, as the host does on a program's
 * output and a program does on the host's, down to the HTTP payloads and
 * replies, ALARM, SPAWN, RELEASE and DESTROY effects (SPAWN's options
 * walked), and TIMER and CHILD payloads inside them. Whatever decodes
 * must point inside the input (every byte is read, so AddressSanitizer sees
 * a stray pointer) and must encode back to the very same bytes. */
#include <stdlib.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/utf8.h"
#include "proto/frame.h"

/* A sink the compiler cannot drop, so that touching memory really reads it. */
static volatile uint8_t fuzz_sink;

/* Read every byte of p[0..n). */
static void touch(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint8_t x = 0;
    for (size_t i = 0; i < n; i++) {
        x ^= b[i];
    }
    fuzz_sink = x;
}

/* Abort when the encoding in out differs from the original bytes. */
static void same(const struct buf *out, const uint8_t *p, size_t n)
{
    if (out->len != n || (n > 0 && memcmp(out->data, p, n) != 0)) {
        abort();
    }
}

static void fuzz_http_request(const uint8_t *p, size_t n)
{
    struct frame_http_request r;
    if (frame_decode_http_request(p, n, &r) != 0) {
        return;
    }
    touch(r.method, r.method_len);
    touch(r.target, r.target_len);
    touch(r.body, r.body_len);
    struct frame_header hs[64];
    size_t off = 0;
    unsigned count = 0;
    int rv;
    while ((rv = frame_http_next_header(&r, &off, &hs[count % 64])) == 0) {
        touch(hs[count % 64].name, hs[count % 64].name_len);
        touch(hs[count % 64].value, hs[count % 64].value_len);
        count++;
    }
    /* The decoder checked the headers, so the walk must agree with it. */
    if (rv != 1 || count != r.n_headers) {
        abort();
    }
    if (count <= 64) {
        struct buf out;
        buf_init(&out);
        if (frame_encode_http_request(&out, &r, hs) == 0) {
            same(&out, p, n);
        }
        buf_free(&out);
    }
}

static void fuzz_http_reply(const uint8_t *p, size_t n)
{
    struct frame_http_reply r;
    if (frame_decode_http_reply(p, n, &r) != 0) {
        return;
    }
    touch(r.content_type, r.content_type_len);
    touch(r.body, r.body_len);
    struct buf out;
    buf_init(&out);
    if (frame_encode_http_reply(&out, &r) == 0) {
        same(&out, p, n);
    }
    buf_free(&out);
}

/* Decode an ALARM effect or a TIMER payload: it must decode exactly when it
 * is FRAME_ALARM_SIZE bytes, and encode back to the same bytes. */
static void fuzz_time(int (*decode)(const uint8_t *, size_t, uint64_t *),
                      int (*encode)(struct buf *, uint64_t), const uint8_t *p,
                      size_t n)
{
    uint64_t t;
    int rv = decode(p, n, &t);
    if ((rv == 0) != (n == FRAME_ALARM_SIZE)) {
        abort();
    }
    if (rv != 0) {
        return;
    }
    struct buf out;
    buf_init(&out);
    if (encode(&out, t) == 0) {
        same(&out, p, n);
    }
    buf_free(&out);
}

/* Decode a SPAWN effect and walk its options, which the decoder checked, so
 * the walk must end cleanly; what decodes must encode back to p[0..n). */
static void fuzz_spawn(const uint8_t *p, size_t n)
{
    struct frame_spawn s;
    if (frame_decode_spawn(p, n, &s) != 0) {
        return;
    }
    touch(s.program, s.program_len);
    struct buf out;
    buf_init(&out);
    int enc = frame_encode_spawn(&out, &s);
    size_t off = 0;
    uint8_t kind;
    const uint8_t *data;
    size_t len;
    int rv;
    while ((rv = frame_spawn_next_option(&s, &off, &kind, &data, &len)) == 0) {
        touch(data, len);
        if (enc == 0) {
            enc = frame_encode_spawn_option(&out, kind, data, len);
        }
    }
    if (rv != 1 || off != s.options_len) {
        abort();
    }
    if (enc == 0) {
        same(&out, p, n);
    }
    buf_free(&out);
}

/* Decode a CHILD payload: its id must be within FRAME_ID_MAX, and it must
 * encode back to p[0..n). */
static void fuzz_child(const uint8_t *p, size_t n)
{
    struct frame_child c;
    if (frame_decode_child(p, n, &c) != 0) {
        return;
    }
    if (c.id_len > FRAME_ID_MAX) {
        abort();
    }
    touch(c.id, c.id_len);
    touch(c.detail, c.detail_len);
    struct buf out;
    buf_init(&out);
    if (frame_encode_child(&out, &c) == 0) {
        same(&out, p, n);
    }
    buf_free(&out);
}

/* A RELEASE or DESTROY names a ship exactly when it is short enough. */
static void fuzz_ship_ref(const uint8_t *p, size_t n)
{
    if ((frame_decode_ship_ref(p, n) == 0) != (n <= FRAME_ID_MAX)) {
        abort();
    }
}

/* A WEBSOCKET payload, a WS_SEND and a WS_CLOSE: what decodes points
 * inside the bytes, says what the decoder promises, and a payload encodes
 * back to the same bytes. */
static void fuzz_websocket(const uint8_t *p, size_t n)
{
    struct frame_websocket w;
    if (frame_decode_websocket(p, n, &w) == 0) {
        if (w.conn == 0 || w.what < FRAME_WS_OPEN || w.what > FRAME_WS_CLOSED ||
            w.data != p + 9 || w.len != n - 9) {
            abort();
        }
        struct buf out;
        buf_init(&out);
        if (frame_encode_websocket(&out, &w) == 0) {
            same(&out, p, n);
        }
        buf_free(&out);
    }
    struct frame_ws_send sd;
    if (frame_decode_ws_send(p, n, &sd) == 0) {
        if (sd.conn == 0 || (sd.opcode != 1 && sd.opcode != 2) ||
            (sd.opcode == 1 && !utf8_valid(sd.data, sd.len))) {
            abort();
        }
        touch(sd.data, sd.len);
    }
    struct frame_ws_close cl;
    if (frame_decode_ws_close(p, n, &cl) == 0) {
        if (cl.conn == 0 || cl.reason_len > 123 ||
            !utf8_valid(cl.reason, cl.reason_len)) {
            abort();
        }
        touch(cl.reason, cl.reason_len);
    }
}

/* Decode one frame with every decoder; at most one may accept it, and what
 * it accepts must encode back to raw[0..raw_len). */
static void fuzz_one(const struct frame *f, const uint8_t *raw, size_t raw_len)
{
    struct buf out;
    buf_init(&out);
    int accepted_by = 0;

    struct frame_boot boot;
    if (frame_decode_boot(f, &boot) == 0) {
        accepted_by++;
        touch(boot.id, boot.id_len);
        touch(boot.snapshot, boot.snapshot_len);
        if (frame_encode_boot(&out, &boot) == 0) {
            same(&out, raw, raw_len);
        }
    }
    struct frame_event ev;
    if (frame_decode_event(f, &ev) == 0) {
        accepted_by++;
        touch(ev.payload, ev.payload_len);
        fuzz_http_request(ev.payload, ev.payload_len);
        if (ev.kind == FRAME_EVENT_TIMER) {
            fuzz_time(frame_decode_timer, frame_encode_timer, ev.payload,
                      ev.payload_len);
        }
        if (ev.kind == FRAME_EVENT_CHILD) {
            fuzz_child(ev.payload, ev.payload_len);
        }
        if (ev.kind == FRAME_EVENT_WEBSOCKET) {
            fuzz_websocket(ev.payload, ev.payload_len);
        }
        out.len = 0;
        if (frame_encode_event(&out, &ev) == 0) {
            same(&out, raw, raw_len);
        }
    }
    uint64_t n;
    if (frame_decode_snap_req(f, &n) == 0) {
        accepted_by++;
        out.len = 0;
        if (frame_encode_snap_req(&out, n) == 0) {
            same(&out, raw, raw_len);
        }
    }
    bool accepted;
    if (frame_decode_ready(f, &accepted) == 0) {
        accepted_by++;
        out.len = 0;
        if (frame_encode_ready(&out, accepted) == 0) {
            same(&out, raw, raw_len);
        }
    }
    struct frame_done done;
    if (frame_decode_done(f, &done) == 0) {
        accepted_by++;
        size_t eo = 0;
        struct frame_effect e;
        uint32_t count = 0;
        int rv;
        size_t mark;
        out.len = 0;
        int enc = frame_done_begin(&out, done.number, done.flags, &mark);
        while ((rv = frame_effects_next(&done, &eo, &e)) == 0) {
            count++;
            touch(e.data, e.len);
            fuzz_http_reply(e.data, e.len);
            if (e.kind == FRAME_EFFECT_ALARM) {
                fuzz_time(frame_decode_alarm, frame_encode_alarm, e.data,
                          e.len);
            }
            if (e.kind == FRAME_EFFECT_SPAWN) {
                fuzz_spawn(e.data, e.len);
            }
            if (e.kind == FRAME_EFFECT_RELEASE ||
                e.kind == FRAME_EFFECT_DESTROY) {
                fuzz_ship_ref(e.data, e.len);
            }
            if (e.kind == FRAME_EFFECT_WS_SEND ||
                e.kind == FRAME_EFFECT_WS_CLOSE) {
                fuzz_websocket(e.data, e.len);
            }
            if (enc == 0) {
                enc = frame_done_add_effect(&out, mark, e.kind, e.data, e.len);
            }
        }
        if (rv != 1 || count != done.n_effects) {
            abort();
        }
        if (enc == 0) {
            frame_done_end(&out, mark);
            same(&out, raw, raw_len);
        }
    }
    struct frame_reject rej;
    if (frame_decode_reject(f, &rej) == 0) {
        accepted_by++;
        touch(rej.reason, rej.reason_len);
        out.len = 0;
        if (frame_encode_reject(&out, rej.number, rej.reason, rej.reason_len) ==
            0) {
            same(&out, raw, raw_len);
        }
    }
    struct frame_snapshot snap;
    if (frame_decode_snapshot(f, &snap) == 0) {
        accepted_by++;
        touch(snap.data, snap.len);
        out.len = 0;
        if (frame_encode_snapshot(&out, snap.number, snap.data, snap.len) ==
            0) {
            same(&out, raw, raw_len);
        }
    }
    if (accepted_by > 1) {
        abort();
    }
    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The first byte picks a small limit now and then, to reach ETOOBIG. */
    size_t max = size > 0 && data[0] == 0xff ? 64 : FRAME_MAX_DEFAULT;
    size_t off = 0;
    while (off < size) {
        struct frame f;
        size_t used;
        int rv = frame_split(data + off, size - off, max, &f, &used);
        if (rv != 0) {
            if (rv != BERTH_EPARTIAL && rv != BERTH_ETOOBIG &&
                rv != BERTH_EMALFORMED) {
                abort();
            }
            break;
        }
        if (used < FRAME_HEADER_SIZE || used > size - off ||
            f.body + f.body_len != data + off + used) {
            abort();
        }
        touch(f.body, f.body_len);
        fuzz_one(&f, data + off, used);
        off += used;
    }
    /* The whole input is also tried as bare payloads, which is where most
     * of the length fields are. */
    fuzz_http_request(data, size);
    fuzz_http_reply(data, size);
    fuzz_time(frame_decode_alarm, frame_encode_alarm, data, size);
    fuzz_time(frame_decode_timer, frame_encode_timer, data, size);
    fuzz_spawn(data, size);
    fuzz_child(data, size);
    fuzz_ship_ref(data, size);
    fuzz_websocket(data, size);
    return 0;
}
