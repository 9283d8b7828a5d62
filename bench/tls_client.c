/* make bench, TLS: the timed parts of bench/tls.py, in C so that the
 * client's own cost stays small beside what it measures (the client
 * shares the machine's cores with the host and the waking ship), and so
 * that the client's CPU per connection can be told beside each figure.
 * OpenSSL, as the host's own TLS.
 *
 *   tls_client get PORT TLS_PORT CAFILE HOST TARGET
 *       takes commands on stdin, one a line, and for each makes a new
 *       connection and one GET of TARGET with Host: HOST, and prints the
 *       time from before the connect to the reply's last byte and this
 *       process's CPU time for it, both in microseconds, and the status:
 *       "plain" to PORT; "tls NAME" to TLS_PORT with NAME in the
 *       ClientHello (SNI), the certificate checked against CAFILE and
 *       NAME; "bare" the same with no name sent or checked; "resume NAME"
 *       as "tls NAME", resuming the session of the TLS connection before
 *       it (the ticket it was sent). "quit" or the end of input stops.
 *   tls_client handshake CERT KEY N
 *       the library's share alone: N handshakes and one request and reply
 *       each between the host's own TLS code (src/http/tls.c, the
 *       certificate at CERT and key at KEY) and an OpenSSL client, both in
 *       this process over memory, no socket; prints the p50 of the CPU
 *       time each side spent per connection, in microseconds. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "http/tls.h"
#include "lib/buf.h"
#include "lib/err.h"

static void die(const char *f, ...) __attribute__((format(printf, 1, 2)));

static void die(const char *f, ...)
{
    va_list ap;
    fprintf(stderr, "tls_client: ");
    va_start(ap, f);
    vfprintf(stderr, f, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(1);
}

/* Return the calling thread's CPU time in microseconds (the client is
 * one thread). */
static double cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static const unsigned char tlsc_alpn[] = "\x08http/1.1";

/* One connection's reading: SSL when TLS, the socket otherwise. */
struct tlsc_conn {
    int fd;
    SSL *ssl;
};

static int tlsc_read(struct tlsc_conn *c, char *p, size_t n)
{
    if (c->ssl != NULL) {
        int r = SSL_read(c->ssl, p, (int)n);
        return r > 0 ? r : -1;
    }
    ssize_t r;
    do {
        r = read(c->fd, p, n);
    } while (r < 0 && errno == EINTR);
    return r > 0 ? (int)r : -1;
}

static bool tlsc_write(struct tlsc_conn *c, const char *p, size_t n)
{
    if (c->ssl != NULL) {
        return SSL_write(c->ssl, p, (int)n) == (int)n;
    }
    while (n > 0) {
        ssize_t r = write(c->fd, p, n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return false;
        }
        p += r;
        n -= (size_t)r;
    }
    return true;
}

/* Read one response with a Content-Length; return its status or -1. */
static int tlsc_response(struct tlsc_conn *c)
{
    char buf[16384];
    size_t have = 0;
    for (;;) {
        if (have == sizeof buf - 1) {
            return -1;
        }
        int n = tlsc_read(c, buf + have, sizeof buf - 1 - have);
        if (n < 0) {
            return -1;
        }
        have += (size_t)n;
        buf[have] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end == NULL) {
            continue;
        }
        char *cl = strcasestr(buf, "\r\ncontent-length:");
        size_t body = cl != NULL && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
        if (have - (size_t)(end + 4 - buf) >= body) {
            return atoi(buf + 9);
        }
    }
}

struct tlsc_get {
    int port, tls_port;
    const char *host, *target;
    SSL_CTX *ctx;
    SSL_SESSION *last; /* the last TLS connection's session */
};

