#include "lib/budget.h"

#include <stddef.h>

void budget_init(struct budget *b, uint64_t cap, void (*changed)(void *),
                 void *arg)
{
    b->cap = cap;
    b->held = 0;
    b->draining = 0;
    b->peak = 0;
    b->changed = changed;
    b->arg = arg;
    b->over = false;
    b->drains = false;
}

bool budget_over(const struct budget *b)
{
    return b != NULL && b->cap != 0 && b->held > b->cap;
}

/* Tell the owner if the picture changed. */
static void budget__report(struct budget *b)
{
    bool over = budget_over(b);
    bool drains = b->draining > 0;
    if (over == b->over && drains == b->drains) {
        return;
    }
    b->over = over;
    b->drains = drains;
    if (b->changed != NULL) {
        b->changed(b->arg);
    }
}

void budget_add(struct budget *b, uint64_t n, bool draining)
{
    if (b == NULL || n == 0) {
        return;
    }
    b->held += n;
    if (draining) {
        b->draining += n;
    }
    if (b->held > b->peak) {
        b->peak = b->held;
    }
    budget__report(b);
}

void budget_sub(struct budget *b, uint64_t n, bool draining)
{
    if (b == NULL || n == 0) {
        return;
    }
    /* An accounting slip must not wrap to a huge count that holds the host
     * back for good. */
    b->held = n < b->held ? b->held - n : 0;
    if (draining) {
        b->draining = n < b->draining ? b->draining - n : 0;
    }
    budget__report(b);
}

void budget_drain(struct budget *b, uint64_t n)
{
    if (b == NULL || n == 0) {
        return;
    }
    b->draining += n;
    if (b->draining > b->held) {
        b->draining = b->held;
    }
    budget__report(b);
}
