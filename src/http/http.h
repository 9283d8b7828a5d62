/* A small HTTP/1.1 server on a libuv loop, and a blocking client.
 *
 * The server parses with llhttp and hands each complete request to one
 * handler. The handler answers at any later time with http_reply(); until
 * then the connection reads no further request, so replies leave in request
 * order. Limits are enforced here: a malformed request is answered 400 and
 * the connection closed; a body over max_body is answered 413 and the
 * connection closed; a header block over max_header is answered 431. The
 * server serves both the front door (TCP) and the admin API (TCP or a Unix
 * socket). */
#ifndef BERTH_HTTP_HTTP_H
#define BERTH_HTTP_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "lib/buf.h"
#include "lib/err.h"

struct http_server;

#define HTTP_MAX_HEADERS 64

struct http_header {
    char *name;  /* lower-cased, NUL-terminated */
    char *value; /* NUL-terminated */
};

/* One complete request. It is owned by the server and stays valid until
 * http_reply() is called on it, even if the client goes away meanwhile (the
 * reply is then dropped). */
struct http_request {
    char *method; /* "GET", NUL-terminated */
    char *target; /* the raw request target: path and query */
    struct http_header headers[HTTP_MAX_HEADERS];
    unsigned n_headers;
    struct buf body;
    void *data;  /* free for the handler's use */
    void *conn_; /* private to the server */
};

/* Called once per complete request, on the loop thread. */
typedef void (*http_handler_cb)(struct http_request *req, void *arg);

/* Called when a server has closed all its handles. */
typedef void (*http_close_cb)(struct http_server *s, void *arg);

struct http_server_config {
    size_t max_body;   /* bytes; larger bodies get 413. 0 means 8 MiB. */
    size_t max_header; /* bytes of request line plus headers; 0 means 64 KiB */
    unsigned idle_timeout_ms; /* close an idle keep-alive connection; 0: 60 s */
};

/* Create a server on loop. It owns nothing of cfg after return. Returns 0 or
 * BERTH_ENOMEM; *out is freed by http_server_close(). */
int http_server_new(struct http_server **out, uv_loop_t *loop,
                    const struct http_server_config *cfg, http_handler_cb cb,
                    void *arg);

/* Listen on "HOST:PORT" (IPv4 or [IPv6]); port 0 picks a free one. Returns 0
 * or a negative code with a message in errmsg (ERRMSG_SIZE bytes). */
int http_server_listen_tcp(struct http_server *s, const char *hostport,
                           char *errmsg);

/* Listen on a Unix socket at path, replacing a stale socket file. */
int http_server_listen_unix(struct http_server *s, const char *path,
                            char *errmsg);

/* Return the TCP port of the first TCP listener, or 0 if none. */
int http_server_port(struct http_server *s);

/* Return the number of open connections (each holds one descriptor). */
unsigned http_server_connections(const struct http_server *s);

/* Stop listening, close every connection and free s; cb (may be NULL) runs
 * when every handle is closed. Requests not yet answered stay valid: each
 * must still be passed to http_reply(), which frees it. */
void http_server_close(struct http_server *s, http_close_cb cb, void *arg);

/* Return the value of a request header (name in lower case) or NULL. */
const char *http_request_header(const struct http_request *req,
                                const char *name);

/* Answer req and free it. The body is copied; the caller keeps ownership of
 * content_type and body. extra_headers is NULL or CRLF-terminated lines
 * such as "Location: /x\r\n". Returns 0, or BERTH_ESHUTDOWN if the client has
 * gone (req is freed all the same). */
int http_reply(struct http_request *req, int status, const char *content_type,
               const void *body, size_t len, const char *extra_headers);

/* Return the standard reason phrase of a status code ("Not Found"). */
const char *http_status_text(int status);

/* A blocking client request, for the CLI and tests. endpoint is "unix:PATH"
 * or "HOST:PORT". On success returns 0, sets *status and appends the
 * response body to resp. On failure returns a negative code with a message in
 * errmsg. timeout_ms 0 means no timeout. */
int http_client_request(const char *endpoint, const char *method,
                        const char *target, const void *body, size_t len,
                        unsigned timeout_ms, int *status, struct buf *resp,
                        char *errmsg);

#endif
