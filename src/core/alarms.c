#include "core/alarms.h"

#include <string.h>

#include "lib/err.h"
#include "lib/mem.h"

void alarms_init(struct alarms *a)
{
    memset(a, 0, sizeof *a);
}

void alarms_free(struct alarms *a)
{
    mem_free(a->heap);
    mem_free(a->pos);
    alarms_init(a);
}

static void alarms__put(struct alarms *a, uint32_t i, struct alarms_entry e)
{
    a->heap[i] = e;
    a->pos[e.slot] = i + 1;
}

static void alarms__up(struct alarms *a, uint32_t i)
{
    struct alarms_entry e = a->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (a->heap[parent].time_ns <= e.time_ns) {
            break;
        }
        alarms__put(a, i, a->heap[parent]);
        i = parent;
    }
    alarms__put(a, i, e);
}

static void alarms__down(struct alarms *a, uint32_t i)
{
    struct alarms_entry e = a->heap[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= a->len) {
            break;
        }
        if (c + 1 < a->len && a->heap[c + 1].time_ns < a->heap[c].time_ns) {
            c++;
        }
        if (e.time_ns <= a->heap[c].time_ns) {
            break;
        }
        alarms__put(a, i, a->heap[c]);
        i = c;
    }
    alarms__put(a, i, e);
}

static void alarms__delete(struct alarms *a, uint32_t i)
{
    a->pos[a->heap[i].slot] = 0;
    a->len--;
    if (i == a->len) {
        return;
    }
    struct alarms_entry moved = a->heap[a->len];
    alarms__put(a, i, moved);
    alarms__up(a, i);
    alarms__down(a, a->pos[moved.slot] - 1);
}

int alarms_set(struct alarms *a, uint32_t slot, uint64_t time_ns)
{
    uint32_t p = slot < a->pos_cap ? a->pos[slot] : 0;
    if (time_ns == 0) {
        if (p != 0) {
            alarms__delete(a, p - 1);
        }
        return 0;
    }
    if (p != 0) {
        a->heap[p - 1].time_ns = time_ns;
        alarms__up(a, p - 1);
        alarms__down(a, a->pos[slot] - 1);
        return 0;
    }
    if (slot >= a->pos_cap) {
        uint32_t cap = a->pos_cap ? a->pos_cap : 1024;
        while (cap <= slot) {
            cap *= 2;
        }
        uint32_t *pos = mem_realloc(a->pos, cap * sizeof *pos);
        if (pos == NULL) {
            return BERTH_ENOMEM;
        }
        memset(pos + a->pos_cap, 0, (cap - a->pos_cap) * sizeof *pos);
        a->pos = pos;
        a->pos_cap = cap;
    }
    if (a->len == a->cap) {
        uint32_t cap = a->cap ? a->cap * 2 : 64;
        struct alarms_entry *h = mem_realloc(a->heap, cap * sizeof *h);
        if (h == NULL) {
            return BERTH_ENOMEM;
        }
        a->heap = h;
        a->cap = cap;
    }
    struct alarms_entry e = {.time_ns = time_ns, .slot = slot};
    alarms__put(a, a->len++, e);
    alarms__up(a, a->len - 1);
    return 0;
}

uint64_t alarms_get(const struct alarms *a, uint32_t slot)
{
    uint32_t p = slot < a->pos_cap ? a->pos[slot] : 0;
    return p ? a->heap[p - 1].time_ns : 0;
}

uint64_t alarms_next(const struct alarms *a, uint32_t *slot)
{
    if (a->len == 0) {
        return 0;
    }
    *slot = a->heap[0].slot;
    return a->heap[0].time_ns;
}

uint32_t alarms_count(const struct alarms *a)
{
    return a->len;
}
