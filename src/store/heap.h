/* SQLite's heap: SQLite allocates through lib/mem.h like the rest of berth,
 * so that tests can fail its allocations too (mem_fault_countdown).
 *
 * SQLite takes its allocator only before it initializes itself, which its
 * first sqlite3_open does; store_open installs it first, so every path that
 * reaches SQLite through the store has it. Internal to the store module. */
#ifndef BERTH_STORE_HEAP_H
#define BERTH_STORE_HEAP_H

#include <stdbool.h>

/* Install lib/mem.h as SQLite's allocator once per process, from any thread,
 * and return whether SQLite allocates through it: false only when SQLite was
 * initialized before the first call, and then it keeps its own. */
bool store_install_heap(void);

#endif
