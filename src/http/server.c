/* The HTTP server: llhttp parses, libuv moves bytes.
 *
 * A connection parses one request at a time. When a request is complete the
 * parser is paused (on_message_complete returns HPE_PAUSED), the handler is
 * called outside of llhttp, and the bytes after the request wait in the
 * connection's input buffer until http_reply() resumes parsing. A
 * connection whose socket closes while its request awaits a reply becomes a
 * "dead" connection: its memory stays until that reply, which is dropped. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <llhttp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http/http.h"
#include "http/internal.h"
#include "lib/err.h"
#include "lib/mem.h"

struct http_conn;

struct http_server {
    uv_loop_t *loop;
    struct http_server_config cfg;
    http_handler_cb cb;
    void *arg;
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } listener;
    bool listening;
    bool is_tcp;
    bool closing;
    unsigned open_handles; /* listener + connections' handles */
    struct http_conn *conns;
    unsigned n_conns;
    http_close_cb close_cb;
    void *close_arg;
};

struct http_conn {
    struct http_server *server;
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
        uv_stream_t stream;
    } h;
    uv_timer_t timer;
    int open_handles;
    struct http_parser p;
    struct http_request *pending; /* handed to the handler, not answered */
    bool reading;
    bool closing;
    bool close_after_reply;
    bool in_drive; /* http__drive is on the stack */
    struct http_conn *prev, *next;
};

struct http__write {
    uv_write_t req;
    struct http_conn *conn;
    uint8_t *data;
    bool close;
};

static void http__conn_unlink(struct http_conn *c)
{
    struct http_server *s = c->server;
    if (c->prev || s->conns == c) {
        s->n_conns--;
    }
    if (c->prev) {
        c->prev->next = c->next;
    } else if (s->conns == c) {
        s->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    c->prev = c->next = NULL;
}

static void http__server_maybe_closed(struct http_server *s)
{
    if (s->closing && s->open_handles == 0) {
        http_close_cb cb = s->close_cb;
        void *arg = s->close_arg;
        mem_free(s);
        if (cb) {
            cb(NULL, arg);
        }
    }
}

static void http__conn_free(struct http_conn *c)
{
    http_parser_free(&c->p);
    mem_free(c);
}

static void http__conn_handle_closed(uv_handle_t *h)
{
    struct http_conn *c = h->data;
    struct http_server *s = c->server;
    c->open_handles--;
    s->open_handles--;
    if (c->open_handles == 0) {
        /* With a request still out, the connection lives on until its
         * reply; the server no longer knows it. */
        c->server = NULL;
        if (c->pending == NULL) {
            http__conn_free(c);
        }
    }
    http__server_maybe_closed(s);
}

static void http__conn_close(struct http_conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    http__conn_unlink(c);
    uv_close((uv_handle_t *)&c->h.stream, http__conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, http__conn_handle_closed);
}

static void http__timer_cb(uv_timer_t *t)
{
    struct http_conn *c = t->data;
    if (c->pending == NULL) {
        http__conn_close(c);
    }
}

static void http__touch(struct http_conn *c)
{
    unsigned ms = c->server->cfg.idle_timeout_ms;
    uv_timer_start(&c->timer, http__timer_cb, ms, 0);
}

static void http__write_cb(uv_write_t *req, int status)
{
    struct http__write *w = req->data;
    struct http_conn *c = w->conn;
    mem_free(w->data);
    bool close = w->close || status != 0;
    mem_free(w);
    if (close && !c->closing) {
        http__conn_close(c);
    }
}

static int http__write(struct http_conn *c, struct buf *b, bool close)
{
    struct http__write *w = mem_alloc(sizeof *w);
    if (w == NULL) {
        buf_free(b);
        http__conn_close(c);
        return BERTH_ENOMEM;
    }
    w->conn = c;
    w->data = b->data;
    w->close = close;
    w->req.data = w;
    uv_buf_t ub = uv_buf_init((char *)b->data, (unsigned)b->len);
    buf_init(b);
    int rv = uv_write(&w->req, &c->h.stream, &ub, 1, http__write_cb);
    if (rv != 0) {
        mem_free(w->data);
        mem_free(w);
        http__conn_close(c);
        return BERTH_EIO;
    }
    return 0;
}

static int http__format(struct buf *b, int status, const char *ctype,
                        const void *body, size_t len, const char *extra,
                        bool close)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n%s%s%s%s%s\r\n",
                     status, http_status_text(status), len,
                     ctype ? "Content-Type: " : "", ctype ? ctype : "",
                     ctype ? "\r\n" : "", close ? "Connection: close\r\n" : "",
                     extra ? extra : "");
    if (n < 0 || (size_t)n >= sizeof head) {
        return BERTH_EINVAL;
    }
    int rv = buf_reserve(b, (size_t)n + len);
    if (rv != 0) {
        return rv;
    }
    buf_append(b, head, (size_t)n);
    buf_append(b, body, len);
    return 0;
}

