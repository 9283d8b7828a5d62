/* TLS over memory BIOs (http/tls.h), against an OpenSSL client in the same
 * process: the handshake, the server name, ALPN, records both ways, the
 * session ticket (one, sent with the reply) and the preferred suite,
 * garbage, a reload that fails and one that works, and OpenSSL's
 * allocations going through lib/mem.h. The certificates are made with the
 * openssl command, as the integration tests make theirs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "http/tls.h"
#include "lib/err.h"
#include "lib/mem.h"

static char dir[] = "/tmp/berth-tls-XXXXXX";
static char cert_one[256], key_one[256], cert_two[256], key_two[256];
static char cert[256], key[256]; /* what the server is given */

static void make_cert(const char *c, const char *k, const char *cn)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
             "-nodes -keyout %s -out %s -days 2 -subj /CN=%s "
             "-addext subjectAltName=DNS:*.example.org >/dev/null 2>&1",
             k, c, cn);
    assert_int_equal(system(cmd), 0);
}

static void copy(const char *from, const char *to)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cp %s %s", from, to);
    assert_int_equal(system(cmd), 0);
}

static int setup(void **state)
{
    if (mkdtemp(dir) == NULL) {
        return -1;
    }
    snprintf(cert_one, sizeof cert_one, "%s/one.crt", dir);
    snprintf(key_one, sizeof key_one, "%s/one.key", dir);
    snprintf(cert_two, sizeof cert_two, "%s/two.crt", dir);
    snprintf(key_two, sizeof key_two, "%s/two.key", dir);
    snprintf(cert, sizeof cert, "%s/serve.crt", dir);
    snprintf(key, sizeof key, "%s/serve.key", dir);
    make_cert(cert_one, key_one, "one");
    make_cert(cert_two, key_two, "two");
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* An OpenSSL client over memory BIOs. */
struct client {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *rbio, *wbio;
};

static void client_new(struct client *c, const char *alpn, size_t alpn_len)
{
    c->ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(c->ctx);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
    if (alpn != NULL) {
        SSL_CTX_set_alpn_protos(c->ctx, (const unsigned char *)alpn,
                                (unsigned)alpn_len);
    }
    c->ssl = SSL_new(c->ctx);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(c->rbio, -1);
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_tlsext_host_name(c->ssl, "ann.example.org");
    SSL_set_connect_state(c->ssl);
}

static void client_free(struct client *c)
{
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
}

/* Move what the client wrote into the server, and the server's answer
 * back; returns the server's result. */
static int pump(struct client *c, struct http_tls_conn *s, struct buf *plain)
{
    uint8_t b[32768];
    int n = BIO_read(c->wbio, b, sizeof b);
    struct buf out;
    buf_init(&out);
    char errmsg[ERRMSG_SIZE];
    int rv =
        http_tls_conn_take(s, b, n > 0 ? (size_t)n : 0, plain, &out, errmsg);
    if (out.len > 0) {
        BIO_write(c->rbio, out.data, (int)out.len);
    }
    buf_free(&out);
    return rv;
}

/* Run the handshake to its end; returns the server's last result. */
static int handshake(struct client *c, struct http_tls_conn *s)
{
    struct buf plain;
    buf_init(&plain);
    int rv = 0;
    for (int i = 0; i < 10 && rv == 0; i++) {
        int r = SSL_do_handshake(c->ssl);
        rv = pump(c, s, &plain);
        if (r == 1 && http_tls_conn_ready(s)) {
            break;
        }
    }
    buf_free(&plain);
    return rv;
}

/* Return whether the certificate the client got is the one in path. */
static bool served(struct client *c, const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    X509 *want = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    X509 *got = SSL_get1_peer_certificate(c->ssl);
    bool same = got != NULL && X509_cmp(want, got) == 0;
    X509_free(want);
    X509_free(got);
    return same;
}

static void test_handshake_name_alpn_and_records(void **state)
{
    copy(cert_one, cert);
    copy(key_one, key);
    char errmsg[ERRMSG_SIZE];
    struct http_tls *t;
    assert_int_equal(http_tls_new(&t, cert, key, errmsg), 0);
    struct http_tls_conn *s;
    assert_int_equal(http_tls_conn_new(&s, t), 0);
    struct client c;
    client_new(&c, "\x02h2\x08http/1.1", 12);
    /* Nothing can be sealed before the handshake. */
    uv_buf_t early = uv_buf_init("x", 1);
    struct buf out;
    buf_init(&out);
    assert_int_equal(http_tls_conn_seal(s, &early, 1, false, &out),
                     BERTH_EBUSY);
    assert_int_equal(handshake(&c, s), 0);
    assert_true(http_tls_conn_ready(s));
    assert_string_equal(http_tls_conn_new_name(s), "ann.example.org");
    assert_null(http_tls_conn_new_name(s));
    const unsigned char *p;
    unsigned n;
    SSL_get0_alpn_selected(c.ssl, &p, &n);
    assert_int_equal(n, 8);
    assert_memory_equal(p, "http/1.1", 8);
    assert_true(served(&c, cert_one));
    /* Client to server. */
    assert_int_equal(SSL_write(c.ssl, "GET / HTTP/1.1\r\n\r\n", 18), 18);
    struct buf plain;
    buf_init(&plain);
    assert_int_equal(pump(&c, s, &plain), 0);
    assert_int_equal(plain.len, 18);
    assert_memory_equal(plain.data, "GET / HTTP/1.1\r\n\r\n", 18);
    /* Server to client, two buffers in one go, then close_notify. */
    uv_buf_t b[2] = {uv_buf_init("HTTP/1.1 200 OK\r\n", 17),
                     uv_buf_init("body", 4)};
    assert_int_equal(http_tls_conn_seal(s, b, 2, true, &out), 0);
    BIO_write(c.rbio, out.data, (int)out.len);
    char got[64];
    int total = 0, r;
    while ((r = SSL_read(c.ssl, got + total, (int)sizeof got - total)) > 0) {
        total += r;
    }
    assert_int_equal(total, 21);
    assert_memory_equal(got, "HTTP/1.1 200 OK\r\nbody", 21);
    assert_int_equal(SSL_get_error(c.ssl, r), SSL_ERROR_ZERO_RETURN);
    buf_free(&out);
    buf_free(&plain);
    client_free(&c);
    http_tls_conn_free(s);
    http_tls_free(t);
}

/* Tickets the client was given (its new-session callback). */
static int tickets;

static int count_ticket(SSL *ssl, SSL_SESSION *sess)
{
    tickets++;
    return 0; /* the session is not kept */
}

static void test_one_ticket_sent_with_what_follows(void **state)
{
    copy(cert_one, cert);
    copy(key_one, key);
    char errmsg[ERRMSG_SIZE];
    struct http_tls *t;
    assert_int_equal(http_tls_new(&t, cert, key, errmsg), 0);
    struct http_tls_conn *s;
    assert_int_equal(http_tls_conn_new(&s, t), 0);
    struct client c;
    client_new(&c, "\x08http/1.1", 9);
    SSL_CTX_set_session_cache_mode(c.ctx, SSL_SESS_CACHE_CLIENT);
    SSL_CTX_sess_set_new_cb(c.ctx, count_ticket);
    tickets = 0;
    /* The take that ends the handshake (the client's Finished) sends
     * nothing: the ticket waits for the next bytes the server sends. */
    struct buf plain, out;
    buf_init(&plain);
    buf_init(&out);
    uint8_t b[32768];
    bool ended = false;
    for (int i = 0; i < 10 && !http_tls_conn_ready(s); i++) {
        SSL_do_handshake(c.ssl);
        int n = BIO_read(c.wbio, b, sizeof b);
        out.len = 0;
        assert_int_equal(http_tls_conn_take(s, b, n > 0 ? (size_t)n : 0, &plain,
                                            &out, errmsg),
                         0);
        if (http_tls_conn_paused(s)) {
            assert_int_equal(
                http_tls_conn_take(s, NULL, 0, &plain, &out, errmsg), 0);
        }
        ended = http_tls_conn_ready(s);
        if (ended) {
            assert_int_equal(out.len, 0);
        }
        BIO_write(c.rbio, out.data, (int)out.len);
    }
    assert_true(ended);
    assert_int_equal(SSL_do_handshake(c.ssl), 1);
    /* The server prefers AES-128-GCM among the TLS 1.3 suites. */
    assert_string_equal(SSL_get_cipher_name(c.ssl), "TLS_AES_128_GCM_SHA256");
    /* The reply carries the ticket: one. */
    uv_buf_t reply = uv_buf_init("HTTP/1.1 200 OK\r\n\r\n", 19);
    out.len = 0;
    assert_int_equal(http_tls_conn_seal(s, &reply, 1, false, &out), 0);
    BIO_write(c.rbio, out.data, (int)out.len);
    char got[64];
    assert_int_equal(SSL_read(c.ssl, got, sizeof got), 19);
    assert_int_equal(tickets, 1);
    buf_free(&out);
    buf_free(&plain);
    client_free(&c);
    http_tls_conn_free(s);
    http_tls_free(t);
}

static void test_only_http11_and_garbage(void **state)
{
    copy(cert_one, cert);
    copy(key_one, key);
    char errmsg[ERRMSG_SIZE];
    struct http_tls *t;
    assert_int_equal(http_tls_new(&t, cert, key, errmsg), 0);
    /* A client that offers h2 alone is refused. */
    struct http_tls_conn *s;
    assert_int_equal(http_tls_conn_new(&s, t), 0);
    struct client c;
    client_new(&c, "\x02h2", 3);
    assert_int_equal(handshake(&c, s), BERTH_EMALFORMED);
    assert_false(http_tls_conn_ready(s));
    client_free(&c);
    http_tls_conn_free(s);
    /* Plain HTTP on the TLS port. */
    assert_int_equal(http_tls_conn_new(&s, t), 0);
    struct buf plain, out;
    buf_init(&plain);
    buf_init(&out);
    const char *http = "GET / HTTP/1.1\r\nHost: ann.example.org\r\n\r\n";
    assert_int_equal(http_tls_conn_take(s, (const uint8_t *)http, strlen(http),
                                        &plain, &out, errmsg),
                     BERTH_EMALFORMED);
    assert_non_null(strstr(errmsg, "handshake failed"));
    assert_int_equal(plain.len, 0);
    buf_free(&plain);
    buf_free(&out);
    http_tls_conn_free(s);
    http_tls_free(t);
}

static void test_reload(void **state)
{
    copy(cert_one, cert);
    copy(key_one, key);
    char errmsg[ERRMSG_SIZE];
    struct http_tls *t;
    assert_int_equal(http_tls_new(&t, cert, key, errmsg), 0);
    /* A connection begun before the reload keeps its certificate. */
    struct http_tls_conn *before;
    assert_int_equal(http_tls_conn_new(&before, t), 0);
    /* Junk, and a key not the certificate's: refused, the old one stays. */
    FILE *f = fopen(cert, "w");
    fputs("junk\n", f);
    fclose(f);
    assert_int_equal(http_tls_reload(t, errmsg), BERTH_EINVAL);
    assert_non_null(strstr(errmsg, "no start line"));
    copy(cert_one, cert);
    copy(key_two, key);
    assert_int_equal(http_tls_reload(t, errmsg), BERTH_EINVAL);
    assert_non_null(strstr(errmsg, "key values mismatch"));
    struct http_tls_conn *s;
    struct client c;
    assert_int_equal(http_tls_conn_new(&s, t), 0);
    client_new(&c, NULL, 0);
    assert_int_equal(handshake(&c, s), 0);
    assert_true(served(&c, cert_one));
    client_free(&c);
    http_tls_conn_free(s);
    /* The second pair: new connections get it. */
    copy(cert_two, cert);
    copy(key_two, key);
    assert_int_equal(http_tls_reload(t, errmsg), 0);
    char what[300];
    http_tls_describe(t, what, sizeof what);
    assert_non_null(strstr(what, "CN = two") ? strstr(what, "CN = two")
                                             : strstr(what, "CN=two"));
    assert_int_equal(http_tls_conn_new(&s, t), 0);
    client_new(&c, NULL, 0);
    assert_int_equal(handshake(&c, s), 0);
    assert_true(served(&c, cert_two));
    client_free(&c);
    http_tls_conn_free(s);
    client_new(&c, NULL, 0);
    assert_int_equal(handshake(&c, before), 0);
    assert_true(served(&c, cert_one));
    client_free(&c);
    http_tls_conn_free(before);
    http_tls_free(t);
    /* A file that is not there. */
    assert_int_equal(http_tls_new(&t, "/nonexistent/x.crt", key, errmsg),
                     BERTH_EINVAL);
    assert_non_null(strstr(errmsg, "cannot read the certificate"));
}

static void test_openssl_allocates_through_mem(void **state)
{
    copy(cert_one, cert);
    copy(key_one, key);
    char errmsg[ERRMSG_SIZE];
    struct http_tls *t;
    assert_int_equal(http_tls_new(&t, cert, key, errmsg), 0);
    struct http_tls_conn *s = NULL;
    mem_fault_countdown(1);
    int rv = http_tls_conn_new(&s, t);
    bool hit = mem_fault_hit();
    mem_fault_countdown(-1);
    assert_true(hit);
    assert_int_equal(rv, BERTH_ENOMEM);
    ERR_clear_error();
    http_tls_free(t);
}

int main(void)
{
    /* Before OpenSSL allocates anything. */
    if (!http_tls_install_heap()) {
        fprintf(stderr, "OpenSSL did not take lib/mem.h's functions\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_name_alpn_and_records),
        cmocka_unit_test(test_one_ticket_sent_with_what_follows),
        cmocka_unit_test(test_only_http11_and_garbage),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_openssl_allocates_through_mem),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
