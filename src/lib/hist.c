#include "lib/hist.h"

#include <string.h>

void hist_init(struct hist *h)
{
    memset(h, 0, sizeof *h);
}

static unsigned hist__bucket(uint64_t v)
{
    if (v < (1u << HIST_SUB_BITS)) {
        return (unsigned)v;
    }
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* v >= 16: e >= 4 */
    unsigned sub =
        (unsigned)(v >> (e - HIST_SUB_BITS)) & ((1u << HIST_SUB_BITS) - 1);
    return ((e - HIST_SUB_BITS + 1) << HIST_SUB_BITS) + sub;
}

/* The smallest value of a bucket. */
static uint64_t hist__low(unsigned b)
{
    if (b < (1u << HIST_SUB_BITS)) {
        return b;
    }
    unsigned e = (b >> HIST_SUB_BITS) + HIST_SUB_BITS - 1;
    uint64_t sub = b & ((1u << HIST_SUB_BITS) - 1);
    return (1ULL << e) + (sub << (e - HIST_SUB_BITS));
}

void hist_record(struct hist *h, uint64_t value)
{
    h->buckets[hist__bucket(value)]++;
    h->count++;
    h->sum += value;
    if (value > h->max) {
        h->max = value;
    }
}

uint64_t hist_quantile(const struct hist *h, double q)
{
    if (h->count == 0) {
        return 0;
    }
    if (q < 0) {
        q = 0;
    }
    uint64_t rank = (uint64_t)(q * (double)(h->count - 1)) + 1;
    uint64_t seen = 0;
    for (unsigned b = 0; b < HIST_BUCKETS; b++) {
        seen += h->buckets[b];
        if (seen >= rank) {
            uint64_t lo = hist__low(b);
            uint64_t hi = b + 1 < HIST_BUCKETS ? hist__low(b + 1) : lo;
            uint64_t mid = lo + (hi - lo) / 2;
            return mid > h->max ? h->max : mid;
        }
    }
    return h->max;
}

uint64_t hist_count_at_most(const struct hist *h, uint64_t v)
{
    if (v == UINT64_MAX) {
        return h->count;
    }
    /* Buckets past the one of UINT64_MAX hold nothing (and their bounds
     * do not fit in 64 bits). */
    uint64_t n = 0;
    unsigned top = hist__bucket(UINT64_MAX);
    for (unsigned b = 0; b < top; b++) {
        /* The bucket's largest value is one below the next one's least. */
        if (hist__low(b + 1) - 1 > v) {
            break;
        }
        n += h->buckets[b];
    }
    return n;
}
