/* Limits on the leader: each account's limits in force (its own, else the
 * host's defaults), checked against its recorded usage (the store) and
 * rates kept here, per account, in memory (core/quota.h has the rules).
 * Nothing is read while no account can be held to a limit. */
#include <string.h>

#include "core/quota.h"
#include "daemon/host.h"
#include "lib/err.h"
#include "lib/mem.h"

bool host_quota_active(const struct host *h)
{
    if (h->n_limited > 0) {
        return true;
    }
    for (int i = 0; i < QUOTA__COUNT; i++) {
        if (h->cfg.limits[i] != QUOTA_NONE) {
            return true;
        }
    }
    return false;
}

void host_quota_limits(const struct host *h, const struct store_account *a,
                       uint64_t *limits)
{
    for (int i = 0; i < QUOTA__COUNT; i++) {
        limits[i] = quota_in_force(a->limits[i], h->cfg.limits[i]);
    }
}

/* Read account's record and limits; false (no limit to hold it to) when
 * it cannot be read: a refusal must name a figure. */
static bool quota__read(struct host *h, uint64_t account,
                        struct store_account *a, uint64_t *limits)
{
    if (store_account_get_id(h->store, account, a) != 0) {
        return false;
    }
    host_quota_limits(h, a, limits);
    return true;
}

/* Return account's rates, made if needed; NULL when out of memory (then
 * the rates are not held). */
static struct host_quota *quota__rates(struct host *h, uint64_t account)
{
    for (size_t i = 0; i < h->n_quota; i++) {
        if (h->quota[i].account == account) {
            return &h->quota[i];
        }
    }
    struct host_quota *q =
        mem_realloc(h->quota, (h->n_quota + 1) * sizeof *h->quota);
    if (q == NULL) {
        return NULL;
    }
    h->quota = q;
    q = &h->quota[h->n_quota++];
    memset(q, 0, sizeof *q);
    q->account = account;
    return q;
}

bool host_quota_create_ok(struct host *h, uint64_t account, uint64_t count,
                          struct quota_refusal *why)
{
    struct store_account a;
    uint64_t limits[QUOTA__COUNT];
    if (!host_quota_active(h) || !quota__read(h, account, &a, limits)) {
        return true;
    }
    return quota_create_ok(limits, a.usage.ships, a.usage.storage_bytes, count,
                           why);
}

bool host_quota_wake_ok(struct host *h, uint64_t account,
                        struct quota_refusal *why)
{
    struct store_account a;
    uint64_t limits[QUOTA__COUNT];
    if (!host_quota_active(h) || !quota__read(h, account, &a, limits)) {
        return true;
    }
    return quota_wake_ok(limits, host_usage_awake(h, account), why);
}

bool host_quota_write_ok(struct host *h, uint64_t account,
                         struct quota_refusal *why)
{
    struct store_account a;
    uint64_t limits[QUOTA__COUNT];
    if (!host_quota_active(h) || !quota__read(h, account, &a, limits)) {
        return true;
    }
    if (!quota_storage_ok(limits, a.usage.storage_bytes, why)) {
        return false;
    }
    struct host_quota *q = quota__rates(h, account);
    uint64_t now = uv_hrtime();
    return q == NULL || (quota_cpu_ok(limits, &q->cpu, now, why) &&
                         quota_event_ok(limits, &q->events, now, why));
}

void host_quota_cpu(struct host *h, uint64_t account, uint64_t usec)
{
    struct store_account a;
    uint64_t limits[QUOTA__COUNT];
    if (!host_quota_active(h) || !quota__read(h, account, &a, limits) ||
        limits[QUOTA_CPU] == QUOTA_NONE) {
        return;
    }
    struct host_quota *q = quota__rates(h, account);
    if (q != NULL) {
        quota_cpu_charge(limits, &q->cpu, usec, uv_hrtime());
    }
}

void host_reply_limit(struct http_request *req, const char *message,
                      const struct quota_refusal *why)
{
    json_t *o = json_object();
    json_t *e = json_object();
    json_object_set_new(e, "code", json_string(quota_code(why->which)));
    json_t *m = json_string(message);
    json_object_set_new(e, "message", m ? m : json_string("(not UTF-8)"));
    json_object_set_new(e, "limit", json_integer((json_int_t)why->limit));
    json_object_set_new(e, "used", json_integer((json_int_t)why->used));
    json_object_set_new(o, "error", e);
    host_reply_json(req, quota_status(why->which), o);
}

void host_quota_json(const struct host *h, const struct store_account *a,
                     json_t *o)
{
    json_t *in_force = json_object();
    json_t *set = json_object();
    uint64_t limits[QUOTA__COUNT];
    host_quota_limits(h, a, limits);
    for (int i = 0; i < QUOTA__COUNT; i++) {
        json_object_set_new(in_force, quota_name(i),
                            json_integer((json_int_t)limits[i]));
        if (a->limits[i] != QUOTA_DEFAULT) {
            json_object_set_new(set, quota_name(i),
                                json_integer((json_int_t)a->limits[i]));
        }
    }
    json_object_set_new(o, "limits", in_force);
    json_object_set_new(o, "limits_set", set);
}

void host_quota_free(struct host *h)
{
    mem_free(h->quota);
    h->quota = NULL;
    h->n_quota = 0;
}
