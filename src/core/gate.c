#include "core/gate.h"

#include <stddef.h>

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
