/* A latency histogram with fixed memory and bounded relative error.
 *
 * Values (nanoseconds, say) fall into log-linear buckets: 16 buckets for each
 * power of two, so a reported percentile is within about 3% of the true
 * value, whatever the range, in 8 KiB and with O(1) recording. Good for
 * "percentiles since start" without keeping samples. */
#ifndef BERTH_LIB_HIST_H
#define BERTH_LIB_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 4
#define HIST_BUCKETS (64 << HIST_SUB_BITS)

struct hist {
    uint64_t count;
    uint64_t max;
    uint64_t sum; /* of every value recorded; wraps past 2^64 */
    uint64_t buckets[HIST_BUCKETS];
};

/* Empty the histogram. */
void hist_init(struct hist *h);

/* Record one value. */
void hist_record(struct hist *h, uint64_t value);

/* Return how many recorded values lie in buckets whose every value is at
 * most v: a count of the values at most v that may leave out those in the
 * one bucket holding v (within 1/16 of it). Cumulative: never falls as v
 * grows. */
uint64_t hist_count_at_most(const struct hist *h, uint64_t v);

/* Return the value at quantile q (0 to 1): the middle of the bucket holding
 * it, or 0 when the histogram is empty. */
uint64_t hist_quantile(const struct hist *h, double q);

#endif
