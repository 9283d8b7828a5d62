/* What every `make bench` program needs: a monotonic clock, quantiles and
 * a blocking HTTP/1.1 call.
 * Header-only, since each bench source file builds into a program of its own.
 */
#ifndef BERTH_BENCH_H
#define BERTH_BENCH_H

#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <stdlib.h>
#include <time.h>

/* Return a monotonic time in seconds. */
static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline int bench__cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Return the p quantile of v[0..n) (0 when n is 0); sorts v. */
static inline double pct(double *v, size_t n, double p)
{
    if (n == 0) {
        return 0;
    }
    qsort(v, n, sizeof *v, bench__cmp_double);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

/* Send one request on connected socket s and read its whole response
 * (a long body is read and dropped); return the status, or -1. */
static inline int bench_http_call(int s, const char *req, size_t len)
{
    char buf[8192];
    size_t have = 0;
    if (write(s, req, len) != (ssize_t)len) {
        return -1;
    }
    for (;;) {
        ssize_t n = read(s, buf + have, sizeof buf - 1 - have);
        if (n <= 0) {
            return -1;
        }
        have += (size_t)n;
        buf[have] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end == NULL) {
            if (have == sizeof buf - 1) {
                return -1;
            }
            continue;
        }
        char *cl = strcasestr(buf, "content-length:");
        size_t body = cl ? strtoul(cl + 15, NULL, 10) : 0;
        size_t head = (size_t)(end + 4 - buf);
        if (have >= head + body) {
            return atoi(buf + 9);
        }
        if (head + body >= sizeof buf) {
            /* A long body (not expected): read and drop the rest. */
            size_t left = head + body - have;
            while (left > 0) {
                n = read(s, buf, left < sizeof buf ? left : sizeof buf);
                if (n <= 0) {
                    return -1;
                }
                left -= (size_t)n;
            }
            return atoi(buf + 9);
        }
    }
}

#endif
