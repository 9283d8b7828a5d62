#include "proc/cgbusy.h"

void cgbusy_retry(struct cgbusy *b, cgbusy_try_fn try_remove)
{
    for (int i = 0; i < b->n;) {
        if (!try_remove(b->held[i].pid) || ++b->held[i].tries >= CGBUSY_TRIES) {
            /* Order does not matter: the last takes the free place. */
            b->held[i] = b->held[--b->n];
            continue;
        }
        i++;
    }
}

void cgbusy_remove(struct cgbusy *b, pid_t pid, cgbusy_try_fn try_remove)
{
    cgbusy_retry(b, try_remove);
    if (try_remove(pid) && b->n < CGBUSY_MAX) {
        b->held[b->n].pid = pid;
        b->held[b->n].tries = 0;
        b->n++;
    }
}

void cgbusy_clear(struct cgbusy *b)
{
    b->n = 0;
}