/* Answer a request that failed to parse, and close. */
static void http__fail(struct http_conn *c, int status, const char *message)
{
    struct buf b;
    buf_init(&b);
    char body[256];
    int n = snprintf(body, sizeof body,
                     "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n",
                     status == 400 ? "invalid" : "too_big", message);
    if (http__format(&b, status, "application/json", body, (size_t)n, NULL,
                     true) != 0) {
        buf_free(&b);
        http__conn_close(c);
        return;
    }
    uv_read_stop(&c->h.stream);
    c->reading = false;
    http__write(c, &b, true);
}

static void http__alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct http_conn *c = h->data;
    struct buf *in = &c->p.in;
    if (buf_reserve(in, 64 * 1024) != 0) {
        b->base = NULL;
        b->len = 0;
        return;
    }
    b->base = (char *)in->data + in->len;
    b->len = in->cap - in->len;
}

static void http__drive_loop(struct http_conn *c);

/* Parse what is buffered; dispatch complete requests one at a time. */
static void http__drive(struct http_conn *c)
{
    /* A handler that replies at once re-enters through http_reply; the loop
     * below then simply goes on, so pipelined requests cost no stack. */
    if (c->in_drive) {
        return;
    }
    c->in_drive = true;
    http__drive_loop(c);
    c->in_drive = false;
}

static void http__drive_loop(struct http_conn *c)
{
    while (!c->closing && c->pending == NULL) {
        struct http_request *req = NULL;
        int status = 0;
        const char *why = NULL;
        int rv = http_parser_feed(&c->p, &req, &status, &why);
        if (rv == HTTP_PARSE_ERROR) {
            http__fail(c, status, why);
            return;
        }
        if (rv == HTTP_PARSE_CONTINUE_100) {
            struct buf b;
            buf_init(&b);
            if (buf_append(&b, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0) {
                http__write(c, &b, false);
            }
            continue;
        }
        if (rv == HTTP_PARSE_MORE) {
            return;
        }
        /* A complete request: stop reading until it is answered. */
        c->pending = req;
        c->close_after_reply = !c->p.keep_alive;
        req->conn_ = c;
        uv_timer_stop(&c->timer);
        c->server->cb(req, c->server->arg);
    }
}

static void http__read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct http_conn *c = st->data;
    if (n == UV_ENOBUFS) {
        http__conn_close(c);
        return;
    }
    if (n < 0) {
        /* EOF or error. A request in progress cannot complete; one awaiting
         * its reply keeps its memory until then. */
        uv_read_stop(st);
        c->reading = false;
        http__conn_close(c);
        return;
    }
    c->p.in.len += (size_t)n;
    http__touch(c);
    if (c->pending != NULL) {
        /* Pipelined bytes wait; limit them so a client cannot make us
         * buffer without bound while a request is served. */
        if (c->p.in.len > c->server->cfg.max_body + c->server->cfg.max_header) {
            uv_read_stop(st);
            c->reading = false;
        }
        return;
    }
    http__drive(c);
}

static void http__start_read(struct http_conn *c)
{
    c->reading = true;
    uv_read_start(&c->h.stream, http__alloc_cb, http__read_cb);
}

static void http__connection_cb(uv_stream_t *listener, int status)
{
    struct http_server *s = listener->data;
    if (status != 0 || s->closing) {
        return;
    }
    struct http_conn *c = mem_calloc(1, sizeof *c);
    if (c == NULL) {
        return;
    }
    c->server = s;
    if (s->is_tcp) {
        uv_tcp_init(s->loop, &c->h.tcp);
    } else {
        uv_pipe_init(s->loop, &c->h.pipe, 0);
    }
    uv_timer_init(s->loop, &c->timer);
    c->h.stream.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    s->open_handles += 2;
    c->next = s->conns;
    if (s->conns) {
        s->conns->prev = c;
    }
    s->conns = c;
    s->n_conns++;
    if (http_parser_init(&c->p, s->cfg.max_body, s->cfg.max_header) != 0 ||
        uv_accept(listener, &c->h.stream) != 0) {
        http__conn_close(c);
        return;
    }
    if (s->is_tcp) {
        uv_tcp_nodelay(&c->h.tcp, 1);
    }
    http__touch(c);
    /* http__read_cb is installed by http__start_read; drive uses it too. */
    http__start_read(c);
}

int http_server_new(struct http_server **out, uv_loop_t *loop,
                    const struct http_server_config *cfg, http_handler_cb cb,
                    void *arg)
{
    struct http_server *s = mem_calloc(1, sizeof *s);
    if (s == NULL) {
        return BERTH_ENOMEM;
    }
    s->loop = loop;
    s->cfg = *cfg;
    if (s->cfg.max_body == 0) {
        s->cfg.max_body = 8u * 1024 * 1024;
    }
    if (s->cfg.max_header == 0) {
        s->cfg.max_header = 64 * 1024;
    }
    if (s->cfg.idle_timeout_ms == 0) {
        s->cfg.idle_timeout_ms = 60000;
    }
    s->cb = cb;
    s->arg = arg;
    *out = s;
    return 0;
}

