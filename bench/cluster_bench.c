/* make bench, cluster section: the load generator and the floors that
 * bench/cluster.py puts beside a cluster's figures.
 *
 *   load MODE TARGETS CONC SECONDS [NAME] [COUNT]
 *       CONC closed-loop clients, each with one keep-alive connection to
 *       one of TARGETS (host:port,host:port,...; client i uses target
 *       i mod n), each writing 100-byte values for SECONDS (or until the
 *       clients together have COUNT acknowledged writes, when COUNT > 0).
 *       MODE berth: PUT /s/NAME-<i+1>/k/key<n> to the kv program, one ship
 *       per client. MODE etcd: POST /v3/kv/put (etcd's v3 HTTP gateway)
 *       with base64 key NAME<i>/key<n> and value. MODE read: GET
 *       /s/NAME-<i+1>/k/key0 (reads, to awake ships: the same request
 *       again and again, which the host answers with the reply it kept).
 *       MODE fresh: the same with ?n=<n> added, a new request each time,
 *       which only the program can answer. MODE get: GET / (a proxy in
 *       front of a trivial backend). MODE one: PUT /s/NAME-1/k/key<n>, every
 *       client to the same ship. MODE spawn: POST /s/NAME-<p>/children with
 *       body "linked", one child a request (202), every client to the same
 *       parent p, the next one after each CB_SPAWN_PER_PARENT requests
 *       begun (a kv keeps at most 1024 children). MODE create: POST
 *       /v1/ships with {"program": NAME, "count": 1} to a host's admin API,
 *       one ship a request (201). A target is host:port, or unix:PATH for a
 *       Unix socket (the admin API's DATA/admin.sock).
 *   fsync DIR CONC SECONDS
 *       floor: CONC writers sharing one write()+fdatasync() per batch of
 *       everything pending (ideal group commit) on DIR's disk.
 *   rtt SECONDS
 *       floor: one-byte ping-pong over a loopback TCP connection.
 *
 * Each prints one line of JSON: events, events/s, p50/p99 in ms, errors,
 * and the generator's own CPU: seconds, cores used on average, and that as
 * a share of the machine's cores, so that a figure the client itself
 * limits shows as such. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench.h"

#define CB_VALUE 100

/* Children a parent is asked for in MODE spawn before the next parent. */
#define CB_SPAWN_PER_PARENT 1000

struct cb_target {
    struct sockaddr_in addr;
    struct sockaddr_un unix_addr; /* used when its sun_path is set */
};

static struct cb_target cb_targets[64];
static int cb_ntargets;
static atomic_long cb_acked;
static atomic_long cb_spawns; /* MODE spawn: requests begun */
static long cb_count;

struct cb_worker {
    pthread_t thread;
    int index;
    const char *mode;
    const char *name;
    double until;
    double *lat;
    size_t n, cap;
    int errors;
};

static int cb_parse_targets(char *list)
{
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save)) {
        if (cb_ntargets == 64) {
            return -1;
        }
        if (strncmp(t, "unix:", 5) == 0) {
            struct sockaddr_un *u = &cb_targets[cb_ntargets++].unix_addr;
            u->sun_family = AF_UNIX;
            if (strlen(t + 5) >= sizeof u->sun_path) {
                return -1;
            }
            strcpy(u->sun_path, t + 5);
            continue;
        }
        char *colon = strrchr(t, ':');
        if (colon == NULL) {
            return -1;
        }
        *colon = '\0';
        struct sockaddr_in *a = &cb_targets[cb_ntargets++].addr;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)atoi(colon + 1));
        if (inet_pton(AF_INET, t, &a->sin_addr) != 1) {
            return -1;
        }
    }
    return cb_ntargets > 0 ? 0 : -1;
}

static int cb_connect(const struct cb_target *t)
{
    if (t->unix_addr.sun_path[0] != '\0') {
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(s, (const struct sockaddr *)&t->unix_addr,
                    sizeof t->unix_addr) != 0) {
            close(s);
            return -1;
        }
        return s;
    }
    const struct sockaddr_in *a = &t->addr;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(s, (const struct sockaddr *)a, sizeof *a) != 0) {
        close(s);
        return -1;
    }
    return s;
}

static void cb_base64(const char *in, size_t len, char *out)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned char)in[i] << 16;
        v |= i + 1 < len ? (unsigned char)in[i + 1] << 8 : 0;
        v |= i + 2 < len ? (unsigned char)in[i + 2] : 0;
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? tab[v & 63] : '=';
    }
    out[o] = '\0';
}

