#include "lib/mem.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

/* -1 means off. Tests run single-threaded, so no atomics are needed. */
static int mem__countdown = -1;
static bool mem__hit;

static int mem__fail(void)
{
    if (mem__countdown < 0) {
        return 0;
    }
    if (mem__countdown == 0) {
        mem__hit = true;
        return 1;
    }
    mem__countdown--;
    return 0;
}

void mem_fault_countdown(int n)
{
    mem__countdown = n;
    mem__hit = false;
}

bool mem_fault_hit(void)
{
    return mem__hit;
}

void *mem_alloc(size_t size)
{
    return mem__fail() ? NULL : malloc(size == 0 ? 1 : size);
}

void *mem_calloc(size_t n, size_t size)
{
    return mem__fail() ? NULL : calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);
}

void *mem_realloc(void *ptr, size_t size)
{
    return mem__fail() ? NULL : realloc(ptr, size == 0 ? 1 : size);
}

void mem_free(void *ptr)
{
    free(ptr);
}

/* Blocks are plain malloc() blocks with no header, so glibc knows their
 * size (under ASan, exactly the size asked for). */
size_t mem_usable_size(void *ptr)
{
    return malloc_usable_size(ptr);
}

char *mem_strndup(const char *s, size_t n)
{
    char *copy = mem_alloc(n + 1);
    if (copy == NULL) {
        return NULL;
    }
    /* s may be NULL when n is 0 (an empty buffer never allocated), and
     * memcpy must not be given NULL even then. */
    if (n > 0) {
        memcpy(copy, s, n);
    }
    copy[n] = '\0';
    return copy;
}

char *mem_strdup(const char *s)
{
    return mem_strndup(s, strlen(s));
}
