/* A count of the bytes a host holds on behalf of others, against a cap.
 *
 * Requests being read or waiting for their program, replies being read
 * from a program, held until their event is durable, or being written to a
 * client: every such byte is added here by whoever holds it and subtracted
 * when it is freed. The count says nothing by itself; its owner is told
 * when the picture changes and holds back whoever adds bytes (see
 * docs/design.md, "Memory bounds and backpressure").
 *
 * Of the bytes held, some are **draining**: they leave without any
 * program's help (a reply waiting for the log to commit, or for its client
 * to read it). The others leave only if some program or some client makes
 * progress. The owner needs the difference to hold back without
 * deadlocking: while draining bytes exist, waiting is enough; when none do,
 * someone must be let on.
 *
 * Pure: no I/O and no loop. Every function accepts a NULL budget and then
 * does nothing, so that code can run without one (tests, tools). */
#ifndef BERTH_LIB_BUDGET_H
#define BERTH_LIB_BUDGET_H

#include <stdbool.h>
#include <stdint.h>

struct budget {
    uint64_t cap;      /* 0: no cap, never over */
    uint64_t held;     /* bytes held now */
    uint64_t draining; /* of held: bytes that leave without help */
    uint64_t peak;     /* the most ever held */
    /* Called, with arg, whenever budget_over() or whether draining is zero
     * changes. It may not add or subtract bytes itself. */
    void (*changed)(void *arg);
    void *arg;
    bool over;   /* as last reported */
    bool drains; /* draining > 0, as last reported */
};

/* Start an empty budget with the given cap (0: none) and change callback
 * (may be NULL). */
void budget_init(struct budget *b, uint64_t cap, void (*changed)(void *),
                 void *arg);

/* Count n more bytes, draining or not. */
void budget_add(struct budget *b, uint64_t n, bool draining);

/* Stop counting n bytes that were added with the same draining flag. */
void budget_sub(struct budget *b, uint64_t n, bool draining);

/* Mark n bytes already counted as not draining as draining from now on. */
void budget_drain(struct budget *b, uint64_t n);

/* Return whether more than the cap is held. */
bool budget_over(const struct budget *b);

#endif