static int cb_request(const struct cb_worker *w, unsigned long i, char *req,
                      size_t size)
{
    char value[CB_VALUE + 1];
    memset(value, 'v', CB_VALUE);
    value[CB_VALUE] = '\0';
    if (strcmp(w->mode, "read") == 0) {
        return snprintf(req, size,
                        "GET /s/%s-%d/k/key0 HTTP/1.1\r\nHost: b\r\n\r\n",
                        w->name, w->index + 1);
    }
    if (strcmp(w->mode, "fresh") == 0) {
        return snprintf(req, size,
                        "GET /s/%s-%d/k/key0?n=%lu HTTP/1.1\r\nHost: b\r\n\r\n",
                        w->name, w->index + 1, i);
    }
    if (strcmp(w->mode, "spawn") == 0) {
        long k = atomic_fetch_add(&cb_spawns, 1);
        return snprintf(req, size,
                        "POST /s/%s-%ld/children HTTP/1.1\r\nHost: b\r\n"
                        "Content-Length: 6\r\n\r\nlinked",
                        w->name, 1 + k / CB_SPAWN_PER_PARENT);
    }
    if (strcmp(w->mode, "create") == 0) {
        char body[4200];
        /* NAME is the program's path, which needs no JSON escapes here. */
        int blen = snprintf(body, sizeof body,
                            "{\"program\":\"%s\",\"count\":1}", w->name);
        return snprintf(req, size,
                        "POST /v1/ships HTTP/1.1\r\nHost: b\r\n"
                        "Content-Type: application/json\r\n"
                        "Content-Length: %d\r\n\r\n%s",
                        blen, body);
    }
    if (strcmp(w->mode, "get") == 0) {
        return snprintf(req, size, "GET / HTTP/1.1\r\nHost: b\r\n\r\n");
    }
    if (strcmp(w->mode, "etcd") == 0) {
        char key[128], k64[200], v64[200], body[512];
        snprintf(key, sizeof key, "%s%d/key%lu", w->name, w->index, i % 1000);
        cb_base64(key, strlen(key), k64);
        cb_base64(value, CB_VALUE, v64);
        int blen = snprintf(body, sizeof body,
                            "{\"key\":\"%s\",\"value\":\"%s\"}", k64, v64);
        return snprintf(req, size,
                        "POST /v3/kv/put HTTP/1.1\r\nHost: b\r\n"
                        "Content-Type: application/json\r\n"
                        "Content-Length: %d\r\n\r\n%s",
                        blen, body);
    }
    return snprintf(req, size,
                    "PUT /s/%s-%d/k/key%lu HTTP/1.1\r\nHost: b\r\n"
                    "Content-Length: %d\r\n\r\n%s",
                    w->name, strcmp(w->mode, "one") == 0 ? 1 : w->index + 1,
                    i % 1000, CB_VALUE, value);
}

static void *cb_worker_main(void *arg)
{
    struct cb_worker *w = arg;
    const struct cb_target *a = &cb_targets[w->index % cb_ntargets];
    int s = cb_connect(a);
    char req[8192];
    for (unsigned long i = 0; now_s() < w->until; i++) {
        if (cb_count > 0 && atomic_load(&cb_acked) >= cb_count) {
            break;
        }
        if (s < 0) {
            w->errors++;
            usleep(10000);
            s = cb_connect(a);
            continue;
        }
        int len = cb_request(w, i, req, sizeof req);
        double t0 = now_s();
        int status = bench_http_call(s, req, (size_t)len);
        double dt = now_s() - t0;
        if (status != 200 && status != 201 && status != 202) {
            w->errors++;
            close(s);
            s = cb_connect(a);
            continue;
        }
        atomic_fetch_add(&cb_acked, 1);
        if (w->n == w->cap) {
            w->cap = w->cap ? w->cap * 2 : 4096;
            double *lat = realloc(w->lat, w->cap * sizeof *lat);
            if (lat == NULL) {
                abort();
            }
            w->lat = lat;
        }
        w->lat[w->n++] = dt;
    }
    if (s >= 0) {
        close(s);
    }
    return NULL;
}

static double cb_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void cb_print(double events, double elapsed, double p50, double p99,
                     int errors, double cpu0)
{
    double cpu = cb_cpu_s() - cpu0;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    printf("{\"events\": %.0f, \"eps\": %.1f, \"p50_ms\": %.3f, "
           "\"p99_ms\": %.3f, \"errors\": %d, \"client_cpu_s\": %.3f, "
           "\"client_cores\": %.3f, \"client_share\": %.3f}\n",
           events, elapsed > 0 ? events / elapsed : 0, p50 * 1e3, p99 * 1e3,
           errors, cpu, elapsed > 0 ? cpu / elapsed : 0,
           elapsed > 0 && cores > 0 ? cpu / elapsed / (double)cores : 0);
}

