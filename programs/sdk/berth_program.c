#include "berth_program.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

enum {
    BP__BOOT = 0x01,
    BP__EVENT = 0x02,
    BP__SNAP_REQ = 0x03,
    BP__STOP = 0x04,
    BP__READY = 0x81,
    BP__DONE = 0x82,
    BP__REJECT = 0x83,
    BP__SNAPSHOT = 0x84,
    BP__EFFECT_HTTP_REPLY = 1,
    BP__EFFECT_LOG = 2,
};

#define BP__MAX_HEADERS 64

struct bp_out {
    struct bp_bytes effects;
    uint32_t n_effects;
    char reason[512];
    int rejected;
};

int bp_bytes_append(struct bp_bytes *b, const void *p, size_t n)
{
    if (n == 0) {
        return 0;
    }
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) {
                return -1;
            }
            cap *= 2;
        }
        uint8_t *d = realloc(b->data, cap);
        if (d == NULL) {
            return -1;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void bp_bytes_free(struct bp_bytes *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static void bp__put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void bp__put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void bp__put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t bp__get(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static int bp__add_effect(struct bp_out *out, uint8_t kind, const void *a,
                          size_t alen, const void *b, size_t blen)
{
    uint8_t h[5];
    h[0] = kind;
    bp__put32(h + 1, (uint32_t)(alen + blen));
    if (bp_bytes_append(&out->effects, h, sizeof h) != 0 ||
        bp_bytes_append(&out->effects, a, alen) != 0 ||
        bp_bytes_append(&out->effects, b, blen) != 0) {
        return -1;
    }
    out->n_effects++;
    return 0;
}

int bp_reply(struct bp_out *out, int status, const char *content_type,
             const void *body, size_t len)
{
    size_t ct = content_type ? strlen(content_type) : 0;
    uint8_t head[4 + 256];
    if (ct > 256 || status < 100 || status > 599) {
        return -1;
    }
    bp__put16(head, (uint16_t)status);
    bp__put16(head + 2, (uint16_t)ct);
    memcpy(head + 4, content_type ? content_type : "", ct);
    return bp__add_effect(out, BP__EFFECT_HTTP_REPLY, head, 4 + ct, body, len);
}

int bp_log(struct bp_out *out, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return -1;
    }
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    return bp__add_effect(out, BP__EFFECT_LOG, line, len, NULL, 0);
}

int bp_reject(struct bp_out *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->reason, sizeof out->reason, fmt, ap);
    va_end(ap);
    out->rejected = 1;
    return BP_REJECT;
}

int bp_http_match(const struct bp_http *h, const char *method,
                  const char *path)
{
    size_t ml = strlen(method);
    if (h->method_len != ml || memcmp(h->method, method, ml) != 0) {
        return 0;
    }
    size_t tl = 0;
    while (tl < h->target_len && h->target[tl] != '?') {
        tl++;
    }
    size_t pl = strlen(path);
    if (pl > 0 && path[pl - 1] == '/') {
        return tl >= pl && memcmp(h->target, path, pl) == 0;
    }
    return tl == pl && memcmp(h->target, path, pl) == 0;
}

/* --- Frame I/O on fds 0 and 1. --- */

static int bp__fail(const char *what)
{
    fprintf(stderr, "berth_program: %s\n", what);
    return 1;
}

/* Read exactly n bytes; 0, 1 at a clean EOF before any byte, -1 on error. */
static int bp__read_full(uint8_t *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(0, p + got, n - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return got == 0 && r == 0 ? 1 : -1;
        }
        got += (size_t)r;
    }
    return 0;
}

/* Write the pieces of one frame with as few system calls as the pipe
 * allows, so that the host reads whole frames. */
