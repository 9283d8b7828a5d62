/* Programs on real pipes: the kv sample and the C helper it is built on
 * (routing, percent-decoding, JSON, POKE commands, the alarm and TIMER
 * events, children: SPAWN, RELEASE, DESTROY and IDLE effects and CHILD
 * events, messages: SEND effects, access lists, MESSAGE and RECEIPT
 * events, WebSockets: WEBSOCKET events and WS_SEND and WS_CLOSE effects,
 * the share example's owner and child, the chat room, deterministic
 * snapshots in the current and the previous formats, boot from a snapshot
 * or refusal, STOP and EOF, and exit 1 on every kind of malformed frame),
 * the misbehave test program, the Python counter and WebSocket echo, and
 * the two examples in docs/protocol.md. The
 * binaries are found through BERTH_PROGRAMS, by default ../programs next to
 * this test's binary; a missing one fails the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "proto/frame.h"

/* How long a test waits for any one frame before it calls the program
 * stuck; generous because sanitizers are slow. */
#define WAIT_MS 20000

/* The WEBSOCKET event and the WS_SEND and WS_CLOSE effects, by their numbers
 * in docs/protocol.md: the payloads here are built and read by hand, so that
 * the helper is checked against the document rather than the host's own
 * codec. */
enum {
    TEST_EVENT_WEBSOCKET = 8,
    TEST_EFFECT_WS_SEND = 9,
    TEST_EFFECT_WS_CLOSE = 10,
};

/* The most WS_SEND effects an answer keeps, and the bytes of each. */
#define WS_KEEP 48
#define WS_TEXT_MAX 640

struct child {
    pid_t pid;
    int to;           /* the program's stdin */
    int from;         /* the program's stdout */
    char errpath[64]; /* the program's stderr, in a file */
    struct buf rx;
};

/* What a program answered to one event. */
struct answer {
    uint8_t type; /* FRAME_DONE or FRAME_REJECT */
    bool changed;
    bool reuse;
    int status; /* of the last HTTP reply, 0 without one */
    char ctype[64];
    struct buf body;
    unsigned n_logs;
    char log[512]; /* the last log line */
    unsigned n_alarms;
    uint64_t alarm_ns; /* of the last ALARM effect */
    unsigned n_effects;
    char reason[512];
    unsigned n_spawns;
    struct buf spawn; /* the last SPAWN effect's bytes */
    unsigned n_destroys, n_releases, n_idles;
    char ship_ref[80]; /* the id of the last DESTROY or RELEASE */
    unsigned n_sends;
    struct buf send;     /* the last SEND effect's bytes */
    unsigned n_ws_sends; /* WS_SEND effects; the first WS_KEEP are kept */
    uint64_t ws_conn[WS_KEEP];
    uint8_t ws_opcode[WS_KEEP];
    char ws_text[WS_KEEP][WS_TEXT_MAX]; /* NUL-terminated, cut */
    unsigned n_ws_closes;
    uint64_t ws_close_conn; /* of the last WS_CLOSE */
    uint16_t ws_close_code;
    char ws_close_reason[128];
};

static char programs_dir[PATH_MAX];

static void find_programs(void)
{
    const char *env = getenv("BERTH_PROGRAMS");
    if (env != NULL && env[0] != '\0') {
        snprintf(programs_dir, sizeof programs_dir, "%s", env);
        return;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        snprintf(programs_dir, sizeof programs_dir, "../programs");
        return;
    }
    self[n] = '\0';
    snprintf(programs_dir, sizeof programs_dir, "%s/../programs",
             dirname(self));
}

/* Put the path of a built program in out; a program that is not built
 * fails the test. */
static void program_path(char *out, size_t size, const char *rel)
{
    snprintf(out, size, "%s/%s", programs_dir, rel);
    if (access(out, X_OK) != 0) {
        fail_msg("%s is not built", out);
    }
}

static void spawn(struct child *c, char *const argv[])
{
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    snprintf(c->errpath, sizeof c->errpath, "/tmp/berth-prog-err.XXXXXX");
    int errfd = mkstemp(c->errpath);
    assert_true(errfd >= 0);
    c->pid = fork();
    assert_true(c->pid >= 0);
    if (c->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(errfd, 2);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        close(errfd);
        execv(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(errfd);
    c->to = in[1];
    c->from = out[0];
    buf_init(&c->rx);
}

static void spawn_path(struct child *c, const char *path)
{
    char *argv[] = {(char *)path, NULL};
    spawn(c, argv);
}

static void send_bytes(struct child *c, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(c->to, b, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        assert_true(w > 0);
        b += w;
        n -= (size_t)w;
    }
}

static void send_buf(struct child *c, struct buf *b)
{
    send_bytes(c, b->data, b->len);
    b->len = 0;
}

/* Read one whole frame into c->rx and f; returns 0, or -1 at the end of the
 * program's output. */
static int recv_frame(struct child *c, struct frame *f)
{
    c->rx.len = 0;
    for (;;) {
        size_t used;
        int rv =
            frame_split(c->rx.data, c->rx.len, FRAME_MAX_DEFAULT, f, &used);
        if (rv == 0) {
            assert_int_equal(used, c->rx.len); /* one frame at a time */
            return 0;
        }
        assert_int_equal(rv, BERTH_EPARTIAL);
        struct pollfd pfd = {.fd = c->from, .events = POLLIN};
        int pr = poll(&pfd, 1, WAIT_MS);
        assert_true(pr == 1); /* else the program is stuck */
        /* Read exactly what the frame still needs, so that no byte of the
         * next frame lands in this one. */
        size_t want = c->rx.len < 4 ? 4 - c->rx.len
                                    : 4 + get_le32(c->rx.data) - c->rx.len;
        assert_int_equal(buf_reserve(&c->rx, want), 0);
        ssize_t r = read(c->from, c->rx.data + c->rx.len, want);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        assert_true(r >= 0);
        if (r == 0) {
            assert_int_equal(c->rx.len, 0); /* no half frame at the end */
            return -1;
        }
        c->rx.len += (size_t)r;
    }
}

/* Close the program's stdin if still open and return its exit status, or
 * 128 + the signal that ended it. */
static int finish(struct child *c)
{
    if (c->to >= 0) {
        close(c->to);
        c->to = -1;
    }
    int st;
    pid_t w;
    int waited = 0;
    while ((w = waitpid(c->pid, &st, WNOHANG)) == 0 && waited < WAIT_MS) {
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
        waited += 10;
    }
    if (w == 0) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, &st, 0);
        fail_msg("program %d did not exit", (int)c->pid);
    }
    close(c->from);
    buf_free(&c->rx);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Return the program's stderr so far, NUL-terminated, in a static buffer,
 * and remove its file. */
static const char *stderr_of(struct child *c)
{
    static char text[4096];
    FILE *f = fopen(c->errpath, "r");
    size_t n = 0;
    if (f != NULL) {
        n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
    }
    text[n] = '\0';
    unlink(c->errpath);
    return text;
}

/* Boot with a snapshot (snapshot_event 0: none) and return READY's flag. */
static bool boot(struct child *c, uint64_t snapshot_event, const void *snap,
                 size_t len)
{
    struct buf b;
    buf_init(&b);
    struct frame_boot fb = {.id = "ship",
                            .id_len = 4,
                            .snapshot_event = snapshot_event,
                            .snapshot = snap,
                            .snapshot_len = len};
    assert_int_equal(frame_encode_boot(&b, &fb), 0);
    send_buf(c, &b);
    buf_free(&b);
    struct frame f;
    assert_int_equal(recv_frame(c, &f), 0);
    bool accepted;
    assert_int_equal(frame_decode_ready(&f, &accepted), 0);
    return accepted;
}

static void answer_free(struct answer *a)
{
    buf_free(&a->body);
    buf_free(&a->spawn);
    buf_free(&a->send);
}

/* Decode a DONE or REJECT for event number into a. */
static void read_answer(struct child *c, uint64_t number, struct answer *a)
{
    struct frame f;
    memset(a, 0, sizeof *a);
    buf_init(&a->body);
    buf_init(&a->spawn);
    buf_init(&a->send);
    assert_int_equal(recv_frame(c, &f), 0);
    a->type = f.type;
    if (f.type == FRAME_REJECT) {
        struct frame_reject r;
        assert_int_equal(frame_decode_reject(&f, &r), 0);
        assert_int_equal(r.number, number);
        snprintf(a->reason, sizeof a->reason, "%.*s", (int)r.reason_len,
                 r.reason);
        return;
    }
    struct frame_done d;
    assert_int_equal(f.type, FRAME_DONE);
    assert_int_equal(frame_decode_done(&f, &d), 0);
    assert_int_equal(d.number, number);
    a->changed = (d.flags & FRAME_DONE_CHANGED) != 0;
    a->reuse = (d.flags & FRAME_DONE_REUSE) != 0;
    size_t off = 0;
    struct frame_effect e;
    while (frame_effects_next(&d, &off, &e) == 0) {
        a->n_effects++;
        if (e.kind == FRAME_EFFECT_ALARM) {
            a->n_alarms++;
            assert_int_equal(frame_decode_alarm(e.data, e.len, &a->alarm_ns),
                             0);
        }
        if (e.kind == FRAME_EFFECT_HTTP_REPLY) {
            struct frame_http_reply r;
            assert_int_equal(frame_decode_http_reply(e.data, e.len, &r), 0);
            a->status = r.status;
            snprintf(a->ctype, sizeof a->ctype, "%.*s", (int)r.content_type_len,
                     r.content_type);
            a->body.len = 0;
            assert_int_equal(buf_append(&a->body, r.body, r.body_len), 0);
            assert_int_equal(buf_put_u8(&a->body, 0), 0);
            a->body.len--; /* NUL-terminated for string compares */
        } else if (e.kind == FRAME_EFFECT_SPAWN) {
            a->n_spawns++;
            a->spawn.len = 0;
            assert_int_equal(buf_append(&a->spawn, e.data, e.len), 0);
        } else if (e.kind == FRAME_EFFECT_SEND) {
            a->n_sends++;
            a->send.len = 0;
            assert_int_equal(buf_append(&a->send, e.data, e.len), 0);
        } else if (e.kind == FRAME_EFFECT_DESTROY ||
                   e.kind == FRAME_EFFECT_RELEASE) {
            assert_int_equal(frame_decode_ship_ref(e.data, e.len), 0);
            a->n_destroys += e.kind == FRAME_EFFECT_DESTROY;
            a->n_releases += e.kind == FRAME_EFFECT_RELEASE;
            snprintf(a->ship_ref, sizeof a->ship_ref, "%.*s", (int)e.len,
                     (const char *)e.data);
        } else if (e.kind == TEST_EFFECT_WS_SEND) {
            /* u64 conn, u8 opcode, bytes (rest) */
            assert_true(e.len >= 9);
            unsigned i = a->n_ws_sends++;
            if (i < WS_KEEP) {
                a->ws_conn[i] = get_le64(e.data);
                a->ws_opcode[i] = e.data[8];
                snprintf(a->ws_text[i], WS_TEXT_MAX, "%.*s", (int)(e.len - 9),
                         (const char *)e.data + 9);
            }
        } else if (e.kind == TEST_EFFECT_WS_CLOSE) {
            /* u64 conn, u16 code, reason (rest) */
            assert_true(e.len >= 10 && e.len <= 10 + 123);
            a->n_ws_closes++;
            a->ws_close_conn = get_le64(e.data);
            a->ws_close_code = get_le16(e.data + 8);
            snprintf(a->ws_close_reason, sizeof a->ws_close_reason, "%.*s",
                     (int)(e.len - 10), (const char *)e.data + 10);
        } else if (e.kind == FRAME_EFFECT_IDLE) {
            a->n_idles++;
            assert_int_equal(e.len, 0);
        } else if (e.kind == FRAME_EFFECT_LOG) {
            a->n_logs++;
            snprintf(a->log, sizeof a->log, "%.*s", (int)e.len,
                     (const char *)e.data);
            assert_null(memchr(e.data, '\n', e.len));
        }
    }
}

/* Encode an event of kind with payload into b. */
static void encode_event(struct buf *b, uint64_t number, uint8_t kind,
                         const void *payload, size_t len)
{
    struct frame_event ev = {.number = number,
                             .time_ns = 1000 + number,
                             .kind = kind,
                             .payload = payload,
                             .payload_len = len};
    memset(ev.entropy, (int)number, sizeof ev.entropy);
    assert_int_equal(frame_encode_event(b, &ev), 0);
}

/* Encode an HTTP event into b. */
static void encode_http(struct buf *b, uint64_t number, const char *method,
                        const char *target, const void *body, size_t len)
{
    struct buf p;
    buf_init(&p);
    struct frame_header hs[1] = {
        {.name = "host", .name_len = 4, .value = "x", .value_len = 1}};
    struct frame_http_request r = {.method = method,
                                   .method_len = strlen(method),
                                   .target = target,
                                   .target_len = strlen(target),
                                   .n_headers = 1,
                                   .body = body,
                                   .body_len = len};
    assert_int_equal(frame_encode_http_request(&p, &r, hs), 0);
    encode_event(b, number, FRAME_EVENT_HTTP, p.data, p.len);
    buf_free(&p);
}

/* Send one HTTP event and read its answer. */
static void http(struct child *c, uint64_t number, const char *method,
                 const char *target, const char *body, struct answer *a)
{
    struct buf b;
    buf_init(&b);
    encode_http(&b, number, method, target, body, body ? strlen(body) : 0);
    send_buf(c, &b);
    buf_free(&b);
    read_answer(c, number, a);
}

static void poke(struct child *c, uint64_t number, const char *text,
                 struct answer *a)
{
    struct buf b;
    buf_init(&b);
    encode_event(&b, number, FRAME_EVENT_POKE, text, strlen(text));
    send_buf(c, &b);
    buf_free(&b);
    read_answer(c, number, a);
}

/* Send an event of kind with the payload in p, free p, and read the
 * answer. */
static void payload_event(struct child *c, uint64_t number, uint8_t kind,
                          struct buf *p, struct answer *a)
{
    struct buf b;
    buf_init(&b);
    encode_event(&b, number, kind, p->data, p->len);
    send_buf(c, &b);
    buf_free(&b);
    buf_free(p);
    read_answer(c, number, a);
}

/* Send a TIMER event for the alarm at alarm_ns and read its answer. */
static void timer(struct child *c, uint64_t number, uint64_t alarm_ns,
                  struct answer *a)
{
    struct buf p;
    buf_init(&p);
    assert_int_equal(frame_encode_timer(&p, alarm_ns), 0);
    payload_event(c, number, FRAME_EVENT_TIMER, &p, a);
}

/* Send a CHILD event (what of the child with this tag, its id and the
 * detail) and read its answer. */
static void child_event(struct child *c, uint64_t number, uint8_t what,
                        uint32_t tag, const char *id, const char *detail,
                        struct answer *a)
{
    struct buf p;
    buf_init(&p);
    struct frame_child ch = {.what = what,
                             .tag = tag,
                             .id = id,
                             .id_len = strlen(id),
                             .detail = detail,
                             .detail_len = strlen(detail)};
    assert_int_equal(frame_encode_child(&p, &ch), 0);
    payload_event(c, number, FRAME_EVENT_CHILD, &p, a);
}

/* Send a MESSAGE event (from sender, with tag and payload; the key is 0x11
 * bytes, the sender's event 77, its effect 3, the signature 0x22 bytes) and
 * read its answer. */
static void message_event(struct child *c, uint64_t number, uint32_t tag,
                          const char *sender, const void *payload, size_t len,
                          struct answer *a)
{
    struct buf p;
    buf_init(&p);
    struct frame_message m = {.tag = tag,
                              .sender = sender,
                              .sender_len = strlen(sender),
                              .number = 77,
                              .index = 3,
                              .payload = payload,
                              .payload_len = len};
    memset(m.public_key, 0x11, sizeof m.public_key);
    memset(m.signature, 0x22, sizeof m.signature);
    assert_int_equal(frame_encode_message(&p, &m), 0);
    payload_event(c, number, FRAME_EVENT_MESSAGE, &p, a);
}

/* Send a RECEIPT event (for the message with tag, the outcome, status,
 * target and body) and read its answer. */
static void receipt_event(struct child *c, uint64_t number, uint32_t tag,
                          uint8_t outcome, uint16_t status, const char *target,
                          const char *body, struct answer *a)
{
    struct buf p;
    buf_init(&p);
    struct frame_receipt r = {.tag = tag,
                              .outcome = outcome,
                              .status = status,
                              .target = target,
                              .target_len = strlen(target),
                              .body = (const uint8_t *)body,
                              .body_len = strlen(body)};
    assert_int_equal(frame_encode_receipt(&p, &r), 0);
    payload_event(c, number, FRAME_EVENT_RECEIPT, &p, a);
}

/* Send a WEBSOCKET event (conn, what, then the n bytes of data) and read
 * its answer. */
static void ws_event(struct child *c, uint64_t number, uint64_t conn,
                     uint8_t what, const void *data, size_t n, struct answer *a)
{
    struct buf p;
    buf_init(&p);
    assert_int_equal(buf_put_u64(&p, conn), 0);
    assert_int_equal(buf_put_u8(&p, what), 0);
    assert_int_equal(buf_append(&p, data, n), 0);
    payload_event(c, number, TEST_EVENT_WEBSOCKET, &p, a);
}

/* Send a WEBSOCKET TEXT event with the NUL-terminated text. */
static void ws_text(struct child *c, uint64_t number, uint64_t conn,
                    const char *text, struct answer *a)
{
    ws_event(c, number, conn, 2, text, strlen(text), a);
}

/* Encode into p the OPEN data of a request to open a WebSocket on target:
 * GET with the upgrade headers and no body. */
static void encode_ws_open(struct buf *p, const char *target)
{
    struct frame_header hs[3] = {
        {.name = "host", .name_len = 4, .value = "x", .value_len = 1},
        {.name = "upgrade",
         .name_len = 7,
         .value = "websocket",
         .value_len = 9},
        {.name = "sec-websocket-version",
         .name_len = 21,
         .value = "13",
         .value_len = 2},
    };
    struct frame_http_request r = {.method = "GET",
                                   .method_len = 3,
                                   .target = target,
                                   .target_len = strlen(target),
                                   .n_headers = 3};
    assert_int_equal(frame_encode_http_request(p, &r, hs), 0);
}

/* Send a WEBSOCKET OPEN for conn on target and read its answer. */
static void ws_open(struct child *c, uint64_t number, uint64_t conn,
                    const char *target, struct answer *a)
{
    struct buf p;
    buf_init(&p);
    encode_ws_open(&p, target);
    ws_event(c, number, conn, 1, p.data, p.len, a);
    buf_free(&p);
}

/* Send a WEBSOCKET CLOSED for conn with code and no reason. */
static void ws_closed(struct child *c, uint64_t number, uint64_t conn,
                      uint16_t code, struct answer *a)
{
    uint8_t data[2];
    put_le16(data, code);
    ws_event(c, number, conn, 4, data, sizeof data, a);
}

/* Ask for a snapshot as of number and return its bytes in out. */
static void snapshot(struct child *c, uint64_t number, struct buf *out)
{
    struct buf b;
    buf_init(&b);
    assert_int_equal(frame_encode_snap_req(&b, number), 0);
    send_buf(c, &b);
    buf_free(&b);
    struct frame f;
    assert_int_equal(recv_frame(c, &f), 0);
    struct frame_snapshot s;
    assert_int_equal(frame_decode_snapshot(&f, &s), 0);
    assert_int_equal(s.number, number);
    buf_init(out);
    assert_int_equal(buf_append(out, s.data, s.len), 0);
}

static void stop(struct child *c)
{
    struct buf b;
    buf_init(&b);
    assert_int_equal(frame_encode_stop(&b), 0);
    send_buf(c, &b);
    buf_free(&b);
    struct frame f;
    assert_int_equal(recv_frame(c, &f), -1);
    assert_int_equal(finish(c), 0);
    unlink(c->errpath);
}

/* Check an answer: type, changed, status and, when not NULL, the body. */
static void expect(const struct answer *a, uint8_t type, bool changed,
                   int status, const char *body)
{
    assert_int_equal(a->type, type);
    assert_int_equal(a->changed, changed);
    assert_int_equal(a->status, status);
    if (body != NULL) {
        assert_string_equal((const char *)a->body.data, body);
    }
}

/* Check a JSON error reply with this status and code. */
static void expect_error(const struct answer *a, int status, const char *code)
{
    char want[64];
    expect(a, FRAME_DONE, false, status, NULL);
    assert_string_equal(a->ctype, "application/json");
    snprintf(want, sizeof want, "{\"error\":{\"code\":\"%s\"", code);
    assert_memory_equal(a->body.data, want, strlen(want));
}

/* Send GET target as event number and check the reply: 200, unchanged,
 * with this body. */
static void expect_get(struct child *c, uint64_t number, const char *target,
                       const char *body)
{
    struct answer a;
    http(c, number, "GET", target, NULL, &a);
    expect(&a, FRAME_DONE, false, 200, body);
    answer_free(&a);
}

static void spawn_kv(struct child *c)
{
    char path[PATH_MAX + 8];
    program_path(path, sizeof path, "kv");
    spawn_path(c, path);
}

static void test_kv_http(void **state)
{
    struct child c;
    struct answer a;
    spawn_kv(&c);
    assert_true(boot(&c, 0, NULL, 0));

    http(&c, 1, "PUT", "/k/a", "1", &a);
    expect(&a, FRAME_DONE, true, 201, NULL);
    /* Writes are not logged (kv.c): no LOG effect. */
    assert_int_equal(a.n_logs, 0);
    answer_free(&a);
    http(&c, 2, "PUT", "/k/a?ignored=1", "two", &a);
    expect(&a, FRAME_DONE, true, 200, NULL);
    assert_int_equal(a.n_logs, 0);
    answer_free(&a);
    http(&c, 3, "GET", "/k/a", NULL, &a);
    expect(&a, FRAME_DONE, false, 200, "two");
    assert_string_equal(a.ctype, "application/octet-stream");
    assert_int_equal(a.n_logs, 0);
    answer_free(&a);
    expect_get(&c, 3, "/k/a?x=%zz", "two");
    http(&c, 3, "GET", "/k/b", NULL, &a);
    expect_error(&a, 404, "not_found");
    answer_free(&a);
    http(&c, 3, "DELETE", "/k/b", NULL, &a);
    expect_error(&a, 404, "not_found");
    answer_free(&a);

    /* Percent-decoding, and JSON that survives any key. */
    http(&c, 3, "PUT", "/k/h%C3%A9llo%20w", "", &a);
    expect(&a, FRAME_DONE, true, 201, NULL);
    answer_free(&a);
    http(&c, 4, "PUT", "/k/%22%5c%01%ff%2F", "x", &a);
    expect(&a, FRAME_DONE, true, 201, NULL);
    answer_free(&a);
    expect_get(&c, 5, "/k/h%c3%a9llo%20w", "");
    http(&c, 5, "GET", "/k", NULL, &a);
    expect(&a, FRAME_DONE, false, 200,
           "[\"\\\"\\\\\\u0001\\u00ff/\",\"a\",\"h\xc3\xa9llo w\"]\n");
    assert_string_equal(a.ctype, "application/json");
    answer_free(&a);
    http(&c, 5, "GET", "/k/?x", NULL, &a);
    expect(&a, FRAME_DONE, false, 200, NULL);
    assert_int_equal(a.body.data[0], '[');
    answer_free(&a);

    /* Key lengths: 256 bytes are fine, 257 are not, and neither is none. */
    char target[3 + 3 * 257 + 1] = "/k/";
    memset(target + 3, 'k', 256);
    target[3 + 256] = '\0';
    http(&c, 5, "PUT", target, "v", &a);
    expect(&a, FRAME_DONE, true, 201, NULL);
    answer_free(&a);
    strcat(target, "k");
    http(&c, 6, "PUT", target, "v", &a);
    expect_error(&a, 400, "invalid");
    answer_free(&a);
    for (int i = 0; i < 256; i++) {
        memcpy(target + 3 + 3 * i, "%41", 3);
    }
    target[3 + 3 * 256] = '\0';
    http(&c, 6, "GET", target, NULL, &a);
    expect_error(&a, 404, "not_found"); /* valid, just absent */
    answer_free(&a);
    http(&c, 6, "PUT", "/k/", "v", &a);
    expect_error(&a, 405, "method_not_allowed"); /* that is the list */
    answer_free(&a);
    http(&c, 6, "PUT", "/k/%4", "v", &a);
    expect_error(&a, 400, "invalid");
    answer_free(&a);
    http(&c, 6, "PUT", "/k/%g0", "v", &a);
    expect_error(&a, 400, "invalid");
    answer_free(&a);

    /* Other paths and methods. */
    http(&c, 6, "GET", "/", NULL, &a);
    expect_error(&a, 404, "not_found");
    answer_free(&a);
    http(&c, 6, "GET", "/kk", NULL, &a);
    expect_error(&a, 404, "not_found");
    answer_free(&a);
    http(&c, 6, "PUT", "/k/a/b", "v", &a);
    expect_error(&a, 404, "not_found");
    answer_free(&a);
    http(&c, 6, "POST", "/k/a", "v", &a);
    expect_error(&a, 405, "method_not_allowed");
    answer_free(&a);
    http(&c, 6, "POST", "/k", "v", &a);
    expect_error(&a, 405, "method_not_allowed");
    answer_free(&a);

    http(&c, 6, "DELETE", "/k/a", NULL, &a);
    expect(&a, FRAME_DONE, true, 200, NULL);
    assert_int_equal(a.n_logs, 0);
    answer_free(&a);
    http(&c, 7, "GET", "/k/a", NULL, &a);
    expect_error(&a, 404, "not_found");
    answer_free(&a);
    stop(&c);
}

static void test_kv_poke(void **state)
{
    struct child c;
    struct answer a;
    spawn_kv(&c);
    assert_true(boot(&c, 0, NULL, 0));
    poke(&c, 1, "put color dark blue", &a);
    expect(&a, FRAME_DONE, true, 201, NULL);
    assert_int_equal(a.n_logs, 0);
    answer_free(&a);
    expect_get(&c, 2, "/k/color", "dark blue");
    poke(&c, 2, "put empty ", &a);
    expect(&a, FRAME_DONE, true, 201, NULL);
    answer_free(&a);
    poke(&c, 3, "put empty again", &a);
    expect(&a, FRAME_DONE, true, 200, NULL);
    answer_free(&a);
    static const char *bad[] = {"put",      "put ", "put novalue",
                                "put  x y", "del",  "del ",
                                "drop x",   "",     "PUT a b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        poke(&c, 3, bad[i], &a);
        assert_int_equal(a.type, FRAME_REJECT);
        assert_true(strlen(a.reason) > 0);
        answer_free(&a);
    }
    poke(&c, 3, "del color", &a);
    expect(&a, FRAME_DONE, true, 200, NULL);
    assert_int_equal(a.n_logs, 0);
    answer_free(&a);
    poke(&c, 4, "del color", &a);
    assert_int_equal(a.type, FRAME_REJECT);
    assert_string_equal(a.reason, "no such key");
    answer_free(&a);
    /* An event kind kv does not know. */
    struct buf b;
    buf_init(&b);
    encode_event(&b, 4, 77, "?", 1);
    send_buf(&c, &b);
    buf_free(&b);
    read_answer(&c, 4, &a);
    assert_int_equal(a.type, FRAME_REJECT);
    answer_free(&a);
    stop(&c);
}

/* Put keys in the given order, numbering events from 1. */
static void put_keys(struct child *c, const char *const *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct answer a;
        char target[64];
        snprintf(target, sizeof target, "/k/%s", keys[i]);
        http(c, i + 1, "PUT", target, keys[i], &a);
        assert_true(a.changed);
        answer_free(&a);
    }
}

