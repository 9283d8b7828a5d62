/* A small HTTP/1.1 server on a libuv loop, and a blocking client.
 *
 * The server parses with llhttp and hands each complete request to one
 * handler. The handler answers at any later time with http_reply(); until
 * then the connection reads no further request, so replies leave in request
 * order. Limits are enforced here: a malformed request (an obs-folded
 * header line included) is answered 400 and the connection closed; a body
 * over max_body is answered 413 and the connection closed; a header block
 * over max_header, or of more than HTTP_MAX_HEADERS lines, is answered
 * 431; headers that take longer than header_timeout_ms from the request's
 * first byte are answered 408, and so is a body slower than
 * body_timeout_ms and min_rate allow. The server serves both the front
 * door (TCP) and the admin API (TCP or a Unix socket).
 *
 * Connections are capped three ways: per client address (max_per_addr,
 * refused with 429), idle ones (max_idle: the oldest idle connection is
 * closed), and all of them (max_conns: the oldest idle connection is
 * closed to make room, else the new one is refused with 503). A connection
 * is idle when no request is being read, served or answered on it. A
 * refused connection is answered and closed without reading its request.
 *
 * Every byte the server holds (requests being read or served, replies
 * being written) is counted in an optional budget (lib/budget.h); its
 * owner may throttle the server while the budget is over.
 *
 * Beside its plain listener a server may listen for TLS (http/tls.h): the
 * same parser, limits, deadlines, caps and budget serve both, and a TLS
 * handshake counts as the headers of the connection's first request. Two
 * hooks let the owner act before a request is whole: on_server_name
 * hears the name a TLS client asks for in its ClientHello, and on_headers
 * sees a request whose headers are in while its body still comes. */
#ifndef BERTH_HTTP_HTTP_H
#define BERTH_HTTP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "lib/budget.h"
#include "lib/buf.h"
#include "lib/err.h"

struct http_server;
struct http_tls;

#define HTTP_MAX_HEADERS 64

struct http_header {
    char *name;  /* lower-cased, NUL-terminated */
    char *value; /* NUL-terminated */
};

/* One complete request. It is owned by the server and stays valid until
 * http_reply() is called on it, even if the client goes away meanwhile (the
 * reply is then dropped). A detached request (http_request_new_detached)
 * has no connection: its answer goes to a callback. */
struct http_request {
    char *method; /* "GET", NUL-terminated */
    char *target; /* the raw request target: path and query */
    struct http_header headers[HTTP_MAX_HEADERS];
    unsigned n_headers;
    struct buf body;
    void *data;      /* free for the handler's use */
    void *conn_;     /* private to the server */
    void *detached_; /* private to the server */
};

/* Called once per complete request, on the loop thread. */
typedef void (*http_handler_cb)(struct http_request *req, void *arg);

/* Called when a server has closed all its handles. */
typedef void (*http_close_cb)(struct http_server *s, void *arg);

