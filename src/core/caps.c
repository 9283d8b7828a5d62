#include "core/caps.h"

#include <stdio.h>
#include <string.h>

#include "lib/err.h"

/* The largest memory cap: far beyond any machine the host runs on, and
 * small enough that every byte count of it fits the kernel's files. */
#define CAPS__MEMORY_MAX (1ULL << 40)

/* The kernel's most pids (PID_MAX_LIMIT on 64-bit). */
#define CAPS__PIDS_MAX 4194304u

void caps_resolve(const struct caps *host, const struct caps *account,
                  const struct caps *ship, struct caps *out)
{
    caps_resolve_from(host, account, ship, out, NULL);
}

/* Narrow *cap to v from level, where 0 is none: a v as small as *cap
 * still takes the level, the later levels being the narrower. */
static void caps__narrow(uint64_t *cap, uint8_t *from, uint64_t v,
                         uint8_t level)
{
    if (v != 0 && (*cap == 0 || v <= *cap)) {
        *cap = v;
        *from = level;
    }
}

void caps_resolve_from(const struct caps *host, const struct caps *account,
                       const struct caps *ship, struct caps *out,
                       struct caps_origin *from)
{
    static const struct caps none;
    const struct caps *level[3] = {
        host ? host : &none, account ? account : &none, ship ? ship : &none};
    struct caps_origin o = {CAPS_LEVEL_NONE, CAPS_LEVEL_NONE, CAPS_LEVEL_NONE};
    uint64_t memory = 0, cpu = 0, pids = 0;
    for (int i = 0; i < 3; i++) {
        uint8_t l = (uint8_t)(CAPS_LEVEL_HOST + i);
        caps__narrow(&memory, &o.memory, level[i]->memory_bytes, l);
        caps__narrow(&cpu, &o.cpu, level[i]->cpu_millis, l);
        caps__narrow(&pids, &o.pids, level[i]->pids, l);
    }
    out->memory_bytes = memory;
    out->cpu_millis = (uint32_t)cpu;
    out->pids = (uint32_t)pids;
    if (from != NULL) {
        *from = o;
    }
}

const char *caps_level_name(uint8_t level)
{
    static const char *const names[] = {
        [CAPS_LEVEL_NONE] = "none",
        [CAPS_LEVEL_HOST] = "host",
        [CAPS_LEVEL_ACCOUNT] = "account",
        [CAPS_LEVEL_SHIP] = "ship",
    };
    return level <= CAPS_LEVEL_SHIP ? names[level] : "none";
}

int caps_check(const struct caps *c)
{
    if ((c->memory_bytes != 0 && (c->memory_bytes < CAPS_MEMORY_MIN ||
                                  c->memory_bytes > CAPS__MEMORY_MAX)) ||
        (c->cpu_millis != 0 &&
         (c->cpu_millis < CAPS_CPU_MIN || c->cpu_millis > CAPS_CPU_MAX)) ||
        (c->pids != 0 &&
         (c->pids < CAPS_PIDS_MIN || c->pids > CAPS__PIDS_MAX))) {
        return BERTH_EINVAL;
    }
    return 0;
}

int caps_none(const struct caps *c)
{
    return c->memory_bytes == 0 && c->cpu_millis == 0 && c->pids == 0;
}

/* Whether text says "no cap". */
static int caps__is_none(const char *text)
{
    return strcmp(text, "0") == 0 || strcmp(text, "none") == 0;
}

/* Read the decimal digits at *p into *v, at most max; returns the number
 * of digits, 0 for none or -1 past max. */
static int caps__digits(const char **p, uint64_t max, uint64_t *v)
{
    int n = 0;
    *v = 0;
    while (**p >= '0' && **p <= '9') {
        *v = *v * 10 + (uint64_t)(**p - '0');
        if (*v > max) {
            return -1;
        }
        (*p)++;
        n++;
    }
    return n;
}

int caps_parse_memory(const char *text, uint64_t *bytes)
{
    if (caps__is_none(text)) {
        *bytes = 0;
        return 0;
    }
    const char *p = text;
    uint64_t v;
    if (caps__digits(&p, CAPS__MEMORY_MAX, &v) <= 0) {
        return BERTH_EINVAL;
    }
    unsigned shift = 0;
    if (*p == 'K' || *p == 'k') {
        shift = 10;
    } else if (*p == 'M' || *p == 'm') {
        shift = 20;
    } else if (*p == 'G' || *p == 'g') {
        shift = 30;
    }
    p += shift != 0;
    if (*p == 'B' || (*p == 'i' && p[1] == 'B')) {
        p += *p == 'i' ? 2 : 1; /* "64MB", "64MiB": the same here */
    }
    if (*p != '\0' || v > (CAPS__MEMORY_MAX >> shift)) {
        return BERTH_EINVAL;
    }
    v <<= shift;
    if (v < CAPS_MEMORY_MIN) {
        return BERTH_EINVAL;
    }
    *bytes = v;
    return 0;
}

int caps_parse_cpu(const char *text, uint32_t *millis)
{
    if (caps__is_none(text)) {
        *millis = 0;
        return 0;
    }
    const char *p = text;
    uint64_t whole, frac = 0;
    int n = caps__digits(&p, CAPS_CPU_MAX / 1000, &whole);
    if (n < 0 || (n == 0 && *p != '.')) {
        return BERTH_EINVAL;
    }
    if (*p == '.') {
        p++;
        int k = 0;
        while (*p >= '0' && *p <= '9' && k < 3) {
            frac = frac * 10 + (uint64_t)(*p++ - '0');
            k++;
        }
        if (k == 0) {
            return BERTH_EINVAL;
        }
        for (; k < 3; k++) {
            frac *= 10;
        }
    }
    uint64_t ms = whole * 1000 + frac;
    if (*p != '\0' || ms < CAPS_CPU_MIN || ms > CAPS_CPU_MAX) {
        return BERTH_EINVAL;
    }
    *millis = (uint32_t)ms;
    return 0;
}

int caps_parse_pids(const char *text, uint32_t *pids)
{
    if (caps__is_none(text)) {
        *pids = 0;
        return 0;
    }
    const char *p = text;
    uint64_t v;
    if (caps__digits(&p, CAPS__PIDS_MAX, &v) <= 0 || *p != '\0' ||
        v < CAPS_PIDS_MIN) {
        return BERTH_EINVAL;
    }
    *pids = (uint32_t)v;
    return 0;
}

void caps_format_memory(uint64_t bytes, char *out, size_t n)
{
    if (bytes == 0) {
        snprintf(out, n, "none");
    } else if (bytes % (1ULL << 30) == 0) {
        snprintf(out, n, "%lluG", (unsigned long long)(bytes >> 30));
    } else if (bytes % (1ULL << 20) == 0) {
        snprintf(out, n, "%lluM", (unsigned long long)(bytes >> 20));
    } else if (bytes % (1ULL << 10) == 0) {
        snprintf(out, n, "%lluK", (unsigned long long)(bytes >> 10));
    } else {
        snprintf(out, n, "%llu", (unsigned long long)bytes);
    }
}