static void test_kv_snapshots(void **state)
{
    static const char *const order1[] = {"m", "b", "zz", "a", "q%00x", "z"};
    static const char *const order2[] = {"z", "q%00x", "zz", "m", "a", "b"};
    struct child c;
    struct answer a;
    struct buf s1, s2, s3;

    spawn_kv(&c);
    assert_true(boot(&c, 0, NULL, 0));
    put_keys(&c, order1, 6);
    snapshot(&c, 6, &s1);
    stop(&c);
    assert_memory_equal(s1.data, "KV4\n", 4);
    /* No alarm, none fired, no children and no sent messages, then the
     * first pair, the smallest key. */
    assert_true(get_le64(s1.data + 4) == 0);
    assert_true(get_le64(s1.data + 12) == 0);
    assert_int_equal(get_le32(s1.data + 20), 0);
    assert_int_equal(get_le32(s1.data + 24), 0);
    assert_int_equal(get_le32(s1.data + 28), 1);
    assert_int_equal(s1.data[32], 'a');

    /* The same state reached in another order snapshots to the same
     * bytes. */
    spawn_kv(&c);
    assert_true(boot(&c, 0, NULL, 0));
    put_keys(&c, order2, 6);
    snapshot(&c, 6, &s2);
    stop(&c);
    assert_int_equal(s1.len, s2.len);
    assert_memory_equal(s1.data, s2.data, s1.len);

    /* Booting from it gives the state back, and the same snapshot. */
    spawn_kv(&c);
    assert_true(boot(&c, 6, s1.data, s1.len));
    http(&c, 7, "GET", "/k/q%00x", NULL, &a);
    assert_int_equal(a.body.len, 5);
    assert_memory_equal(a.body.data, "q%00x", 5); /* the value as put */
    answer_free(&a);
    expect_get(&c, 7, "/k", "[\"a\",\"b\",\"m\",\"q\\u0000x\",\"z\",\"zz\"]\n");
    snapshot(&c, 6, &s3);
    assert_int_equal(s3.len, s1.len);
    assert_memory_equal(s3.data, s1.data, s1.len);
    buf_free(&s3);
    stop(&c);

    /* Snapshots it cannot parse are refused, and the state stays empty:
     * another magic or version, truncations, and an unsorted one. */
    struct buf bad;
    buf_init(&bad);
    assert_int_equal(buf_append(&bad, s1.data, s1.len), 0);
    size_t next_pair = 28; /* cuts inside the fixed fields are refused */
    for (size_t n = 0; n < s1.len; n++) {
        if (n == next_pair) {
            /* Cutting between pairs leaves a valid, smaller store. */
            size_t kl = get_le32(s1.data + n);
            next_pair = n + 4 + kl + 4 + get_le32(s1.data + n + 4 + kl);
            continue;
        }
        spawn_kv(&c);
        assert_false(boot(&c, 6, s1.data, n));
        expect_get(&c, 7, "/k", "[]\n");
        stop(&c);
    }
    bad.data[2] = '5';
    spawn_kv(&c);
    assert_false(boot(&c, 6, bad.data, bad.len));
    stop(&c);
    /* Swap the first two one-byte keys "a" and "b" (values "a" and "b"). */
    memcpy(bad.data, "KV4\n", 4);
    bad.data[32] = 'b';
    bad.data[37] = 'b';
    bad.data[42] = 'a';
    bad.data[47] = 'a';
    spawn_kv(&c);
    assert_false(boot(&c, 6, bad.data, bad.len));
    stop(&c);
    /* An empty snapshot (snapshot_event set, no bytes) is not kv's either. */
    spawn_kv(&c);
    assert_false(boot(&c, 6, NULL, 0));
    stop(&c);
    buf_free(&bad);
    buf_free(&s1);
    buf_free(&s2);
}

/* The /alarm routes: set, read, replace, cancel, and every kind of bad body,
 * which changes nothing and sets no alarm. encode_event gives event n the
 * time_ns 1000 + n, so the times here are exact. */
static void test_kv_alarm_routes(void **state)
{
    struct child c;
    struct answer a;
    spawn_kv(&c);
    assert_true(boot(&c, 0, NULL, 0));

    http(&c, 1, "GET", "/alarm", NULL, &a);
    expect(&a, FRAME_DONE, false, 200, "{\"alarm_ns\":0,\"fired\":0}\n");
    assert_string_equal(a.ctype, "application/json");
    assert_int_equal(a.n_alarms, 0);
    answer_free(&a);
    http(&c, 1, "DELETE", "/alarm", NULL, &a);
    expect_error(&a, 404, "not_found");
    assert_int_equal(a.n_alarms, 0);
    assert_int_equal(a.n_logs, 0);
    answer_free(&a);

    /* 5000 ms after event 1's 1001 ns. */
    http(&c, 1, "PUT", "/alarm", "5000", &a);
    expect(&a, FRAME_DONE, true, 200, "5000001001\n");
    assert_string_equal(a.ctype, "text/plain");
    assert_int_equal(a.n_alarms, 1);
    assert_true(a.alarm_ns == 5000001001ull);
    assert_int_equal(a.n_logs, 1);
    assert_string_equal(a.log, "alarm at 5000001001");
    answer_free(&a);
    http(&c, 2, "GET", "/alarm?x=1", NULL, &a);
    expect(&a, FRAME_DONE, false, 200,
           "{\"alarm_ns\":5000001001,\"fired\":0}\n");
    assert_int_equal(a.n_alarms, 0);
    answer_free(&a);

    /* A later one replaces it; 0 ms is the event's own time, due at once. */
    http(&c, 2, "PUT", "/alarm", "0", &a);
    expect(&a, FRAME_DONE, true, 200, "1002\n");
    assert_true(a.alarm_ns == 1002);
    answer_free(&a);
    expect_get(&c, 3, "/alarm", "{\"alarm_ns\":1002,\"fired\":0}\n");
    /* The largest alarm that fits in a u64 at event 3, leading zeros and
     * all. */
    http(&c, 3, "PUT", "/alarm", "0018446744073709", &a);
    expect(&a, FRAME_DONE, true, 200, "18446744073709001003\n");
    assert_true(a.alarm_ns == 18446744073709001003ull);
    answer_free(&a);

    static const char *const bad[] = {
        "",
        "abc",
        "-5",
        "+5",
        "1.5",
        " 5",
        "5 ",
        "5\n",
        "5:",
        "/5",
        "0x10",
        "5ms",
        "1e3",
        "18446744073710",
        "99999999999999999999999",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        http(&c, 4, "PUT", "/alarm", bad[i], &a);
        expect_error(&a, 400, "invalid");
        assert_int_equal(a.n_alarms, 0);
        assert_int_equal(a.n_logs, 0);
        answer_free(&a);
    }
    http(&c, 4, "PUT", "/alarm", NULL, &a); /* no body at all */
    expect_error(&a, 400, "invalid");
    answer_free(&a);
    expect_get(&c, 4, "/alarm",
               "{\"alarm_ns\":18446744073709001003,\"fired\":0}\n");

    /* Other methods and paths. */
    http(&c, 4, "POST", "/alarm", "5", &a);
    expect_error(&a, 405, "method_not_allowed");
    answer_free(&a);
    http(&c, 4, "PUT", "/alarm/", "5", &a);
    expect_error(&a, 404, "not_found");
    answer_free(&a);
    http(&c, 4, "GET", "/alarms", NULL, &a);
    expect_error(&a, 404, "not_found");
    answer_free(&a);

    /* Cancelling sends an ALARM of 0; after it there is nothing to cancel. */
    http(&c, 4, "DELETE", "/alarm", NULL, &a);
    expect(&a, FRAME_DONE, true, 200, "deleted\n");
    assert_int_equal(a.n_alarms, 1);
    assert_true(a.alarm_ns == 0);
    assert_string_equal(a.log, "alarm cancelled");
    answer_free(&a);
    http(&c, 5, "DELETE", "/alarm", NULL, &a);
    expect_error(&a, 404, "not_found");
    assert_int_equal(a.n_alarms, 0);
    answer_free(&a);
    expect_get(&c, 5, "/alarm", "{\"alarm_ns\":0,\"fired\":0}\n");
    /* The keys are untouched by all of it. */
    expect_get(&c, 5, "/k", "[]\n");
    stop(&c);
}

/* A TIMER counts a fired alarm and clears the pending one, with one log
 * line, no reply and no new alarm. A TIMER for another time, one the host
 * had on its way when a later alarm replaced it, counts the same but leaves
 * the later alarm pending, as the host does. */