static void http__listener_closed(uv_handle_t *h)
{
    struct http_server *s = h->data;
    s->open_handles--;
    http__server_maybe_closed(s);
}

static int http__parse_hostport(const char *hostport, struct sockaddr_storage *sa)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (colon == NULL || colon == hostport) {
        return BERTH_EINVAL;
    }
    size_t hl = (size_t)(colon - hostport);
    const char *h = hostport;
    if (hostport[0] == '[' && colon[-1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl >= sizeof host) {
        return BERTH_EINVAL;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || colon[1] == '\0' || port < 0 || port > 65535) {
        return BERTH_EINVAL;
    }
    if (strcmp(host, "localhost") == 0) {
        snprintf(host, sizeof host, "127.0.0.1");
    }
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)sa) == 0 ||
        uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)sa) == 0) {
        return 0;
    }
    return BERTH_EINVAL;
}

int http_server_listen_tcp(struct http_server *s, const char *hostport,
                           char *errmsg)
{
    struct sockaddr_storage sa;
    if (s->listening) {
        err_printf(errmsg, "already listening");
        return BERTH_EINVAL;
    }
    if (http__parse_hostport(hostport, &sa) != 0) {
        err_printf(errmsg, "%s is not HOST:PORT with a numeric host", hostport);
        return BERTH_EINVAL;
    }
    uv_tcp_init(s->loop, &s->listener.tcp);
    s->listener.tcp.data = s;
    s->is_tcp = true;
    s->listening = true;
    s->open_handles++;
    int rv = uv_tcp_bind(&s->listener.tcp, (struct sockaddr *)&sa, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&s->listener.tcp, 4096,
                       http__connection_cb);
    }
    if (rv != 0) {
        err_printf(errmsg, "cannot listen on %s: %s", hostport,
                   uv_strerror(rv));
        return BERTH_EIO;
    }
    return 0;
}

int http_server_listen_unix(struct http_server *s, const char *path,
                            char *errmsg)
{
    if (s->listening) {
        err_printf(errmsg, "already listening");
        return BERTH_EINVAL;
    }
    /* A socket file left by a killed host would make bind fail. */
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(path);
    }
    uv_pipe_init(s->loop, &s->listener.pipe, 0);
    s->listener.pipe.data = s;
    s->is_tcp = false;
    s->listening = true;
    s->open_handles++;
    int rv = uv_pipe_bind(&s->listener.pipe, path);
    if (rv == 0) {
        chmod(path, 0600);
        rv = uv_listen((uv_stream_t *)&s->listener.pipe, 4096,
                       http__connection_cb);
    }
    if (rv != 0) {
        err_printf(errmsg, "cannot listen on %s: %s", path, uv_strerror(rv));
        return BERTH_EIO;
    }
    return 0;
}

unsigned http_server_connections(const struct http_server *s)
{
    return s->n_conns;
}

int http_server_port(struct http_server *s)
{
    struct sockaddr_storage sa;
    int len = sizeof sa;
    if (!s->listening || !s->is_tcp ||
        uv_tcp_getsockname(&s->listener.tcp, (struct sockaddr *)&sa, &len) !=
            0) {
        return 0;
    }
    if (sa.ss_family == AF_INET) {
        return ntohs(((struct sockaddr_in *)&sa)->sin_port);
    }
    return ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
}

void http_server_close(struct http_server *s, http_close_cb cb, void *arg)
{
    s->closing = true;
    s->close_cb = cb;
    s->close_arg = arg;
    if (s->listening) {
        uv_close((uv_handle_t *)&s->listener, http__listener_closed);
    }
    while (s->conns != NULL) {
        http__conn_close(s->conns);
    }
    if (s->open_handles == 0) {
        /* Nothing was ever opened; finish on the spot. */
        s->open_handles = 0;
        http__server_maybe_closed(s);
    }
}

int http_reply(struct http_request *req, int status, const char *content_type,
               const void *body, size_t len, const char *extra_headers)
{
    struct http_conn *c = req->conn_;
    c->pending = NULL;
    if (c->closing) {
        http_request_free(req);
        if (c->open_handles == 0) {
            http__conn_free(c);
        }
        return BERTH_ESHUTDOWN;
    }
    struct buf b;
    buf_init(&b);
    bool close = c->close_after_reply;
    /* Format before freeing req: body may point into it. */
    int rv = http__format(&b, status, content_type, body, len, extra_headers,
                          close);
    http_request_free(req);
    if (rv != 0) {
        buf_free(&b);
        http__conn_close(c);
        return rv;
    }
    rv = http__write(c, &b, close);
    if (rv != 0 || close) {
        return rv;
    }
    http__touch(c);
    /* Serve what the client pipelined meanwhile. */
    http__drive(c);
    if (!c->closing && !c->reading) {
        http__start_read(c);
    }
    return 0;
}

const char *http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 507: return "Insufficient Storage";
    default: return "Unknown";
    }
}
