/* The HTTP server on a real loop and real sockets, driven from a second
 * thread: replies, keep-alive, pipelining, limits, bad input, replies that
 * come later or after the client left. Each test ends with the loop closed
 * cleanly. */
#include <arpa/inet.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "http/http.h"
#include "lib/err.h"
#include "lib/mem.h"

struct fx {
    uv_loop_t loop;
    uv_async_t done;
    struct http_server *server;
    char endpoint[64];
    int port;
    void (*client)(struct fx *);
    pthread_t thread;
    /* Requests answered later, from a timer. */
    struct http_request *held[8];
    unsigned n_held;
    uv_timer_t timer;
    bool closed;
};

static void reply_later_cb(uv_timer_t *t)
{
    struct fx *x = t->data;
    for (unsigned i = 0; i < x->n_held; i++) {
        http_reply(x->held[i], 200, "text/plain", "later", 5, NULL);
    }
    x->n_held = 0;
}

/* GET /echo answers the body; /later answers after 50 ms; /never is held
 * until the test ends. */
static void handler(struct http_request *req, void *arg)
{
    struct fx *x = arg;
    if (strcmp(req->target, "/later") == 0 || strcmp(req->target, "/never") == 0) {
        x->held[x->n_held++] = req;
        if (strcmp(req->target, "/later") == 0) {
            uv_timer_start(&x->timer, reply_later_cb, 50, 0);
        }
        return;
    }
    char head[128];
    snprintf(head, sizeof head, "X-Method: %s\r\n", req->method);
    http_reply(req, 200, "application/octet-stream", req->body.data,
               req->body.len, head);
}

static void *client_main(void *arg)
{
    struct fx *x = arg;
    x->client(x);
    uv_async_send(&x->done);
    return NULL;
}

static void done_cb(uv_async_t *a)
{
    struct fx *x = a->data;
    pthread_join(x->thread, NULL);
    /* Requests still held are answered after their client is gone. */
    for (unsigned i = 0; i < x->n_held; i++) {
        http_reply(x->held[i], 200, NULL, NULL, 0, NULL);
    }
    x->n_held = 0;
    http_server_close(x->server, NULL, NULL);
    uv_close((uv_handle_t *)&x->done, NULL);
    uv_close((uv_handle_t *)&x->timer, NULL);
}

static void run(void (*client)(struct fx *), size_t max_body)
{
    struct fx x;
    char errmsg[ERRMSG_SIZE];
    memset(&x, 0, sizeof x);
    assert_int_equal(uv_loop_init(&x.loop), 0);
    struct http_server_config cfg = {.max_body = max_body, .max_header = 2048};
    assert_int_equal(http_server_new(&x.server, &x.loop, &cfg, handler, &x), 0);
    assert_int_equal(http_server_listen_tcp(x.server, "127.0.0.1:0", errmsg), 0);
    x.port = http_server_port(x.server);
    assert_true(x.port > 0);
    snprintf(x.endpoint, sizeof x.endpoint, "127.0.0.1:%d", x.port);
    uv_async_init(&x.loop, &x.done, done_cb);
    x.done.data = &x;
    uv_timer_init(&x.loop, &x.timer);
    x.timer.data = &x;
    x.client = client;
    pthread_create(&x.thread, NULL, client_main, &x);
    uv_run(&x.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&x.loop), 0);
}

static int raw_connect(struct fx *x)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)x->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(s, (struct sockaddr *)&a, sizeof a), 0);
    return s;
}

/* Send bytes and read until the server closes or n responses arrived. */
static void raw(struct fx *x, const char *data, size_t len, char *out,
                size_t cap, int until_responses)
{
    int s = raw_connect(x);
    assert_int_equal(send(s, data, len, MSG_NOSIGNAL), (ssize_t)len);
    size_t have = 0;
    struct timeval tv = {5, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    for (;;) {
        ssize_t n = recv(s, out + have, cap - 1 - have, 0);
        if (n <= 0) {
            break;
        }
        have += (size_t)n;
        out[have] = '\0';
        int seen = 0;
        for (char *p = out; (p = strstr(p, "HTTP/1.1 ")) != NULL; p++) {
            seen++;
        }
        if (until_responses > 0 && seen >= until_responses &&
            strstr(out, "\r\n\r\n") != NULL) {
            break;
        }
    }
    out[have] = '\0';
    close(s);
}

static void client_basic(struct fx *x)
{
    struct buf b;
    char err[ERRMSG_SIZE];
    int status = 0;
    buf_init(&b);
    assert_int_equal(http_client_request(x->endpoint, "POST", "/echo", "hello",
                                         5, 5000, &status, &b, err),
                     0);
    assert_int_equal(status, 200);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "hello", 5);
    b.len = 0;
    assert_int_equal(http_client_request(x->endpoint, "GET", "/later", NULL, 0,
                                         5000, &status, &b, err),
                     0);
    assert_memory_equal(b.data, "later", 5);
    buf_free(&b);
}