static void test_kv_timer(void **state)
{
    struct child c;
    struct answer a;
    spawn_kv(&c);
    assert_true(boot(&c, 0, NULL, 0));
    http(&c, 1, "PUT", "/alarm", "5000", &a);
    assert_true(a.alarm_ns == 5000001001ull);
    answer_free(&a);

    timer(&c, 2, 5000001001ull, &a);
    expect(&a, FRAME_DONE, true, 0, NULL);
    assert_int_equal(a.n_effects, 1);
    assert_int_equal(a.n_logs, 1);
    assert_string_equal(a.log, "alarm fired");
    assert_int_equal(a.n_alarms, 0);
    answer_free(&a);
    expect_get(&c, 3, "/alarm", "{\"alarm_ns\":0,\"fired\":1}\n");
    /* Nothing is left to cancel. */
    http(&c, 3, "DELETE", "/alarm", NULL, &a);
    expect_error(&a, 404, "not_found");
    answer_free(&a);

    http(&c, 3, "PUT", "/alarm", "1", &a);
    assert_true(a.alarm_ns == 1001003);
    answer_free(&a);
    timer(&c, 4, 999, &a);
    expect(&a, FRAME_DONE, true, 0, NULL);
    assert_string_equal(a.log, "alarm fired");
    assert_int_equal(a.n_alarms, 0);
    answer_free(&a);
    expect_get(&c, 5, "/alarm", "{\"alarm_ns\":1001003,\"fired\":2}\n");
    timer(&c, 5, 1001003, &a);
    expect(&a, FRAME_DONE, true, 0, NULL);
    answer_free(&a);
    /* And with none pending, it only counts. */
    timer(&c, 6, 7, &a);
    expect(&a, FRAME_DONE, true, 0, NULL);
    answer_free(&a);
    expect_get(&c, 7, "/alarm", "{\"alarm_ns\":0,\"fired\":4}\n");
    stop(&c);
}

/* The alarm and the fired count are in the snapshot and come back from it;
 * a snapshot of kv before alarms (KV1) still boots, with neither. */
static void test_kv_alarm_snapshots(void **state)
{
    struct child c;
    struct answer a;
    struct buf s, s2;
    spawn_kv(&c);
    assert_true(boot(&c, 0, NULL, 0));
    http(&c, 1, "PUT", "/k/a", "1", &a);
    answer_free(&a);
    http(&c, 2, "PUT", "/alarm", "5000", &a);
    answer_free(&a);
    timer(&c, 3, 5000001002ull, &a);
    answer_free(&a);
    http(&c, 4, "PUT", "/alarm", "7", &a);
    assert_true(a.alarm_ns == 7001004);
    answer_free(&a);
    snapshot(&c, 4, &s);
    stop(&c);
    assert_int_equal(s.len, 28 + 4 + 1 + 4 + 1);
    assert_memory_equal(s.data, "KV4\n", 4);
    assert_true(get_le64(s.data + 4) == 7001004);
    assert_true(get_le64(s.data + 12) == 1);
    assert_int_equal(get_le32(s.data + 28), 1);
    assert_int_equal(s.data[32], 'a');

    spawn_kv(&c);
    assert_true(boot(&c, 4, s.data, s.len));
    expect_get(&c, 5, "/alarm", "{\"alarm_ns\":7001004,\"fired\":1}\n");
    expect_get(&c, 5, "/k/a", "1");
    snapshot(&c, 4, &s2);
    assert_int_equal(s2.len, s.len);
    assert_memory_equal(s2.data, s.data, s.len);
    buf_free(&s2);
    /* The booted state goes on: the alarm fires and the snapshot says so. */
    timer(&c, 5, 7001004, &a);
    expect(&a, FRAME_DONE, true, 0, NULL);
    answer_free(&a);
    snapshot(&c, 5, &s2);
    assert_int_equal(s2.len, s.len);
    assert_true(get_le64(s2.data + 4) == 0);
    assert_true(get_le64(s2.data + 12) == 2);
    assert_memory_equal(s2.data + 20, s.data + 20, s.len - 20);
    buf_free(&s2);
    stop(&c);

    /* A KV1 snapshot, as the kv before alarms wrote it: the magic, then the
     * pairs. */
    static const uint8_t old[] = {
        'K', 'V', '1', '\n', 1, 0,   0, 0, 'a', 1, 0,   0,   0,
        '1', 1,   0,   0,    0, 'b', 2, 0, 0,   0, '2', '2',
    };
    spawn_kv(&c);
    assert_true(boot(&c, 2, old, sizeof old));
    expect_get(&c, 3, "/k/b", "22");
    expect_get(&c, 3, "/alarm", "{\"alarm_ns\":0,\"fired\":0}\n");
    /* It snapshots as KV4, with the same pairs after empty alarm fields, no
     * children and no sent messages. */
    snapshot(&c, 2, &s2);
    assert_int_equal(s2.len, sizeof old + 24);
    assert_memory_equal(s2.data, "KV4\n", 4);
    assert_true(get_le64(s2.data + 4) == 0);
    assert_true(get_le64(s2.data + 12) == 0);
    assert_memory_equal(s2.data + 28, old + 4, sizeof old - 4);
    buf_free(&s2);
    http(&c, 3, "PUT", "/alarm", "1", &a);
    expect(&a, FRAME_DONE, true, 200, "1001003\n");
    answer_free(&a);
    stop(&c);
    /* A KV1 snapshot is checked as before: one cut short is refused. */
    spawn_kv(&c);
    assert_false(boot(&c, 2, old, sizeof old - 1));
    expect_get(&c, 3, "/k", "[]\n");
    stop(&c);
    /* A refused KV3 snapshot leaves no alarm behind either: its pairs are
     * cut short after whole alarm fields. */
    spawn_kv(&c);
    assert_false(boot(&c, 4, s.data, s.len - 1));
    expect_get(&c, 5, "/alarm", "{\"alarm_ns\":0,\"fired\":0}\n");
    stop(&c);
    buf_free(&s);
}

/* Check that a's SPAWN effect asks for kv's own program (no program, no
 * options) with this tag and lifetime. */
static void expect_spawn(const struct answer *a, uint32_t tag, uint8_t lifetime)
{
    struct frame_spawn s;
    assert_int_equal(a->n_spawns, 1);
    assert_int_equal(frame_decode_spawn(a->spawn.data, a->spawn.len, &s), 0);
    assert_int_equal(s.tag, tag);
    assert_int_equal(s.lifetime, lifetime);
    assert_true(s.lifetime_ms == 0);
    assert_int_equal(s.program_len, 0);
    assert_int_equal(s.options_len, 0);
}

/* POST /children spawns kv itself with the event's number as the tag and
 * records a pending child; CHILD events fill in what became of it; the
 * other routes give DESTROY, RELEASE and IDLE effects without changing the
 * state; bad bodies, tags, ids and methods change nothing. */
static void test_kv_children(void **state)
{
    struct child c;
    struct answer a;
    spawn_kv(&c);
    assert_true(boot(&c, 0, NULL, 0));
    http(&c, 1, "GET", "/children", NULL, &a);
    expect(&a, FRAME_DONE, false, 200, "[]\n");
    assert_true(a.reuse);
    answer_free(&a);

    http(&c, 1, "POST", "/children", "ephemeral", &a);
    expect(&a, FRAME_DONE, true, 202, "{\"tag\":1}\n");
    assert_string_equal(a.ctype, "application/json");
    expect_spawn(&a, 1, FRAME_LIFETIME_EPHEMERAL);
    assert_string_equal(a.log, "child 1 spawned (ephemeral)");
    answer_free(&a);
    http(&c, 2, "POST", "/children", "", &a);
    expect(&a, FRAME_DONE, true, 202, "{\"tag\":2}\n");
    expect_spawn(&a, 2, FRAME_LIFETIME_LINKED);
    answer_free(&a);
    http(&c, 3, "POST", "/children?x", "root", &a);
    expect(&a, FRAME_DONE, true, 202, "{\"tag\":3}\n");
    expect_spawn(&a, 3, FRAME_LIFETIME_ROOT);
    answer_free(&a);
    /* The tag is the number's low 32 bits: taken once, then free. */
    http(&c, (1ull << 32) + 1, "POST", "/children", "", &a);
    assert_int_equal(a.type, FRAME_REJECT);
    assert_string_equal(a.reason, "tag 1 is already a child's");
    answer_free(&a);
    http(&c, (1ull << 32) + 4, "POST", "/children", "", &a);
    expect(&a, FRAME_DONE, true, 202, "{\"tag\":4}\n");
    expect_spawn(&a, 4, FRAME_LIFETIME_LINKED);
    answer_free(&a);
    static const char *const bad_bodies[] = {"bogus", "Linked", "root\n",
                                             " root", "ephemeral2"};
    for (size_t i = 0; i < sizeof bad_bodies / sizeof bad_bodies[0]; i++) {
        http(&c, 5, "POST", "/children", bad_bodies[i], &a);
        assert_int_equal(a.type, FRAME_REJECT);
        assert_string_equal(a.reason,
                            "the body is root, linked or ephemeral, then "
                            "allow=ID,... if the child has an access list");
        answer_free(&a);
    }

    /* The host's answers: spawned, failed, destroyed; the reply to a CHILD
     * event has nowhere to go, so there is none. */
    child_event(&c, 5, FRAME_CHILD_SPAWNED, 1, "c1", "", &a);
    expect(&a, FRAME_DONE, true, 0, NULL);
    assert_int_equal(a.n_effects, 1);
    assert_string_equal(a.log, "child 1 spawned");
    answer_free(&a);
    child_event(&c, 6, FRAME_CHILD_FAILED, 2, "", "limit_ships: 3 ships", &a);
    expect(&a, FRAME_DONE, true, 0, NULL);
    assert_string_equal(a.log, "child 2 failed");
    answer_free(&a);
    child_event(&c, 7, FRAME_CHILD_DESTROYED, 1, "c1", "parent", &a);
    expect(&a, FRAME_DONE, true, 0, NULL);
    assert_string_equal(a.log, "child 1 destroyed");
    answer_free(&a);
    child_event(&c, 8, FRAME_CHILD_SPAWNED, 99, "c99", "", &a);
    assert_int_equal(a.type, FRAME_REJECT);
    assert_string_equal(a.reason, "kv spawned no child with tag 99");
    answer_free(&a);
    child_event(&c, 8, 9, 3, "c3", "", &a);
    assert_int_equal(a.type, FRAME_REJECT);
    answer_free(&a);
    http(&c, 8, "GET", "/children", NULL, &a);
    expect(&a, FRAME_DONE, false, 200,
           "[{\"tag\":1,\"id\":\"c1\",\"lifetime\":\"ephemeral\","
           "\"status\":\"destroyed\",\"detail\":\"parent\"},"
           "{\"tag\":2,\"id\":\"\",\"lifetime\":\"linked\","
           "\"status\":\"failed\",\"detail\":\"limit_ships: 3 ships\"},"
           "{\"tag\":3,\"id\":\"\",\"lifetime\":\"root\","
           "\"status\":\"pending\",\"detail\":\"\"},"
           "{\"tag\":4,\"id\":\"\",\"lifetime\":\"linked\","
           "\"status\":\"pending\",\"detail\":\"\"}]\n");
    assert_true(a.reuse);
    answer_free(&a);
    /* A detail is kept up to 256 bytes, escaped in the JSON. */
    char detail[301];
    memset(detail, 'd', 300);
    detail[0] = '"';
    detail[300] = '\0';
    child_event(&c, 8, FRAME_CHILD_DESTROYED, 4, "c4", detail, &a);
    expect(&a, FRAME_DONE, true, 0, NULL);
    answer_free(&a);
    http(&c, 9, "GET", "/children", NULL, &a);
    const char *last = strstr((const char *)a.body.data, "{\"tag\":4");
    assert_non_null(last);
    char want[400];
    snprintf(want, sizeof want,
             "{\"tag\":4,\"id\":\"c4\",\"lifetime\":\"linked\","
             "\"status\":\"destroyed\",\"detail\":\"\\\"%.255s\"}]\n",
             detail + 1);
    assert_string_equal(last, want);
    answer_free(&a);

    /* Ending ships and idling: one effect beside the reply, naming the
     * ship; kv's state waits for the CHILD event. */
    static const struct {
        const char *method, *target;
        int status;
        uint8_t kind; /* of the effect */
        const char *ref;
    } ends[] = {
        {"DELETE", "/children/c3", 202, FRAME_EFFECT_DESTROY, "c3"},
        {"DELETE", "/children/c%33?x=1", 202, FRAME_EFFECT_DESTROY, "c3"},
        {"POST", "/children/c4/release", 202, FRAME_EFFECT_RELEASE, "c4"},
        {"DELETE", "/self", 202, FRAME_EFFECT_DESTROY, ""},
        {"POST", "/idle", 204, FRAME_EFFECT_IDLE, ""},
    };
    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
        http(&c, 9, ends[i].method, ends[i].target, NULL, &a);
        expect(&a, FRAME_DONE, false, ends[i].status,
               ends[i].status == 202 ? "accepted\n" : "");
        assert_int_equal(a.n_effects, 2);
        assert_int_equal(a.n_destroys, ends[i].kind == FRAME_EFFECT_DESTROY);
        assert_int_equal(a.n_releases, ends[i].kind == FRAME_EFFECT_RELEASE);
        assert_int_equal(a.n_idles, ends[i].kind == FRAME_EFFECT_IDLE);
        assert_string_equal(a.ship_ref, ends[i].ref);
        answer_free(&a);
    }

    /* Bad ids and paths, and other methods: an error reply, no effect. */
    char long_id[16 + 64 + 1] = "/children/";
    memset(long_id + 10, 'i', 64);
    long_id[10 + 64] = '\0';
    static const struct {
        const char *method, *target;
        int status;
    } bad[] = {
        {"PUT", "/children", 405},
        {"DELETE", "/children", 405},
        {"GET", "/children/c1", 405},
        {"POST", "/children/c1", 405},
        {"DELETE", "/children/c1/release", 405},
        {"POST", "/children/c1/other", 404},
        {"POST", "/children/c1/release/x", 404},
        {"DELETE", "/children/", 400},
        {"DELETE", "/children/a%00b", 400},
        {"DELETE", "/children/a%zz", 400},
        {"DELETE", NULL, 400},
        {"GET", "/self", 405},
        {"DELETE", "/self/x", 404},
        {"GET", "/idle", 405},
        {"GET", "/childrenx", 404},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        http(&c, 9, bad[i].method, bad[i].target ? bad[i].target : long_id,
             NULL, &a);
        assert_int_equal(a.status, bad[i].status);
        assert_false(a.changed);
        assert_int_equal(a.n_effects, 1);
        answer_free(&a);
    }
    /* 63 bytes are an id. */
    long_id[10 + 63] = '\0';
    http(&c, 9, "DELETE", long_id, NULL, &a);
    expect(&a, FRAME_DONE, false, 202, NULL);
    assert_string_equal(a.ship_ref, long_id + 10);
    answer_free(&a);
    stop(&c);
}

/* Check that kv refuses snapshot s for event number with the byte at off
 * set to byte (and, when next is not 0, the byte after it to next). */
static void expect_refused(const struct buf *s, uint64_t number, size_t off,
                           uint8_t byte, uint8_t next)
{
    struct child c;
    struct buf t;
    buf_init(&t);
    assert_int_equal(buf_append(&t, s->data, s->len), 0);
    t.data[off] = byte;
    if (next != 0) {
        t.data[off + 1] = next;
    }
    spawn_kv(&c);
    assert_false(boot(&c, number, t.data, t.len));
    stop(&c);
    buf_free(&t);
}

/* The children are in the snapshot and come back from it, with every cut
 * and every value kv never writes refused; a KV2 snapshot, from before
 * children, still loads, with none. */
