/* The peer port on a real loop and loopback TCP: calls are answered, all
 * calls to one host share one connection and their answers may come in any
 * order, a host that goes away is noticed while its connection is idle,
 * peers that break the protocol are closed, and the loop closes cleanly. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "consensus/transport.h"
#include "lib/buf.h"
#include "lib/err.h"

struct side {
    struct transport *t;
    struct raft_uv_transport rt;
    bool closed;
};

struct fx {
    uv_loop_t loop;
    char address[32];
    struct side server, client;
    unsigned calls;              /* calls the server was given */
    unsigned replies;            /* replies the client got */
    int status;                  /* of the last one */
    char body[64];               /* of the last one, cut */
    size_t len;                  /* of the last one, whole */
    bool pattern;                /* the last one is all bytes i % 251 */
    struct transport_call *held; /* a "hold" call, not answered yet */
};

/* The reply to "big": the most a reply may hold, more than one read. */
#define FX_BIG TRANSPORT_MAX_BODY

static void fx_handler(void *arg, struct transport_call *call, unsigned kind,
                       uint64_t sender, const uint8_t *body, size_t len)
{
    struct fx *f = arg;
    char reply[64];
    assert_int_equal(kind, TRANSPORT_PROBE);
    f->calls++;
    if (len == 4 && memcmp(body, "hold", 4) == 0) {
        f->held = call;
        return;
    }
    if (len == 3 && memcmp(body, "big", 3) == 0) {
        static uint8_t big[FX_BIG];
        for (size_t i = 0; i < sizeof big; i++) {
            big[i] = (uint8_t)(i % 251);
        }
        transport_reply(call, TRANSPORT_OK, big, sizeof big);
        return;
    }
    int n = snprintf(reply, sizeof reply, "re %.*s", (int)len, body);
    transport_reply(call, TRANSPORT_OK, reply, (size_t)n);
}

static void fx_reply(void *arg, int status, const uint8_t *body, size_t len)
{
    struct fx *f = arg;
    f->replies++;
    f->status = status;
    f->len = len;
    f->pattern = true;
    for (size_t i = 0; i < len; i++) {
        f->pattern = f->pattern && body[i] == (uint8_t)(i % 251);
    }
    snprintf(f->body, sizeof f->body, "%.*s", (int)len, (const char *)body);
}

/* One call's own answer. */
struct slot {
    struct fx *f;
    bool done;
    int status;
    char body[64];
};

static void fx_slot_reply(void *arg, int status, const uint8_t *body,
                          size_t len)
{
    struct slot *s = arg;
    assert_false(s->done);
    s->done = true;
    s->status = status;
    snprintf(s->body, sizeof s->body, "%.*s", (int)len, (const char *)body);
    s->f->replies++;
}

static void fx_slot_call(struct fx *f, struct slot *s, const char *what,
                         unsigned timeout_ms)
{
    s->f = f;
    assert_int_equal(transport_request(f->client.t, f->address, TRANSPORT_PROBE,
                                       what, strlen(what), timeout_ms,
                                       fx_slot_reply, s),
                     0);
}

static void fx_accept(struct raft_uv_transport *rt, raft_id id,
                      const char *address, struct uv_stream_s *stream)
{
    fail_msg("no raft connection was made");
}

static void fx_closed(void *arg)
{
    ((struct side *)arg)->closed = true;
}

static void fx_raft_closed(struct raft_uv_transport *rt)
{
    (void)rt;
}

