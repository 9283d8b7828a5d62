/* make bench: berth's figures, each beside a floor measured in the same run.
 *
 *   commit  durable events/s and commit latency p50/p99 for 100-byte PUTs to
 *           the kv program from 1, 16 and 256 concurrent ships (one closed-
 *           loop client each) through a real host, over HTTP. Floor: the same
 *           number of writers sharing write()+fdatasync() on the same disk,
 *           one sync per batch of everything pending (ideal group commit).
 *
 * Waking, thawing and idling at scale are bench/idle_bench.c's.
 *
 * usage: berth_bench BERTH KV DATA_DIR */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "bench.h"
#include "http/http.h"
#include "lib/buf.h"

extern char **environ;

/* --- A host under test. --- */

static pid_t host_pid;
static int host_port;
static char admin_ep[4200];

static void host_stop(void);

static void host_start(const char *berth, const char *data)
{
    char listen[64];
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    bind(s, (struct sockaddr *)&a, sizeof a);
    getsockname(s, (struct sockaddr *)&a, &len);
    host_port = ntohs(a.sin_port);
    close(s);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", host_port);
    snprintf(admin_ep, sizeof admin_ep, "unix:%s/admin.sock", data);
    /* Every client comes from one address and keeps its connection. */
    char *argv[] = {(char *)berth,
                    "serve",
                    "--data",
                    (char *)data,
                    "--listen",
                    listen,
                    "--max-conns-per-addr",
                    "0",
                    "--max-idle-conns",
                    "0",
                    NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    if (posix_spawn(&host_pid, berth, &fa, NULL, argv, environ) != 0) {
        perror("spawn berth");
        exit(1);
    }
    atexit(host_stop);
    char ep[64];
    snprintf(ep, sizeof ep, "127.0.0.1:%d", host_port);
    for (int i = 0; i < 500; i++) {
        struct buf b;
        char err[256];
        int status = 0;
        buf_init(&b);
        if (http_client_request(ep, "GET", "/healthz", NULL, 0, 1000, &status,
                                &b, err) == 0 &&
            status == 200) {
            buf_free(&b);
            return;
        }
        buf_free(&b);
        usleep(20000);
    }
    fprintf(stderr, "bench: host did not start\n");
    exit(1);
}

static void host_stop(void)
{
    if (host_pid > 0) {
        kill(host_pid, SIGTERM);
        waitpid(host_pid, NULL, 0);
        host_pid = 0;
    }
}

static json_t *admin(const char *method, const char *target, const char *body)
{
    struct buf b;
    char err[256];
    int status = 0;
    buf_init(&b);
    if (http_client_request(admin_ep, method, target, body,
                            body ? strlen(body) : 0, 0, &status, &b,
                            err) != 0 ||
        status >= 300) {
        fprintf(stderr, "bench: %s %s failed: %d %s %.*s\n", method, target,
                status, err, (int)b.len, (char *)b.data);
        exit(1);
    }
    json_t *v = json_loadb((const char *)b.data, b.len, 0, NULL);
    buf_free(&b);
    return v;
}

static void new_ship(const char *kv, const char *name)
{
    char body[4300];
    snprintf(body, sizeof body, "{\"program\":\"%s\",\"name\":\"%s\"}", kv,
             name);
    json_decref(admin("POST", "/v1/ships", body));
}

/* --- A keep-alive HTTP client, just enough for the bench. --- */

static int conn_open(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)host_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("connect");
        exit(1);
    }
    return s;
}

struct worker {
    pthread_t thread;
    char ship[32];
    double until;
    double *lat;
    size_t n, cap;
    int errors;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    int s = conn_open();
    char value[101];
    memset(value, 'v', 100);
    value[100] = '\0';
    char req[512];
    for (unsigned long i = 0; now_s() < w->until; i++) {
        int len = snprintf(req, sizeof req,
                           "PUT /s/%s/k/key%lu HTTP/1.1\r\nHost: b\r\n"
                           "Content-Length: 100\r\n\r\n%s",
                           w->ship, i % 1000, value);
        double t0 = now_s();
        int status = bench_http_call(s, req, (size_t)len);
        double dt = now_s() - t0;
        if (status != 200 && status != 201) {
            w->errors++;
            close(s);
            s = conn_open();
            continue;
        }
        if (w->n == w->cap) {
            w->cap = w->cap ? w->cap * 2 : 4096;
            w->lat = realloc(w->lat, w->cap * sizeof *w->lat);
        }
        w->lat[w->n++] = dt;
    }
    close(s);
    return NULL;
}

