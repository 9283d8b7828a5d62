/* UTF-8 validation (RFC 3629): no overlong forms, no surrogates, nothing
 * past U+10FFFF. Pure. */
#ifndef BERTH_LIB_UTF8_H
#define BERTH_LIB_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Return whether the n bytes at p are well-formed UTF-8 (n 0 is). */
bool utf8_valid(const void *p, size_t n);

#endif
