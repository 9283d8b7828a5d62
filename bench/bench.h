/* What every `make bench` program needs: a monotonic clock and quantiles.
 * Header-only, since each bench source file builds into a program of its own.
 */
#ifndef BERTH_BENCH_H
#define BERTH_BENCH_H

#include <stddef.h>
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

#endif