struct http_server_config {
    size_t max_body;   /* bytes; larger bodies get 413. 0 means 8 MiB. */
    size_t max_header; /* bytes of request line plus headers; 0 means 64 KiB */
    /* Close a connection idle this long, one whose request body stalls
     * this long between reads, and one that in this long neither takes a
     * whole reply nor min_rate bytes a second of one (a client that does
     * not read, or reads a trickle); 0: 60 s. */
    unsigned idle_timeout_ms;
    /* A request's whole header block must arrive within this from its
     * first byte, or it is answered 408; 0: 10 s. */
    unsigned header_timeout_ms;
    /* A request's body must arrive within this from the end of its
     * headers, plus one second for every min_rate bytes of it received,
     * or it is answered 408 (a body trickled to hold the connection); 0:
     * 20 s. */
    unsigned body_timeout_ms;
    /* The slowest a client may send a body or read a reply, in bytes a
     * second (see body_timeout_ms and idle_timeout_ms); 0: 4096. */
    unsigned min_rate;
    unsigned max_idle;     /* idle connections at most; 0: no cap */
    unsigned max_per_addr; /* connections per client address; 0: no cap */
    /* Return the most connections the server may hold now, or 0 for no
     * cap; called with max_conns_arg for each new connection. NULL: no
     * cap. */
    unsigned (*max_conns)(void *arg);
    void *max_conns_arg;
    /* Bytes held are counted here; NULL: not counted. Not owned; it must
     * outlive the server. */
    struct budget *budget;
    /* Called, when not NULL, once a request's header block is complete
     * and a body is to follow, before any of the body is read; req has
     * its method, target and headers, no body, and is valid during the
     * call only (the handler gets it once whole). */
    void (*on_headers)(const struct http_request *req, void *arg);
    /* Called, when not NULL, with the server name (SNI) a TLS client asks
     * for, during its handshake; name is valid during the call only. */
    void (*on_server_name)(const char *name, void *arg);
    /* Return, when not NULL, whether on_server_name would start work on
     * the loop for name (a sleeping ship's wake), asked before it is
     * called: only then does the handshake's costly part move to a worker
     * thread, to overlap that work; otherwise it runs in place, sparing
     * the hop between threads. NULL: it always moves. */
    bool (*server_name_wakes)(const char *name, void *arg);
    void *hook_arg; /* the hooks' arg */
};

/* What a throttled server reads. */
enum http_throttle {
    HTTP_THROTTLE_OFF, /* every connection */
    HTTP_THROTTLE_ALL, /* none: no new request is read, none goes on */
    /* Only the connection whose unfinished request began first, so that
     * one request can complete when nothing else would free memory. */
    HTTP_THROTTLE_ONE,
};

/* Create a server on loop. It owns nothing of cfg after return. Returns 0 or
 * BERTH_ENOMEM; *out is freed by http_server_close(). */
int http_server_new(struct http_server **out, uv_loop_t *loop,
                    const struct http_server_config *cfg, http_handler_cb cb,
                    void *arg);

/* Parse "HOST:PORT" as the listeners take it (an IPv4 literal, an [IPv6]
 * one or localhost, and a port up to 65535) into *sa, the caller's.
 * Returns 0 or BERTH_EINVAL. */
int http_parse_hostport(const char *hostport, struct sockaddr_storage *sa);

/* Listen on "HOST:PORT" (IPv4 or [IPv6]); port 0 picks a free one. Returns 0
 * or a negative code with a message in errmsg (ERRMSG_SIZE bytes). */
int http_server_listen_tcp(struct http_server *s, const char *hostport,
                           char *errmsg);

/* Accept connections on fd, a TCP socket bound and listening already (one
 * a service manager passed, socket activation): the server takes it and
 * closes it when it stops listening. Returns 0 or a negative code with a
 * message in errmsg (ERRMSG_SIZE bytes). */
int http_server_listen_fd(struct http_server *s, int fd, char *errmsg);

/* Listen on a Unix socket at path, replacing a stale socket file. */
int http_server_listen_unix(struct http_server *s, const char *path,
                            char *errmsg);

/* Listen for TLS on "HOST:PORT" too, with the certificate tls serves (not
 * owned: it must outlive the server; a reload of it reaches new
 * connections). Returns 0 or a negative code with a message in errmsg
 * (ERRMSG_SIZE bytes). */
int http_server_listen_tls(struct http_server *s, const char *hostport,
                           struct http_tls *tls, char *errmsg);

/* Accept TLS connections on fd, a TCP socket bound and listening already
 * (a service manager's, as for http_server_listen_fd; the server takes
 * it), with the certificate tls serves (not owned, as for
 * http_server_listen_tls). Returns 0 or a negative code with a message in
 * errmsg (ERRMSG_SIZE bytes). */
int http_server_listen_tls_fd(struct http_server *s, int fd,
                              struct http_tls *tls, char *errmsg);

/* Return the TCP port of the first TCP listener, or 0 if none. */
int http_server_port(struct http_server *s);

/* Return the port of the TLS listener, or 0 if none. */
int http_server_tls_port(struct http_server *s);

/* Return the number of open connections (each holds one descriptor). */
unsigned http_server_connections(const struct http_server *s);

