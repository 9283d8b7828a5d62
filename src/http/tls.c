/* TLS with OpenSSL over memory BIOs (see tls.h).
 *
 * Each connection has an SSL object between two memory BIOs: bytes read
 * from the socket are written into the read BIO, plaintext comes out of
 * SSL_read, and whatever OpenSSL writes (handshake flights, records,
 * alerts) collects in the write BIO, from which the server takes it and
 * writes it to the socket with libuv like any reply. OpenSSL never waits:
 * it answers SSL_ERROR_WANT_READ when the bytes so far are not enough. */
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#include "http/hostname.h"
#include "http/tls.h"
#include "lib/err.h"
#include "lib/mem.h"

struct http_tls {
    SSL_CTX *ctx; /* what new connections get; connections hold references */
    char *cert_path;
    char *key_path;
};

struct http_tls_conn {
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    bool ready;
    bool hello_seen; /* the first ClientHello has paused the handshake */
    bool paused;     /* it waits for http_tls_conn_take to go on */
    bool named;      /* name is new: http_tls_conn_new_name has not taken it */
    char name[256];
};

/* The one application protocol offered, in ALPN's wire form. */
static const unsigned char tls__alpn[] = "\x08http/1.1";

static void *tls__malloc(size_t n, const char *file, int line)
{
    return mem_alloc(n);
}

static void *tls__realloc(void *p, size_t n, const char *file, int line)
{
    /* OpenSSL's own realloc frees on a size of 0; mem_realloc would keep a
     * byte. */
    if (n == 0) {
        mem_free(p);
        return NULL;
    }
    return mem_realloc(p, n);
}

static void tls__free(void *p, const char *file, int line)
{
    mem_free(p);
}

bool http_tls_install_heap(void)
{
    return CRYPTO_set_mem_functions(tls__malloc, tls__realloc, tls__free) == 1;
}

/* Write what OpenSSL's error queue says (its first entry, the cause:
 * later ones only say which call passed it on), after what, into errmsg;
 * the queue is left empty. */
static void tls__errmsg(char *errmsg, const char *what)
{
    unsigned long first = ERR_get_error();
    ERR_clear_error();
    char text[160] = "unknown error";
    if (first != 0) {
        ERR_error_string_n(first, text, sizeof text);
    }
    err_printf(errmsg, "%s: %s", what, text);
}

/* The first ClientHello, read before OpenSSL does anything with it: its
 * server name is taken (OpenSSL parses it only later, after this
 * callback), and the handshake pauses, so that its caller may act on the
 * name before the handshake's costly part (the key exchange and the
 * certificate's signature) runs, and run that part elsewhere. */
static int tls__hello_cb(SSL *ssl, int *alert, void *arg)
{
    struct http_tls_conn *c = SSL_get_app_data(ssl);
    if (c == NULL || c->hello_seen) {
        return SSL_CLIENT_HELLO_SUCCESS;
    }
    c->hello_seen = true;
    const unsigned char *ext;
    size_t len;
    /* A DNS name is at most 253 bytes; a longer one names nothing. */
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &len) ==
            1 &&
        hostname_sni(ext, len, c->name, sizeof c->name) == 0) {
        c->named = true;
    }
    return SSL_CLIENT_HELLO_RETRY;
}

static int tls__alpn_cb(SSL *ssl, const unsigned char **out,
                        unsigned char *outlen, const unsigned char *in,
                        unsigned inlen, void *arg)
{
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, tls__alpn, sizeof tls__alpn - 1, in,
                              inlen) != OPENSSL_NPN_NEGOTIATED) {
        /* RFC 7301 3.2: a client that offers protocols, none of them
         * HTTP/1.1, gets no_application_protocol. */
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* Say why path cannot be read, if it cannot; 0 or BERTH_EINVAL. */
static int tls__readable(const char *path, const char *what, char *errmsg)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        err_printf(errmsg, "cannot read the %s %s: %s", what, path,
                   strerror(errno));
        return BERTH_EINVAL;
    }
    fclose(f);
    return 0;
}