static void test_kv_children_snapshots(void **state)
{
    struct child c;
    struct answer a, list;
    struct buf s, s2;
    spawn_kv(&c);
    assert_true(boot(&c, 0, NULL, 0));
    for (uint64_t n = 1; n <= 3; n++) {
        http(&c, n, "POST", "/children", n == 1 ? "root" : "", &a);
        answer_free(&a);
    }
    child_event(&c, 4, FRAME_CHILD_SPAWNED, 1, "c1", "", &a);
    answer_free(&a);
    child_event(&c, 5, FRAME_CHILD_FAILED, 2, "", "no", &a);
    answer_free(&a);
    http(&c, 6, "PUT", "/k/a", "1", &a);
    answer_free(&a);
    http(&c, 7, "GET", "/children", NULL, &list);
    snapshot(&c, 6, &s);
    stop(&c);
    /* The head, then the children in tag order, no sent messages, then the
     * pair. */
    size_t children_len = (9 + 2) + (9 + 2) + 9;
    assert_int_equal(s.len, 24 + children_len + 4 + 4 + 1 + 4 + 1);
    assert_memory_equal(s.data, "KV4\n", 4);
    assert_int_equal(get_le32(s.data + 20), 3);
    static const uint8_t first[] = {1,   0,   0, 0, FRAME_LIFETIME_ROOT, 1, 2,
                                    'c', '1', 0, 0};
    assert_memory_equal(s.data + 24, first, sizeof first);
    static const uint8_t second[] = {2, 0, 0,   0,  FRAME_LIFETIME_LINKED, 3, 0,
                                     2, 0, 'n', 'o'};
    assert_memory_equal(s.data + 24 + sizeof first, second, sizeof second);
    assert_int_equal(get_le32(s.data + 24 + children_len), 0);
    assert_int_equal(get_le32(s.data + 28 + children_len), 1);

    /* Booting from it gives the state back, and the same snapshot; the
     * booted state goes on. */
    spawn_kv(&c);
    assert_true(boot(&c, 6, s.data, s.len));
    expect_get(&c, 7, "/children", (const char *)list.body.data);
    expect_get(&c, 7, "/k/a", "1");
    snapshot(&c, 6, &s2);
    assert_int_equal(s2.len, s.len);
    assert_memory_equal(s2.data, s.data, s.len);
    buf_free(&s2);
    child_event(&c, 7, FRAME_CHILD_DESTROYED, 1, "c1", "operator", &a);
    expect(&a, FRAME_DONE, true, 0, NULL);
    answer_free(&a);
    http(&c, 8, "POST", "/children", "", &a);
    expect(&a, FRAME_DONE, true, 202, "{\"tag\":8}\n");
    answer_free(&a);
    http(&c, 9, "GET", "/children", NULL, &a);
    assert_non_null(strstr((const char *)a.body.data,
                           "\"status\":\"destroyed\",\"detail\":\"operator\""));
    assert_non_null(strstr((const char *)a.body.data, "{\"tag\":8,"));
    answer_free(&a);
    stop(&c);

    /* Every cut from the alarm fields to the end of the sent messages'
     * count is refused, and leaves no child, key or alarm behind. */
    for (size_t n = 4; n < 28 + children_len; n++) {
        spawn_kv(&c);
        assert_false(boot(&c, 6, s.data, n));
        expect_get(&c, 7, "/children", "[]\n");
        stop(&c);
    }
    /* So is each value kv never writes, set in one byte: the first child's
     * lifetime of 0 or 4, its status of 4 and its id of 64 bytes, the
     * second's detail of 2 + 256 bytes and its tag 3 (not below the
     * third's), and 3 + 4 * 256 children. */
    static const struct {
        size_t off;
        uint8_t byte;
    } bad[] = {
        {24 + 4, 0},      {24 + 4, 4},  {24 + 5, 4}, {24 + 6, 64},
        {24 + 11 + 8, 1}, {24 + 11, 3}, {20 + 1, 4},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        expect_refused(&s, 6, bad[i].off, bad[i].byte, 0);
    }

    /* A KV2 snapshot, as the kv before children wrote it: the magic, the
     * alarm fields, then the pairs. */
    static const uint8_t old[] = {
        'K', 'V', '2', '\n', 0xac, 0xd3, 0x6a, 0, 0, 0,   0, 0, 1, 0, 0,
        0,   0,   0,   0,    0,    1,    0,    0, 0, 'a', 1, 0, 0, 0, '1',
    };
    spawn_kv(&c);
    assert_true(boot(&c, 2, old, sizeof old));
    expect_get(&c, 3, "/children", "[]\n");
    expect_get(&c, 3, "/alarm", "{\"alarm_ns\":7001004,\"fired\":1}\n");
    expect_get(&c, 3, "/k/a", "1");
    /* It snapshots as KV4: the same alarm fields, no children, no sent
     * messages, the same pairs. */
    snapshot(&c, 2, &s2);
    assert_int_equal(s2.len, sizeof old + 8);
    assert_memory_equal(s2.data, "KV4\n", 4);
    assert_memory_equal(s2.data + 4, old + 4, 16);
    assert_int_equal(get_le32(s2.data + 20), 0);
    assert_int_equal(get_le32(s2.data + 24), 0);
    assert_memory_equal(s2.data + 28, old + 20, sizeof old - 20);
    buf_free(&s2);
    http(&c, 3, "POST", "/children", "", &a);
    expect(&a, FRAME_DONE, true, 202, "{\"tag\":3}\n");
    answer_free(&a);
    stop(&c);
    /* A KV2 snapshot cut in its alarm fields is refused. */
    spawn_kv(&c);
    assert_false(boot(&c, 2, old, 19));
    stop(&c);

    /* A KV3 snapshot, as the kv before messages wrote it: this one without
     * the sent messages' count. It boots to the same state, which
     * snapshots as s. */
    struct buf v3;
    buf_init(&v3);
    assert_int_equal(buf_append(&v3, "KV3\n", 4), 0);
    assert_int_equal(buf_append(&v3, s.data + 4, 20 + children_len), 0);
    assert_int_equal(
        buf_append(&v3, s.data + 28 + children_len, s.len - 28 - children_len),
        0);
    spawn_kv(&c);
    assert_true(boot(&c, 6, v3.data, v3.len));
    expect_get(&c, 7, "/children", (const char *)list.body.data);
    expect_get(&c, 7, "/sent", "[]\n");
    snapshot(&c, 6, &s2);
    assert_int_equal(s2.len, s.len);
    assert_memory_equal(s2.data, s.data, s.len);
    buf_free(&s2);
    stop(&c);
    buf_free(&v3);
    answer_free(&list);
    buf_free(&s);
}

/* kv keeps at most 1024 children: the next spawn is rejected, with no
 * effect; the full table snapshots and boots. */
static void test_kv_children_limit(void **state)
{
    enum { MAX = 1024 };
    struct child c;
    struct answer a;
    struct buf s;
    spawn_kv(&c);
    assert_true(boot(&c, 0, NULL, 0));
    for (uint64_t n = 1; n <= MAX; n++) {
        http(&c, n, "POST", "/children", "ephemeral", &a);
        expect(&a, FRAME_DONE, true, 202, NULL);
        assert_int_equal(a.n_spawns, 1);
        answer_free(&a);
    }
    http(&c, MAX + 1, "POST", "/children", "", &a);
    assert_int_equal(a.type, FRAME_REJECT);
    assert_string_equal(a.reason, "kv keeps at most 1024 children");
    answer_free(&a);
    snapshot(&c, MAX, &s);
    stop(&c);
    assert_int_equal(s.len, 28 + (size_t)MAX * 9);
    spawn_kv(&c);
    assert_true(boot(&c, MAX, s.data, s.len));
    http(&c, MAX + 1, "POST", "/children", "", &a);
    assert_int_equal(a.type, FRAME_REJECT);
    answer_free(&a);
    http(&c, MAX + 1, "GET", "/children", NULL, &a);
    expect(&a, FRAME_DONE, false, 200, NULL);
    assert_non_null(strstr((const char *)a.body.data, "{\"tag\":1024,"));
    answer_free(&a);
    stop(&c);
    buf_free(&s);
}

/* STOP and the end of input both end the program with status 0, also before
 * BOOT. */
static void test_kv_lifecycle(void **state)
{
    struct child c;
    spawn_kv(&c);
    assert_true(boot(&c, 0, NULL, 0));
    assert_int_equal(finish(&c), 0);
    assert_string_equal(stderr_of(&c), "");
    spawn_kv(&c);
    assert_int_equal(finish(&c), 0);
    unlink(c.errpath);
    spawn_kv(&c);
    stop(&c);
}

/* Send raw bytes after an optional BOOT and check the program exits 1 with
 * a message, without answering anything; return the program's stderr. */
static const char *expect_exit_1(bool booted, const void *p, size_t n)
{
    struct child c;
    spawn_kv(&c);
    if (booted) {
        assert_true(boot(&c, 0, NULL, 0));
    }
    send_bytes(&c, p, n);
    close(c.to);
    c.to = -1;
    struct frame f;
    assert_int_equal(recv_frame(&c, &f), -1);
    assert_int_equal(finish(&c), 1);
    const char *err = stderr_of(&c);
    assert_non_null(strstr(err, "berth_program: "));
    return err;
}

static void test_sdk_rejects_malformed_frames(void **state)
{
    struct buf b;
    buf_init(&b);
    static const uint8_t zero_len[] = {0, 0, 0, 0, 2};
    expect_exit_1(true, zero_len, sizeof zero_len);
    uint8_t big[5] = {0, 0, 0, 0, FRAME_EVENT};
    put_le32(big, FRAME_MAX_DEFAULT + 1);
    expect_exit_1(true, big, sizeof big);
    put_le32(big, UINT32_MAX);
    expect_exit_1(true, big, sizeof big);
    static const uint8_t half_header[] = {9, 0};
    expect_exit_1(true, half_header, sizeof half_header);
    static const uint8_t half_body[] = {9, 0, 0, 0, FRAME_SNAP_REQ, 1, 2};
    expect_exit_1(true, half_body, sizeof half_body);
    static const uint8_t unknown[] = {1, 0, 0, 0, 0x99};
    expect_exit_1(true, unknown, sizeof unknown);
    static const uint8_t program_type[] = {2, 0, 0, 0, FRAME_READY, 1};
    expect_exit_1(true, program_type, sizeof program_type);
    static const uint8_t stop_with_body[] = {2, 0, 0, 0, FRAME_STOP, 0};
    expect_exit_1(true, stop_with_body, sizeof stop_with_body);

    /* Frames out of order: an event or a snapshot request before BOOT, and
     * a second BOOT. */
    encode_http(&b, 1, "GET", "/k", NULL, 0);
    expect_exit_1(false, b.data, b.len);
    b.len = 0;
    assert_int_equal(frame_encode_snap_req(&b, 1), 0);
    expect_exit_1(false, b.data, b.len);
    b.len = 0;
    struct frame_boot fb = {.id = "x", .id_len = 1};
    assert_int_equal(frame_encode_boot(&b, &fb), 0);
    expect_exit_1(true, b.data, b.len);

    /* Every truncation of a BOOT and of an EVENT's fixed part, and a
     * SNAP_REQ of the wrong size. */
    b.len = 0;
    assert_int_equal(frame_encode_boot(&b, &fb), 0);
    for (size_t n = 0; n < 2 + 1 + 8; n++) {
        uint8_t f[32];
        put_le32(f, (uint32_t)(1 + n));
        f[4] = FRAME_BOOT;
        memcpy(f + 5, b.data + 5, n);
        expect_exit_1(false, f, 5 + n);
    }
    for (size_t n = 0; n < 8 + 8 + 32 + 1; n += 7) {
        uint8_t f[64] = {0};
        put_le32(f, (uint32_t)(1 + n));
        f[4] = FRAME_EVENT;
        expect_exit_1(true, f, 5 + n);
    }
    static const uint8_t snap_req_short[] = {5, 0, 0, 0, FRAME_SNAP_REQ,
                                             1, 2, 3, 4};
    expect_exit_1(true, snap_req_short, sizeof snap_req_short);
    uint8_t snap_req_long[14] = {10, 0, 0, 0, FRAME_SNAP_REQ};
    expect_exit_1(true, snap_req_long, sizeof snap_req_long);

    /* HTTP payloads whose lengths do not add up: every cut before the body
     * of a well-formed one, and a header count far too large. */
    struct buf p;
    buf_init(&p);
    struct frame_header h = {
        .name = "a", .name_len = 1, .value = "b", .value_len = 1};
    struct frame_http_request r = {.method = "GET",
                                   .method_len = 3,
                                   .target = "/k",
                                   .target_len = 2,
                                   .n_headers = 1};
    assert_int_equal(frame_encode_http_request(&p, &r, &h), 0);
    for (size_t n = 0; n < p.len; n++) {
        b.len = 0;
        encode_event(&b, 1, FRAME_EVENT_HTTP, p.data, n);
        expect_exit_1(true, b.data, b.len);
    }
    put_le16(p.data + 2 + 3 + 4 + 2, 5000);
    b.len = 0;
    encode_event(&b, 1, FRAME_EVENT_HTTP, p.data, p.len);
    expect_exit_1(true, b.data, b.len);

    /* A TIMER payload that is not exactly one u64, also after an event
     * that set an alarm, and with the message naming the problem. */
    static const uint8_t zeros[17];
    static const size_t timer_lens[] = {0, 1, 7, 9, 16, 17};
    for (size_t i = 0; i < sizeof timer_lens / sizeof timer_lens[0]; i++) {
        b.len = 0;
        encode_event(&b, 1, FRAME_EVENT_TIMER, zeros, timer_lens[i]);
        const char *err = expect_exit_1(true, b.data, b.len);
        assert_non_null(strstr(err, "malformed TIMER payload in event 1"));
    }
    struct child c;
    struct answer a;
    spawn_kv(&c);
    assert_true(boot(&c, 0, NULL, 0));
    http(&c, 1, "PUT", "/alarm", "10", &a);
    expect(&a, FRAME_DONE, true, 200, NULL);
    answer_free(&a);
    b.len = 0;
    encode_event(&b, 2, FRAME_EVENT_TIMER, zeros, 7);
    send_buf(&c, &b);
    close(c.to);
    c.to = -1;
    struct frame f;
    assert_int_equal(recv_frame(&c, &f), -1);
    assert_int_equal(finish(&c), 1);
    assert_non_null(strstr(stderr_of(&c), "malformed TIMER payload"));
    buf_free(&p);
    buf_free(&b);
}

/* A request with more headers than the helper keeps on its stack, a value
 * larger than a pipe's buffer both ways, and many events in flight at once,
 * as the host sends them during a replay. */
static void test_sdk_large_and_pipelined(void **state)
{
    struct child c;
    struct answer a;
    spawn_kv(&c);
    assert_true(boot(&c, 0, NULL, 0));

    enum { N_HEADERS = 300 };
    struct frame_header hs[N_HEADERS];
    char names[N_HEADERS][8];
    for (int i = 0; i < N_HEADERS; i++) {
        snprintf(names[i], sizeof names[i], "h%d", i);
        hs[i] = (struct frame_header){.name = names[i],
                                      .name_len = strlen(names[i]),
                                      .value = "v",
                                      .value_len = 1};
    }
    size_t big_len = 3 * 1024 * 1024 + 17;
    uint8_t *big = malloc(big_len);
    assert_non_null(big);
    for (size_t i = 0; i < big_len; i++) {
        big[i] = (uint8_t)(i * 31 + (i >> 11));
    }
    struct frame_http_request r = {.method = "PUT",
                                   .method_len = 3,
                                   .target = "/k/big",
                                   .target_len = 6,
                                   .n_headers = N_HEADERS,
                                   .body = big,
                                   .body_len = big_len};
    struct buf p, b;
    buf_init(&p);
    buf_init(&b);
    assert_int_equal(frame_encode_http_request(&p, &r, hs), 0);
    encode_event(&b, 1, FRAME_EVENT_HTTP, p.data, p.len);
    send_buf(&c, &b);
    read_answer(&c, 1, &a);
    expect(&a, FRAME_DONE, true, 201, NULL);
    answer_free(&a);
    http(&c, 2, "GET", "/k/big", NULL, &a);
    expect(&a, FRAME_DONE, false, 200, NULL);
    assert_int_equal(a.body.len, big_len);
    assert_memory_equal(a.body.data, big, big_len);
    answer_free(&a);

    /* Batches small enough that the answers fit in the pipe while we are
     * still writing. */
    uint64_t number = 2;
    for (int batch = 0; batch < 20; batch++) {
        for (int i = 0; i < 50; i++) {
            char target[32];
            snprintf(target, sizeof target, "/k/p%d", batch * 50 + i);
            encode_http(&b, number + 1 + (uint64_t)i, "PUT", target, "v", 1);
        }
        send_buf(&c, &b);
        for (int i = 0; i < 50; i++) {
            read_answer(&c, number + 1 + (uint64_t)i, &a);
            expect(&a, FRAME_DONE, true, 201, NULL);
            answer_free(&a);
        }
        number += 50;
    }
    expect_get(&c, number + 1, "/k/p999", "v");
    free(big);
    buf_free(&p);
    buf_free(&b);
    stop(&c);
}

/* Many keys, put in a scrambled order, then a snapshot and a reboot from it.
 * 3e4 keep the test quick under sanitizers, where each insert's memmove is
 * checked byte by byte; 1e5 take about a second in a plain build. */
static void test_kv_many_keys(void **state)
{
    enum { N = 30000, BATCH = 200 };
    struct child c;
    struct answer a;
    struct buf b, snap;
    buf_init(&b);
    spawn_kv(&c);
    assert_true(boot(&c, 0, NULL, 0));
    uint64_t number = 0;
    for (int start = 0; start < N; start += BATCH) {
        for (int i = start; i < start + BATCH; i++) {
            char target[32];
            /* 7919 is prime to N, so this visits every key once, out of
             * order. */
            snprintf(target, sizeof target, "/k/key%06d",
                     (int)(((long)i * 7919) % N));
            encode_http(&b, ++number, "PUT", target, "v", 1);
        }
        send_buf(&c, &b);
        for (int i = 0; i < BATCH; i++) {
            read_answer(&c, number - BATCH + 1 + (uint64_t)i, &a);
            assert_int_equal(a.status, 201);
            answer_free(&a);
        }
    }
    snapshot(&c, number, &snap);
    stop(&c);
    assert_int_equal(snap.len, 28 + (size_t)N * (4 + 9 + 4 + 1));
    spawn_kv(&c);
    assert_true(boot(&c, number, snap.data, snap.len));
    expect_get(&c, number + 1, "/k/key012345", "v");
    http(&c, number + 1, "GET", "/k", NULL, &a);
    expect(&a, FRAME_DONE, false, 200, NULL);
    assert_int_equal(a.body.len, 2 + (size_t)N * 12 - 1 + 1);
    assert_memory_equal(a.body.data, "[\"key000000\",\"key000001\"", 24);
    answer_free(&a);
    stop(&c);
    buf_free(&snap);
    buf_free(&b);
}

static void test_misbehave(void **state)
{
    char path[PATH_MAX + 32];
    program_path(path, sizeof path, "../test/programs/misbehave");
    struct child c;
    struct answer a;
    spawn_path(&c, path);
    assert_true(boot(&c, 0, NULL, 0));
    http(&c, 1, "POST", "/count", NULL, &a);
    expect(&a, FRAME_DONE, true, 200, "1\n");
    answer_free(&a);
    expect_get(&c, 2, "/", "1\n");
    http(&c, 2, "POST", "/reject", NULL, &a);
    assert_int_equal(a.type, FRAME_REJECT);
    assert_string_equal(a.reason, "asked to reject");
    answer_free(&a);
    http(&c, 2, "POST", "/slow/30", NULL, &a);
    expect(&a, FRAME_DONE, false, 200, "slow\n");
    answer_free(&a);
    http(&c, 2, "GET", "/nowhere", NULL, &a);
    expect_error(&a, 404, "not_found");
    answer_free(&a);
    struct buf s;
    snapshot(&c, 1, &s);
    assert_int_equal(s.len, 8);
    assert_int_equal(get_le64(s.data), 1);
    /* /garbage writes a frame no host accepts, then answers anyway. */
    struct buf b;
    buf_init(&b);
    encode_http(&b, 2, "POST", "/garbage", NULL, 0);
    send_buf(&c, &b);
    struct frame f;
    assert_int_equal(recv_frame(&c, &f), 0);
    assert_int_equal(f.type, 0x99);
    assert_int_equal(f.body_len, 0);
    read_answer(&c, 2, &a);
    expect(&a, FRAME_DONE, false, 200, NULL);
    answer_free(&a);
    stop(&c);

    /* Boot from the snapshot; then /huge declares 100 MiB; then /exit. */
    spawn_path(&c, path);
    assert_true(boot(&c, 1, s.data, s.len));
    expect_get(&c, 2, "/", "1\n");
    encode_http(&b, 2, "POST", "/huge", NULL, 0);
    send_buf(&c, &b);
    uint8_t head[5];
    struct pollfd pfd = {.fd = c.from, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, WAIT_MS), 1);
    assert_int_equal(read(c.from, head, 5), 5);
    assert_int_equal(get_le32(head), 100u * 1024 * 1024);
    kill(c.pid, SIGKILL);
    assert_int_equal(finish(&c), 128 + SIGKILL);
    unlink(c.errpath);
    spawn_path(&c, path);
    assert_true(boot(&c, 0, NULL, 0));
    encode_http(&b, 1, "POST", "/exit", NULL, 0);
    send_buf(&c, &b);
    assert_int_equal(recv_frame(&c, &f), -1);
    assert_int_equal(finish(&c), 3);
    unlink(c.errpath);
    buf_free(&b);
    buf_free(&s);
}