/* Run the loop until *done, for at most about 5 s. */
static void fx_run_until(struct fx *f, const bool *done)
{
    for (int i = 0; i < 5000 && !*done; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_true(*done);
}

static void fx_run_replies(struct fx *f, unsigned n)
{
    for (int i = 0; i < 5000 && f->replies < n; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(f->replies, n);
}

static void fx_call(struct fx *f, const char *what)
{
    assert_int_equal(transport_request(f->client.t, f->address, TRANSPORT_PROBE,
                                       what, strlen(what), 2000, fx_reply, f),
                     0);
}

static const uint8_t fx_secret[TRANSPORT_SECRET_SIZE] =
    "the cluster secret, 32 bytes...";

static int setup(void **state)
{
    struct fx *f = test_malloc(sizeof *f);
    char errmsg[ERRMSG_SIZE];
    memset(f, 0, sizeof *f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    /* A port nobody holds now. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);
    snprintf(f->address, sizeof f->address, "127.0.0.1:%d", ntohs(a.sin_port));
    assert_int_equal(transport_init(&f->server.t, &f->server.rt, &f->loop,
                                    f->address, fx_handler, NULL, f, errmsg),
                     0);
    assert_int_equal(f->server.rt.listen(&f->server.rt, fx_accept), 0);
    assert_int_equal(transport_init(&f->client.t, &f->client.rt, &f->loop, NULL,
                                    fx_handler, NULL, f, errmsg),
                     0);
    transport_set_secret(f->server.t, fx_secret);
    transport_set_secret(f->client.t, fx_secret);
    *state = f;
    return 0;
}

static void fx_close_server(struct fx *f)
{
    if (f->server.t == NULL) {
        return;
    }
    f->server.rt.close(&f->server.rt, fx_raft_closed);
    transport_close(f->server.t, fx_closed, &f->server);
    fx_run_until(f, &f->server.closed);
    f->server.t = NULL;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    fx_close_server(f);
    transport_close(f->client.t, fx_closed, &f->client);
    fx_run_until(f, &f->client.closed);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    test_free(f);
    return 0;
}

/* Calls one after another to one host share one connection. */
static void test_answered_connection_carries_the_next_call(void **state)
{
    struct fx *f = *state;
    fx_call(f, "one");
    fx_run_replies(f, 1);
    assert_int_equal(f->status, TRANSPORT_OK);
    assert_string_equal(f->body, "re one");
    for (unsigned i = 2; i <= 20; i++) {
        fx_call(f, "again");
        fx_run_replies(f, i);
        assert_int_equal(f->status, TRANSPORT_OK);
        assert_string_equal(f->body, "re again");
    }
    assert_int_equal(f->calls, 20);
    assert_int_equal(transport_dials(f->client.t), 1);
    assert_int_equal(transport_refused(f->server.t), 0);
}

/* Calls at once to one host share one connection, each answered with its
 * own reply. */
static void test_calls_at_once_share_a_connection(void **state)
{
    struct fx *f = *state;
    struct slot slots[50];
    memset(slots, 0, sizeof slots);
    for (int i = 0; i < 50; i++) {
        char what[16];
        snprintf(what, sizeof what, "c%d", i);
        fx_slot_call(f, &slots[i], what, 2000);
    }
    fx_run_replies(f, 50);
    for (int i = 0; i < 50; i++) {
        char want[16];
        snprintf(want, sizeof want, "re c%d", i);
        assert_int_equal(slots[i].status, TRANSPORT_OK);
        assert_string_equal(slots[i].body, want);
    }
    assert_int_equal(f->calls, 50);
    assert_int_equal(transport_dials(f->client.t), 1);
}

/* An answer held back does not hold back the answers after it, once the
 * connection has had its first answer (until then the calls after the
 * first wait: should the peer not be one of this cluster's, they were never
 * sent). */
static void test_answers_come_in_any_order(void **state)
{
    struct fx *f = *state;
    struct slot warm = {0}, held = {0}, quick = {0};
    fx_slot_call(f, &warm, "warm", 2000);
    fx_run_replies(f, 1);
    fx_slot_call(f, &held, "hold", 2000);
    fx_slot_call(f, &quick, "quick", 2000);
    fx_run_replies(f, 2);
    assert_true(quick.done);
    assert_string_equal(quick.body, "re quick");
    assert_false(held.done);
    assert_non_null(f->held);
    transport_reply(f->held, TRANSPORT_OK, "late", 4);
    fx_run_replies(f, 3);
    assert_string_equal(held.body, "late");
    assert_int_equal(transport_dials(f->client.t), 1);
}

/* A call past its deadline fails; its answer, when it comes, is dropped,
 * and the connection goes on carrying calls. */
static void test_a_late_answer_is_dropped(void **state)
{
    struct fx *f = *state;
    struct slot warm = {0}, held = {0}, next = {0};
    fx_slot_call(f, &warm, "warm", 2000);
    fx_run_replies(f, 1);
    fx_slot_call(f, &held, "hold", 100);
    fx_run_replies(f, 2);
    assert_int_equal(held.status, BERTH_ETIMEOUT);
    transport_reply(f->held, TRANSPORT_OK, "late", 4);
    fx_slot_call(f, &next, "next", 2000);
    fx_run_replies(f, 3);
    assert_string_equal(next.body, "re next");
    assert_int_equal(transport_dials(f->client.t), 1);
}

/* Calls to a host nobody is at fail as never sent, the first as well as
 * those waiting behind it. */
static void test_calls_to_nobody_were_not_sent(void **state)
{
    struct fx *f = *state;
    struct slot a = {0}, b = {0};
    fx_close_server(f);
    fx_slot_call(f, &a, "a", 2000);
    fx_slot_call(f, &b, "b", 2000);
    fx_run_replies(f, 2);
    assert_int_equal(a.status, BERTH_ENOCONNECT);
    assert_int_equal(b.status, BERTH_ENOCONNECT);
}

/* A transport that closes answers the calls it serves; the handler's late
 * reply only frees the call. */
static void test_closing_answers_calls_served(void **state)
{
    struct fx *f = *state;
    struct slot held = {0};
    fx_slot_call(f, &held, "hold", 2000);
    for (int i = 0; i < 3000 && f->held == NULL; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_non_null(f->held);
    fx_close_server(f);
    fx_run_replies(f, 1);
    assert_int_equal(held.status, TRANSPORT_UNAVAILABLE);
    assert_string_equal(held.body, "closing");
    transport_reply(f->held, TRANSPORT_OK, "late", 4);
}

/* A host that stops closes its kept connections; the dialer notices while
 * idle, so its next call dials anew and learns that nobody listens. */
static void test_a_host_gone_is_noticed_while_idle(void **state)
{
    struct fx *f = *state;
    fx_call(f, "one");
    fx_run_replies(f, 1);
    fx_close_server(f);
    for (int i = 0; i < 50; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    fx_call(f, "two");
    fx_run_replies(f, 2);
    assert_int_equal(f->status, BERTH_ENOCONNECT);
    assert_int_equal(transport_dials(f->client.t), 2);
}

/* A reply bigger than what one read takes whole arrives whole, on a new
 * connection and on a kept one. */
static void test_big_replies_arrive_whole(void **state)
{
    struct fx *f = *state;
    unsigned n = 0;
    for (int i = 0; i < 3; i++) {
        fx_call(f, "big");
        fx_run_replies(f, ++n);
        assert_int_equal(f->status, TRANSPORT_OK);
        assert_int_equal(f->len, FX_BIG);
        assert_true(f->pattern);
        fx_call(f, "small");
        fx_run_replies(f, ++n);
        assert_string_equal(f->body, "re small");
    }
    assert_int_equal(transport_dials(f->client.t), 1);
}

/* A peer that breaks the protocol, as a thread on a blocking socket. */
struct rogue {
    int fd;      /* listening, or the connection for a rogue dialer */
    bool dialer; /* send calls; otherwise answer one call */
    bool early;  /* as dialer: send bytes before the answer */
    int got_eof; /* the dialer saw the connection closed, unanswered */
    pthread_t thread;
};

static bool rogue_read(int fd, uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r <= 0) {
            return false;
        }
        p += r;
        n -= (size_t)r;
    }
    return true;
}

static size_t rogue_request(uint8_t *out, const char *body, uint32_t call)
{
    size_t len = strlen(body);
    memset(out, 0, 44);
    memcpy(out, "berthp03", 8);
    put_le32(out + 8 + TRANSPORT_CLUSTER_SIZE, TRANSPORT_PROBE);
    put_le32(out + 8 + TRANSPORT_CLUSTER_SIZE + 4, (uint32_t)len);
    out[8 + TRANSPORT_CLUSTER_SIZE + 8] = 7; /* sender 7 */
    put_le32(out + 8 + TRANSPORT_CLUSTER_SIZE + 16, call);
    memcpy(out + 44, body, len);
    return 44 + len;
}

static void rogue_reply(uint8_t *out, uint32_t call, const char *body)
{
    memcpy(out, "berthp03", 8);
    put_le32(out + 8, TRANSPORT_OK);
    put_le32(out + 12, (uint32_t)strlen(body));
    put_le32(out + 16, call);
    memcpy(out + 20, body, strlen(body));
}

/* Read one reply into body (NUL-terminated); returns its call id. */
static uint32_t rogue_read_reply(int fd, char *body, size_t size)
{
    uint8_t head[20];
    assert_true(rogue_read(fd, head, sizeof head));
    assert_memory_equal(head, "berthp03", 8);
    uint32_t len = get_le32(head + 12);
    assert_true(len < size);
    assert_true(rogue_read(fd, (uint8_t *)body, len));
    body[len] = '\0';
    return get_le32(head + 16);
}

static void *rogue_main(void *arg)
{
    struct rogue *r = arg;
    if (r->early) {
        /* A call, then bytes that are no message while it is served. */
        uint8_t req[128], junk[64], reply[64];
        size_t n = rogue_request(req, "hold", 1);
        assert_int_equal(write(r->fd, req, n), (ssize_t)n);
        usleep(50 * 1000);
        memset(junk, 'j', sizeof junk);
        assert_int_equal(write(r->fd, junk, sizeof junk), (ssize_t)sizeof junk);
        r->got_eof = read(r->fd, reply, sizeof reply) == 0;
        close(r->fd);
        return NULL;
    }
    if (r->dialer) {
        /* One call and its answer, then two calls in one write: each is
         * answered, with its call's id. */
        uint8_t req[128], two[256];
        char body[64];
        size_t n = rogue_request(req, "x", 1);
        assert_int_equal(write(r->fd, req, n), (ssize_t)n);
        assert_int_equal(rogue_read_reply(r->fd, body, sizeof body), 1);
        assert_string_equal(body, "re x");
        n = rogue_request(two, "y", 7);
        n += rogue_request(two + n, "z", 9);
        assert_int_equal(write(r->fd, two, n), (ssize_t)n);
        for (int i = 0; i < 2; i++) {
            uint32_t id = rogue_read_reply(r->fd, body, sizeof body);
            assert_string_equal(body, id == 7 ? "re y" : "re z");
            assert_true(id == 7 || id == 9);
        }
        r->got_eof = true;
        close(r->fd);
        return NULL;
    }
    int c = accept(r->fd, NULL, NULL);
    assert_true(c >= 0);
    uint8_t head[44], body[64];
    assert_true(rogue_read(c, head, sizeof head));
    uint32_t len = get_le32(head + 8 + TRANSPORT_CLUSTER_SIZE + 4);
    uint32_t call = get_le32(head + 8 + TRANSPORT_CLUSTER_SIZE + 16);
    assert_true(len <= sizeof body);
    assert_true(rogue_read(c, body, len));
    /* An answer to no call, the answer, and bytes that are no message, in
     * one write. */
    uint8_t out[2 * (20 + 2) + 20];
    rogue_reply(out, call + 100, "no");
    rogue_reply(out + 22, call, "ok");
    memset(out + 44, 'x', 20);
    assert_int_equal(write(c, out, sizeof out), (ssize_t)sizeof out);
    /* The dialer closes. */
    r->got_eof = read(c, body, sizeof body) == 0;
    close(c);
    close(r->fd);
    return NULL;
}

/* An answer to no call waiting is dropped; bytes that are no message
 * close the connection. */
static void test_bytes_that_are_no_answer_close_the_connection(void **state)
{
    struct fx *f = *state;
    struct rogue r = {.fd = socket(AF_INET, SOCK_STREAM, 0)};
    transport_set_plaintext(f->client.t, true); /* the rogue's is */
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(r.fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(r.fd, 1), 0);
    assert_int_equal(getsockname(r.fd, (struct sockaddr *)&a, &alen), 0);
    char address[32];
    snprintf(address, sizeof address, "127.0.0.1:%d", ntohs(a.sin_port));
    assert_int_equal(pthread_create(&r.thread, NULL, rogue_main, &r), 0);
    assert_int_equal(transport_request(f->client.t, address, TRANSPORT_PROBE,
                                       "q", 1, 2000, fx_reply, f),
                     0);
    fx_run_replies(f, 1);
    assert_int_equal(f->status, TRANSPORT_OK);
    assert_string_equal(f->body, "ok");
    for (int i = 0; i < 3000 && transport_refused(f->client.t) == 0; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    pthread_join(r.thread, NULL);
    assert_true(r.got_eof);
}

/* Connect r to the fixture's listener and start its thread. */
static void rogue_dial(struct fx *f, struct rogue *r)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    int port = 0;
    sscanf(f->address, "127.0.0.1:%d", &port);
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(r->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(pthread_create(&r->thread, NULL, rogue_main, r), 0);
}

/* Calls pipelined on a connection are each answered with their id. */
static void test_calls_pipelined_are_each_answered(void **state)
{
    struct fx *f = *state;
    struct rogue r = {.fd = socket(AF_INET, SOCK_STREAM, 0), .dialer = true};
    transport_set_plaintext(f->server.t, true); /* the rogue's is */
    rogue_dial(f, &r);
    for (int i = 0; i < 3000 && !r.got_eof; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    pthread_join(r.thread, NULL);
    assert_int_equal(f->calls, 3);
    assert_true(r.got_eof);
}

/* Bytes that are no message, sent while a call is served, close the
 * connection: the answer, when it comes, goes nowhere. */
static void test_bytes_during_a_call_close_the_connection(void **state)
{
    struct fx *f = *state;
    struct rogue r = {.fd = socket(AF_INET, SOCK_STREAM, 0), .early = true};
    transport_set_plaintext(f->server.t, true); /* the rogue's is */
    rogue_dial(f, &r);
    for (int i = 0; i < 3000 && f->held == NULL; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_non_null(f->held);
    for (int i = 0; i < 200; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    transport_reply(f->held, TRANSPORT_OK, "late", 4);
    for (int i = 0; i < 200; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    pthread_join(r.thread, NULL);
    assert_true(r.got_eof);
}

/* A dialer with another cluster secret is refused, and says so; nothing
 * of its call reaches the handler. */
static void test_a_wrong_secret_is_refused(void **state)
{
    struct fx *f = *state;
    static const uint8_t other[TRANSPORT_SECRET_SIZE] =
        "another secret, of 32 bytes.....";
    transport_set_secret(f->client.t, other);
    fx_call(f, "secret?");
    fx_run_replies(f, 1);
    assert_int_equal(f->status, BERTH_EREJECTED);
    assert_int_equal(f->calls, 0);
    for (int i = 0; i < 2000 && transport_refused(f->server.t) == 0; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(transport_refused(f->server.t), 1);
}

/* A plaintext request of the old wire, or garbage, to an encrypted
 * listener gets nothing: the connection is closed and counted. */
static void test_plaintext_to_an_encrypted_port_is_closed(void **state)
{
    struct fx *f = *state;
    for (int round = 0; round < 2; round++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET};
        int port = 0;
        sscanf(f->address, "127.0.0.1:%d", &port);
        a.sin_port = htons((uint16_t)port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
        uint8_t req[128];
        size_t n = rogue_request(req, "x", 1);
        memcpy(req, "berthp02", 8);
        if (round == 1) {
            n = (size_t)snprintf((char *)req, sizeof req,
                                 "GET / HTTP/1.0\r\n\r\n");
        }
        assert_int_equal(write(fd, req, n), (ssize_t)n);
        ssize_t got = 1;
        for (int i = 0; i < 3000; i++) {
            uv_run(&f->loop, UV_RUN_NOWAIT);
            got = recv(fd, req, sizeof req, MSG_DONTWAIT);
            if (got >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                break;
            }
            usleep(1000);
        }
        /* Closed, with nothing said (reset: its bytes were not read). */
        assert_true(got == 0 || (got < 0 && errno == ECONNRESET));
        close(fd);
        assert_int_equal(transport_refused(f->server.t), (uint64_t)round + 1);
    }
    assert_int_equal(f->calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_answered_connection_carries_the_next_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls_at_once_share_a_connection,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_answers_come_in_any_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_late_answer_is_dropped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_calls_to_nobody_were_not_sent,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_closing_answers_calls_served,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_host_gone_is_noticed_while_idle,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_replies_arrive_whole, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_bytes_that_are_no_answer_close_the_connection, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_calls_pipelined_are_each_answered,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_bytes_during_a_call_close_the_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_wrong_secret_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_plaintext_to_an_encrypted_port_is_closed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
