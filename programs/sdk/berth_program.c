/* berth_program: the frame protocol for programs, with libc only. The wire
 * format is in docs/protocol.md; this file must not depend on berth's own
 * sources because program authors copy it. */
#if !defined(_POSIX_C_SOURCE) && !defined(_GNU_SOURCE)
/* read, writev and ssize_t are POSIX, not C11. */
#define _POSIX_C_SOURCE 200809L
#endif

#include "berth_program.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
/* A sanitized build's LeakSanitizer stops the process's threads with
 * ptrace at exit, which the host's seccomp filter denies a program
 * (docs/security.md, "Programs"): run by a host (BERTH_HOST is set), a
 * program would end with LeakSanitizer's fatal error instead of its own
 * status. Its leaks are checked where it runs outside a host
 * (test_kv_program). */
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
    return getenv("BERTH_HOST") != NULL;
}
#endif

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
    BP__EFFECT_ALARM = 3,
    BP__EFFECT_SPAWN = 4,
    BP__EFFECT_SEND = 5,
    BP__EFFECT_RELEASE = 6,
    BP__EFFECT_DESTROY = 7,
    BP__EFFECT_IDLE = 8,
    BP__EFFECT_WS_SEND = 9,
    BP__EFFECT_WS_CLOSE = 10,
    BP__SPAWN_ARG = 1,
    BP__SPAWN_ENV = 2,
    BP__SPAWN_ACCESS = 3,
};

/* Bytes of a SPAWN effect before its program: tag, lifetime, lifetime_ms and
 * the program's length. */
#define BP__SPAWN_FIXED 15

/* Bytes of an ALARM effect and of a TIMER payload: one u64 time. */
#define BP__TIME_SIZE 8

/* Bytes of a DONE body before its effects: number, flags, n_effects. */
#define BP__DONE_FIXED 13
/* DONE flags: the state changed; the reply may be given again. */
#define BP__DONE_CHANGED 0x01
#define BP__DONE_REUSE 0x02

/* Headers decoded on the stack; requests with more use the heap. */
#define BP__STACK_HEADERS 64

struct bp_out {
    struct bp_bytes effects;
    uint32_t n_effects;
    int rejected;
    int reuse; /* bp_reuse was called */
    char reason[1024];
};