/* Return the first fenced block of language lang in docs/protocol.md, or
 * NULL when the file is not beside the sources. The caller frees it. */
static char *docs_block(const char *lang)
{
    char here[PATH_MAX], path[PATH_MAX + 32];
    /* __FILE__ is .../test/unit/test_kv_program.c, absolute under CMake. */
    snprintf(here, sizeof here, "%s", __FILE__);
    snprintf(path, sizeof path, "%s/../../docs/protocol.md", dirname(here));
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return NULL;
    }
    static char text[256 * 1024];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char fence[32];
    snprintf(fence, sizeof fence, "\n```%s\n", lang);
    char *start = strstr(text, fence);
    assert_non_null(start);
    start += strlen(fence);
    char *end = strstr(start, "\n```\n");
    assert_non_null(end);
    return strndup(start, (size_t)(end - start + 1));
}

/* Write text to a fresh temp file with this suffix; path gets its name. */
static void write_temp(char *path, size_t size, const char *suffix,
                       const char *text)
{
    snprintf(path, size, "/tmp/berth-doc-XXXXXX%s", suffix);
    int fd = mkstemps(path, (int)strlen(suffix));
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
}

/* Drive a counter like the ones in the docs: hit adds one (a change), read
 * reads it, anything else is rejected; the snapshot holds the count. */
static void drive_counter(char *const argv[], const char *method_hit,
                          const char *hit, const char *read_path, bool can_read)
{
    struct child c;
    struct answer a;
    struct buf s;
    spawn(&c, argv);
    assert_true(boot(&c, 0, NULL, 0));
    for (uint64_t i = 1; i <= 3; i++) {
        http(&c, i, method_hit, hit, NULL, &a);
        assert_int_equal(a.type, FRAME_DONE);
        assert_true(a.changed);
        assert_int_equal(a.status, 200);
        answer_free(&a);
    }
    http(&c, 4, "DELETE", "/nothing", NULL, &a);
    assert_int_equal(a.type, FRAME_REJECT);
    answer_free(&a);
    snapshot(&c, 3, &s);
    stop(&c);
    spawn(&c, argv);
    assert_true(boot(&c, 3, s.data, s.len));
    if (can_read) {
        http(&c, 4, "GET", read_path, NULL, &a);
        expect(&a, FRAME_DONE, false, 200, "3\n");
        answer_free(&a);
    }
    http(&c, 4, method_hit, hit, NULL, &a);
    assert_true(a.changed);
    answer_free(&a);
    struct buf s2;
    snapshot(&c, 4, &s2);
    assert_int_equal(s2.len, s.len);
    assert_memory_not_equal(s2.data, s.data, s.len);
    stop(&c);
    /* A snapshot of the wrong size is refused. */
    spawn(&c, argv);
    assert_false(boot(&c, 3, "abc", 3));
    stop(&c);
    buf_free(&s);
    buf_free(&s2);
}

/* programs/python/counter.py answers DONE to every kind of event: HTTP and
 * POKE with the count, a TIMER and a kind it does not know with no effect,
 * and none of them changes the count but POST /inc. */
static void test_python_counter_kinds(void **state)
{
    if (system("python3 -c '' 2>/dev/null") != 0) {
        fail_msg("python3 is required");
    }
    char here[PATH_MAX], path[PATH_MAX + 32];
    snprintf(here, sizeof here, "%s", __FILE__);
    snprintf(path, sizeof path, "%s/../../programs/python/counter.py",
             dirname(here));
    if (access(path, R_OK) != 0) {
        fail_msg("%s is missing", path);
    }
    char *argv[] = {"/usr/bin/env", "python3", path, NULL};
    struct child c;
    struct answer a;
    struct buf b;
    buf_init(&b);
    spawn(&c, argv);
    assert_true(boot(&c, 0, NULL, 0));
    http(&c, 1, "POST", "/inc", NULL, &a);
    expect(&a, FRAME_DONE, true, 200, "1\n");
    answer_free(&a);
    timer(&c, 2, 1700000005000000000ull, &a);
    expect(&a, FRAME_DONE, false, 0, NULL);
    assert_int_equal(a.n_effects, 0);
    answer_free(&a);
    encode_event(&b, 2, 77, "?", 1);
    send_buf(&c, &b);
    read_answer(&c, 2, &a);
    expect(&a, FRAME_DONE, false, 0, NULL);
    assert_int_equal(a.n_effects, 0);
    answer_free(&a);
    poke(&c, 2, "anything", &a);
    expect(&a, FRAME_DONE, false, 200, "1\n");
    answer_free(&a);
    expect_get(&c, 2, "/", "1\n");
    stop(&c);
    buf_free(&b);
}

static void test_docs_python_example(void **state)
{
    if (system("python3 -c '' 2>/dev/null") != 0) {
        fail_msg("python3 is required");
    }
    char *code = docs_block("python");
    if (code == NULL) {
        fail_msg("no python block in docs/protocol.md");
    }
    char path[64];
    write_temp(path, sizeof path, ".py", code);
    free(code);
    char *argv[] = {"/usr/bin/env", "python3", path, NULL};
    drive_counter(argv, "POST", "/inc", "/", true);
    /* It is strict too: a bad length ends it with a non-zero status. */
    struct child c;
    spawn(&c, argv);
    static const uint8_t zero_len[] = {0, 0, 0, 0};
    send_bytes(&c, zero_len, sizeof zero_len);
    close(c.to);
    c.to = -1;
    assert_int_not_equal(finish(&c), 0);
    unlink(c.errpath);
    unlink(path);
}

/* Compile the C program code with the helper into a fresh temporary
 * executable; src and exe get the paths of the source and the binary, for
 * the caller to remove. */
static void compile_program(const char *code, char *src, size_t src_size,
                            char *exe, size_t exe_size)
{
    if (access("/usr/bin/cc", X_OK) != 0) {
        fail_msg("needs /usr/bin/cc");
    }
    char here[PATH_MAX], sdk[PATH_MAX + 32];
    char cmd[3 * PATH_MAX];
    write_temp(src, src_size, ".c", code);
    snprintf(exe, exe_size, "%s.bin", src);
    snprintf(here, sizeof here, "%s", __FILE__);
    snprintf(sdk, sizeof sdk, "%s/../../programs/sdk", dirname(here));
    snprintf(cmd, sizeof cmd,
             "cc -std=c11 -Wall -Wextra -Werror -I%s %s %s/berth_program.c "
             "-o %s",
             sdk, src, sdk, exe);
    assert_int_equal(system(cmd), 0);
}

static void test_docs_c_example(void **state)
{
    char *code = docs_block("c");
    if (code == NULL) {
        fail_msg("needs a c block in docs/protocol.md");
    }
    char src[64], exe[72];
    compile_program(code, src, sizeof src, exe, sizeof exe);
    free(code);
    char *argv[] = {exe, NULL};
    drive_counter(argv, "POST", "/hit", NULL, false);
    unlink(src);
    unlink(exe);
}

/* The main of the helper programs below, which have an event callback
 * alone. */
#define EVENT_MAIN                                                             \
    "int main(void)\n"                                                         \
    "{\n"                                                                      \
    "    struct bp_program p = {.event = on_event};\n"                         \
    "    return bp_run(&p);\n"                                                 \
    "}\n"

/* Compile code, start it in c and send it event 1, a POST /: check that it
 * answers DONE, unchanged, with n effects of kinds, which e gets (they
 * point into c's buffer, valid until the next frame). src and exe get the
 * paths to remove. */
static void effects_of_post(const char *code, char *src, char *exe,
                            struct child *c, const uint8_t *kinds, size_t n,
                            struct frame_effect *e)
{
    compile_program(code, src, 64, exe, 72);
    char *argv[] = {exe, NULL};
    struct buf b;
    buf_init(&b);
    spawn(c, argv);
    assert_true(boot(c, 0, NULL, 0));
    encode_http(&b, 1, "POST", "/", NULL, 0);
    send_buf(c, &b);
    buf_free(&b);
    struct frame f;
    assert_int_equal(recv_frame(c, &f), 0);
    struct frame_done d;
    assert_int_equal(frame_decode_done(&f, &d), 0);
    assert_int_equal(d.flags, 0);
    assert_int_equal(d.n_effects, n);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(frame_effects_next(&d, &off, &e[i]), 0);
        assert_int_equal(e[i].kind, kinds[i]);
    }
}

/* A program of the helper's every children call: an HTTP event spawns with
 * arguments and environment, then tries the calls that must fail and the
 * ones at their limits, and replies with what each returned, in order; a
 * CHILD event is replied to with what the helper decoded. */
static const char children_program[] =
    "#include <stdio.h>\n"
    "#include <string.h>\n"
    "#include \"berth_program.h\"\n"
    "static int on_event(void *ctx, const struct bp_event *ev,\n"
    "                    struct bp_out *out)\n"
    "{\n"
    "    (void)ctx;\n"
    "    char text[256];\n"
    "    int n;\n"
    "    const struct bp_child *c = ev->child;\n"
    "    if (c != NULL) {\n"
    "        n = snprintf(text, sizeof text, \"%u %lu %.*s|%.*s\", c->what,\n"
    "                     (unsigned long)c->tag, (int)c->id_len, c->id,\n"
    "                     (int)c->detail_len, c->detail);\n"
    "        bp_reply(out, 200, \"text/plain\", text, (size_t)n);\n"
    "        return BP_UNCHANGED;\n"
    "    }\n"
    "    static const char *const args[] = {\"one\", \"\", \"three\"};\n"
    "    static const char *const env[] = {\"K=V\", \"EMPTY=\"};\n"
    "    struct bp_spawn s = {.tag = 42, .lifetime = BP_LIFETIME_ROOT,\n"
    "                         .program = \"/opt/child\", .args = args,\n"
    "                         .n_args = 3, .env = env, .n_env = 2};\n"
    "    struct bp_spawn bad = {.lifetime = 256};\n"
    "    char id[BP_ID_MAX + 2];\n"
    "    memset(id, 'x', BP_ID_MAX + 1);\n"
    "    id[BP_ID_MAX + 1] = '\\0';\n"
    "    int rv[8];\n"
    "    rv[0] = bp_spawn(out, &s);\n"
    "    rv[1] = bp_spawn(out, &bad);\n"
    "    rv[2] = bp_release(out, \"\");\n"
    "    rv[3] = bp_release(out, NULL);\n"
    "    rv[4] = bp_destroy(out, id);\n"
    "    rv[5] = bp_release(out, id + 1);\n"
    "    rv[6] = bp_destroy(out, NULL);\n"
    "    rv[7] = bp_idle(out);\n"
    "    n = snprintf(text, sizeof text, \"%d %d %d %d %d %d %d %d\", rv[0],\n"
    "                 rv[1], rv[2], rv[3], rv[4], rv[5], rv[6], rv[7]);\n"
    "    bp_reply(out, 200, \"text/plain\", text, (size_t)n);\n"
    "    return BP_UNCHANGED;\n"
    "}\n" EVENT_MAIN;

/* The helper's SPAWN carries the program and every option in order; the
 * calls that must fail add nothing; RELEASE, DESTROY and IDLE are as the
 * protocol says; a CHILD event reaches the callback decoded, whatever its
 * what. */
static void test_sdk_children(void **state)
{
    char src[64], exe[72];
    struct child c;
    struct buf b;
    buf_init(&b);
    static const uint8_t kinds[] = {FRAME_EFFECT_SPAWN, FRAME_EFFECT_RELEASE,
                                    FRAME_EFFECT_DESTROY, FRAME_EFFECT_IDLE,
                                    FRAME_EFFECT_HTTP_REPLY};
    struct frame_effect e[sizeof kinds];
    effects_of_post(children_program, src, exe, &c, kinds, sizeof kinds, e);
    struct frame_spawn s;
    assert_int_equal(frame_decode_spawn(e[0].data, e[0].len, &s), 0);
    assert_int_equal(s.tag, 42);
    assert_int_equal(s.lifetime, FRAME_LIFETIME_ROOT);
    assert_true(s.lifetime_ms == 0);
    assert_int_equal(s.program_len, 10);
    assert_memory_equal(s.program, "/opt/child", 10);
    /* The options, byte for byte: the arguments, then the environment. */
    static const char *const options[] = {"one", "", "three", "K=V", "EMPTY="};
    b.len = 0;
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        assert_int_equal(frame_encode_spawn_option(
                             &b, i < 3 ? FRAME_SPAWN_ARG : FRAME_SPAWN_ENV,
                             options[i], strlen(options[i])),
                         0);
    }
    assert_int_equal(s.options_len, b.len);
    assert_memory_equal(s.options, b.data, b.len);
    /* The release names 63 bytes, the destroy nothing: the ship itself. */
    assert_int_equal(e[1].len, 63);
    assert_int_equal(frame_decode_ship_ref(e[1].data, e[1].len), 0);
    assert_int_equal(e[2].len, 0);
    assert_int_equal(e[3].len, 0);
    struct frame_http_reply r;
    assert_int_equal(frame_decode_http_reply(e[4].data, e[4].len, &r), 0);
    assert_int_equal(r.body_len, strlen("0 -1 -1 -1 -1 0 0 0"));
    assert_memory_equal(r.body, "0 -1 -1 -1 -1 0 0 0", r.body_len);

    struct answer a;
    child_event(&c, 2, FRAME_CHILD_SPAWNED, 42, "abc", "", &a);
    expect(&a, FRAME_DONE, false, 200, "1 42 abc|");
    answer_free(&a);
    child_event(&c, 2, FRAME_CHILD_FAILED, UINT32_MAX, "", "limit_ships: x",
                &a);
    expect(&a, FRAME_DONE, false, 200, "3 4294967295 |limit_ships: x");
    answer_free(&a);
    child_event(&c, 2, 200, 7, "i", "newer", &a);
    expect(&a, FRAME_DONE, false, 200, "200 7 i|newer");
    answer_free(&a);
    stop(&c);
    buf_free(&b);
    unlink(src);
    unlink(exe);
}

/* A CHILD payload cut before its id ends, or with an id over 63 bytes, ends
 * the program with status 1 and a line naming it. */
static void test_sdk_rejects_malformed_child(void **state)
{
    struct buf p, b;
    buf_init(&p);
    buf_init(&b);
    struct frame_child ch = {
        .what = FRAME_CHILD_SPAWNED, .tag = 1, .id = "ab", .id_len = 2};
    assert_int_equal(frame_encode_child(&p, &ch), 0);
    for (size_t n = 0; n < p.len; n++) {
        b.len = 0;
        encode_event(&b, 1, FRAME_EVENT_CHILD, p.data, n);
        const char *err = expect_exit_1(true, b.data, b.len);
        assert_non_null(strstr(err, "malformed CHILD payload in event 1"));
    }
    uint8_t over[7 + 64] = {FRAME_CHILD_SPAWNED};
    put_le16(over + 5, 64);
    memset(over + 7, 'x', 64);
    b.len = 0;
    encode_event(&b, 1, FRAME_EVENT_CHILD, over, sizeof over);
    const char *err = expect_exit_1(true, b.data, b.len);
    assert_non_null(strstr(err, "malformed CHILD payload in event 1"));
    buf_free(&p);
    buf_free(&b);
}

/* Check that a's SEND effect has this tag, target and payload. */
static void expect_send(const struct answer *a, uint32_t tag,
                        const char *target, const void *payload, size_t len)
{
    struct frame_send s;
    assert_int_equal(a->n_sends, 1);
    assert_int_equal(frame_decode_send(a->send.data, a->send.len, &s), 0);
    assert_int_equal(s.tag, tag);
    assert_int_equal(s.target_len, strlen(target));
    assert_memory_equal(s.target, target, s.target_len);
    assert_int_equal(s.payload_len, len);
    assert_memory_equal(s.payload, payload, len);
}

/* POST /children with an access list: its ids become ACCESS options in
 * order, with or without a lifetime before them; every malformed list is
 * rejected. */
static void test_kv_spawn_access(void **state)
{
    struct child c;
    struct answer a;
    struct frame_spawn s;
    struct buf want;
    buf_init(&want);
    spawn_kv(&c);
    assert_true(boot(&c, 0, NULL, 0));
    http(&c, 1, "POST", "/children", "ephemeral allow=aa,b", &a);
    expect(&a, FRAME_DONE, true, 202, "{\"tag\":1}\n");
    assert_int_equal(frame_decode_spawn(a.spawn.data, a.spawn.len, &s), 0);
    assert_int_equal(s.lifetime, FRAME_LIFETIME_EPHEMERAL);
    assert_int_equal(
        frame_encode_spawn_option(&want, FRAME_SPAWN_ACCESS, "aa", 2), 0);
    assert_int_equal(
        frame_encode_spawn_option(&want, FRAME_SPAWN_ACCESS, "b", 1), 0);
    assert_int_equal(s.options_len, want.len);
    assert_memory_equal(s.options, want.data, want.len);
    answer_free(&a);
    /* The list alone is a linked child; 16 ids of 63 bytes are allowed. */
    char body[16 * 64 + 16] = "allow=";
    for (int i = 0; i < 16; i++) {
        memset(body + strlen(body), 'a' + i, 63);
        body[6 + i * 64 + 63] = i < 15 ? ',' : '\0';
    }
    http(&c, 2, "POST", "/children", body, &a);
    expect(&a, FRAME_DONE, true, 202, "{\"tag\":2}\n");
    assert_int_equal(frame_decode_spawn(a.spawn.data, a.spawn.len, &s), 0);
    assert_int_equal(s.lifetime, FRAME_LIFETIME_LINKED);
    assert_int_equal(s.options_len, 16 * (5 + 63));
    answer_free(&a);
    static const char *const bad[] = {
        "linked allow=",   "allow=",          "linked allow=a,,b",
        "linked allow=a,", "linked  allow=a", "bogus allow=a",
        "linked deny=a",   "allow=a linked",  "allow=a,b,",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        http(&c, 3, "POST", "/children", bad[i], &a);
        assert_int_equal(a.type, FRAME_REJECT);
        assert_non_null(strstr(a.reason, "allow=ID,..."));
        answer_free(&a);
    }
    /* A 17th id, and an id of 64 bytes. */
    strcat(body, ",q");
    http(&c, 3, "POST", "/children", body, &a);
    assert_int_equal(a.type, FRAME_REJECT);
    answer_free(&a);
    body[6 + 64] = '\0';
    body[6 + 63] = 'a';
    http(&c, 3, "POST", "/children", body, &a);
    assert_int_equal(a.type, FRAME_REJECT);
    answer_free(&a);
    stop(&c);
    buf_free(&want);
}