static void test_request_and_late_reply(void **state)
{
    run(client_basic, 0);
}

static void client_keepalive_pipelined(struct fx *x)
{
    char out[4096];
    const char two[] = "POST /a HTTP/1.1\r\nContent-Length: 1\r\n\r\nA"
                       "POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "2\r\nBC\r\n0\r\n\r\n";
    raw(x, two, sizeof two - 1, out, sizeof out, 2);
    char *first = strstr(out, "\r\n\r\nA");
    char *second = strstr(out, "\r\n\r\nBC");
    assert_non_null(first);
    assert_non_null(second);
    assert_true(first < second); /* replies in request order */
    assert_non_null(strstr(out, "X-Method: POST"));
}

static void test_keepalive_pipelined_chunked(void **state)
{
    run(client_keepalive_pipelined, 0);
}

static void client_limits(struct fx *x)
{
    char out[4096];
    const char big[] = "POST /a HTTP/1.1\r\nContent-Length: 100\r\n\r\n";
    raw(x, big, sizeof big - 1, out, sizeof out, 1);
    assert_non_null(strstr(out, "HTTP/1.1 413"));
    const char chunked[] = "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                           "\r\n20\r\n0123456789abcdef0123456789abcdef\r\n";
    raw(x, chunked, sizeof chunked - 1, out, sizeof out, 1);
    assert_non_null(strstr(out, "HTTP/1.1 413"));
    char headers[4096];
    int n = snprintf(headers, sizeof headers, "GET / HTTP/1.1\r\nX: ");
    memset(headers + n, 'a', 3000);
    memcpy(headers + n + 3000, "\r\n\r\n", 4);
    raw(x, headers, (size_t)n + 3004, out, sizeof out, 1);
    assert_non_null(strstr(out, "HTTP/1.1 431"));
    const char junk[] = "\x01\x02 garbage\r\n\r\n";
    raw(x, junk, sizeof junk - 1, out, sizeof out, 1);
    assert_non_null(strstr(out, "HTTP/1.1 400"));
    /* The server still serves. */
    struct buf b;
    char err[ERRMSG_SIZE];
    int status = 0;
    buf_init(&b);
    assert_int_equal(http_client_request(x->endpoint, "POST", "/echo", "ok", 2,
                                         5000, &status, &b, err),
                     0);
    assert_int_equal(status, 200);
    buf_free(&b);
}

static void test_limits_and_garbage(void **state)
{
    run(client_limits, 16);
}

static void client_leaves_early(struct fx *x)
{
    int s = raw_connect(x);
    const char req[] = "GET /never HTTP/1.1\r\n\r\n";
    assert_int_equal(send(s, req, sizeof req - 1, 0), (ssize_t)(sizeof req - 1));
    usleep(50000);
    close(s);
    usleep(50000);
}

static void test_client_leaves_before_reply(void **state)
{
    run(client_leaves_early, 0);
}

static void client_refused(struct fx *x)
{
    struct buf b;
    char err[ERRMSG_SIZE];
    int status;
    buf_init(&b);
    assert_int_equal(http_client_request("unix:/nonexistent/sock", "GET", "/",
                                         NULL, 0, 1000, &status, &b, err),
                     BERTH_EIO);
    assert_non_null(strstr(err, "cannot connect to unix:/nonexistent/sock"));
    buf_free(&b);
}

static void test_client_errors(void **state)
{
    run(client_refused, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_and_late_reply),
        cmocka_unit_test(test_keepalive_pipelined_chunked),
        cmocka_unit_test(test_limits_and_garbage),
        cmocka_unit_test(test_client_leaves_before_reply),
        cmocka_unit_test(test_client_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
