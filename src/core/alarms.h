/* Alarms: when each ship wants to be woken, in one min-heap.
 *
 * A ship has at most one alarm, the time of which a program sets with an
 * ALARM effect (docs/protocol.md). The host keeps every ship's alarm in one
 * binary min-heap ordered by time, and arms a single loop timer for the
 * earliest; nothing polls a sleeping ship. Ships are named by registry slot;
 * the heap keeps, per slot, the position of its entry so that setting or
 * clearing one ship's alarm costs O(log n).
 *
 * Pure: no I/O, no clock. Memory comes from lib/mem.h. */
#ifndef BERTH_CORE_ALARMS_H
#define BERTH_CORE_ALARMS_H

#include <stdint.h>

struct alarms_entry {
    uint64_t time_ns;
    uint32_t slot;
};

struct alarms {
    struct alarms_entry *heap;
    uint32_t len, cap;
    uint32_t *pos; /* per slot: heap index + 1, or 0 when it has no alarm */
    uint32_t pos_cap;
};

/* Initialize an empty set of alarms. */
void alarms_init(struct alarms *a);

/* Free the heap. */
void alarms_free(struct alarms *a);

/* Set slot's alarm to time_ns, replacing any earlier one; time_ns 0 clears
 * it. Returns 0 or BERTH_ENOMEM (the alarm is then unchanged). */
int alarms_set(struct alarms *a, uint32_t slot, uint64_t time_ns);

/* Return slot's alarm, or 0 when it has none. */
uint64_t alarms_get(const struct alarms *a, uint32_t slot);

/* Return the earliest alarm's time and set *slot, or return 0 when there is
 * none. */
uint64_t alarms_next(const struct alarms *a, uint32_t *slot);

/* Return the number of alarms set. */
uint32_t alarms_count(const struct alarms *a);

#endif