/* POST /send sends the body with the event's number as the tag and records
 * it; RECEIPT events fill it in, once; GET /sent and /sent/<tag> read it,
 * DELETE /sent/<tag> forgets it; bad targets, tags and methods change
 * nothing. */
static void test_kv_send_and_receipts(void **state)
{
    struct child c;
    struct answer a;
    spawn_kv(&c);
    assert_true(boot(&c, 0, NULL, 0));
    expect_get(&c, 1, "/sent", "[]\n");
    http(&c, 1, "POST", "/send/b%6Fb", "get x", &a);
    expect(&a, FRAME_DONE, true, 202, "{\"tag\":1}\n");
    assert_string_equal(a.ctype, "application/json");
    expect_send(&a, 1, "bob", "get x", 5);
    assert_int_equal(a.n_effects, 2);
    answer_free(&a);
    http(&c, 2, "POST", "/send/carol?x=1", "", &a);
    expect(&a, FRAME_DONE, true, 202, "{\"tag\":2}\n");
    expect_send(&a, 2, "carol", "", 0);
    answer_free(&a);
    http(&c, 3, "POST", "/send/dave", "put k v", &a);
    answer_free(&a);
    /* The tag is the number's low 32 bits: taken once. */
    http(&c, (1ull << 32) + 1, "POST", "/send/bob", "x", &a);
    assert_int_equal(a.type, FRAME_REJECT);
    assert_string_equal(a.reason, "tag 1 is already a message's");
    answer_free(&a);
    http(&c, 4, "GET", "/sent", NULL, &a);
    expect(&a, FRAME_DONE, false, 200,
           "[{\"tag\":1,\"target\":\"bob\",\"outcome\":\"pending\","
           "\"status\":0,\"body\":\"\"},"
           "{\"tag\":2,\"target\":\"carol\",\"outcome\":\"pending\","
           "\"status\":0,\"body\":\"\"},"
           "{\"tag\":3,\"target\":\"dave\",\"outcome\":\"pending\","
           "\"status\":0,\"body\":\"\"}]\n");
    assert_true(a.reuse);
    answer_free(&a);

    /* The receipts: the target's id replaces the name; a second receipt
     * for a tag, one for no message and an unknown outcome are
     * rejected. */
    receipt_event(&c, 4, 1, FRAME_RECEIPT_DELIVERED, 200, "bob1d", "v\"1", &a);
    expect(&a, FRAME_DONE, true, 0, NULL);
    assert_int_equal(a.n_effects, 0);
    answer_free(&a);
    receipt_event(&c, 5, 2, FRAME_RECEIPT_REFUSED, 0, "car0l",
                  "the sender is not on the ship's access list", &a);
    expect(&a, FRAME_DONE, true, 0, NULL);
    answer_free(&a);
    receipt_event(&c, 6, 1, FRAME_RECEIPT_DELIVERED, 200, "bob1d", "again", &a);
    assert_int_equal(a.type, FRAME_REJECT);
    assert_string_equal(a.reason, "tag 1 already has its receipt");
    answer_free(&a);
    receipt_event(&c, 6, 9, FRAME_RECEIPT_FAILED, 0, "", "no such ship", &a);
    assert_int_equal(a.type, FRAME_REJECT);
    assert_string_equal(a.reason, "kv sent no message with tag 9");
    answer_free(&a);
    receipt_event(&c, 6, 3, 4, 0, "", "", &a);
    assert_int_equal(a.type, FRAME_REJECT);
    answer_free(&a);
    /* A body is kept up to 4096 bytes. */
    char *big = malloc(5001);
    assert_non_null(big);
    memset(big, 'b', 5000);
    big[5000] = '\0';
    receipt_event(&c, 6, 3, FRAME_RECEIPT_FAILED, 502, "", big, &a);
    expect(&a, FRAME_DONE, true, 0, NULL);
    answer_free(&a);
    expect_get(&c, 7, "/sent/1",
               "{\"tag\":1,\"target\":\"bob1d\",\"outcome\":\"delivered\","
               "\"status\":200,\"body\":\"v\\\"1\"}\n");
    expect_get(&c, 7, "/sent/2",
               "{\"tag\":2,\"target\":\"car0l\",\"outcome\":\"refused\","
               "\"status\":0,\"body\":\"the sender is not on the ship's "
               "access list\"}\n");
    http(&c, 7, "GET", "/sent/3", NULL, &a);
    expect(&a, FRAME_DONE, false, 200, NULL);
    char want[4200];
    snprintf(want, sizeof want,
             "{\"tag\":3,\"target\":\"dave\",\"outcome\":\"failed\","
             "\"status\":502,\"body\":\"%.4096s\"}\n",
             big);
    assert_string_equal((const char *)a.body.data, want);
    answer_free(&a);
    free(big);

    /* Forgetting one: then it is not there, and its receipt would be
     * rejected. */
    http(&c, 7, "DELETE", "/sent/2", NULL, &a);
    expect(&a, FRAME_DONE, true, 200, "deleted\n");
    answer_free(&a);
    http(&c, 8, "GET", "/sent/2", NULL, &a);
    expect_error(&a, 404, "not_found");
    answer_free(&a);
    http(&c, 8, "DELETE", "/sent/2", NULL, &a);
    expect_error(&a, 404, "not_found");
    answer_free(&a);
    http(&c, 8, "GET", "/sent", NULL, &a);
    assert_null(strstr((const char *)a.body.data, "\"tag\":2"));
    assert_non_null(strstr((const char *)a.body.data, "\"tag\":3"));
    answer_free(&a);

    /* Bad targets, tags and methods: an error reply, no effect. */
    char long_target[8 + 64 + 1] = "/send/";
    memset(long_target + 6, 't', 64);
    long_target[6 + 64] = '\0';
    static const struct {
        const char *method, *target;
        int status;
    } bad[] = {
        {"POST", "/send/", 400},          {"POST", "/send/a%00b", 400},
        {"POST", "/send/a%zz", 400},      {"POST", NULL, 400},
        {"GET", "/send/bob", 405},        {"PUT", "/sent", 405},
        {"POST", "/sent/1", 405},         {"GET", "/sent/x", 404},
        {"GET", "/sent/", 404},           {"GET", "/sent/1x", 404},
        {"GET", "/sent/4294967296", 404}, {"GET", "/sent/99", 404},
        {"GET", "/sendx", 404},           {"POST", "/send", 404},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        http(&c, 8, bad[i].method, bad[i].target ? bad[i].target : long_target,
             "x", &a);
        assert_int_equal(a.status, bad[i].status);
        assert_false(a.changed);
        assert_int_equal(a.n_effects, 1);
        answer_free(&a);
    }
    /* 63 bytes are a target; over 1 MiB is not a message. */
    long_target[6 + 63] = '\0';
    http(&c, 8, "POST", long_target, "x", &a);
    expect(&a, FRAME_DONE, true, 202, NULL);
    expect_send(&a, 8, long_target + 6, "x", 1);
    answer_free(&a);
    char *huge = malloc((1u << 20) + 2);
    assert_non_null(huge);
    memset(huge, 'h', (1u << 20) + 1);
    huge[(1u << 20) + 1] = '\0';
    http(&c, 9, "POST", "/send/bob", huge, &a);
    expect_error(&a, 413, "too_large");
    assert_int_equal(a.n_sends, 0);
    answer_free(&a);
    huge[1u << 20] = '\0';
    http(&c, 9, "POST", "/send/bob", huge, &a);
    expect(&a, FRAME_DONE, true, 202, NULL);
    assert_int_equal(a.n_sends, 1);
    answer_free(&a);
    free(huge);
    stop(&c);
}

/* MESSAGE events: get and put, answered as GET and PUT /k/<key> are, and
 * 400 for anything else; only a put changes the state. */
static void test_kv_messages(void **state)
{
    struct child c;
    struct answer a;
    spawn_kv(&c);
    assert_true(boot(&c, 0, NULL, 0));
    static const struct {
        const char *payload;
        int status;
        bool changed;
        const char *body;
    } steps[] = {
        {"get a", 404, false, NULL},
        {"put a 1", 201, true, "created\n"},
        {"put a two words", 200, true, "ok\n"},
        {"get a", 200, false, "two words"},
        {"put b ", 201, true, "created\n"},
        {"get b", 200, false, ""},
        {"get a ", 404, false, NULL},
        {"get ", 400, false, NULL},
        {"put a", 400, false, NULL},
        {"put  x", 400, false, NULL},
        {"GET a", 400, false, NULL},
        {"", 400, false, NULL},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        message_event(&c, 1 + i, (uint32_t)i, "sender", steps[i].payload,
                      strlen(steps[i].payload), &a);
        expect(&a, FRAME_DONE, steps[i].changed, steps[i].status,
               steps[i].body);
        assert_int_equal(a.n_effects, 1);
        assert_false(a.reuse);
        answer_free(&a);
    }
    expect_get(&c, 20, "/k/a", "two words");
    stop(&c);
}

/* The sent messages are in the snapshot and come back from it, with every
 * cut and every value kv never writes refused. */
static void test_kv_sent_snapshots(void **state)
{
    struct child c;
    struct answer a, list;
    struct buf s, s2;
    spawn_kv(&c);
    assert_true(boot(&c, 0, NULL, 0));
    http(&c, 1, "POST", "/send/bob", "get k", &a);
    answer_free(&a);
    http(&c, 2, "POST", "/send/al", "get k", &a);
    answer_free(&a);
    receipt_event(&c, 3, 1, FRAME_RECEIPT_DELIVERED, 200, "b0", "vv", &a);
    answer_free(&a);
    http(&c, 4, "GET", "/sent", NULL, &list);
    snapshot(&c, 3, &s);
    stop(&c);
    /* The head, no children, the two messages in tag order, no pairs. */
    static const uint8_t first[] = {1,   0, 0,   0,   FRAME_RECEIPT_DELIVERED,
                                    200, 0, 2,   'b', '0',
                                    2,   0, 'v', 'v'};
    static const uint8_t second[] = {2, 0, 0, 0, 0, 0, 0, 2, 'a', 'l', 0, 0};
    assert_int_equal(s.len, 28 + sizeof first + sizeof second);
    assert_int_equal(get_le32(s.data + 24), 2);
    assert_memory_equal(s.data + 28, first, sizeof first);
    assert_memory_equal(s.data + 28 + sizeof first, second, sizeof second);

    spawn_kv(&c);
    assert_true(boot(&c, 3, s.data, s.len));
    expect_get(&c, 4, "/sent", (const char *)list.body.data);
    snapshot(&c, 3, &s2);
    assert_int_equal(s2.len, s.len);
    assert_memory_equal(s2.data, s.data, s.len);
    buf_free(&s2);
    receipt_event(&c, 4, 2, FRAME_RECEIPT_FAILED, 0, "", "no such ship", &a);
    expect(&a, FRAME_DONE, true, 0, NULL);
    answer_free(&a);
    stop(&c);

    /* Every cut inside the messages is refused (a cut between them too:
     * the count says two). */
    for (size_t n = 24; n < s.len; n++) {
        spawn_kv(&c);
        assert_false(boot(&c, 3, s.data, n));
        expect_get(&c, 4, "/sent", "[]\n");
        stop(&c);
    }
    /* So is each value kv never writes: an outcome of 4, a target of 64
     * bytes, a body of 4097, the second's tag 1 (not above the first's),
     * and 2 + 4 * 256 messages. */
    static const struct {
        size_t off;
        uint8_t byte;
    } bad[] = {
        {28 + 4, 4}, {28 + 7, 64}, {28 + 10, 0x01}, {28 + 14, 1}, {24 + 1, 4},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        /* The body length's high byte 0x10: 0x1001 = 4097. */
        expect_refused(&s, 3, bad[i].off, bad[i].byte,
                       bad[i].off == 28 + 10 ? 0x10 : 0);
    }
    answer_free(&list);
    buf_free(&s);
}

/* kv keeps at most 1024 sent messages: the next send is rejected, with no
 * effect, until one is deleted. */
static void test_kv_sent_limit(void **state)
{
    enum { MAX = 1024 };
    struct child c;
    struct answer a;
    spawn_kv(&c);
    assert_true(boot(&c, 0, NULL, 0));
    for (uint64_t n = 1; n <= MAX; n++) {
        http(&c, n, "POST", "/send/t", "m", &a);
        expect(&a, FRAME_DONE, true, 202, NULL);
        answer_free(&a);
    }
    http(&c, MAX + 1, "POST", "/send/t", "m", &a);
    assert_int_equal(a.type, FRAME_REJECT);
    assert_string_equal(a.reason, "kv keeps at most 1024 sent messages");
    assert_int_equal(a.n_sends, 0);
    answer_free(&a);
    http(&c, MAX + 1, "DELETE", "/sent/7", NULL, &a);
    answer_free(&a);
    http(&c, MAX + 2, "POST", "/send/t", "m", &a);
    expect(&a, FRAME_DONE, true, 202, NULL);
    answer_free(&a);
    stop(&c);
}

/* A program of the helper's every message call: an HTTP event sends, tries
 * the sends that must fail and a spawn with an access list, and replies
 * with what each returned; a MESSAGE or RECEIPT event is replied to with
 * what the helper decoded. */
static const char messages_program[] =
    "#include <stdio.h>\n"
    "#include <string.h>\n"
    "#include \"berth_program.h\"\n"
    "static char big[BP_MESSAGE_MAX + 1];\n"
    "static int on_event(void *ctx, const struct bp_event *ev,\n"
    "                    struct bp_out *out)\n"
    "{\n"
    "    (void)ctx;\n"
    "    char text[256];\n"
    "    int n;\n"
    "    const struct bp_message *m = ev->message;\n"
    "    const struct bp_receipt *r = ev->receipt;\n"
    "    if (m != NULL) {\n"
    "        n = snprintf(text, sizeof text, \"%lu %.*s %02x %llu %u %02x \"\n"
    "                     \"%.*s\", (unsigned long)m->tag,\n"
    "                     (int)m->sender_len, m->sender, m->public_key[31],\n"
    "                     (unsigned long long)m->number, m->index,\n"
    "                     m->signature[63], (int)m->payload_len,\n"
    "                     (const char *)m->payload);\n"
    "        bp_reply(out, 200, \"text/plain\", text, (size_t)n);\n"
    "        return BP_UNCHANGED;\n"
    "    }\n"
    "    if (r != NULL) {\n"
    "        n = snprintf(text, sizeof text, \"%lu %u %u %.*s|%.*s\",\n"
    "                     (unsigned long)r->tag, r->outcome, r->status,\n"
    "                     (int)r->target_len, r->target, (int)r->body_len,\n"
    "                     (const char *)r->body);\n"
    "        bp_reply(out, 200, \"text/plain\", text, (size_t)n);\n"
    "        return BP_UNCHANGED;\n"
    "    }\n"
    "    char id[BP_ID_MAX + 2];\n"
    "    memset(id, 'x', BP_ID_MAX + 1);\n"
    "    id[BP_ID_MAX + 1] = '\\0';\n"
    "    static const char *const access[] = {\"friend\", \"me\"};\n"
    "    const char *bad_access[] = {\"ok\", \"\"};\n"
    "    const char *long_access[] = {id};\n"
    "    struct bp_spawn s = {.tag = 5, .lifetime = BP_LIFETIME_LINKED,\n"
    "                         .access = access, .n_access = 2};\n"
    "    struct bp_spawn bad = {.lifetime = BP_LIFETIME_LINKED,\n"
    "                           .access = bad_access, .n_access = 2};\n"
    "    struct bp_spawn bad2 = {.lifetime = BP_LIFETIME_LINKED,\n"
    "                            .access = long_access, .n_access = 1};\n"
    "    int rv[9];\n"
    "    rv[0] = bp_send(out, 4000000000u, \"target\", \"hi\", 2);\n"
    "    rv[1] = bp_send(out, 1, NULL, \"hi\", 2);\n"
    "    rv[2] = bp_send(out, 1, \"\", \"hi\", 2);\n"
    "    rv[3] = bp_send(out, 1, id, \"hi\", 2);\n"
    "    rv[4] = bp_send(out, 1, \"t\", big, sizeof big);\n"
    "    rv[5] = bp_send(out, 2, id + 1, big, sizeof big - 1);\n"
    "    rv[6] = bp_spawn(out, &s);\n"
    "    rv[7] = bp_spawn(out, &bad);\n"
    "    rv[8] = bp_spawn(out, &bad2);\n"
    "    n = snprintf(text, sizeof text, \"%d %d %d %d %d %d %d %d %d\",\n"
    "                 rv[0], rv[1], rv[2], rv[3], rv[4], rv[5], rv[6], rv[7],\n"
    "                 rv[8]);\n"
    "    bp_reply(out, 200, \"text/plain\", text, (size_t)n);\n"
    "    return BP_UNCHANGED;\n"
    "}\n" EVENT_MAIN;

/* The helper's SEND is as the protocol says, with a payload up to 1 MiB;
 * the sends that must fail add nothing; a spawn's access list becomes
 * ACCESS options after the others; MESSAGE and RECEIPT events reach the
 * callback decoded, whatever their outcome. */
