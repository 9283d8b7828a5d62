#include "core/quota.h"

#include <stddef.h>

#define QUOTA__SECOND_NS 1000000000ULL
#define QUOTA__HOUR_NS (3600ULL * QUOTA__SECOND_NS)

static const char *const quota__names[QUOTA__COUNT] = {
    [QUOTA_SHIPS] = "ships",
    [QUOTA_STORAGE] = "storage_bytes",
    [QUOTA_AWAKE] = "ships_awake",
    [QUOTA_CPU] = "cpu_seconds_per_hour",
    [QUOTA_EVENTS] = "events_per_second",
};

static const char *const quota__codes[QUOTA__COUNT] = {
    [QUOTA_SHIPS] = "limit_ships",   [QUOTA_STORAGE] = "limit_storage",
    [QUOTA_AWAKE] = "limit_awake",   [QUOTA_CPU] = "limit_cpu",
    [QUOTA_EVENTS] = "limit_events",
};

const char *quota_name(enum quota_limit which)
{
    return (unsigned)which < QUOTA__COUNT ? quota__names[which] : NULL;
}

const char *quota_code(enum quota_limit which)
{
    return (unsigned)which < QUOTA__COUNT ? quota__codes[which] : "limit";
}

int quota_status(enum quota_limit which)
{
    return which == QUOTA_SHIPS || which == QUOTA_STORAGE ? 507 : 429;
}

uint64_t quota_in_force(uint64_t override, uint64_t host_default)
{
    return override == QUOTA_DEFAULT || override == QUOTA_KEEP ? host_default
                                                               : override;
}

static bool quota__refuse(struct quota_refusal *why, enum quota_limit which,
                          uint64_t limit, uint64_t used)
{
    why->which = which;
    why->limit = limit;
    why->used = used;
    why->ship = false;
    return false;
}

bool quota_create_ok(const uint64_t *limits, uint64_t ships, uint64_t storage,
                     uint64_t count, struct quota_refusal *why)
{
    uint64_t max = limits[QUOTA_SHIPS];
    if (max != QUOTA_NONE && (count > max || ships > max - count)) {
        return quota__refuse(why, QUOTA_SHIPS, max, ships);
    }
    return quota_storage_ok(limits, storage, why);
}

bool quota_storage_ok(const uint64_t *limits, uint64_t storage,
                      struct quota_refusal *why)
{
    uint64_t max = limits[QUOTA_STORAGE];
    if (max != QUOTA_NONE && storage >= max) {
        return quota__refuse(why, QUOTA_STORAGE, max, storage);
    }
    return true;
}

bool quota_wake_ok(const uint64_t *limits, uint64_t awake,
                   struct quota_refusal *why)
{
    uint64_t max = limits[QUOTA_AWAKE];
    if (max != QUOTA_NONE && awake >= max) {
        return quota__refuse(why, QUOTA_AWAKE, max, awake);
    }
    return true;
}

void quota_bucket_refill(struct quota_bucket *b, uint64_t capacity,
                         uint64_t period_ns, uint64_t now_ns)
{
    int64_t cap =
        capacity > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)capacity;
    if (!b->primed) {
        b->primed = true;
        b->level = cap;
        b->at_ns = now_ns;
        return;
    }
    if (now_ns <= b->at_ns) {
        return;
    }
    uint64_t dt = now_ns - b->at_ns;
    if (dt >= period_ns) {
        b->level = cap;
        b->at_ns = now_ns;
        return;
    }
    unsigned __int128 add = (unsigned __int128)capacity * dt / period_ns;
    int64_t room = cap - b->level; /* level <= cap: never negative */
    if (add >= (unsigned __int128)room) {
        b->level = cap;
        b->at_ns = now_ns;
    } else if (add > 0) {
        /* Only the time the whole tokens took is used up: the rest counts
         * towards the next one. */
        b->level += (int64_t)add;
        b->at_ns += (uint64_t)(add * period_ns / capacity);
    }
}

bool quota_event_ok(const uint64_t *limits, struct quota_bucket *b,
                    uint64_t now_ns, struct quota_refusal *why)
{
    uint64_t max = limits[QUOTA_EVENTS];
    if (max == QUOTA_NONE) {
        return true;
    }
    quota_bucket_refill(b, max, QUOTA__SECOND_NS, now_ns);
    if (b->level < 1) {
        return quota__refuse(why, QUOTA_EVENTS, max, max);
    }
    b->level--;
    return true;
}

void quota_cpu_charge(const uint64_t *limits, struct quota_bucket *b,
                      uint64_t usec, uint64_t now_ns)
{
    uint64_t max = limits[QUOTA_CPU];
    if (max == QUOTA_NONE || max > QUOTA_MAX / 1000000) {
        return;
    }
    quota_bucket_refill(b, max * 1000000, QUOTA__HOUR_NS, now_ns);
    int64_t u = usec > (uint64_t)INT64_MAX / 2 ? INT64_MAX / 2 : (int64_t)usec;
    b->level = b->level < INT64_MIN / 2 ? b->level : b->level - u;
}

bool quota_cpu_ok(const uint64_t *limits, struct quota_bucket *b,
                  uint64_t now_ns, struct quota_refusal *why)
{
    uint64_t max = limits[QUOTA_CPU];
    if (max == QUOTA_NONE || max > QUOTA_MAX / 1000000) {
        return true;
    }
    uint64_t cap = max * 1000000;
    quota_bucket_refill(b, cap, QUOTA__HOUR_NS, now_ns);
    if (b->level > 0) {
        return true;
    }
    /* What the bucket lacks of full is what was used within the hour. */
    uint64_t used_us = cap + (uint64_t)(-b->level);
    return quota__refuse(why, QUOTA_CPU, max, used_us / 1000000);
}
