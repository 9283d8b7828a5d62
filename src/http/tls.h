/* TLS for the HTTP server, with OpenSSL over memory BIOs.
 *
 * The server's connections move bytes with libuv as before; a TLS
 * connection passes what it reads through OpenSSL (into a memory BIO, out
 * as plaintext for the parser) and what it writes back through it (sealed
 * into records, then written like any reply). No socket is ever given to
 * OpenSSL, so the server's deadlines, caps and budget hold for TLS
 * connections as they are: a handshake counts as the headers of the first
 * request, and a slow handshake is answered like slow headers (here: the
 * connection closes, since no HTTP answer can be sealed yet).
 *
 * The handshake pauses once the first ClientHello is read
 * (http_tls_conn_paused): the server then knows the name the client asks
 * for, and, when the name's ship sleeps, runs the handshake's costly part
 * on a worker thread while its loop acts on the name (starts the ship's
 * wake).
 *
 * struct http_tls is a certificate chain and its key, which a reload
 * replaces without a restart: connections open keep the one they began
 * with, new ones get the new one, and a reload that fails leaves the old
 * one serving. Only TLS 1.2 and 1.3, and the one application protocol
 * HTTP/1.1 (ALPN "http/1.1"): a client that offers only others is
 * refused. */
#ifndef BERTH_HTTP_TLS_H
#define BERTH_HTTP_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "lib/buf.h"

struct http_tls;
struct http_tls_conn;

/* Make OpenSSL allocate through lib/mem.h; call it once, before anything
 * else of OpenSSL runs (main does, beside the JSON heap). Returns whether
 * OpenSSL took the functions. */
bool http_tls_install_heap(void);

/* Load the PEM certificate chain at cert_path and the PEM private key at
 * key_path. Returns 0, or BERTH_EINVAL with the reason (the file, and
 * OpenSSL's words) in errmsg (ERRMSG_SIZE bytes); *out is freed with
 * http_tls_free(). The paths are copied. */
int http_tls_new(struct http_tls **out, const char *cert_path,
                 const char *key_path, char *errmsg);

/* Load the certificate and key again from the same files. Returns 0, or
 * BERTH_EINVAL with the reason in errmsg, and the one loaded before still
 * serving. */
int http_tls_reload(struct http_tls *t, char *errmsg);

/* Write the subject and expiry of the certificate now served into out
 * (size bytes), for a log line. */
void http_tls_describe(const struct http_tls *t, char *out, size_t size);

/* Free t; connections made from it keep what they use until they go. */
void http_tls_free(struct http_tls *t);

/* Make the TLS state of one connection, with the certificate t serves
 * now. Returns 0 or BERTH_ENOMEM; *out is freed with
 * http_tls_conn_free(). */
int http_tls_conn_new(struct http_tls_conn **out, struct http_tls *t);

/* Return the server name (SNI) of the ClientHello that the last
 * http_tls_conn_take() read, once: NULL when it read none, or on a later
 * call. Kept by c, valid until the next call on c. */
const char *http_tls_conn_new_name(struct http_tls_conn *c);

/* Return whether the handshake has paused after reading the first
 * ClientHello (whose server name is then known), before its costly part:
 * the key exchange and the certificate's signature. A call of
 * http_tls_conn_take() with no bytes runs that part; it may run on
 * another thread, provided nothing else touches c meanwhile (OpenSSL's
 * shared state is thread-safe; c is not). */
bool http_tls_conn_paused(const struct http_tls_conn *c);

/* Free the TLS state of a connection; NULL is ignored. */
void http_tls_conn_free(struct http_tls_conn *c);

/* Take n bytes read from the client: what they carry of the application's
 * bytes is appended to plain, and whatever TLS has to send back (the
 * handshake, alerts) to out. Returns 0, BERTH_ENOMEM, or BERTH_EMALFORMED
 * when the peer broke TLS or closed it (out may hold an alert to send
 * before closing); errmsg (ERRMSG_SIZE bytes) then says why. */
int http_tls_conn_take(struct http_tls_conn *c, const uint8_t *in, size_t n,
                       struct buf *plain, struct buf *out, char *errmsg);

/* Seal the bytes of the nb buffers at b into TLS records appended to out;
 * with close, a close_notify alert follows them. Returns 0, BERTH_ENOMEM,
 * or BERTH_EBUSY when the handshake is not done (nothing can be sealed
 * yet). */
int http_tls_conn_seal(struct http_tls_conn *c, const uv_buf_t *b, unsigned nb,
                       bool close, struct buf *out);

/* Return whether the handshake is done. */
bool http_tls_conn_ready(const struct http_tls_conn *c);

#endif