static void test_sdk_messages(void **state)
{
    char src[64], exe[72];
    struct child c;
    struct buf b;
    buf_init(&b);
    static const uint8_t kinds[] = {FRAME_EFFECT_SEND, FRAME_EFFECT_SEND,
                                    FRAME_EFFECT_SPAWN,
                                    FRAME_EFFECT_HTTP_REPLY};
    struct frame_effect e[sizeof kinds];
    effects_of_post(messages_program, src, exe, &c, kinds, sizeof kinds, e);
    struct frame_send s;
    assert_int_equal(frame_decode_send(e[0].data, e[0].len, &s), 0);
    assert_int_equal(s.tag, 4000000000u);
    assert_int_equal(s.target_len, 6);
    assert_memory_equal(s.target, "target", 6);
    assert_int_equal(s.payload_len, 2);
    assert_memory_equal(s.payload, "hi", 2);
    assert_int_equal(frame_decode_send(e[1].data, e[1].len, &s), 0);
    assert_int_equal(s.target_len, 63);
    assert_int_equal(s.payload_len, 1u << 20);
    struct frame_spawn sp;
    assert_int_equal(frame_decode_spawn(e[2].data, e[2].len, &sp), 0);
    assert_int_equal(sp.tag, 5);
    b.len = 0;
    assert_int_equal(
        frame_encode_spawn_option(&b, FRAME_SPAWN_ACCESS, "friend", 6), 0);
    assert_int_equal(frame_encode_spawn_option(&b, FRAME_SPAWN_ACCESS, "me", 2),
                     0);
    assert_int_equal(sp.options_len, b.len);
    assert_memory_equal(sp.options, b.data, b.len);
    struct frame_http_reply r;
    assert_int_equal(frame_decode_http_reply(e[3].data, e[3].len, &r), 0);
    static const char rvs[] = "0 -1 -1 -1 -1 0 0 -1 -1";
    assert_int_equal(r.body_len, strlen(rvs));
    assert_memory_equal(r.body, rvs, r.body_len);

    struct answer a;
    message_event(&c, 2, 9, "sender", "get x", 5, &a);
    expect(&a, FRAME_DONE, false, 200, "9 sender 11 77 3 22 get x");
    answer_free(&a);
    message_event(&c, 2, UINT32_MAX, "s", "", 0, &a);
    expect(&a, FRAME_DONE, false, 200, "4294967295 s 11 77 3 22 ");
    answer_free(&a);
    receipt_event(&c, 2, 9, FRAME_RECEIPT_DELIVERED, 200, "t1", "value", &a);
    expect(&a, FRAME_DONE, false, 200, "9 1 200 t1|value");
    answer_free(&a);
    receipt_event(&c, 2, 10, FRAME_RECEIPT_FAILED, 0, "", "no such ship", &a);
    expect(&a, FRAME_DONE, false, 200, "10 3 0 |no such ship");
    answer_free(&a);
    receipt_event(&c, 2, 11, 77, 599, "t", "", &a);
    expect(&a, FRAME_DONE, false, 200, "11 77 599 t|");
    answer_free(&a);
    stop(&c);
    buf_free(&b);
    unlink(src);
    unlink(exe);
}

/* A MESSAGE payload cut anywhere before its payload, with an empty sender,
 * a sender over 63 bytes or a payload over 1 MiB, and a RECEIPT payload cut
 * before its target ends or with a target over 63 bytes, end the program
 * with status 1 and a line naming it. */
static void test_sdk_rejects_malformed_messages(void **state)
{
    struct buf p, b;
    buf_init(&p);
    buf_init(&b);
    struct frame_message m = {.tag = 1, .sender = "ab", .sender_len = 2};
    assert_int_equal(frame_encode_message(&p, &m), 0);
    for (size_t n = 0; n < p.len; n++) {
        b.len = 0;
        encode_event(&b, 1, FRAME_EVENT_MESSAGE, p.data, n);
        const char *err = expect_exit_1(true, b.data, b.len);
        assert_non_null(strstr(err, "malformed MESSAGE payload in event 1"));
    }
    /* An empty sender, a sender of 64 bytes, a payload over 1 MiB. */
    for (int k = 0; k < 3; k++) {
        char sender[64];
        memset(sender, 's', sizeof sender);
        struct frame_message x = {.sender = sender,
                                  .sender_len = k == 1 ? 63 : 2};
        p.len = 0;
        assert_int_equal(frame_encode_message(&p, &x), 0);
        if (k == 0) {
            put_le16(p.data + 4, 0);
            memmove(p.data + 6, p.data + 8, p.len - 8);
            p.len -= 2;
        } else if (k == 1) {
            put_le16(p.data + 4, 64);
            assert_int_equal(buf_append(&p, "s", 1), 0);
        } else {
            for (size_t i = 0; i <= 1u << 20; i += 1024) {
                assert_int_equal(buf_append(&p, sender, 64), 0);
                assert_int_equal(buf_append(&p, sender, 64), 0);
                for (int j = 0; j < 14; j++) {
                    assert_int_equal(buf_append(&p, sender, 64), 0);
                }
            }
        }
        b.len = 0;
        encode_event(&b, 1, FRAME_EVENT_MESSAGE, p.data, p.len);
        const char *err = expect_exit_1(true, b.data, b.len);
        assert_non_null(strstr(err, "malformed MESSAGE payload in event 1"));
    }
    struct frame_receipt r = {.tag = 1, .target = "ab", .target_len = 2};
    p.len = 0;
    assert_int_equal(frame_encode_receipt(&p, &r), 0);
    for (size_t n = 0; n < p.len; n++) {
        b.len = 0;
        encode_event(&b, 1, FRAME_EVENT_RECEIPT, p.data, n);
        const char *err = expect_exit_1(true, b.data, b.len);
        assert_non_null(strstr(err, "malformed RECEIPT payload in event 1"));
    }
    uint8_t over[9 + 64] = {1};
    put_le16(over + 7, 64);
    memset(over + 9, 'x', 64);
    b.len = 0;
    encode_event(&b, 1, FRAME_EVENT_RECEIPT, over, sizeof over);
    const char *err = expect_exit_1(true, b.data, b.len);
    assert_non_null(strstr(err, "malformed RECEIPT payload in event 1"));
    buf_free(&p);
    buf_free(&b);
}

/* Start programs/share as the ship "owner1", in share mode when owner is
 * not NULL. */
static void spawn_share(struct child *c, const char *owner)
{
    char path[PATH_MAX + 8];
    program_path(path, sizeof path, "share");
    char *argv[] = {path, owner ? "--share" : NULL, (char *)owner, NULL};
    setenv("BERTH_SHIP", "owner1", 1);
    spawn(c, argv);
    unsetenv("BERTH_SHIP");
}

/* The share example's owner: POST /share spawns itself in share mode with
 * the friend and the owner as the access list, the CHILD event sends the
 * child the address, the receipt marks it shared, a new address goes to
 * it again, and the state comes back from its snapshot. */
static void test_share_owner(void **state)
{
    struct child c;
    struct answer a;
    struct frame_spawn sp;
    struct buf want, s, s2;
    buf_init(&want);
    spawn_share(&c, NULL);
    assert_true(boot(&c, 0, NULL, 0));
    http(&c, 1, "GET", "/address", NULL, &a);
    expect(&a, FRAME_DONE, false, 404, NULL);
    answer_free(&a);
    http(&c, 1, "PUT", "/address", "12 Harbour Road", &a);
    expect(&a, FRAME_DONE, true, 200, "ok\n");
    answer_free(&a);
    http(&c, 2, "POST", "/share", "Bad-id", &a);
    expect(&a, FRAME_DONE, false, 400, NULL);
    assert_int_equal(a.n_spawns, 0);
    answer_free(&a);
    http(&c, 2, "POST", "/share", "friend7", &a);
    expect(&a, FRAME_DONE, true, 202, "{\"tag\":2}\n");
    assert_int_equal(frame_decode_spawn(a.spawn.data, a.spawn.len, &sp), 0);
    assert_int_equal(sp.tag, 2);
    assert_int_equal(sp.lifetime, FRAME_LIFETIME_LINKED);
    assert_int_equal(sp.program_len, 0);
    static const struct {
        uint8_t kind;
        const char *v;
    } options[] = {{FRAME_SPAWN_ARG, "--share"},
                   {FRAME_SPAWN_ARG, "owner1"},
                   {FRAME_SPAWN_ACCESS, "friend7"},
                   {FRAME_SPAWN_ACCESS, "owner1"}};
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        assert_int_equal(frame_encode_spawn_option(&want, options[i].kind,
                                                   options[i].v,
                                                   strlen(options[i].v)),
                         0);
    }
    assert_int_equal(sp.options_len, want.len);
    assert_memory_equal(sp.options, want.data, want.len);
    answer_free(&a);
    child_event(&c, 3, FRAME_CHILD_SPAWNED, 2, "kid2", "", &a);
    expect(&a, FRAME_DONE, true, 0, NULL);
    expect_send(&a, 2, "kid2", "set 12 Harbour Road", 19);
    answer_free(&a);
    expect_get(&c, 4, "/share",
               "[{\"tag\":2,\"friend\":\"friend7\",\"id\":\"kid2\","
               "\"status\":\"sending\"}]\n");
    receipt_event(&c, 4, 2, FRAME_RECEIPT_DELIVERED, 200, "kid2", "ok\n", &a);
    expect(&a, FRAME_DONE, true, 0, NULL);
    answer_free(&a);
    http(&c, 5, "PUT", "/address", "3 Quay Street", &a);
    expect(&a, FRAME_DONE, true, 200, NULL);
    expect_send(&a, 2, "kid2", "set 3 Quay Street", 17);
    answer_free(&a);
    receipt_event(&c, 6, 2, FRAME_RECEIPT_DELIVERED, 200, "kid2", "ok\n", &a);
    answer_free(&a);
    expect_get(&c, 7, "/share",
               "[{\"tag\":2,\"friend\":\"friend7\",\"id\":\"kid2\","
               "\"status\":\"shared\"}]\n");
    http(&c, 7, "DELETE", "/share/kid2", NULL, &a);
    expect(&a, FRAME_DONE, false, 202, NULL);
    assert_int_equal(a.n_destroys, 1);
    assert_string_equal(a.ship_ref, "kid2");
    answer_free(&a);
    child_event(&c, 7, FRAME_CHILD_DESTROYED, 2, "kid2", "parent", &a);
    answer_free(&a);
    http(&c, 8, "GET", "/share", NULL, &a);
    assert_non_null(strstr((const char *)a.body.data, "\"status\":\"ended\""));
    answer_free(&a);
    snapshot(&c, 7, &s);
    stop(&c);

    /* The snapshot gives the same state back; any cut of it is refused. */
    spawn_share(&c, NULL);
    assert_true(boot(&c, 7, s.data, s.len));
    http(&c, 8, "GET", "/share", NULL, &a);
    assert_non_null(strstr((const char *)a.body.data, "\"status\":\"ended\""));
    answer_free(&a);
    expect_get(&c, 8, "/address", "3 Quay Street");
    snapshot(&c, 7, &s2);
    assert_int_equal(s2.len, s.len);
    assert_memory_equal(s2.data, s.data, s.len);
    stop(&c);
    for (size_t n = 0; n < s.len; n++) {
        spawn_share(&c, NULL);
        assert_false(boot(&c, 7, s.data, n));
        expect_get(&c, 8, "/share", "[]\n");
        stop(&c);
    }
    buf_free(&s);
    buf_free(&s2);
    buf_free(&want);
}

/* The share example's child: its front door answers 403, a get answers
 * the address the owner set, and a set from anyone but the owner is
 * refused. */
static void test_share_child(void **state)
{
    struct child c;
    struct answer a;
    spawn_share(&c, "owner1");
    assert_true(boot(&c, 0, NULL, 0));
    http(&c, 1, "GET", "/", NULL, &a);
    expect(&a, FRAME_DONE, false, 403, NULL);
    answer_free(&a);
    static const struct {
        const char *sender, *payload;
        int status;
        bool changed;
        const char *body;
    } steps[] = {
        {"friend7", "get address", 404, false, NULL},
        {"friend7", "set 1 Nowhere", 403, false, NULL},
        {"owner1", "set 12 Harbour Road", 200, true, "ok\n"},
        {"friend7", "get address", 200, false, "12 Harbour Road"},
        {"friend7", "get", 200, false, "12 Harbour Road"},
        {"friend7", "get addresses", 400, false, NULL},
        {"owner10", "set x", 403, false, NULL},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        message_event(&c, 1 + i, 5, steps[i].sender, steps[i].payload,
                      strlen(steps[i].payload), &a);
        expect(&a, FRAME_DONE, steps[i].changed, steps[i].status,
               steps[i].body);
        answer_free(&a);
    }
    stop(&c);
}

/* A program of the helper's every WebSocket call: an HTTP event tries the
 * calls that must fail and the ones at their limits, and replies with what
 * each returned, in order; a WEBSOCKET event is replied to with what the
 * helper decoded. */
static const char websocket_program[] =
    "#include <stdio.h>\n"
    "#include <string.h>\n"
    "#include \"berth_program.h\"\n"
    "static int on_event(void *ctx, const struct bp_event *ev,\n"
    "                    struct bp_out *out)\n"
    "{\n"
    "    (void)ctx;\n"
    "    char text[512];\n"
    "    int n;\n"
    "    const struct bp_websocket *w = ev->websocket;\n"
    "    if (w != NULL) {\n"
    "        const struct bp_http *h = &w->open;\n"
    "        size_t vl = 0;\n"
    "        const char *v = bp_http_header(h, \"upgrade\", &vl);\n"
    "        n = snprintf(text, sizeof text,\n"
    "                     \"%llx %d %u %d|%.*s|%.*s %.*s %u %.*s|%d\",\n"
    "                     (unsigned long long)w->conn, w->what, w->code,\n"
    "                     w->data == NULL, (int)w->len,\n"
    "                     w->data ? (const char *)w->data : \"\",\n"
    "                     (int)h->method_len, h->method ? h->method : \"\",\n"
    "                     (int)h->target_len, h->target ? h->target : \"\",\n"
    "                     h->n_headers, (int)vl, v ? v : \"\",\n"
    "                     ev->http != NULL);\n"
    "        bp_reply(out, 200, \"text/plain\", text, (size_t)n);\n"
    "        return BP_UNCHANGED;\n"
    "    }\n"
    "    char reason[125];\n"
    "    memset(reason, 'r', sizeof reason);\n"
    "    reason[123] = '\\0';\n"
    "    int rv[16];\n"
    "    rv[0] = bp_ws_send(out, 0x200000001ull, BP_WS_SEND_TEXT,\n"
    "                       \"h\\xc3\\xa9\", 3);\n"
    "    rv[1] = bp_ws_send(out, 5, BP_WS_SEND_BINARY, \"\\xff\\0\", 2);\n"
    "    rv[2] = bp_ws_send(out, 0, BP_WS_SEND_TEXT, \"x\", 1);\n"
    "    rv[3] = bp_ws_send(out, 5, 3, \"x\", 1);\n"
    "    rv[4] = bp_ws_send(out, 5, BP_WS_SEND_TEXT, \"\\xff\", 1);\n"
    "    rv[5] = bp_ws_send(out, 5, BP_WS_SEND_TEXT, \"\\xed\\xa0\\x80\", 3);\n"
    "    rv[6] = bp_ws_send(out, 5, BP_WS_SEND_TEXT, \"\\xc0\\xaf\", 2);\n"
    "    rv[7] = bp_ws_send(out, 5, BP_WS_SEND_TEXT, \"\\xe2\\x82\", 2);\n"
    "    rv[8] = bp_ws_close(out, 5, 1000, NULL);\n"
    "    rv[9] = bp_ws_close(out, 6, 4999, reason);\n"
    "    reason[123] = 'r';\n"
    "    reason[124] = '\\0';\n"
    "    rv[10] = bp_ws_close(out, 5, 1000, reason);\n"
    "    rv[11] = bp_ws_close(out, 5, 1005, NULL);\n"
    "    rv[12] = bp_ws_close(out, 5, 1012, NULL);\n"
    "    rv[13] = bp_ws_close(out, 0, 1000, NULL);\n"
    "    rv[14] = bp_ws_close(out, 5, 1000, \"\\xff\");\n"
    "    rv[15] = bp_ws_send(out, 7, BP_WS_SEND_TEXT, \"\", 0);\n"
    "    n = 0;\n"
    "    for (int i = 0; i < 16; i++) {\n"
    "        n += snprintf(text + n, sizeof text - (size_t)n, \"%d \", "
    "rv[i]);\n"
    "    }\n"
    "    n += snprintf(text + n, sizeof text - (size_t)n, \"%lx\",\n"
    "                  (unsigned long)bp_ws_run(0xabcdef0100000002ull));\n"
    "    bp_reply(out, 200, \"text/plain\", text, (size_t)n);\n"
    "    return BP_UNCHANGED;\n"
    "}\n" EVENT_MAIN;

/* The helper's WS_SEND and WS_CLOSE are as the protocol says, the calls
 * that must fail add nothing, and WEBSOCKET events reach the callback
 * decoded: OPEN with its request and no data, TEXT and BINARY with their
 * bytes, CLOSED with its code and reason, a newer what with the rest; never
 * as ev->http. */
static void test_sdk_websocket(void **state)
{
    char src[64], exe[72];
    struct child c;
    static const uint8_t kinds[] = {
        TEST_EFFECT_WS_SEND,  TEST_EFFECT_WS_SEND, TEST_EFFECT_WS_CLOSE,
        TEST_EFFECT_WS_CLOSE, TEST_EFFECT_WS_SEND, FRAME_EFFECT_HTTP_REPLY};
    struct frame_effect e[sizeof kinds];
    effects_of_post(websocket_program, src, exe, &c, kinds, sizeof kinds, e);
    assert_int_equal(e[0].len, 8 + 1 + 3);
    assert_memory_equal(e[0].data, "\x01\0\0\0\x02\0\0\0\x01h\xc3\xa9", 12);
    assert_int_equal(e[1].len, 8 + 1 + 2);
    assert_memory_equal(e[1].data, "\x05\0\0\0\0\0\0\0\x02\xff\0", 11);
    assert_int_equal(e[2].len, 8 + 2);
    assert_memory_equal(e[2].data, "\x05\0\0\0\0\0\0\0\xe8\x03", 10);
    assert_int_equal(e[3].len, 8 + 2 + 123);
    assert_int_equal(get_le64(e[3].data), 6);
    assert_int_equal(get_le16(e[3].data + 8), 4999);
    assert_int_equal(e[3].data[10 + 122], 'r');
    assert_int_equal(e[4].len, 8 + 1);
    assert_memory_equal(e[4].data, "\x07\0\0\0\0\0\0\0\x01", 9);
    struct frame_http_reply r;
    assert_int_equal(frame_decode_http_reply(e[5].data, e[5].len, &r), 0);
    static const char rvs[] =
        "0 0 -1 -1 -1 -1 -1 -1 0 0 -1 -1 -1 -1 -1 0 abcdef01";
    assert_int_equal(r.body_len, strlen(rvs));
    assert_memory_equal(r.body, rvs, r.body_len);

    struct answer a;
    uint64_t conn = 0x0000000300000009ull;
    ws_open(&c, 2, conn, "/room?x=1", &a);
    expect(&a, FRAME_DONE, false, 200,
           "300000009 1 0 1||GET /room?x=1 3 websocket|0");
    answer_free(&a);
    ws_text(&c, 2, conn, "hello", &a);
    expect(&a, FRAME_DONE, false, 200, "300000009 2 0 0|hello|  0 |0");
    answer_free(&a);
    ws_event(&c, 2, UINT64_MAX, 3, "", 0, &a);
    expect(&a, FRAME_DONE, false, 200, "ffffffffffffffff 3 0 0||  0 |0");
    answer_free(&a);
    uint8_t closed[2 + 123];
    put_le16(closed, 1001);
    memset(closed + 2, 'z', 123);
    ws_event(&c, 2, conn, 4, closed, 2 + 3, &a);
    expect(&a, FRAME_DONE, false, 200, "300000009 4 1001 0|zzz|  0 |0");
    answer_free(&a);
    ws_event(&c, 2, conn, 4, closed, sizeof closed, &a);
    assert_int_equal(a.status, 200);
    answer_free(&a);
    ws_event(&c, 2, conn, 9, "new", 3, &a);
    expect(&a, FRAME_DONE, false, 200, "300000009 9 0 0|new|  0 |0");
    answer_free(&a);
    stop(&c);
    unlink(src);
    unlink(exe);
}

