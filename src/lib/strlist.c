#include "lib/strlist.h"

#include <string.h>

long strlist_count(const char *p, size_t len)
{
    if (len == 0) {
        return 0;
    }
    if (p[len - 1] != '\0') {
        return -1;
    }
    long n = 0;
    for (size_t i = 0; i < len; i++) {
        n += p[i] == '\0';
    }
    return n;
}

const char *strlist_next(const char *p, size_t len, size_t *off)
{
    if (*off >= len) {
        return NULL;
    }
    const char *s = p + *off;
    *off += strlen(s) + 1;
    return s;
}
