/* Quotas: the rules of an account's limits, pure.
 *
 * An account may be held to five limits (enum quota_limit). Each account
 * has an override per limit (stored, replicated by ACCOUNT entries), or
 * QUOTA_DEFAULT for the host's default (a `berth serve` option); a limit of
 * QUOTA_NONE (0) is no limit. Counts and sizes are checked against the
 * recorded usage (store/store.h); rates against token buckets the leader
 * keeps in memory (struct quota_bucket).
 *
 * What is refused, and how (docs/api.md, "Limits"): a new ship over the
 * ships or storage limit (507), an event that would be committed over the
 * storage limit (507), or over the events or CPU rate (429), and a wake
 * over the awake limit (429). Nothing here touches the store, the loop or
 * the clock: callers pass the figures and the time. */
#ifndef BERTH_CORE_QUOTA_H
#define BERTH_CORE_QUOTA_H

#include <stdbool.h>
#include <stdint.h>

/* The limits of an account. */
enum quota_limit {
    QUOTA_SHIPS,   /* ships at most */
    QUOTA_STORAGE, /* storage bytes at most */
    QUOTA_AWAKE,   /* ships with a running program at most */
    QUOTA_CPU,     /* CPU seconds an hour, as a bucket refilled over an hour */
    QUOTA_EVENTS,  /* events committed a second, as a bucket of one second */
    QUOTA__COUNT
};

/* An override that says: the host's default. */
#define QUOTA_DEFAULT UINT64_MAX

/* An override in an ACCOUNT entry that says: leave this one as it is. */
#define QUOTA_KEEP (UINT64_MAX - 1)

/* A limit that is no limit. */
#define QUOTA_NONE 0

/* The largest limit that may be set (leaves room for the two above). */
#define QUOTA_MAX (1ULL << 62)

/* Why an operation is refused: which limit, its value, and the figure
 * that reached it. */
struct quota_refusal {
    enum quota_limit which;
    uint64_t limit;
    uint64_t used;
    bool ship; /* the ship's own sandbox cap, not its account's limit */
};

/* Return the name of a limit as the API and the CLI spell it ("ships",
 * "storage_bytes", "ships_awake", "cpu_seconds_per_hour",
 * "events_per_second"), or NULL for none. */
const char *quota_name(enum quota_limit which);

/* Return the error code of a refusal by which ("limit_ships", ...). */
const char *quota_code(enum quota_limit which);

/* Return the HTTP status of a refusal by which: 507 for ships and storage
 * (they stay until something is removed or the limit raised), 429 for the
 * others (they clear by themselves as time passes). */
int quota_status(enum quota_limit which);

/* Return the limit in force: override, or host_default for QUOTA_DEFAULT. */
uint64_t quota_in_force(uint64_t override, uint64_t host_default);

/* Return whether count new ships may be made by an account with ships
 * ships and storage bytes under limits (in force, QUOTA__COUNT of them);
 * when not, fill *why. */
bool quota_create_ok(const uint64_t *limits, uint64_t ships, uint64_t storage,
                     uint64_t count, struct quota_refusal *why);

/* Return whether an account with storage bytes may commit another event
 * under limits; when not, fill *why. */
bool quota_storage_ok(const uint64_t *limits, uint64_t storage,
                      struct quota_refusal *why);

/* Return whether an account with awake ships running may wake another
 * under limits; when not, fill *why. */
bool quota_wake_ok(const uint64_t *limits, uint64_t awake,
                   struct quota_refusal *why);

/* A token bucket: level tokens (may go below 0 when charged after the
 * fact), refilled continuously up to a capacity. */
struct quota_bucket {
    int64_t level;
    uint64_t at_ns; /* when level was last refilled */
    bool primed;    /* false: full at the first refill */
};

/* Refill b to now_ns at capacity tokens per period_ns, up to capacity. */
void quota_bucket_refill(struct quota_bucket *b, uint64_t capacity,
                         uint64_t period_ns, uint64_t now_ns);

/* Return whether an event may be committed under limits by an account
 * whose event bucket is b, at now_ns, taking its token; when not, fill
 * *why (used: the events of the last second, the limit). */
bool quota_event_ok(const uint64_t *limits, struct quota_bucket *b,
                    uint64_t now_ns, struct quota_refusal *why);

/* Charge usec of CPU time to an account's CPU bucket b at now_ns. */
void quota_cpu_charge(const uint64_t *limits, struct quota_bucket *b,
                      uint64_t usec, uint64_t now_ns);

/* Return whether an account whose CPU bucket is b has CPU time left under
 * limits at now_ns; when not, fill *why (used: CPU seconds of the last
 * hour, about). */
bool quota_cpu_ok(const uint64_t *limits, struct quota_bucket *b,
                  uint64_t now_ns, struct quota_refusal *why);

#endif