/* One timed connection: kind is "plain", "tls", "bare" or "resume". */
static void tlsc_one(struct tlsc_get *g, const char *kind, const char *name)
{
    bool tls = strcmp(kind, "plain") != 0;
    bool resume = strcmp(kind, "resume") == 0;
    if (strcmp(kind, "bare") == 0) {
        name = NULL;
    } else if (tls && name == NULL) {
        die("%s needs a name", kind);
    }
    char req[512];
    int len = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n",
                       g->target, g->host);
    double t0 = now_s(), c0 = cpu_us();
    struct tlsc_conn c = {.fd = socket(AF_INET, SOCK_STREAM, 0)};
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(tls ? g->tls_port : g->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(c.fd, (struct sockaddr *)&a, sizeof a) != 0) {
        die("connect: %s", strerror(errno));
    }
    if (tls) {
        c.ssl = SSL_new(g->ctx);
        if (c.ssl == NULL) {
            die("SSL_new failed");
        }
        SSL_set_fd(c.ssl, c.fd);
        if (name != NULL) {
            SSL_set_tlsext_host_name(c.ssl, name);
            SSL_set1_host(c.ssl, name);
            SSL_set_verify(c.ssl, SSL_VERIFY_PEER, NULL);
        }
        if (resume && g->last != NULL) {
            SSL_set_session(c.ssl, g->last);
        }
        if (SSL_connect(c.ssl) != 1) {
            ERR_print_errors_fp(stderr);
            die("handshake failed");
        }
    }
    if (!tlsc_write(&c, req, (size_t)len)) {
        die("write failed");
    }
    int status = tlsc_response(&c);
    bool reused = false;
    if (c.ssl != NULL) {
        /* A TLS 1.3 ticket comes after the handshake; it has been read
         * with the reply. */
        reused = SSL_session_reused(c.ssl) == 1;
        SSL_SESSION_free(g->last);
        g->last = SSL_get1_session(c.ssl);
        /* Closed without a close_notify, as a browser often does, yet
         * marked shut down: OpenSSL spoils the session of a connection
         * freed mid-way. */
        SSL_set_shutdown(c.ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_free(c.ssl);
    }
    close(c.fd);
    double us = (now_s() - t0) * 1e6, cpu = cpu_us() - c0;
    if (resume && !reused) {
        die("the session was not resumed");
    }
    printf("%.0f %.0f %d\n", us, cpu, status);
    fflush(stdout);
}

static int tlsc_get_main(int argc, char **argv)
{
    if (argc != 7) {
        die("usage: tls_client get PORT TLS_PORT CAFILE HOST TARGET");
    }
    struct tlsc_get g = {.port = atoi(argv[2]),
                         .tls_port = atoi(argv[3]),
                         .host = argv[5],
                         .target = argv[6]};
    g.ctx = SSL_CTX_new(TLS_client_method());
    if (g.ctx == NULL ||
        SSL_CTX_load_verify_locations(g.ctx, argv[4], NULL) != 1) {
        die("cannot load %s", argv[4]);
    }
    SSL_CTX_set_alpn_protos(g.ctx, tlsc_alpn, sizeof tlsc_alpn - 1);
    char line[512];
    while (fgets(line, sizeof line, stdin) != NULL) {
        char *save;
        char *kind = strtok_r(line, " \n", &save);
        char *name = strtok_r(NULL, " \n", &save);
        if (kind == NULL || strcmp(kind, "quit") == 0) {
            break;
        }
        tlsc_one(&g, kind, name);
    }
    SSL_SESSION_free(g.last);
    SSL_CTX_free(g.ctx);
    return 0;
}

/* Move what a memory BIO holds into out. */
static void tlsc_drain_bio(BIO *b, struct buf *out)
{
    char tmp[16384];
    int n;
    while ((n = BIO_read(b, tmp, sizeof tmp)) > 0) {
        if (buf_append(out, tmp, (size_t)n) != 0) {
            die("out of memory");
        }
    }
}