static int bp__writev_full(struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = writev(1, iov, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

static int bp__send(uint8_t type, const void *a, size_t alen, const void *b,
                    size_t blen)
{
    uint8_t h[5];
    if (1 + alen + blen > BP_MAX_FRAME) {
        return -1;
    }
    bp__put32(h, (uint32_t)(1 + alen + blen));
    h[4] = type;
    struct iovec iov[3] = {
        {h, sizeof h},
        {(void *)a, alen},
        {(void *)b, blen},
    };
    return bp__writev_full(iov, 3);
}

/* A bounds-checked reader over one frame body. */
struct bp__cur {
    const uint8_t *p;
    size_t len, off;
    int bad;
};

static const uint8_t *bp__take(struct bp__cur *c, size_t n)
{
    if (c->bad || c->len - c->off < n) {
        c->bad = 1;
        return NULL;
    }
    const uint8_t *p = c->p + c->off;
    c->off += n;
    return p;
}

static uint64_t bp__int(struct bp__cur *c, int n)
{
    const uint8_t *p = bp__take(c, (size_t)n);
    return p ? bp__get(p, n) : 0;
}

static int bp__decode_http(const uint8_t *p, size_t len, struct bp_http *h,
                           struct bp_header *headers)
{
    struct bp__cur c = {.p = p, .len = len};
    h->method_len = bp__int(&c, 2);
    h->method = (const char *)bp__take(&c, h->method_len);
    h->target_len = bp__int(&c, 4);
    h->target = (const char *)bp__take(&c, h->target_len);
    h->n_headers = (unsigned)bp__int(&c, 2);
    if (c.bad || h->n_headers > BP__MAX_HEADERS) {
        return -1;
    }
    for (unsigned i = 0; i < h->n_headers; i++) {
        headers[i].name_len = bp__int(&c, 2);
        headers[i].name = (const char *)bp__take(&c, headers[i].name_len);
        headers[i].value_len = bp__int(&c, 4);
        headers[i].value = (const char *)bp__take(&c, headers[i].value_len);
    }
    if (c.bad) {
        return -1;
    }
    h->headers = headers;
    h->body_len = c.len - c.off;
    h->body = c.p + c.off;
    return 0;
}

static int bp__on_event(const struct bp_program *prog, const uint8_t *body,
                        size_t len)
{
    struct bp__cur c = {.p = body, .len = len};
    struct bp_event ev;
    struct bp_http http;
    struct bp_header headers[BP__MAX_HEADERS];
    ev.number = bp__int(&c, 8);
    ev.time_ns = bp__int(&c, 8);
    const uint8_t *entropy = bp__take(&c, 32);
    ev.kind = (uint8_t)bp__int(&c, 1);
    if (c.bad) {
        return bp__fail("malformed EVENT frame");
    }
    memcpy(ev.entropy, entropy, sizeof ev.entropy);
    ev.payload = c.p + c.off;
    ev.payload_len = c.len - c.off;
    ev.http = NULL;
    if (ev.kind == BP_EVENT_HTTP) {
        if (bp__decode_http(ev.payload, ev.payload_len, &http, headers) != 0) {
            return bp__fail("malformed HTTP event payload");
        }
        ev.http = &http;
    }
    struct bp_out out;
    memset(&out, 0, sizeof out);
    int r = prog->event(prog->ctx, &ev, &out);
    uint8_t n8[8];
    bp__put64(n8, ev.number);
    int rv;
    if (r == BP_REJECT || out.rejected) {
        rv = bp__send(BP__REJECT, n8, 8, out.reason, strlen(out.reason));
    } else {
        uint8_t head[13];
        memcpy(head, n8, 8);
        head[8] = r == BP_CHANGED ? 1 : 0;
        bp__put32(head + 9, out.n_effects);
        rv = bp__send(BP__DONE, head, sizeof head, out.effects.data,
                      out.effects.len);
    }
    bp_bytes_free(&out.effects);
    return rv != 0 ? bp__fail("cannot write to the host") : 0;
}

int bp_run(const struct bp_program *prog)
{
    uint8_t *body = NULL;
    int booted = 0;
    int status = 1;
    for (;;) {
        uint8_t h[5];
        int r = bp__read_full(h, 4);
        if (r == 1) {
            status = 0; /* the host went away: nothing more to do */
            break;
        }
        uint32_t len = (uint32_t)bp__get(h, 4);
        if (r != 0 || len == 0 || len > BP_MAX_FRAME) {
            status = bp__fail(r != 0 ? "cannot read from the host"
                                     : "bad frame length from the host");
            break;
        }
        free(body);
        body = malloc(len);
        if (body == NULL || bp__read_full(body, len) != 0) {
            status = bp__fail("cannot read a frame");
            break;
        }
        uint8_t type = body[0];
        const uint8_t *b = body + 1;
        size_t blen = len - 1;
        if (type == BP__BOOT && !booted) {
            struct bp__cur c = {.p = b, .len = blen};
            bp__take(&c, bp__int(&c, 2));
            uint64_t snap_event = bp__int(&c, 8);
            if (c.bad) {
                status = bp__fail("malformed BOOT frame");
                break;
            }
            int accept = 1;
            const uint8_t *snap = snap_event ? c.p + c.off : NULL;
            size_t snap_len = snap_event ? c.len - c.off : 0;
            if (prog->boot != NULL) {
                accept = prog->boot(prog->ctx, snap, snap_len) == 0;
            } else if (snap != NULL) {
                accept = 0;
            }
            uint8_t a = (uint8_t)accept;
            booted = 1;
            if (bp__send(BP__READY, &a, 1, NULL, 0) != 0) {
                status = bp__fail("cannot write to the host");
                break;
            }
        } else if (type == BP__EVENT && booted) {
            if (bp__on_event(prog, b, blen) != 0) {
                break;
            }
        } else if (type == BP__SNAP_REQ && booted && blen == 8) {
            struct bp_bytes snap = {0};
            if (prog->snapshot != NULL && prog->snapshot(prog->ctx, &snap)) {
                bp_bytes_free(&snap);
                status = bp__fail("the snapshot callback failed");
                break;
            }
            int w = bp__send(BP__SNAPSHOT, b, 8, snap.data, snap.len);
            bp_bytes_free(&snap);
            if (w != 0) {
                status = bp__fail("cannot write to the host");
                break;
            }
        } else if (type == BP__STOP) {
            status = 0;
            break;
        } else {
            status = bp__fail("unexpected frame from the host");
            break;
        }
    }
    free(body);
    return status;
}
