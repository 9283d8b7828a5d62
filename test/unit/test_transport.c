/* The peer port on a real loop and loopback TCP: calls are answered, an
 * answered connection carries the next call to the same host, a host that
 * goes away is noticed while its connection is idle, and the loop closes
 * cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "consensus/transport.h"
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
    unsigned calls;   /* calls the server was given */
    unsigned replies; /* replies the client got */
    int status;       /* of the last one */
    char body[64];    /* of the last one */
};

static void fx_handler(void *arg, struct transport_call *call, unsigned kind,
                       uint64_t sender, const uint8_t *body, size_t len)
{
    struct fx *f = arg;
    char reply[64];
    assert_int_equal(kind, TRANSPORT_PROBE);
    f->calls++;
    int n = snprintf(reply, sizeof reply, "re %.*s", (int)len, body);
    transport_reply(call, TRANSPORT_OK, reply, (size_t)n);
}

static void fx_reply(void *arg, int status, const uint8_t *body, size_t len)
{
    struct fx *f = arg;
    f->replies++;
    f->status = status;
    snprintf(f->body, sizeof f->body, "%.*s", (int)len, (const char *)body);
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

/* Two calls at once need two connections; both are kept after. */
static void test_calls_at_once_each_take_a_connection(void **state)
{
    struct fx *f = *state;
    fx_call(f, "a");
    fx_call(f, "b");
    fx_run_replies(f, 2);
    assert_int_equal(transport_dials(f->client.t), 2);
    fx_call(f, "c");
    fx_call(f, "d");
    fx_run_replies(f, 4);
    assert_int_equal(transport_dials(f->client.t), 2);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_answered_connection_carries_the_next_call, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_calls_at_once_each_take_a_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_host_gone_is_noticed_while_idle,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
