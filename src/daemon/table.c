#include "daemon/table.h"

#include <stdint.h>
#include <string.h>

#include "lib/err.h"
#include "lib/mem.h"

static const char table__tomb[] = "";

static uint64_t table__hash(const char *s)
{
    /* FNV-1a: keys are short ship ids and names. */
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    }
    return h;
}

void table_init(struct table *t)
{
    memset(t, 0, sizeof *t);
}

void table_free(struct table *t)
{
    mem_free(t->slots);
    table_init(t);
}

static struct table_slot *table__find(const struct table *t, const char *key)
{
    if (t->cap == 0) {
        return NULL;
    }
    size_t mask = t->cap - 1;
    for (size_t i = table__hash(key) & mask;; i = (i + 1) & mask) {
        struct table_slot *s = &t->slots[i];
        if (s->key == NULL) {
            return NULL;
        }
        if (s->key != table__tomb && strcmp(s->key, key) == 0) {
            return s;
        }
    }
}

void *table_get(const struct table *t, const char *key)
{
    struct table_slot *s = table__find(t, key);
    return s ? s->value : NULL;
}

static void table__insert(struct table_slot *slots, size_t cap,
                          const char *key, void *value)
{
    size_t mask = cap - 1;
    size_t i = table__hash(key) & mask;
    while (slots[i].key != NULL && slots[i].key != table__tomb) {
        i = (i + 1) & mask;
    }
    slots[i].key = key;
    slots[i].value = value;
}

static int table__grow(struct table *t)
{
    size_t cap = t->cap ? t->cap * 2 : 64;
    /* Rehash in place of growing when tombstones fill the table. */
    if (t->len * 4 < t->cap) {
        cap = t->cap;
    }
    struct table_slot *slots = mem_calloc(cap, sizeof *slots);
    if (slots == NULL) {
        return BERTH_ENOMEM;
    }
    for (size_t i = 0; i < t->cap; i++) {
        const char *k = t->slots[i].key;
        if (k != NULL && k != table__tomb) {
            table__insert(slots, cap, k, t->slots[i].value);
        }
    }
    mem_free(t->slots);
    t->slots = slots;
    t->cap = cap;
    t->used = t->len;
    return 0;
}

int table_put(struct table *t, const char *key, void *value)
{
    struct table_slot *s = table__find(t, key);
    if (s != NULL) {
        s->key = key;
        s->value = value;
        return 0;
    }
    if ((t->used + 1) * 4 > t->cap * 3) {
        int rv = table__grow(t);
        if (rv != 0) {
            return rv;
        }
    }
    size_t mask = t->cap - 1;
    size_t i = table__hash(key) & mask;
    while (t->slots[i].key != NULL && t->slots[i].key != table__tomb) {
        i = (i + 1) & mask;
    }
    if (t->slots[i].key == NULL) {
        t->used++;
    }
    t->slots[i].key = key;
    t->slots[i].value = value;
    t->len++;
    return 0;
}

void table_del(struct table *t, const char *key)
{
    struct table_slot *s = table__find(t, key);
    if (s != NULL) {
        s->key = table__tomb;
        s->value = NULL;
        t->len--;
    }
}

void table_foreach(const struct table *t,
                   void (*fn)(const char *key, void *value, void *arg),
                   void *arg)
{
    for (size_t i = 0; i < t->cap; i++) {
        const char *k = t->slots[i].key;
        if (k != NULL && k != table__tomb) {
            fn(k, t->slots[i].value, arg);
        }
    }
}