int bp_bytes_append(struct bp_bytes *b, const void *p, size_t n)
{
    if (n == 0) {
        return 0;
    }
    if (b->cap - b->len < n) {
        if (n > SIZE_MAX / 2 - b->len) {
            return -1;
        }
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n) {
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

/* Load an n-byte little-endian integer. */
static uint64_t bp__get(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* Append one effect made of up to three pieces, or nothing at all: a failed
 * append must not leave half an effect behind, or the DONE frame would not
 * decode. */
static int bp__add_effect(struct bp_out *out, uint8_t kind, const void *a,
                          size_t alen, const void *b, size_t blen,
                          const void *c, size_t clen)
{
    size_t room = BP_MAX_FRAME - 1 - BP__DONE_FIXED;
    size_t used = out->effects.len;
    if (out->n_effects == UINT32_MAX || used > room || room - used < 5 ||
        alen > room - used - 5 || blen > room - used - 5 - alen ||
        clen > room - used - 5 - alen - blen) {
        return -1;
    }
    uint8_t h[5];
    h[0] = kind;
    bp__put32(h + 1, (uint32_t)(alen + blen + clen));
    if (bp_bytes_append(&out->effects, h, sizeof h) != 0 ||
        bp_bytes_append(&out->effects, a, alen) != 0 ||
        bp_bytes_append(&out->effects, b, blen) != 0 ||
        bp_bytes_append(&out->effects, c, clen) != 0) {
        out->effects.len = used;
        return -1;
    }
    out->n_effects++;
    return 0;
}

int bp_reply(struct bp_out *out, int status, const char *content_type,
             const void *body, size_t len)
{
    size_t ct = content_type ? strlen(content_type) : 0;
    if (ct > UINT16_MAX || status < 100 || status > 599) {
        return -1;
    }
    uint8_t head[4];
    bp__put16(head, (uint16_t)status);
    bp__put16(head + 2, (uint16_t)ct);
    return bp__add_effect(out, BP__EFFECT_HTTP_REPLY, head, sizeof head,
                          content_type, ct, body, len);
}

int bp_log(struct bp_out *out, const char *fmt, ...)
{
    char small[512];
    char *line = small;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return -1;
    }
    if ((size_t)n >= sizeof small) {
        line = malloc((size_t)n + 1);
        if (line == NULL) {
            return -1;
        }
        va_start(ap, fmt);
        vsnprintf(line, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    for (int i = 0; i < n; i++) {
        if (line[i] == '\n' || line[i] == '\r') {
            line[i] = ' ';
        }
    }
    int rv =
        bp__add_effect(out, BP__EFFECT_LOG, line, (size_t)n, NULL, 0, NULL, 0);
    if (line != small) {
        free(line);
    }
    return rv;
}

void bp_reuse(struct bp_out *out)
{
    out->reuse = 1;
}

int bp_alarm(struct bp_out *out, uint64_t time_ns)
{
    uint8_t t[BP__TIME_SIZE];
    bp__put64(t, time_ns);
    return bp__add_effect(out, BP__EFFECT_ALARM, t, sizeof t, NULL, 0, NULL, 0);
}

/* Append one SPAWN option to b: u8 kind, u32 len, the string's bytes. */
static int bp__spawn_option(struct bp_bytes *b, uint8_t kind, const char *v)
{
    size_t n = v ? strlen(v) : 0;
    uint8_t h[5];
    if (n > UINT32_MAX) {
        return -1;
    }
    h[0] = kind;
    bp__put32(h + 1, (uint32_t)n);
    if (bp_bytes_append(b, h, sizeof h) != 0) {
        return -1;
    }
    return bp_bytes_append(b, v, n);
}

int bp_spawn(struct bp_out *out, const struct bp_spawn *s)
{
    size_t pl = s->program ? strlen(s->program) : 0;
    if (s->lifetime < 0 || s->lifetime > UINT8_MAX || pl > UINT16_MAX) {
        return -1;
    }
    /* The options vary in number, so the effect is built whole first and
     * added as one piece. */
    struct bp_bytes b = {0};
    uint8_t head[BP__SPAWN_FIXED];
    bp__put32(head, s->tag);
    head[4] = (uint8_t)s->lifetime;
    bp__put64(head + 5, 0); /* lifetime_ms: no lifetime takes a time yet */
    bp__put16(head + 13, (uint16_t)pl);
    int rv = bp_bytes_append(&b, head, sizeof head);
    if (rv == 0) {
        rv = bp_bytes_append(&b, s->program, pl);
    }
    for (size_t i = 0; rv == 0 && i < s->n_args; i++) {
        rv = bp__spawn_option(&b, BP__SPAWN_ARG, s->args[i]);
    }
    for (size_t i = 0; rv == 0 && i < s->n_env; i++) {
        rv = bp__spawn_option(&b, BP__SPAWN_ENV, s->env[i]);
    }
    for (size_t i = 0; rv == 0 && i < s->n_access; i++) {
        size_t n = s->access[i] ? strlen(s->access[i]) : 0;
        rv = n == 0 || n > BP_ID_MAX
                 ? -1
                 : bp__spawn_option(&b, BP__SPAWN_ACCESS, s->access[i]);
    }
    if (rv == 0) {
        rv = bp__add_effect(out, BP__EFFECT_SPAWN, b.data, b.len, NULL, 0, NULL,
                            0);
    }
    bp_bytes_free(&b);
    return rv;
}

/* Add a RELEASE or DESTROY effect naming the ship id, which the host refuses
 * past BP_ID_MAX bytes. */
static int bp__ship_ref(struct bp_out *out, uint8_t kind, const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n > BP_ID_MAX) {
        return -1;
    }
    return bp__add_effect(out, kind, id, n, NULL, 0, NULL, 0);
}

int bp_release(struct bp_out *out, const char *id)
{
    if (id == NULL || id[0] == '\0') {
        return -1; /* an empty RELEASE names no child */
    }
    return bp__ship_ref(out, BP__EFFECT_RELEASE, id);
}

int bp_destroy(struct bp_out *out, const char *id)
{
    return bp__ship_ref(out, BP__EFFECT_DESTROY, id);
}

int bp_send(struct bp_out *out, uint32_t tag, const char *target,
            const void *payload, size_t len)
{
    size_t n = target ? strlen(target) : 0;
    if (n == 0 || n > BP_ID_MAX || len > BP_MESSAGE_MAX) {
        return -1;
    }
    uint8_t head[6];
    bp__put32(head, tag);
    bp__put16(head + 4, (uint16_t)n);
    return bp__add_effect(out, BP__EFFECT_SEND, head, sizeof head, target, n,
                          payload, len);
}

int bp_idle(struct bp_out *out)
{
    return bp__add_effect(out, BP__EFFECT_IDLE, NULL, 0, NULL, 0, NULL, 0);
}

/* Return the length of the UTF-8 sequence at p[0..n) as RFC 3629 has it
 * (no overlong forms, no surrogates, nothing past U+10FFFF), or 0 when the
 * bytes there are not one. */
static size_t bp__utf8_len(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    size_t len;
    uint32_t min;
    if (c < 0x80) {
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        len = 2, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    uint32_t v = c & (0x7f >> len);
    for (size_t k = 1; k < len; k++) {
        if ((p[k] & 0xc0) != 0x80) {
            return 0;
        }
        v = (v << 6) | (p[k] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
        return 0;
    }
    return len;
}

/* Return 1 when the n bytes at p are UTF-8, as the host checks a text
 * message. */
static int bp__utf8(const uint8_t *p, size_t n)
{
    for (size_t i = 0, u; i < n; i += u) {
        if ((u = bp__utf8_len(p + i, n - i)) == 0) {
            return 0;
        }
    }
    return 1;
}

int bp_json_string(struct bp_bytes *b, const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    int rv = bp_bytes_append(b, "\"", 1);
    for (size_t i = 0; i < n && rv == 0;) {
        char esc[8];
        size_t u = bp__utf8_len(p + i, n - i);
        if (p[i] == '"' || p[i] == '\\') {
            esc[0] = '\\';
            esc[1] = (char)p[i];
            rv = bp_bytes_append(b, esc, 2);
            i++;
        } else if (u == 0 || p[i] < 0x20 || p[i] == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", p[i]);
            rv = bp_bytes_append(b, esc, 6);
            i++;
        } else {
            rv = bp_bytes_append(b, p + i, u);
            i += u;
        }
    }
    return rv == 0 ? bp_bytes_append(b, "\"", 1) : rv;
}

int bp_ws_send(struct bp_out *out, uint64_t conn, int opcode, const void *p,
               size_t n)
{
    if (conn == 0 ||
        (opcode != BP_WS_SEND_TEXT && opcode != BP_WS_SEND_BINARY) ||
        (opcode == BP_WS_SEND_TEXT && !bp__utf8(p, n))) {
        return -1;
    }
    uint8_t head[9];
    bp__put64(head, conn);
    head[8] = (uint8_t)opcode;
    return bp__add_effect(out, BP__EFFECT_WS_SEND, head, sizeof head, p, n,
                          NULL, 0);
}

int bp_ws_close(struct bp_out *out, uint64_t conn, uint16_t code,
                const char *reason)
{
    size_t n = reason ? strlen(reason) : 0;
    /* The codes RFC 6455 lets an endpoint put in a close frame, less the
     * 1012-1014 of later registrations, which the host refuses too. */
    int sendable = (code >= 1000 && code <= 1003) ||
                   (code >= 1007 && code <= 1011) ||
                   (code >= 3000 && code <= 4999);
    if (conn == 0 || !sendable || n > BP_WS_REASON_MAX ||
        !bp__utf8((const uint8_t *)reason, n)) {
        return -1;
    }
    uint8_t head[10];
    bp__put64(head, conn);
    bp__put16(head + 8, code);
    return bp__add_effect(out, BP__EFFECT_WS_CLOSE, head, sizeof head, reason,
                          n, NULL, 0);
}

uint32_t bp_ws_run(uint64_t conn)
{
    return (uint32_t)(conn >> 32);
}

int bp_reject(struct bp_out *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out->reason, sizeof out->reason, fmt, ap);
    va_end(ap);
    if (n < 0) {
        out->reason[0] = '\0';
    }
    out->rejected = 1;
    return BP_REJECT;
}

int bp_http_match(const struct bp_http *h, const char *method, const char *path)
{
    if (h == NULL) {
        return 0;
    }
    if (method != NULL) {
        size_t ml = strlen(method);
        if (h->method_len != ml || memcmp(h->method, method, ml) != 0) {
            return 0;
        }
    }
    size_t tl = 0;
    while (tl < h->target_len && h->target[tl] != '?') {
        tl++;
    }
    size_t pl = strlen(path);
    if (pl > 0 && path[pl - 1] == '*') {
        pl--;
        return tl >= pl && memcmp(h->target, path, pl) == 0;
    }
    return tl == pl && memcmp(h->target, path, pl) == 0;
}

const char *bp_http_header(const struct bp_http *h, const char *name,
                           size_t *len)
{
    size_t nl = strlen(name);
    for (unsigned i = 0; h != NULL && i < h->n_headers; i++) {
        const struct bp_header *x = &h->headers[i];
        if (x->name_len == nl && memcmp(x->name, name, nl) == 0) {
            *len = x->value_len;
            return x->value;
        }
    }
    return NULL;
}

/* --- Frame I/O on fds 0 and 1. --- */

/* Report a fatal problem on stderr and return the exit status for it. */
static int bp__fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int bp__fail(const char *fmt, ...)
{
    va_list ap;
    fputs("berth_program: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

/* Frames come in through one buffer, read in pieces as large as it has
 * room for: a frame's header and body take one read, and frames queued
 * together one read in all, rather than two reads a frame. */
struct bp__in {
    uint8_t *data;
    size_t cap;
    size_t start; /* the first byte not yet used */
    size_t end;   /* one past the last byte read */
};

#define BP__IN_MIN (64u * 1024)

/* Make n bytes available at in->data + in->start, reading stdin; 0, 1 at end
 * of input before any byte of them, -1 on an error or an end of input after
 * the first (errno 0 then). Moves the bytes not yet used to the front. */
static int bp__in_need(struct bp__in *in, size_t n)
{
    while (in->end - in->start < n) {
        if (in->start > 0 && in->cap - in->start < n) {
            memmove(in->data, in->data + in->start, in->end - in->start);
            in->end -= in->start;
            in->start = 0;
        }
        if (in->cap < n) {
            size_t cap = n > BP__IN_MIN ? n : BP__IN_MIN;
            uint8_t *grown = realloc(in->data, cap);
            if (grown == NULL) {
                errno = ENOMEM;
                return -1;
            }
            in->data = grown;
            in->cap = cap;
        }
        ssize_t r = read(0, in->data + in->end, in->cap - in->end);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r == 0) {
            errno = 0;
            return in->end == in->start ? 1 : -1;
        }
        if (r < 0) {
            return -1;
        }
        in->end += (size_t)r;
    }
    return 0;
}

/* Write all of iov to stdout, resuming after short writes and signals. */
static int bp__writev_full(struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = writev(1, iov, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
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

/* Send one frame whose body is a then b, in as few system calls as the pipe
 * allows. */
static int bp__send(uint8_t type, const void *a, size_t alen, const void *b,
                    size_t blen)
{
    if (alen > BP_MAX_FRAME - 1 || blen > BP_MAX_FRAME - 1 - alen) {
        return bp__fail("a frame of %zu bytes is over the %u byte limit",
                        1 + alen + blen, BP_MAX_FRAME);
    }
    uint8_t h[5];
    bp__put32(h, (uint32_t)(1 + alen + blen));
    h[4] = type;
    struct iovec iov[3] = {
        {h, sizeof h},
        {(void *)a, alen},
        {(void *)b, blen},
    };
    if (bp__writev_full(iov, 3) != 0) {
        return bp__fail("cannot write to the host: %s", strerror(errno));
    }
    return 0;
}

/* A bounds-checked reader over one frame body; bad sticks after the first
 * read past the end, so a decoder checks once. */
struct bp__cur {
    const uint8_t *p;
    size_t len, off;
    int bad;
};

static const uint8_t *bp__take(struct bp__cur *c, uint64_t n)
{
    if (c->bad || c->len - c->off < n) {
        c->bad = 1;
        return NULL;
    }
    const uint8_t *p = c->p + c->off;
    c->off += (size_t)n;
    return p;
}

static uint64_t bp__int(struct bp__cur *c, int n)
{
    const uint8_t *p = bp__take(c, (uint64_t)n);
    return p ? bp__get(p, n) : 0;
}

/* Decode an HTTP payload into h, its headers into *headers: the caller's
 * stack array when they fit, else an array that *heap then owns. */
static int bp__decode_http(const uint8_t *p, size_t len, struct bp_http *h,
                           struct bp_header *stack, struct bp_header **heap)
{
    struct bp__cur c = {.p = p, .len = len};
    h->method_len = (size_t)bp__int(&c, 2);
    h->method = (const char *)bp__take(&c, h->method_len);
    h->target_len = (size_t)bp__int(&c, 4);
    h->target = (const char *)bp__take(&c, h->target_len);
    h->n_headers = (unsigned)bp__int(&c, 2);
    if (c.bad) {
        return -1;
    }
    struct bp_header *headers = stack;
    if (h->n_headers > BP__STACK_HEADERS) {
        /* Each header takes at least six bytes, so a count the payload
         * cannot hold is refused before allocating for it. */
        if (h->n_headers > (c.len - c.off) / 6) {
            return -1;
        }
        headers = *heap = calloc(h->n_headers, sizeof *headers);
        if (headers == NULL) {
            return -1;
        }
    }
    for (unsigned i = 0; i < h->n_headers; i++) {
        headers[i].name_len = (size_t)bp__int(&c, 2);
        headers[i].name = (const char *)bp__take(&c, headers[i].name_len);
        headers[i].value_len = (size_t)bp__int(&c, 4);
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

/* Decode a CHILD payload into c: u8 what, u32 tag, u16 id_len, id (at most
 * BP_ID_MAX bytes), detail (the rest). */
static int bp__decode_child(const uint8_t *p, size_t len, struct bp_child *c)
{
    struct bp__cur cur = {.p = p, .len = len};
    c->what = (uint8_t)bp__int(&cur, 1);
    c->tag = (uint32_t)bp__int(&cur, 4);
    c->id_len = (size_t)bp__int(&cur, 2);
    c->id = (const char *)bp__take(&cur, c->id_len);
    if (cur.bad || c->id_len > BP_ID_MAX) {
        return -1;
    }
    c->detail = (const char *)cur.p + cur.off;
    c->detail_len = cur.len - cur.off;
    return 0;
}

/* Decode a MESSAGE payload into m: u32 tag, u16 sender_len, sender (1 to
 * BP_ID_MAX bytes), public_key[32], u64 number, u16 index, signature[64],
 * payload (the rest, at most BP_MESSAGE_MAX bytes). */
static int bp__decode_message(const uint8_t *p, size_t len,
                              struct bp_message *m)
{
    struct bp__cur cur = {.p = p, .len = len};
    m->tag = (uint32_t)bp__int(&cur, 4);
    m->sender_len = (size_t)bp__int(&cur, 2);
    m->sender = (const char *)bp__take(&cur, m->sender_len);
    const uint8_t *key = bp__take(&cur, sizeof m->public_key);
    m->number = bp__int(&cur, 8);
    m->index = (uint16_t)bp__int(&cur, 2);
    const uint8_t *sig = bp__take(&cur, sizeof m->signature);
    if (cur.bad || m->sender_len == 0 || m->sender_len > BP_ID_MAX ||
        cur.len - cur.off > BP_MESSAGE_MAX) {
        return -1;
    }
    memcpy(m->public_key, key, sizeof m->public_key);
    memcpy(m->signature, sig, sizeof m->signature);
    m->payload = cur.p + cur.off;
    m->payload_len = cur.len - cur.off;
    return 0;
}

/* Decode a RECEIPT payload into r: u32 tag, u8 outcome, u16 status, u16
 * target_len, target (at most BP_ID_MAX bytes), body (the rest). */
static int bp__decode_receipt(const uint8_t *p, size_t len,
                              struct bp_receipt *r)
{
    struct bp__cur cur = {.p = p, .len = len};
    r->tag = (uint32_t)bp__int(&cur, 4);
    r->outcome = (uint8_t)bp__int(&cur, 1);
    r->status = (uint16_t)bp__int(&cur, 2);
    r->target_len = (size_t)bp__int(&cur, 2);
    r->target = (const char *)bp__take(&cur, r->target_len);
    if (cur.bad || r->target_len > BP_ID_MAX) {
        return -1;
    }
    r->body = cur.p + cur.off;
    r->body_len = cur.len - cur.off;
    return 0;
}

/* Decode a WEBSOCKET payload into w: u64 conn (not 0), u8 what, then for
 * OPEN an HTTP payload (its headers into stack or *heap, as
 * bp__decode_http), for CLOSED u16 code and a reason of at most
 * BP_WS_REASON_MAX bytes, and for the others the data (the rest). */
static int bp__decode_websocket(const uint8_t *p, size_t len,
                                struct bp_websocket *w, struct bp_header *stack,
                                struct bp_header **heap)
{
    struct bp__cur cur = {.p = p, .len = len};
    memset(w, 0, sizeof *w);
    w->conn = bp__int(&cur, 8);
    w->what = (int)bp__int(&cur, 1);
    if (cur.bad || w->conn == 0) {
        return -1;
    }
    if (w->what == BP_WS_OPEN) {
        return bp__decode_http(cur.p + cur.off, cur.len - cur.off, &w->open,
                               stack, heap);
    }
    if (w->what == BP_WS_CLOSED) {
        w->code = (uint16_t)bp__int(&cur, 2);
        if (cur.bad || cur.len - cur.off > BP_WS_REASON_MAX) {
            return -1;
        }
    }
    w->data = cur.p + cur.off;
    w->len = cur.len - cur.off;
    return 0;
}

/* Run the event callback on one EVENT body and answer DONE or REJECT. out
 * is reused from event to event to save allocations. */
static int bp__on_event(const struct bp_program *prog, const uint8_t *body,
                        size_t len, struct bp_out *out)
{
    struct bp__cur c = {.p = body, .len = len};
    struct bp_event ev;
    struct bp_http http;
    struct bp_child child;
    struct bp_message message;
    struct bp_receipt receipt;
    struct bp_websocket websocket;
    struct bp_header stack[BP__STACK_HEADERS];
    struct bp_header *heap = NULL;
    ev.number = bp__int(&c, 8);
    ev.time_ns = bp__int(&c, 8);
    const uint8_t *entropy = bp__take(&c, sizeof ev.entropy);
    ev.kind = (uint8_t)bp__int(&c, 1);
    if (c.bad) {
        return bp__fail("malformed EVENT frame (%zu bytes)", len);
    }
    memcpy(ev.entropy, entropy, sizeof ev.entropy);
    ev.payload = c.p + c.off;
    ev.payload_len = c.len - c.off;
    ev.http = NULL;
    ev.alarm_ns = 0;
    ev.child = NULL;
    ev.message = NULL;
    ev.receipt = NULL;
    ev.websocket = NULL;
    if (ev.kind == BP_EVENT_TIMER) {
        if (ev.payload_len != BP__TIME_SIZE) {
            return bp__fail("malformed TIMER payload in event %llu (%zu "
                            "bytes, not %d)",
                            (unsigned long long)ev.number, ev.payload_len,
                            BP__TIME_SIZE);
        }
        ev.alarm_ns = bp__get(ev.payload, BP__TIME_SIZE);
    }
    if (ev.kind == BP_EVENT_HTTP) {
        if (bp__decode_http(ev.payload, ev.payload_len, &http, stack, &heap) !=
            0) {
            free(heap);
            return bp__fail("malformed HTTP payload in event %llu",
                            (unsigned long long)ev.number);
        }
        ev.http = &http;
    }
    if (ev.kind == BP_EVENT_CHILD) {
        if (bp__decode_child(ev.payload, ev.payload_len, &child) != 0) {
            return bp__fail("malformed CHILD payload in event %llu",
                            (unsigned long long)ev.number);
        }
        ev.child = &child;
    }
    if (ev.kind == BP_EVENT_MESSAGE) {
        if (bp__decode_message(ev.payload, ev.payload_len, &message) != 0) {
            return bp__fail("malformed MESSAGE payload in event %llu",
                            (unsigned long long)ev.number);
        }
        ev.message = &message;
    }
    if (ev.kind == BP_EVENT_RECEIPT) {
        if (bp__decode_receipt(ev.payload, ev.payload_len, &receipt) != 0) {
            return bp__fail("malformed RECEIPT payload in event %llu",
                            (unsigned long long)ev.number);
        }
        ev.receipt = &receipt;
    }
    if (ev.kind == BP_EVENT_WEBSOCKET) {
        if (bp__decode_websocket(ev.payload, ev.payload_len, &websocket, stack,
                                 &heap) != 0) {
            free(heap);
            return bp__fail("malformed WEBSOCKET payload in event %llu",
                            (unsigned long long)ev.number);
        }
        ev.websocket = &websocket;
    }
    out->effects.len = 0;
    out->n_effects = 0;
    out->rejected = 0;
    out->reuse = 0;
    out->reason[0] = '\0';
    int r = prog->event(prog->ctx, &ev, out);
    free(heap);
    uint8_t head[BP__DONE_FIXED];
    bp__put64(head, ev.number);
    if (r == BP_REJECT || out->rejected) {
        return bp__send(BP__REJECT, head, 8, out->reason, strlen(out->reason));
    }
    if (r != BP_CHANGED && r != BP_UNCHANGED) {
        return bp__fail("the event callback returned %d for event %llu", r,
                        (unsigned long long)ev.number);
    }
    head[8] = (uint8_t)((r == BP_CHANGED ? BP__DONE_CHANGED : 0) |
                        (out->reuse ? BP__DONE_REUSE : 0));
    bp__put32(head + 9, out->n_effects);
    return bp__send(BP__DONE, head, sizeof head, out->effects.data,
                    out->effects.len);
}

/* Run the boot callback on a BOOT body and answer READY. */
static int bp__on_boot(const struct bp_program *prog, const uint8_t *body,
                       size_t len)
{
    struct bp__cur c = {.p = body, .len = len};
    bp__take(&c, bp__int(&c, 2)); /* the ship's id; BERTH_SHIP has it too */
    uint64_t snap_event = bp__int(&c, 8);
    if (c.bad) {
        return bp__fail("malformed BOOT frame (%zu bytes)", len);
    }
    const uint8_t *snap = snap_event ? c.p + c.off : NULL;
    size_t snap_len = snap_event ? c.len - c.off : 0;
    uint8_t accept = 1;
    if (prog->boot != NULL) {
        accept = prog->boot(prog->ctx, snap, snap_len) == 0;
    } else if (snap != NULL) {
        accept = 0;
    }
    return bp__send(BP__READY, &accept, 1, NULL, 0);
}

/* Run the snapshot callback and answer SNAPSHOT for the SNAP_REQ body. */
static int bp__on_snap_req(const struct bp_program *prog, const uint8_t *body,
                           size_t len)
{
    if (len != 8) {
        return bp__fail("malformed SNAP_REQ frame (%zu bytes)", len);
    }
    struct bp_bytes snap = {0};
    int rv;
    if (prog->snapshot != NULL && prog->snapshot(prog->ctx, &snap) != 0) {
        rv = bp__fail("the snapshot callback failed");
    } else {
        rv = bp__send(BP__SNAPSHOT, body, 8, snap.data, snap.len);
    }
    bp_bytes_free(&snap);
    return rv;
}

int bp_run(const struct bp_program *prog)
{
    if (prog == NULL || prog->event == NULL) {
        return bp__fail("bp_run needs an event callback");
    }
    struct bp__in in = {0};
    struct bp_out *out = calloc(1, sizeof *out);
    int booted = 0;
    int status = 1;
    if (out == NULL) {
        return bp__fail("out of memory");
    }
    for (;;) {
        int r = bp__in_need(&in, 4);
        if (r == 1) {
            status = 0; /* the host closed stdin: nothing more to do */
            break;
        }
        if (r != 0) {
            status = bp__fail("cannot read a frame header: %s",
                              errno ? strerror(errno) : "end of input");
            break;
        }
        uint32_t len = (uint32_t)bp__get(in.data + in.start, 4);
        if (len == 0 || len > BP_MAX_FRAME) {
            status = bp__fail("bad frame length %lu from the host",
                              (unsigned long)len);
            break;
        }
        if (bp__in_need(&in, 4 + (size_t)len) != 0) {
            status =
                bp__fail("cannot read a %lu byte frame: %s", (unsigned long)len,
                         errno ? strerror(errno) : "end of input");
            break;
        }
        /* The frame stays where it is until the next read. */
        const uint8_t *fr = in.data + in.start + 4;
        in.start += 4 + (size_t)len;
        if (in.start == in.end) {
            in.start = in.end = 0;
        }
        uint8_t type = fr[0];
        const uint8_t *body = fr + 1;
        size_t blen = len - 1;
        int rv;
        if (type == BP__BOOT && !booted) {
            booted = 1;
            rv = bp__on_boot(prog, body, blen);
        } else if (type == BP__EVENT && booted) {
            rv = bp__on_event(prog, body, blen, out);
        } else if (type == BP__SNAP_REQ && booted) {
            rv = bp__on_snap_req(prog, body, blen);
        } else if (type == BP__STOP && blen == 0) {
            status = 0;
            break;
        } else {
            rv = bp__fail("unexpected frame type 0x%02x (%lu bytes)%s", type,
                          (unsigned long)len, booted ? "" : " before BOOT");
        }
        if (rv != 0) {
            break;
        }
    }
    free(in.data);
    bp_bytes_free(&out->effects);
    free(out);
    return status;
}