/* A WEBSOCKET payload cut before its what, with conn 0, an OPEN whose
 * request is cut anywhere, a CLOSED without its whole code or with a reason
 * over 123 bytes end the program with status 1 and a line naming it. */
static void test_sdk_rejects_malformed_websocket(void **state)
{
    struct buf p, b;
    buf_init(&p);
    buf_init(&b);
    assert_int_equal(buf_put_u64(&p, 1), 0);
    assert_int_equal(buf_put_u8(&p, 2), 0);
    for (size_t n = 0; n < p.len; n++) {
        b.len = 0;
        encode_event(&b, 1, TEST_EVENT_WEBSOCKET, p.data, n);
        const char *err = expect_exit_1(true, b.data, b.len);
        assert_non_null(strstr(err, "malformed WEBSOCKET payload in event 1"));
    }
    /* conn 0, for every what */
    for (uint8_t what = 1; what <= 4; what++) {
        uint8_t zero[11] = {0};
        zero[8] = what;
        b.len = 0;
        encode_event(&b, 1, TEST_EVENT_WEBSOCKET, zero, sizeof zero);
        const char *err = expect_exit_1(true, b.data, b.len);
        assert_non_null(strstr(err, "malformed WEBSOCKET payload in event 1"));
    }
    /* An OPEN whose request is cut before its body. */
    p.len = 0;
    assert_int_equal(buf_put_u64(&p, 1), 0);
    assert_int_equal(buf_put_u8(&p, 1), 0);
    encode_ws_open(&p, "/");
    for (size_t n = 9; n < p.len; n += 5) {
        b.len = 0;
        encode_event(&b, 1, TEST_EVENT_WEBSOCKET, p.data, n);
        const char *err = expect_exit_1(true, b.data, b.len);
        assert_non_null(strstr(err, "malformed WEBSOCKET payload in event 1"));
    }
    /* A CLOSED with no code, half a code, a reason of 124 bytes. */
    uint8_t closed[9 + 2 + 124] = {1, 0, 0, 0, 0, 0, 0, 0, 4, 0xe8, 3};
    static const size_t lens[] = {9, 10, sizeof closed};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        memset(closed + 11, 'x', 124);
        b.len = 0;
        encode_event(&b, 1, TEST_EVENT_WEBSOCKET, closed, lens[i]);
        const char *err = expect_exit_1(true, b.data, b.len);
        assert_non_null(strstr(err, "malformed WEBSOCKET payload in event 1"));
    }
    buf_free(&p);
    buf_free(&b);
}

static void spawn_chat(struct child *c)
{
    char path[PATH_MAX + 8];
    program_path(path, sizeof path, "chat");
    spawn_path(c, path);
}

/* The connection ids of the chat tests: two of run 1, one of run 2. */
#define CONN_A 0x0000000100000001ull
#define CONN_B 0x0000000100000002ull
#define CONN_C 0x0000000200000001ull

/* Check that a sent one message to each of the n conns, the same line. */
static void expect_broadcast(const struct answer *a, const uint64_t *conns,
                             size_t n, const char *line)
{
    assert_int_equal(a->n_ws_sends, n);
    for (size_t i = 0; i < n; i++) {
        assert_true(a->ws_conn[i] == conns[i]);
        assert_int_equal(a->ws_opcode[i], 1);
        assert_string_equal(a->ws_text[i], line);
    }
}

/* Check that a sent conn one error line with this code, and nothing else. */
static void expect_ws_error(const struct answer *a, uint64_t conn,
                            const char *code)
{
    char want[64];
    expect(a, FRAME_DONE, false, 0, NULL);
    assert_int_equal(a->n_ws_sends, 1);
    assert_true(a->ws_conn[0] == conn);
    snprintf(want, sizeof want, "{\"error\":{\"code\":\"%s\"", code);
    assert_memory_equal(a->ws_text[0], want, strlen(want));
}

/* The chat room: joins on / only, each text goes to every member with the
 * next sequence number, a new member gets the history, errors go to the
 * sender alone, CLOSED and a new host run drop members, GET / reads the
 * room, and all of it comes back from a snapshot. */
static void test_chat(void **state)
{
    struct child c;
    struct answer a;
    spawn_chat(&c);
    assert_true(boot(&c, 0, NULL, 0));
    expect_get(&c, 1, "/", "{\"next\":1,\"members\":0,\"messages\":[]}\n");

    ws_open(&c, 1, CONN_A, "/", &a);
    expect(&a, FRAME_DONE, true, 101, NULL);
    assert_int_equal(a.n_ws_sends, 0);
    answer_free(&a);
    ws_open(&c, 2, CONN_B, "/other", &a);
    expect_error(&a, 404, "not_found");
    assert_int_equal(a.n_ws_sends, 0);
    answer_free(&a);
    ws_open(&c, 2, CONN_A, "/", &a); /* the host never opens one twice */
    assert_int_equal(a.type, FRAME_REJECT);
    answer_free(&a);

    static const uint64_t a_only[] = {CONN_A}, a_b[] = {CONN_A, CONN_B};
    static const char line1[] = "{\"seq\":1,\"from\":\"0000000100000001\","
                                "\"time_ns\":1002,\"text\":\"hello\"}";
    ws_text(&c, 2, CONN_A, "hello", &a);
    expect(&a, FRAME_DONE, true, 0, NULL);
    expect_broadcast(&a, a_only, 1, line1);
    answer_free(&a);

    /* B joins and gets the history, then both get what B says, escaped. */
    ws_open(&c, 3, CONN_B, "/?name=b", &a);
    expect(&a, FRAME_DONE, true, 101, NULL);
    expect_broadcast(&a, &a_b[1], 1, line1);
    answer_free(&a);
    static const char line2[] =
        "{\"seq\":2,\"from\":\"0000000100000002\",\"time_ns\":1004,"
        "\"text\":\"a \\\"quote\\\"\\u000a\\\\ h\xc3\xa9\"}";
    ws_text(&c, 4, CONN_B, "a \"quote\"\n\\ h\xc3\xa9", &a);
    expect(&a, FRAME_DONE, true, 0, NULL);
    expect_broadcast(&a, a_b, 2, line2);
    answer_free(&a);

    /* What the room does not take: the sender alone hears of it. */
    ws_event(&c, 5, CONN_A, 3, "\x01\x02", 2, &a);
    expect_ws_error(&a, CONN_A, "binary");
    answer_free(&a);
    char big[4098];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ws_text(&c, 5, CONN_B, big, &a);
    expect_ws_error(&a, CONN_B, "too_long");
    answer_free(&a);
    big[4096] = '\0'; /* exactly the most */
    ws_text(&c, 5, CONN_B, big, &a);
    expect(&a, FRAME_DONE, true, 0, NULL);
    assert_int_equal(a.n_ws_sends, 2);
    answer_free(&a);
    ws_text(&c, 6, 0x0000000100000077ull, "who?", &a);
    assert_int_equal(a.type, FRAME_REJECT);
    answer_free(&a);
    ws_event(&c, 6, CONN_A, 9, "", 0, &a);
    assert_int_equal(a.type, FRAME_REJECT);
    answer_free(&a);
    http(&c, 6, "POST", "/", "x", &a);
    expect_error(&a, 405, "method_not_allowed");
    answer_free(&a);
    http(&c, 6, "GET", "/x", NULL, &a);
    expect_error(&a, 404, "not_found");
    answer_free(&a);
    poke(&c, 6, "x", &a);
    assert_int_equal(a.type, FRAME_REJECT);
    answer_free(&a);

    /* The room from a snapshot: the same reads, the same members. */
    struct answer before;
    http(&c, 6, "GET", "/", NULL, &before);
    expect(&before, FRAME_DONE, false, 200, NULL);
    assert_true(before.reuse);
    assert_non_null(
        strstr((const char *)before.body.data,
               "{\"next\":4,\"members\":2,\"messages\":[{\"seq\":1,"));
    struct buf s;
    snapshot(&c, 5, &s);
    stop(&c);
    spawn_chat(&c);
    assert_true(boot(&c, 5, s.data, s.len));
    expect_get(&c, 6, "/", (const char *)before.body.data);
    answer_free(&before);
    struct buf s2;
    snapshot(&c, 5, &s2);
    assert_int_equal(s2.len, s.len);
    assert_memory_equal(s2.data, s.data, s.len);
    buf_free(&s2);
    ws_text(&c, 6, CONN_A, "back", &a);
    expect(&a, FRAME_DONE, true, 0, NULL);
    assert_int_equal(a.n_ws_sends, 2);
    assert_non_null(strstr(a.ws_text[1], "\"seq\":4,"));
    answer_free(&a);

    /* A leaves; its messages stay. A second CLOSED changes nothing. */
    ws_closed(&c, 7, CONN_A, 1000, &a);
    expect(&a, FRAME_DONE, true, 0, NULL);
    assert_int_equal(a.n_effects, 0);
    answer_free(&a);
    ws_closed(&c, 8, CONN_A, 1006, &a);
    expect(&a, FRAME_DONE, false, 0, NULL);
    answer_free(&a);
    ws_text(&c, 8, CONN_A, "gone?", &a);
    assert_int_equal(a.type, FRAME_REJECT);
    answer_free(&a);

    /* A new host run: B went with the old one. C gets the four messages. */
    ws_open(&c, 8, CONN_C, "/", &a);
    expect(&a, FRAME_DONE, true, 101, NULL);
    assert_int_equal(a.n_ws_sends, 4);
    assert_non_null(strstr(a.ws_text[0], "\"seq\":1,"));
    assert_non_null(strstr(a.ws_text[3], "\"seq\":4,"));
    answer_free(&a);
    ws_text(&c, 9, CONN_B, "still here?", &a);
    assert_int_equal(a.type, FRAME_REJECT);
    answer_free(&a);
    ws_closed(&c, 9, CONN_B, 1006, &a);
    expect(&a, FRAME_DONE, false, 0, NULL);
    answer_free(&a);
    http(&c, 9, "GET", "/", NULL, &a);
    assert_non_null(
        strstr((const char *)a.body.data, "{\"next\":5,\"members\":1,"));
    answer_free(&a);
    stop(&c);
    buf_free(&s);
}

/* The room keeps the last 128 messages: a ring that a snapshot keeps in
 * order; snapshots that chat never writes are refused. */
static void test_chat_history(void **state)
{
    struct child c;
    struct answer a;
    spawn_chat(&c);
    assert_true(boot(&c, 0, NULL, 0));
    ws_open(&c, 1, CONN_A, "/", &a);
    answer_free(&a);
    uint64_t number = 2;
    for (int i = 1; i <= 300; i++, number++) {
        char text[16];
        snprintf(text, sizeof text, "m%d", i);
        ws_text(&c, number, CONN_A, text, &a);
        expect(&a, FRAME_DONE, true, 0, NULL);
        answer_free(&a);
    }
    ws_open(&c, number++, CONN_B, "/", &a);
    expect(&a, FRAME_DONE, true, 101, NULL);
    assert_int_equal(a.n_ws_sends, 128);
    assert_non_null(strstr(a.ws_text[0], "\"seq\":173,"));
    assert_non_null(strstr(a.ws_text[0], "\"text\":\"m173\"}"));
    answer_free(&a);
    struct answer before;
    http(&c, number, "GET", "/", NULL, &before);
    assert_non_null(strstr((const char *)before.body.data,
                           "{\"next\":301,\"members\":2,\"messages\":[{"
                           "\"seq\":173,"));
    assert_non_null(
        strstr((const char *)before.body.data, "\"text\":\"m300\"}]}\n"));
    struct buf s;
    snapshot(&c, number - 1, &s);
    stop(&c);
    spawn_chat(&c);
    assert_true(boot(&c, number - 1, s.data, s.len));
    expect_get(&c, number, "/", (const char *)before.body.data);
    answer_free(&before);
    stop(&c);

    /* Every cut of the snapshot, a wrong magic, a byte too many, a gap in
     * the sequence and a member count over the room's size are refused. */
    for (size_t n = 0; n < s.len; n += n < 64 ? 1 : 997) {
        spawn_chat(&c);
        assert_false(boot(&c, 1, s.data, n));
        stop(&c);
    }
    struct buf bad;
    buf_init(&bad);
    for (int k = 0; k < 4; k++) {
        bad.len = 0;
        assert_int_equal(buf_append(&bad, s.data, s.len), 0);
        if (k == 0) {
            bad.data[2] = '9';
        } else if (k == 1) {
            assert_int_equal(buf_put_u8(&bad, 0), 0);
        } else if (k == 2) {
            put_le64(bad.data + 8, 302); /* next: the messages end at 300 */
        } else {
            put_le32(bad.data + 16, 1025);
        }
        spawn_chat(&c);
        assert_false(boot(&c, 1, bad.data, bad.len));
        /* Refused, it is empty and ready for the whole log. */
        expect_get(&c, 1, "/", "{\"next\":1,\"members\":0,\"messages\":[]}\n");
        stop(&c);
    }
    buf_free(&bad);
    buf_free(&s);
}

/* programs/python/echo.py: opens on / only, sends every message back as it
 * came, and keeps nothing. */
static void test_python_echo(void **state)
{
    if (system("python3 -c '' 2>/dev/null") != 0) {
        fail_msg("python3 is required");
    }
    char here[PATH_MAX], path[PATH_MAX + 32];
    snprintf(here, sizeof here, "%s", __FILE__);
    snprintf(path, sizeof path, "%s/../../programs/python/echo.py",
             dirname(here));
    if (access(path, R_OK) != 0) {
        fail_msg("%s is missing", path);
    }
    char *argv[] = {"/usr/bin/env", "python3", path, NULL};
    struct child c;
    struct answer a;
    spawn(&c, argv);
    assert_true(boot(&c, 0, NULL, 0));
    ws_open(&c, 1, CONN_A, "/", &a);
    expect(&a, FRAME_DONE, false, 101, NULL);
    answer_free(&a);
    ws_open(&c, 1, CONN_B, "/x", &a);
    expect(&a, FRAME_DONE, false, 404, NULL);
    answer_free(&a);
    ws_text(&c, 1, CONN_A, "h\xc3\xa9llo", &a);
    expect(&a, FRAME_DONE, false, 0, NULL);
    assert_int_equal(a.n_ws_sends, 1);
    assert_true(a.ws_conn[0] == CONN_A);
    assert_int_equal(a.ws_opcode[0], 1);
    assert_string_equal(a.ws_text[0], "h\xc3\xa9llo");
    answer_free(&a);
    ws_event(&c, 1, CONN_A, 3, "bin", 3, &a);
    assert_int_equal(a.n_ws_sends, 1);
    assert_int_equal(a.ws_opcode[0], 2);
    assert_string_equal(a.ws_text[0], "bin");
    answer_free(&a);
    ws_closed(&c, 1, CONN_A, 1000, &a);
    expect(&a, FRAME_DONE, false, 0, NULL);
    assert_int_equal(a.n_effects, 0);
    answer_free(&a);
    http(&c, 1, "GET", "/", NULL, &a);
    expect(&a, FRAME_DONE, false, 200, NULL);
    assert_true(a.reuse);
    answer_free(&a);
    struct buf s;
    snapshot(&c, 0, &s);
    assert_int_equal(s.len, 0);
    buf_free(&s);
    stop(&c);
}

int main(void)
{
    /* A program that dies must fail a test, not kill it with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    find_programs();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_http),
        cmocka_unit_test(test_kv_poke),
        cmocka_unit_test(test_kv_snapshots),
        cmocka_unit_test(test_kv_alarm_routes),
        cmocka_unit_test(test_kv_timer),
        cmocka_unit_test(test_kv_alarm_snapshots),
        cmocka_unit_test(test_kv_children),
        cmocka_unit_test(test_kv_children_snapshots),
        cmocka_unit_test(test_kv_children_limit),
        cmocka_unit_test(test_kv_lifecycle),
        cmocka_unit_test(test_sdk_rejects_malformed_frames),
        cmocka_unit_test(test_sdk_large_and_pipelined),
        cmocka_unit_test(test_kv_many_keys),
        cmocka_unit_test(test_misbehave),
        cmocka_unit_test(test_python_counter_kinds),
        cmocka_unit_test(test_docs_python_example),
        cmocka_unit_test(test_docs_c_example),
        cmocka_unit_test(test_sdk_children),
        cmocka_unit_test(test_sdk_rejects_malformed_child),
        cmocka_unit_test(test_kv_spawn_access),
        cmocka_unit_test(test_kv_send_and_receipts),
        cmocka_unit_test(test_kv_messages),
        cmocka_unit_test(test_kv_sent_snapshots),
        cmocka_unit_test(test_kv_sent_limit),
        cmocka_unit_test(test_sdk_messages),
        cmocka_unit_test(test_sdk_rejects_malformed_messages),
        cmocka_unit_test(test_share_owner),
        cmocka_unit_test(test_share_child),
        cmocka_unit_test(test_sdk_websocket),
        cmocka_unit_test(test_sdk_rejects_malformed_websocket),
        cmocka_unit_test(test_chat),
        cmocka_unit_test(test_chat_history),
        cmocka_unit_test(test_python_echo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