/* Make a context serving the certificate chain and key of t's files. */
static int tls__load(const struct http_tls *t, SSL_CTX **out, char *errmsg)
{
    char what[600];
    if (tls__readable(t->cert_path, "certificate", errmsg) != 0 ||
        tls__readable(t->key_path, "key", errmsg) != 0) {
        return BERTH_EINVAL;
    }
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        tls__errmsg(errmsg, "cannot make a TLS context");
        return BERTH_EINVAL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Renegotiation asked for by a client costs the server a handshake
     * for nothing; releasing idle buffers keeps a kept-alive connection
     * small. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* What a handshake costs the server here, measured: each session
     * ticket (OpenSSL sends two by default) 0.025 ms of the 0.33, and a
     * SHA-384 suite (the default's first) 0.02 ms more than a SHA-256
     * one. One ticket is enough to resume with, since a ticket may be
     * used again; AES-128-GCM is first among equally safe suites. */
    SSL_CTX_set_num_tickets(ctx, 1);
    if (SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:"
                                      "TLS_CHACHA20_POLY1305_SHA256:"
                                      "TLS_AES_256_GCM_SHA384") != 1) {
        tls__errmsg(errmsg, "cannot set the TLS 1.3 cipher suites");
        goto err_after_ctx;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, t->cert_path) != 1) {
        snprintf(what, sizeof what, "the certificate %s is not usable",
                 t->cert_path);
        tls__errmsg(errmsg, what);
        goto err_after_ctx;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, t->key_path, SSL_FILETYPE_PEM) != 1) {
        snprintf(what, sizeof what, "the key %s is not usable", t->key_path);
        tls__errmsg(errmsg, what);
        goto err_after_ctx;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(what, sizeof what,
                 "the key %s does not belong to the certificate %s",
                 t->key_path, t->cert_path);
        tls__errmsg(errmsg, what);
        goto err_after_ctx;
    }
    SSL_CTX_set_client_hello_cb(ctx, tls__hello_cb, NULL);
    SSL_CTX_set_alpn_select_cb(ctx, tls__alpn_cb, NULL);
    *out = ctx;
    return 0;

err_after_ctx:
    SSL_CTX_free(ctx);
    return BERTH_EINVAL;
}

int http_tls_new(struct http_tls **out, const char *cert_path,
                 const char *key_path, char *errmsg)
{
    struct http_tls *t = mem_calloc(1, sizeof *t);
    if (t == NULL) {
        err_printf(errmsg, "out of memory");
        return BERTH_ENOMEM;
    }
    t->cert_path = mem_strdup(cert_path);
    t->key_path = mem_strdup(key_path);
    if (t->cert_path == NULL || t->key_path == NULL) {
        err_printf(errmsg, "out of memory");
        http_tls_free(t);
        return BERTH_ENOMEM;
    }
    int rv = tls__load(t, &t->ctx, errmsg);
    if (rv != 0) {
        http_tls_free(t);
        return rv;
    }
    *out = t;
    return 0;
}

int http_tls_reload(struct http_tls *t, char *errmsg)
{
    SSL_CTX *ctx;
    int rv = tls__load(t, &ctx, errmsg);
    if (rv != 0) {
        return rv;
    }
    /* Each connection's SSL holds a reference to the context it was made
     * from: they go on with the old one. */
    SSL_CTX_free(t->ctx);
    t->ctx = ctx;
    return 0;
}

void http_tls_describe(const struct http_tls *t, char *out, size_t size)
{
    X509 *x = SSL_CTX_get0_certificate(t->ctx);
    char subject[256] = "?";
    char until[64] = "?";
    if (x != NULL) {
        X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof subject);
        BIO *b = BIO_new(BIO_s_mem());
        if (b != NULL && ASN1_TIME_print(b, X509_get0_notAfter(x)) == 1) {
            int n = BIO_read(b, until, sizeof until - 1);
            until[n > 0 ? n : 0] = '\0';
        }
        BIO_free(b);
    }
    snprintf(out, size, "%s until %s", subject, until);
}

void http_tls_free(struct http_tls *t)
{
    if (t == NULL) {
        return;
    }
    SSL_CTX_free(t->ctx);
    mem_free(t->cert_path);
    mem_free(t->key_path);
    mem_free(t);
}

int http_tls_conn_new(struct http_tls_conn **out, struct http_tls *t)
{
    struct http_tls_conn *c = mem_calloc(1, sizeof *c);
    if (c == NULL) {
        return BERTH_ENOMEM;
    }
    c->ssl = SSL_new(t->ctx);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (c->ssl == NULL || c->rbio == NULL || c->wbio == NULL) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        SSL_free(c->ssl);
        mem_free(c);
        ERR_clear_error();
        return BERTH_ENOMEM;
    }
    /* An empty memory BIO reads as "try again", not as end of file. */
    BIO_set_mem_eof_return(c->rbio, -1);
    BIO_set_mem_eof_return(c->wbio, -1);
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_app_data(c->ssl, c);
    SSL_set_accept_state(c->ssl);
    *out = c;
    return 0;
}

