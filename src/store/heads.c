#include "store/heads.h"

#include <string.h>

#include "lib/err.h"
#include "lib/mem.h"

#define HEADS__MIN_CAP 64

void heads_init(struct heads *h)
{
    memset(h, 0, sizeof *h);
}

void heads_close(struct heads *h)
{
    mem_free(h->slots);
    mem_free(h->undo);
    heads_init(h);
}

static size_t heads__home(const struct heads *h, uint64_t sid)
{
    /* Fibonacci hashing: sids are dense small integers. */
    return (size_t)((sid * 0x9E3779B97F4A7C15ull) >> 32) & (h->cap - 1);
}

static struct heads_entry *heads__slot(const struct heads *h, uint64_t sid)
{
    if (h->cap == 0) {
        return NULL;
    }
    for (size_t i = heads__home(h, sid);; i = (i + 1) & (h->cap - 1)) {
        if (h->slots[i].sid == sid) {
            return &h->slots[i];
        }
        if (h->slots[i].sid == 0) {
            return NULL;
        }
    }
}

const struct heads_entry *heads_find(const struct heads *h, uint64_t sid)
{
    return heads__slot(h, sid);
}

/* Put e in a table known to have room and not to hold e->sid. */
static void heads__place(struct heads *h, const struct heads_entry *e)
{
    size_t i = heads__home(h, e->sid);
    while (h->slots[i].sid != 0) {
        i = (i + 1) & (h->cap - 1);
    }
    h->slots[i] = *e;
    h->n++;
}

/* Make room for one more head: at most three quarters full. */
static int heads__reserve(struct heads *h)
{
    if ((h->n + 1) * 4 <= h->cap * 3) {
        return 0;
    }
    size_t cap = h->cap ? h->cap * 2 : HEADS__MIN_CAP;
    struct heads_entry *slots = mem_calloc(cap, sizeof *slots);
    if (slots == NULL) {
        return BERTH_ENOMEM;
    }
    struct heads_entry *old = h->slots;
    size_t old_cap = h->cap;
    h->slots = slots;
    h->cap = cap;
    h->n = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].sid != 0) {
            heads__place(h, &old[i]);
        }
    }
    mem_free(old);
    return 0;
}

/* Remove the head in slot i, shifting back the ones after it that probed
 * past it, so that no lookup stops short. */
static void heads__delete_at(struct heads *h, size_t i)
{
    size_t mask = h->cap - 1;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (h->slots[j].sid == 0) {
            break;
        }
        size_t home = heads__home(h, h->slots[j].sid);
        /* Slot j's head may move to i if i lies on its probe path, that is
         * cyclically in [home, j). */
        bool on_path =
            i <= j ? (home <= i || home > j) : (home <= i && home > j);
        if (on_path) {
            h->slots[i] = h->slots[j];
            i = j;
        }
    }
    memset(&h->slots[i], 0, sizeof h->slots[i]);
    h->n--;
}

/* Record the head of sid as it is now, if an entry is open. */
static int heads__record(struct heads *h, uint64_t sid)
{
    if (!h->in_entry) {
        return 0;
    }
    if (h->undo_n == h->undo_cap) {
        size_t cap = h->undo_cap ? h->undo_cap * 2 : HEADS__MIN_CAP;
        struct heads__undo *undo = mem_realloc(h->undo, cap * sizeof *undo);
        if (undo == NULL) {
            return BERTH_ENOMEM;
        }
        h->undo = undo;
        h->undo_cap = cap;
    }
    struct heads__undo *u = &h->undo[h->undo_n++];
    const struct heads_entry *e = heads__slot(h, sid);
    u->had = e != NULL;
    if (e != NULL) {
        u->old = *e;
    } else {
        memset(&u->old, 0, sizeof u->old);
        u->old.sid = sid;
    }
    return 0;
}

int heads_set(struct heads *h, const struct heads_entry *e)
{
    struct heads_entry *slot = heads__slot(h, e->sid);
    if (slot == NULL && heads__reserve(h) != 0) {
        return BERTH_ENOMEM;
    }
    if (heads__record(h, e->sid) != 0) {
        return BERTH_ENOMEM;
    }
    if (slot != NULL) {
        *slot = *e;
    } else {
        heads__place(h, e);
    }
    return 0;
}

int heads_remove(struct heads *h, uint64_t sid)
{
    struct heads_entry *slot = heads__slot(h, sid);
    if (slot == NULL) {
        return 0;
    }
    if (heads__record(h, sid) != 0) {
        return BERTH_ENOMEM;
    }
    heads__delete_at(h, (size_t)(slot - h->slots));
    return 0;
}

int heads_foreach_dirty(const struct heads *h,
                        int (*cb)(const struct heads_entry *e, void *arg),
                        void *arg)
{
    for (size_t i = 0; i < h->cap; i++) {
        if (h->slots[i].sid != 0 && h->slots[i].dirty) {
            struct heads_entry e = h->slots[i];
            int rv = cb(&e, arg);
            if (rv != 0) {
                return rv;
            }
        }
    }
    return 0;
}

int heads_mark_clean(struct heads *h)
{
    for (size_t i = 0; i < h->cap; i++) {
        if (h->slots[i].sid != 0 && h->slots[i].dirty) {
            if (heads__record(h, h->slots[i].sid) != 0) {
                return BERTH_ENOMEM;
            }
            h->slots[i].dirty = false;
            h->slots[i].bytes = 0;
            h->slots[i].events = 0;
        }
    }
    return 0;
}

void heads_entry_begin(struct heads *h)
{
    h->in_entry = true;
    h->undo_n = 0;
}

void heads_entry_end(struct heads *h)
{
    h->in_entry = false;
    h->undo_n = 0;
}

void heads_entry_undo(struct heads *h)
{
    h->in_entry = false;
    /* Newest first, so that each head ends as it was before its first
     * change. A state restored here fitted in the table once, and the
     * table never shrinks, so putting it back needs no memory. */
    while (h->undo_n > 0) {
        const struct heads__undo *u = &h->undo[--h->undo_n];
        struct heads_entry *slot = heads__slot(h, u->old.sid);
        if (!u->had) {
            if (slot != NULL) {
                heads__delete_at(h, (size_t)(slot - h->slots));
            }
        } else if (slot != NULL) {
            *slot = u->old;
        } else {
            heads__place(h, &u->old);
        }
    }
}

void heads_clear(struct heads *h)
{
    if (h->cap > 0) {
        memset(h->slots, 0, h->cap * sizeof *h->slots);
    }
    h->n = 0;
    h->undo_n = 0;
    h->in_entry = false;
}
