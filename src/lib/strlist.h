/* String lists: a program's arguments and environment as one run of bytes.
 *
 * A string list is zero or more strings, each followed by its NUL, back to
 * back: "a\0bc\0" holds "a" and "bc", and the empty list is zero bytes. It
 * is how a ship's arguments and environment travel in a log entry, sit in
 * the store and reach the process starter, so none of them needs an array of
 * pointers or an allocation per string. A list whose last byte is not a NUL
 * is malformed. */
#ifndef BERTH_LIB_STRLIST_H
#define BERTH_LIB_STRLIST_H

#include <stddef.h>

/* Return the number of strings in the len bytes at p, or -1 when the bytes
 * are not a string list (len > 0 and the last byte is not a NUL). */
long strlist_count(const char *p, size_t len);

/* Walk a well-formed list: *off starts at 0; returns the next string (a
 * pointer into p) and moves *off past it, or NULL at the end. */
const char *strlist_next(const char *p, size_t len, size_t *off);

#endif
