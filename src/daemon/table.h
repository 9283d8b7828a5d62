/* A string-keyed hash table of pointers, used to find ships by id or name.
 *
 * Open addressing with linear probing and tombstones; keys are borrowed (the
 * caller keeps each key alive while its entry exists, typically inside the
 * value it points to). */
#ifndef BERTH_DAEMON_TABLE_H
#define BERTH_DAEMON_TABLE_H

#include <stddef.h>

struct table_slot {
    const char *key; /* NULL: empty; table__tomb: deleted */
    void *value;
};

struct table {
    struct table_slot *slots;
    size_t cap;  /* a power of two, or 0 */
    size_t used; /* live entries plus tombstones */
    size_t len;  /* live entries */
};

/* Initialize an empty table. */
void table_init(struct table *t);

/* Free the table's slots (not the keys or values). */
void table_free(struct table *t);

/* Return the value stored under key, or NULL. */
void *table_get(const struct table *t, const char *key);

/* Store value under key, replacing any earlier value. Returns 0 or
 * BERTH_ENOMEM. */
int table_put(struct table *t, const char *key, void *value);

/* Remove key if present. */
void table_del(struct table *t, const char *key);

/* Call fn for each entry with the key pointer that was stored; the table
 * must not change during the walk. */
void table_foreach(const struct table *t,
                   void (*fn)(const char *key, void *value, void *arg),
                   void *arg);

#endif
