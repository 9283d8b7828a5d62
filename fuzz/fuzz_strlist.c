/* libFuzzer target for string lists (lib/strlist.h), how a ship's arguments
 * and environment travel in log entries and sit in the store: arbitrary
 * bytes must be refused or walk to exactly as many strings as counted,
 * each inside the bytes, together covering them all. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/strlist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy exactly as long as the input, so that a read past its end is
     * caught. */
    char *p = malloc(size > 0 ? size : 1);
    if (p == NULL) {
        return 0;
    }
    if (size > 0) {
        memcpy(p, data, size);
    }
    long n = strlist_count(p, size);
    if (n < 0) {
        if (size == 0 || p[size - 1] == '\0') {
            abort();
        }
        free(p);
        return 0;
    }
    size_t off = 0, covered = 0;
    long seen = 0;
    const char *s;
    while ((s = strlist_next(p, size, &off)) != NULL) {
        size_t len = strlen(s);
        if (s != p + covered || off != covered + len + 1 || off > size) {
            abort();
        }
        covered = off;
        seen++;
    }
    if (seen != n || covered != size) {
        abort();
    }
    free(p);
    return 0;
}