static int tlsc_handshake_main(int argc, char **argv)
{
    if (argc != 5) {
        die("usage: tls_client handshake CERT KEY N");
    }
    int n = atoi(argv[4]);
    char errmsg[ERRMSG_SIZE];
    /* OpenSSL allocates as in the host. */
    http_tls_install_heap();
    struct http_tls *t;
    if (n <= 0 || http_tls_new(&t, argv[2], argv[3], errmsg) != 0) {
        die("%s", n <= 0 ? "N must be positive" : errmsg);
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_alpn_protos(ctx, tlsc_alpn, sizeof tlsc_alpn - 1);
    static const char req[] = "GET / HTTP/1.1\r\nHost: w.example.org\r\n\r\n";
    static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nv";
    double *srv = calloc((size_t)n, sizeof *srv);
    double *cli = calloc((size_t)n, sizeof *cli);
    if (srv == NULL || cli == NULL) {
        die("out of memory");
    }
    /* The first 20 warm the caches and are not counted. */
    for (int i = -20; i < n; i++) {
        double s_us = 0, c_us = 0, t0 = cpu_us();
        SSL *ssl = SSL_new(ctx);
        BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
        BIO_set_mem_eof_return(rbio, -1);
        SSL_set_bio(ssl, rbio, wbio);
        SSL_set_connect_state(ssl);
        SSL_set_tlsext_host_name(ssl, "w.example.org");
        double t1 = cpu_us();
        c_us += t1 - t0;
        struct http_tls_conn *c;
        if (http_tls_conn_new(&c, t) != 0) {
            die("out of memory");
        }
        s_us += cpu_us() - t1;
        struct buf to_srv, to_cli, plain;
        buf_init(&to_srv);
        buf_init(&to_cli);
        buf_init(&plain);
        bool done = false, got = false;
        for (int step = 0; step < 20 && !got; step++) {
            t0 = cpu_us();
            if (to_cli.len > 0) {
                BIO_write(rbio, to_cli.data, (int)to_cli.len);
                to_cli.len = 0;
            }
            if (!done && SSL_do_handshake(ssl) == 1) {
                done = true;
                SSL_write(ssl, req, sizeof req - 1);
            } else if (done) {
                char tmp[4096];
                got = SSL_read(ssl, tmp, sizeof tmp) > 0;
            }
            tlsc_drain_bio(wbio, &to_srv);
            t1 = cpu_us();
            c_us += t1 - t0;
            if (got) {
                break;
            }
            int rv = http_tls_conn_take(c, to_srv.data, to_srv.len, &plain,
                                        &to_cli, errmsg);
            to_srv.len = 0;
            if (rv == 0 && http_tls_conn_paused(c)) {
                rv = http_tls_conn_take(c, NULL, 0, &plain, &to_cli, errmsg);
            }
            if (rv != 0) {
                die("server: %s", errmsg);
            }
            if (plain.len > 0) {
                uv_buf_t b = uv_buf_init((char *)reply, sizeof reply - 1);
                if (http_tls_conn_seal(c, &b, 1, false, &to_cli) != 0) {
                    die("seal failed");
                }
                plain.len = 0;
            }
            s_us += cpu_us() - t1;
        }
        if (!got) {
            die("no reply");
        }
        t0 = cpu_us();
        http_tls_conn_free(c);
        t1 = cpu_us();
        SSL_free(ssl);
        c_us += cpu_us() - t1;
        s_us += t1 - t0;
        buf_free(&to_srv);
        buf_free(&to_cli);
        buf_free(&plain);
        if (i >= 0) {
            srv[i] = s_us;
            cli[i] = c_us;
        }
    }
    printf("server %.0f client %.0f\n", pct(srv, (size_t)n, 0.5),
           pct(cli, (size_t)n, 0.5));
    free(srv);
    free(cli);
    SSL_CTX_free(ctx);
    http_tls_free(t);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "get") == 0) {
        return tlsc_get_main(argc, argv);
    }
    if (argc >= 2 && strcmp(argv[1], "handshake") == 0) {
        return tlsc_handshake_main(argc, argv);
    }
    fprintf(stderr, "usage: tls_client get PORT TLS_PORT CAFILE HOST TARGET\n"
                    "       tls_client handshake CERT KEY N\n");
    return 2;
}