void http_tls_conn_free(struct http_tls_conn *c)
{
    if (c == NULL) {
        return;
    }
    SSL_free(c->ssl);
    mem_free(c);
}

/* Move what OpenSSL wrote into out. */
static int tls__drain(struct http_tls_conn *c, struct buf *out)
{
    size_t n = BIO_ctrl_pending(c->wbio);
    if (n == 0) {
        return 0;
    }
    if (buf_reserve(out, n) != 0) {
        return BERTH_ENOMEM;
    }
    int got = BIO_read(c->wbio, out->data + out->len, (int)n);
    if (got > 0) {
        out->len += (size_t)got;
    }
    return 0;
}

/* Turn the result r of an SSL call into 0 (more bytes are needed) or an
 * error with errmsg set. */
static int tls__result(struct http_tls_conn *c, int r, char *errmsg)
{
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        return 0;
    }
    if (e == SSL_ERROR_WANT_CLIENT_HELLO_CB) {
        c->paused = true;
        return 0;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
        err_printf(errmsg, "the client closed TLS");
        ERR_clear_error();
        return BERTH_EMALFORMED;
    }
    tls__errmsg(errmsg, c->ready ? "TLS failed" : "TLS handshake failed");
    return BERTH_EMALFORMED;
}

int http_tls_conn_take(struct http_tls_conn *c, const uint8_t *in, size_t n,
                       struct buf *plain, struct buf *out, char *errmsg)
{
    if (n > 0 && BIO_write(c->rbio, in, (int)n) != (int)n) {
        err_printf(errmsg, "out of memory");
        return BERTH_ENOMEM;
    }
    int rv = 0;
    c->paused = false;
    bool done_now = false;
    if (!c->ready) {
        int r = SSL_do_handshake(c->ssl);
        if (r == 1) {
            c->ready = done_now = true;
        } else {
            rv = tls__result(c, r, errmsg);
        }
    }
    while (rv == 0 && c->ready) {
        /* A record is at most 16 KiB of plaintext. */
        if (buf_reserve(plain, 16 * 1024) != 0) {
            err_printf(errmsg, "out of memory");
            rv = BERTH_ENOMEM;
            break;
        }
        size_t room = plain->cap - plain->len;
        int r = SSL_read(c->ssl, plain->data + plain->len,
                         room > INT32_MAX ? INT32_MAX : (int)room);
        if (r <= 0) {
            rv = tls__result(c, r, errmsg);
            break;
        }
        plain->len += (size_t)r;
    }
    /* What TLS 1.3 writes once the client's Finished is in is the session
     * ticket, which no client waits for: it stays in the write BIO and
     * leaves with the reply (http_tls_conn_seal), one write and one
     * wake of the client fewer. Anything else (the handshake's answer, an
     * alert on failure) goes now. */
    if (rv == 0 && done_now && SSL_version(c->ssl) == TLS1_3_VERSION) {
        return 0;
    }
    int drv = tls__drain(c, out);
    return rv != 0 ? rv : drv;
}

int http_tls_conn_seal(struct http_tls_conn *c, const uv_buf_t *b, unsigned nb,
                       bool close, struct buf *out)
{
    if (!c->ready) {
        return BERTH_EBUSY;
    }
    for (unsigned i = 0; i < nb; i++) {
        size_t off = 0;
        while (off < b[i].len) {
            size_t n = b[i].len - off;
            int chunk = n > INT32_MAX ? INT32_MAX : (int)n;
            /* A memory BIO takes everything: a write is whole or fails. */
            int r = SSL_write(c->ssl, b[i].base + off, chunk);
            if (r <= 0) {
                ERR_clear_error();
                return BERTH_ENOMEM;
            }
            off += (size_t)r;
        }
    }
    if (close) {
        SSL_shutdown(c->ssl);
        ERR_clear_error();
    }
    return tls__drain(c, out);
}

const char *http_tls_conn_new_name(struct http_tls_conn *c)
{
    if (!c->named) {
        return NULL;
    }
    c->named = false;
    return c->name;
}

bool http_tls_conn_paused(const struct http_tls_conn *c)
{
    return c->paused;
}

bool http_tls_conn_ready(const struct http_tls_conn *c)
{
    return c->ready;
}
