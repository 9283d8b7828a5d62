/* Forwarded HTTP requests and their answers, as bytes.
 *
 * Any host of a cluster takes requests, but only the leader serves them. A
 * host that does not lead passes a request it cannot serve to the leader
 * whole, over the peer port, and relays the leader's answer to its client.
 * The leader serves the request exactly as if it had come in directly, and
 * the answer is what its handler gave http_reply(). Each travels as one
 * message; all integers are little-endian:
 *
 *   request: magic "bfq1" | server u8 | method u8 len + bytes
 *            | target u32 len + bytes | header count u16
 *            | (name u16 len + bytes | value u32 len + bytes) per header
 *            | body u32 len + bytes
 *   answer:  magic "bfa1" | status u16 | content type u16 len + bytes
 *            | extra headers u16 len + bytes | body u32 len + bytes
 *
 * A message must end where its last field ends. Decoding never reads past
 * the bytes given and checks every field against what the HTTP parser lets
 * through, so that a decoded request can become an http_request whose
 * strings are C strings (no NUL inside) and whose answer can be written to
 * a client as it is (no CR or LF where a header line could be smuggled
 * in). A decoded message points into the bytes it was decoded from. */
#ifndef BERTH_HTTP_FORWARD_H
#define BERTH_HTTP_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "http/http.h"
#include "lib/buf.h"

/* The longest method, target, header name and value, content type and
 * block of extra headers a message may carry. */
#define HTTP_FORWARD_MAX_METHOD 32
#define HTTP_FORWARD_MAX_TARGET (64u * 1024)
#define HTTP_FORWARD_MAX_NAME 1024
#define HTTP_FORWARD_MAX_VALUE (64u * 1024)
#define HTTP_FORWARD_MAX_CONTENT_TYPE 255
#define HTTP_FORWARD_MAX_EXTRA 1024

/* Which of a host's servers a request came in on, and is served by. */
enum http_forward_server {
    HTTP_FORWARD_FRONT = 1, /* the front door: /s/<ship>/... */
    HTTP_FORWARD_ADMIN = 2, /* the admin API */
};

/* One header of a forwarded request; neither string ends with a NUL. */
struct http_forward_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* A forwarded request: views of bytes it does not own. */
struct http_forward_request {
    uint8_t server; /* enum http_forward_server */
    const char *method;
    size_t method_len;
    const char *target;
    size_t target_len;
    struct http_forward_header headers[HTTP_MAX_HEADERS];
    unsigned n_headers;
    const uint8_t *body;
    size_t body_len;
};

/* The answer to a forwarded request: views of bytes it does not own.
 * content_type and extra (CRLF-terminated header lines) have length 0 when
 * there are none. */
struct http_forward_answer {
    int status;
    const char *content_type;
    size_t content_type_len;
    const char *extra;
    size_t extra_len;
    const uint8_t *body;
    size_t body_len;
};

/* Fill out with views of req's fields (req keeps them), for a request that
 * came in on server. */
void http_forward_view(struct http_forward_request *out,
                       enum http_forward_server server,
                       const struct http_request *req);

/* Append the encoding of r to out. Returns 0, BERTH_EINVAL when a field is
 * not one that decoding accepts, or BERTH_ENOMEM. */
int http_forward_encode_request(struct buf *out,
                                const struct http_forward_request *r);

/* Decode a request from the len bytes at p into out, whose views point
 * into p. Returns 0 or BERTH_EMALFORMED. */
int http_forward_decode_request(const void *p, size_t len,
                                struct http_forward_request *out);

/* Append the encoding of an answer to out: status, content_type and
 * extra_headers as given to http_reply() (each may be NULL), and len bytes
 * of body. Returns 0, BERTH_EINVAL when a field is not one that decoding
 * accepts, or BERTH_ENOMEM. */
int http_forward_encode_answer(struct buf *out, int status,
                               const char *content_type,
                               const char *extra_headers, const void *body,
                               size_t len);

/* Decode an answer from the len bytes at p into out, whose views point
 * into p. Returns 0 or BERTH_EMALFORMED. */
int http_forward_decode_answer(const void *p, size_t len,
                               struct http_forward_answer *out);

#endif
