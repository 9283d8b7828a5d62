#include "daemon/repair.h"

#include <stdio.h>
#include <string.h>

#include "consensus/log.h"
#include "daemon/host.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "store/fsck.h"
#include "store/shipcopy.h"

/* The timeout of one ask for a copy. */
#define REPAIR__ASK_MS 30000

struct repair {
    struct host *h;
    uint32_t slot;
    unsigned member; /* the member asked now */
    repair_done_cb done;
    void *arg;
    char why[ERRMSG_SIZE]; /* why the last copy was not kept */
};

static bool repair__ask(struct repair *r);

static void repair__end(struct repair *r, bool repaired, const char *detail)
{
    r->done(r->arg, repaired, detail);
    mem_free(r);
}

static void repair__copied(void *arg, int status, const uint8_t *body,
                           size_t len)
{
    struct repair *r = arg;
    struct host *h = r->h;
    const struct registry_ship *e = registry_get(&h->reg, r->slot);
    char from[100];
    const char *member = log_member(h->log, r->member);
    snprintf(from, sizeof from, "%s", member != NULL ? member : "a host");
    int rv = status;
    if (rv == 0 && (e->flags & REGISTRY_REMOVED)) {
        repair__end(r, false, "the ship was removed meanwhile");
        return;
    }
    if (rv == 0) {
        rv = shipcopy_install(h->store, &h->keys, e->sid, body, len, r->why);
        if (rv == BERTH_EMALFORMED) {
            snprintf(r->why, sizeof r->why, "the copy from %s is malformed",
                     from);
        } else if (rv != 0 && rv != BERTH_EREJECTED) {
            snprintf(r->why, sizeof r->why, "cannot install the copy: %s",
                     store_errmsg(h->store));
        }
    } else {
        snprintf(r->why, sizeof r->why, "%s gave no copy: %s", from,
                 err_str(rv));
    }
    if (rv == 0) {
        fleet_clear_corrupt(&h->fleet, r->slot);
        char id[REGISTRY_ID_LEN + 1];
        registry_id(&h->reg, r->slot, id);
        host_log("info", "a ship's stored data repaired from a replica", "ship",
                 id, "from", from, NULL);
        repair__end(r, true, from);
        return;
    }
    r->member++;
    if (!repair__ask(r)) {
        repair__end(r, false,
                    r->why[0] ? r->why
                              : "no other host gave a copy that checks out");
    }
}

/* Ask the next member that takes the ask; return whether one did. */
static bool repair__ask(struct repair *r)
{
    struct host *h = r->h;
    const struct registry_ship *e = registry_get(&h->reg, r->slot);
    const char *member;
    while ((member = log_member(h->log, r->member)) != NULL) {
        if (log_ship_copy(h->log, member, e->sid, REPAIR__ASK_MS,
                          repair__copied, r) == 0) {
            return true;
        }
        r->member++;
    }
    return false;
}

/* Whether the ship in slot has a program running. */
static bool repair__running(struct host *h, uint32_t slot)
{
    const struct fleet_ship *s = registry_get(&h->reg, slot)->live;
    return s != NULL && s->proc;
}

int repair_start(struct host *h, uint32_t slot, repair_done_cb done, void *arg)
{
    /* The answer to an ask always comes later, on the loop. */
    if (repair__running(h, slot)) {
        return BERTH_EBUSY;
    }
    if (log_member(h->log, 0) == NULL) {
        return BERTH_ENOTFOUND;
    }
    struct repair *r = mem_calloc(1, sizeof *r);
    if (r == NULL) {
        return BERTH_ENOMEM;
    }
    r->h = h;
    r->slot = slot;
    r->done = done;
    r->arg = arg;
    if (!repair__ask(r)) {
        mem_free(r);
        return BERTH_ENOTFOUND;
    }
    return 0;
}

static void repair__auto_done(void *arg, bool repaired, const char *detail)
{
    struct host *h = arg;
    h->repairing = false;
    if (!repaired) {
        host_log("warn", "a ship's stored data could not be repaired", "why",
                 detail, NULL);
    }
}

void repair_tick(struct host *h)
{
    struct fleet *f = &h->fleet;
    if (h->repairing || !h->ready || h->stopping) {
        return;
    }
    for (unsigned i = 0; i < f->n_damaged; i++) {
        struct fleet_damage *d = &f->damaged[i];
        if (d->repairs >= REPAIR_TRIES || repair__running(h, d->slot)) {
            continue;
        }
        d->repairs++;
        if (repair_start(h, d->slot, repair__auto_done, h) == 0) {
            h->repairing = true;
        }
        return;
    }
}