static int cb_load(int argc, char **argv)
{
    if (argc < 6) {
        return 2;
    }
    const char *mode = argv[2];
    if (cb_parse_targets(argv[3]) != 0) {
        fprintf(stderr, "cluster_bench: bad targets\n");
        return 2;
    }
    int conc = atoi(argv[4]);
    double seconds = atof(argv[5]);
    const char *name = argc > 6 ? argv[6] : "c";
    cb_count = argc > 7 ? atol(argv[7]) : 0;
    struct cb_worker *ws = calloc((size_t)conc, sizeof *ws);
    double cpu0 = cb_cpu_s();
    double t0 = now_s();
    for (int i = 0; i < conc; i++) {
        ws[i].index = i;
        ws[i].mode = mode;
        ws[i].name = name;
        ws[i].until = t0 + seconds;
        pthread_create(&ws[i].thread, NULL, cb_worker_main, &ws[i]);
    }
    size_t total = 0;
    int errors = 0;
    for (int i = 0; i < conc; i++) {
        pthread_join(ws[i].thread, NULL);
        total += ws[i].n;
        errors += ws[i].errors;
    }
    double elapsed = now_s() - t0;
    double *all = malloc((total ? total : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < conc; i++) {
        memcpy(all + k, ws[i].lat, ws[i].n * sizeof *all);
        k += ws[i].n;
        free(ws[i].lat);
    }
    cb_print((double)total, elapsed, pct(all, total, 0.50),
             pct(all, total, 0.99), errors, cpu0);
    free(all);
    free(ws);
    return 0;
}

static int cb_fsync(int argc, char **argv)
{
    if (argc < 5) {
        return 2;
    }
    int n = atoi(argv[3]);
    double seconds = atof(argv[4]);
    char path[4200];
    snprintf(path, sizeof path, "%s/floor.dat", argv[2]);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    if (fd < 0) {
        perror("floor");
        return 1;
    }
    char *batch = calloc((size_t)n, CB_VALUE);
    size_t cap = 1 << 16, count = 0;
    double *lat = malloc(cap * sizeof *lat);
    double cpu0 = cb_cpu_s();
    double t0 = now_s();
    off_t off = 0;
    while (now_s() - t0 < seconds) {
        double s0 = now_s();
        if (pwrite(fd, batch, (size_t)n * CB_VALUE, off) < 0 ||
            fdatasync(fd) != 0) {
            perror("floor");
            return 1;
        }
        if (count == cap) {
            cap *= 2;
            lat = realloc(lat, cap * sizeof *lat);
        }
        lat[count++] = now_s() - s0;
        off += n * CB_VALUE;
        if (off > 64 << 20) {
            off = 0;
        }
    }
    double elapsed = now_s() - t0;
    cb_print((double)count * n, elapsed, pct(lat, count, 0.50),
             pct(lat, count, 0.99), 0, cpu0);
    close(fd);
    unlink(path);
    free(batch);
    free(lat);
    return 0;
}

static void *cb_echo_main(void *arg)
{
    int l = *(int *)arg;
    int s = accept(l, NULL, NULL);
    char c;
    while (read(s, &c, 1) == 1) {
        if (write(s, &c, 1) != 1) {
            break;
        }
    }
    close(s);
    return NULL;
}

static int cb_rtt(int argc, char **argv)
{
    double seconds = argc > 2 ? atof(argv[2]) : 1;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 1) != 0 ||
        getsockname(l, (struct sockaddr *)&a, &alen) != 0) {
        perror("rtt");
        return 1;
    }
    pthread_t echo;
    pthread_create(&echo, NULL, cb_echo_main, &l);
    struct cb_target t = {.addr = a};
    int s = cb_connect(&t);
    size_t cap = 1 << 16, count = 0;
    double *lat = malloc(cap * sizeof *lat);
    double cpu0 = cb_cpu_s();
    double t0 = now_s();
    char c = 'x';
    while (now_s() - t0 < seconds) {
        double s0 = now_s();
        if (write(s, &c, 1) != 1 || read(s, &c, 1) != 1) {
            perror("rtt");
            return 1;
        }
        if (count == cap) {
            cap *= 2;
            lat = realloc(lat, cap * sizeof *lat);
        }
        lat[count++] = now_s() - s0;
    }
    double elapsed = now_s() - t0;
    close(s);
    pthread_join(echo, NULL);
    close(l);
    cb_print((double)count, elapsed, pct(lat, count, 0.50),
             pct(lat, count, 0.99), 0, cpu0);
    free(lat);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    int rv = 2;
    if (argc > 1 && strcmp(argv[1], "load") == 0) {
        rv = cb_load(argc, argv);
    } else if (argc > 1 && strcmp(argv[1], "fsync") == 0) {
        rv = cb_fsync(argc, argv);
    } else if (argc > 1 && strcmp(argv[1], "rtt") == 0) {
        rv = cb_rtt(argc, argv);
    }
    if (rv == 2) {
        fprintf(stderr, "usage: cluster_bench load berth|etcd|read|fresh|get "
                        "HOST:PORT[,...] CONC "
                        "SECONDS [NAME] [COUNT]\n"
                        "       cluster_bench fsync DIR CONC SECONDS\n"
                        "       cluster_bench rtt SECONDS\n");
    }
    return rv;
}
