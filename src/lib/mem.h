/* The one allocation wrapper of berth.
 *
 * Every module allocates through these functions so that tests can make the
 * Nth allocation fail (mem_fault_countdown) and check that each error path
 * unwinds without leaks. Memory from mem_alloc() is freed with mem_free().
 * libraft, SQLite and jansson allocate through them too (consensus/log.c,
 * store/heap.h, host_install_json_heap in daemon/host.h). */
#ifndef BERTH_LIB_MEM_H
#define BERTH_LIB_MEM_H

#include <stdbool.h>
#include <stddef.h>

/* Allocate size bytes; returns NULL on failure or injected fault. */
void *mem_alloc(size_t size);

/* Allocate n zeroed elements of size bytes; NULL on failure. */
void *mem_calloc(size_t n, size_t size);

/* Resize ptr; on failure returns NULL and ptr stays valid. */
void *mem_realloc(void *ptr, size_t size);

/* Free memory from this module; NULL is ignored. */
void mem_free(void *ptr);

/* Copy a NUL-terminated string; the caller frees the copy with mem_free(). */
char *mem_strdup(const char *s);

/* Copy n bytes of s (which may be NULL when n is 0) and add a NUL; the
 * caller frees it with mem_free(). */
char *mem_strndup(const char *s, size_t n);

/* Return how many bytes the block ptr (from this module, not NULL) can hold,
 * at least what was asked for: what SQLite's allocator wants to know. */
size_t mem_usable_size(void *ptr);

/* Make allocation number n (counting from 0, from now) and every later one
 * fail; a negative n turns fault injection off. Not thread-safe: for tests. */
void mem_fault_countdown(int n);

/* Return whether an injected fault has failed an allocation since the last
 * mem_fault_countdown(), so that a test knows when its loop is done. */
bool mem_fault_hit(void);

#endif
