#include "core/gate.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"

void gate_init(struct gate *g)
{
    g->head = NULL;
    g->tail = NULL;
    g->len = 0;
}

void gate_push(struct gate *g, struct gate_item *item)
{
    item->durable = !item->needs_log;
    item->next = NULL;
    if (g->tail != NULL) {
        g->tail->next = item;
    } else {
        g->head = item;
    }
    g->tail = item;
    g->len++;
}

void gate_mark_durable(struct gate *g, uint64_t upto)
{
    for (struct gate_item *i = g->head; i != NULL; i = i->next) {
        if (i->needs_log && i->number <= upto) {
            i->durable = true;
        }
    }
}

struct gate_item *gate_pop_any(struct gate *g)
{
    struct gate_item *i = g->head;
    if (i == NULL) {
        return NULL;
    }
    g->head = i->next;
    if (g->head == NULL) {
        g->tail = NULL;
    }
    g->len--;
    i->next = NULL;
    return i;
}

struct gate_item *gate_pop(struct gate *g)
{
    if (g->head == NULL || !g->head->durable) {
        return NULL;
    }
    return gate_pop_any(g);
}

bool gate_acks_met(uint8_t level, unsigned held, unsigned voters,
                   bool committed)
{
    if (level == GATE_ACKS_QUORUM || level == GATE_ACKS_DEFAULT) {
        return committed;
    }
    if (level == GATE_ACKS_ALL) {
        return committed && held >= voters;
    }
    /* More hosts than there are voters is every voter, as all: a ship
     * made with --acks 3 on a host alone, or kept after its cluster
     * shrank, would otherwise hold its effects for ever. */
    if (level > voters) {
        return committed && held >= voters;
    }
    /* A commit means a majority holds the event: enough for any k up to
     * it, whatever the last count said. */
    return held >= level || (committed && level <= voters / 2 + 1);
}

int gate_acks_parse(const char *text, uint8_t *out)
{
    if (strcmp(text, "quorum") == 0) {
        *out = GATE_ACKS_QUORUM;
        return 0;
    }
    if (strcmp(text, "all") == 0) {
        *out = GATE_ACKS_ALL;
        return 0;
    }
    char *end;
    if (text[0] < '0' || text[0] > '9') {
        return BERTH_EINVAL;
    }
    unsigned long n = strtoul(text, &end, 10);
    if (*end != '\0' || n > GATE_ACKS_MAX) {
        return BERTH_EINVAL;
    }
    *out = (uint8_t)n;
    return 0;
}

const char *gate_acks_name(uint8_t level, char *out)
{
    if (level == GATE_ACKS_QUORUM) {
        return strcpy(out, "quorum");
    }
    if (level == GATE_ACKS_ALL) {
        return strcpy(out, "all");
    }
    if (level == GATE_ACKS_DEFAULT) {
        return strcpy(out, "default");
    }
    snprintf(out, 8, "%u", (unsigned)level);
    return out;
}