/* Return the number of idle connections (no request being read, served or
 * answered). */
unsigned http_server_idle_connections(const struct http_server *s);

/* Close up to n idle connections, the longest idle first, to give their
 * descriptors to something else; returns how many were closed. */
unsigned http_server_close_idle(struct http_server *s, unsigned n);

/* Set what the server reads (see enum http_throttle); the owner of its
 * budget calls this while the budget is over, and with HTTP_THROTTLE_OFF
 * once it is not. Timeouts go on meanwhile. */
void http_server_throttle(struct http_server *s, enum http_throttle t);

/* Stop accepting connections; those open are served as before. */
void http_server_stop_listening(struct http_server *s);

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

/* Answer req like http_reply, but write the body where it is: the server
 * takes mem (allocated with mem_alloc; body points inside it) and frees it
 * once written, or at once if the client has gone. counted is how many
 * bytes the caller counted for mem in the server's budget as draining; the
 * server takes them over (the caller stops counting them) and subtracts
 * them when it frees mem. */
int http_reply_take(struct http_request *req, int status,
                    const char *content_type, void *mem, uint64_t counted,
                    const void *body, size_t len, const char *extra_headers);

/* Free what is left of the body of a request being served, once the
 * handler has made what it needs of it (it may have moved the bytes out
 * first, leaving the buf empty): the body no longer counts as the
 * server's in the budget. */
void http_request_drop_body(struct http_request *req);

/* Called once with the answer to a detached request, as its handler gave
 * it to http_reply() or http_reply_take(); content_type and extra_headers
 * may be NULL. Everything is valid during the call only, and the request
 * is gone: it is freed right after. */
typedef void (*http_answer_cb)(void *arg, int status, const char *content_type,
                               const void *body, size_t len,
                               const char *extra_headers);

struct http_forward_request;

/* Make a request that no connection carries, from a decoded forwarded
 * request (http/forward.h; every field is copied), for a handler to serve
 * like any other. Until it is answered its bytes count in budget (NULL:
 * none; not owned, it must outlive the request), as a connection's request
 * would. http_reply() and http_reply_take() on it call cb with the answer
 * and free the request (and, for http_reply_take, the memory taken, whose
 * counted bytes leave the budget after cb returns); both return 0.
 * Returns 0 or BERTH_ENOMEM; *out is freed by answering it. */
int http_request_new_detached(struct http_request **out,
                              const struct http_forward_request *f,
                              struct budget *budget, http_answer_cb cb,
                              void *arg);

/* Return whether req was made by http_request_new_detached(): it came
 * from another host, not from a client of this one. */
bool http_request_detached(const struct http_request *req);

/* Write the address of the client that sent req, 16 bytes (IPv4 mapped
 * into IPv6), into addr (the caller's); 0, or BERTH_EINVAL when req did
 * not come over TCP (a Unix socket, or a detached request) or its address
 * cannot be read. Call it while the handler has req. */
int http_request_peer(const struct http_request *req, uint8_t *addr);

/* Remove every header called name (lower case) from req, wiping its
 * value first: a credential is not kept, nor passed on. The caller keeps
 * name. */
void http_request_remove_header(struct http_request *req, const char *name);

/* Set header name (lower case) of req to value, in place of any it had;
 * 0, or BERTH_ENOMEM (also when req has no room for another header). The
 * caller keeps name and value. */
int http_request_set_header(struct http_request *req, const char *name,
                            const char *value);

/* WebSockets. A request that asks to open one (http/websocket.h,
 * ws_upgrade_kind) reaches the handler like any other; the connection
 * closes after any answer but the one below. http_ws_accept answers 101
 * and turns the connection into a WebSocket: from then on the server
 * reads frames, not requests, hands each whole message to ops, answers
 * pings itself, pings a silent client every ping_ms and closes it when
 * the pong does not come in another ping_ms. Deadlines, caps and the
 * budget go on as for HTTP, but a WebSocket is never idle: the idle cap
 * and the idle timeout leave it alone. The owner's ops are called only
 * from the loop's own callbacks (a read, a timer, a handle closed), never
 * inside one of the calls below, so that the owner may call them from
 * anywhere. */