static void run_commit(int n_ships, double seconds, double *eps, double *p50,
                       double *p99, int *errors)
{
    struct worker *ws = calloc((size_t)n_ships, sizeof *ws);
    /* Warm up: wake every ship before timing. */
    for (int i = 0; i < n_ships; i++) {
        snprintf(ws[i].ship, sizeof ws[i].ship, "c%d-%d", n_ships, i);
        int s = conn_open();
        char req[256];
        int len =
            snprintf(req, sizeof req, "GET /s/%s/k HTTP/1.1\r\nHost: b\r\n\r\n",
                     ws[i].ship);
        bench_http_call(s, req, (size_t)len);
        close(s);
    }
    double t0 = now_s();
    for (int i = 0; i < n_ships; i++) {
        ws[i].until = t0 + seconds;
        pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]);
    }
    size_t total = 0;
    for (int i = 0; i < n_ships; i++) {
        pthread_join(ws[i].thread, NULL);
        total += ws[i].n;
    }
    double elapsed = now_s() - t0;
    double *all = malloc((total ? total : 1) * sizeof *all);
    size_t k = 0;
    *errors = 0;
    for (int i = 0; i < n_ships; i++) {
        memcpy(all + k, ws[i].lat, ws[i].n * sizeof *all);
        k += ws[i].n;
        *errors += ws[i].errors;
        free(ws[i].lat);
    }
    *eps = (double)total / elapsed;
    *p50 = pct(all, total, 0.50);
    *p99 = pct(all, total, 0.99);
    free(all);
    free(ws);
}

/* The floor for commit: n writers, one fdatasync per batch of all pending
 * events, so each event waits for one write + sync. */
static void floor_commit(const char *dir, int n, double seconds, double *eps,
                         double *lat)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/floor.dat", dir);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    char *batch = calloc((size_t)n, 100);
    double t0 = now_s();
    unsigned long syncs = 0;
    off_t off = 0;
    while (now_s() - t0 < seconds) {
        if (pwrite(fd, batch, (size_t)n * 100, off) < 0 || fdatasync(fd) != 0) {
            perror("floor");
            exit(1);
        }
        off += n * 100;
        if (off > 64 << 20) {
            off = 0;
        }
        syncs++;
    }
    double elapsed = now_s() - t0;
    *eps = (double)syncs * n / elapsed;
    *lat = elapsed / (double)syncs;
    close(fd);
    unlink(path);
    free(batch);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: berth_bench BERTH KV DATA_DIR\n");
        return 2;
    }
    const char *berth = argv[1], *kv = argv[2], *data = argv[3];
    double seconds =
        getenv("BENCH_SECONDS") ? atof(getenv("BENCH_SECONDS")) : 3;
    signal(SIGPIPE, SIG_IGN);
    mkdir(data, 0700);

    host_start(berth, data);
    static const int sizes[] = {1, 16, 256};
    for (size_t k = 0; k < 3; k++) {
        for (int i = 0; i < sizes[k]; i++) {
            char name[32];
            snprintf(name, sizeof name, "c%d-%d", sizes[k], i);
            new_ship(kv, name);
        }
    }
    printf("commit: 100-byte PUTs to kv over HTTP, closed loop, %.0f s each\n",
           seconds);
    printf("%-7s %12s %10s %10s %9s | %12s %10s | %8s\n", "ships", "events/s",
           "p50 ms", "p99 ms", "ev/batch", "floor ev/s", "floor ms",
           "floor/berth");
    for (size_t k = 0; k < 3; k++) {
        double eps, p50, p99, feps, flat;
        int errors;
        json_t *before = admin("GET", "/v1/stats", NULL);
        run_commit(sizes[k], seconds, &eps, &p50, &p99, &errors);
        json_t *after = admin("GET", "/v1/stats", NULL);
        double events =
            (double)(json_integer_value(
                         json_object_get(after, "events_committed")) -
                     json_integer_value(
                         json_object_get(before, "events_committed")));
        double batches =
            (double)(json_integer_value(
                         json_object_get(after, "batches_committed")) -
                     json_integer_value(
                         json_object_get(before, "batches_committed")));
        json_decref(before);
        json_decref(after);
        floor_commit(data, sizes[k], seconds, &feps, &flat);
        printf("%-7d %12.0f %10.3f %10.3f %9.1f | %12.0f %10.3f | %7.2fx%s\n",
               sizes[k], eps, p50 * 1e3, p99 * 1e3,
               batches > 0 ? events / batches : 0, feps, flat * 1e3, feps / eps,
               errors ? "  (errors!)" : "");
        fflush(stdout);
    }
    return 0;
}