struct http_ws;

/* What the owner of a WebSocket hears; ws is valid during each call. */
struct http_ws_ops {
    /* A whole message from the client: opcode 1 (text, valid UTF-8) or 2
     * (binary); data is valid during the call only. */
    void (*message)(struct http_ws *ws, void *arg, int opcode,
                    const uint8_t *data, size_t len);
    /* The WebSocket is gone (the client closed it, broke the protocol,
     * went over a limit, stopped answering pings, or the connection
     * dropped: code 1006): called once, and ws is freed right after.
     * Never called after http_ws_close. reason is len bytes of UTF-8. */
    void (*closed)(struct http_ws *ws, void *arg, uint16_t code,
                   const char *reason, size_t len);
};

/* A WebSocket's limits. */
struct http_ws_config {
    size_t max_message; /* bytes; a larger message closes with 1009 */
    unsigned ping_ms;   /* silence before a ping; 0: 30 s */
};

/* Answer req, a valid opening handshake (WS_UPGRADE_OK), with 101 and
 * make its connection a WebSocket that reports to ops with arg (ops and
 * cfg are kept by the caller; ops must outlive the WebSocket). Frees req.
 * extra_headers is as for http_reply. Returns 0 with *out, valid until
 * ops->closed or http_ws_close; BERTH_ESHUTDOWN if the client has gone,
 * BERTH_EINVAL if req is detached or no handshake, or BERTH_ENOMEM (the
 * connection is closed). */
int http_ws_accept(struct http_request *req, const struct http_ws_ops *ops,
                   void *arg, const struct http_ws_config *cfg,
                   const char *extra_headers, struct http_ws **out);

/* Send one message, opcode 1 (text) or 2 (binary), of the n bytes at p
 * (copied). Returns 0, or BERTH_ESHUTDOWN when the WebSocket is
 * closing. */
int http_ws_send(struct http_ws *ws, int opcode, const void *p, size_t n);

/* Close ws with code and reason (a C string of UTF-8, at most 123 bytes,
 * cut otherwise): the close frame leaves after what was sent before, and
 * the connection closes. ops is not called again; ws is the server's
 * from now on. */
void http_ws_close(struct http_ws *ws, uint16_t code, const char *reason);

/* Stop reading from ws (paused true: the client's TCP window fills and it
 * waits) or read again. Pings go on being answered from what was read. */
void http_ws_pause(struct http_ws *ws, bool paused);

/* Make req's connection a tunnel, with no answer (the bytes that answer
 * it come from elsewhere): from then on every byte the client sends goes
 * to ops->message (opcode 0, as read), http_tunnel_write writes bytes to
 * it as they are, and ops->closed (code 1006) says the client has gone.
 * http_ws_pause stops and resumes reading. Frees req. Returns 0 with
 * *out, valid until ops->closed or http_tunnel_close; BERTH_ESHUTDOWN if
 * the client has gone, BERTH_EINVAL if req is detached (answered 400),
 * or BERTH_ENOMEM (the connection is closed). */
int http_tunnel_open(struct http_request *req, const struct http_ws_ops *ops,
                     void *arg, struct http_ws **out);

/* Write the n bytes at p (copied) to a tunnel's client; 0, or
 * BERTH_ESHUTDOWN when it is closing. */
int http_tunnel_write(struct http_ws *t, const void *p, size_t n);

/* Close a tunnel once what was written has left; ops is not called
 * again. */
void http_tunnel_close(struct http_ws *t);

/* Return the number of WebSockets open on s. */
unsigned http_server_websockets(const struct http_server *s);

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

/* As http_client_request, with extra_headers (NULL, or CRLF-terminated
 * lines such as "Authorization: Bearer X\r\n", kept by the caller) sent
 * after the request's own. */
int http_client_request_ex(const char *endpoint, const char *method,
                           const char *target, const char *extra_headers,
                           const void *body, size_t len, unsigned timeout_ms,
                           int *status, struct buf *resp, char *errmsg);

#endif
