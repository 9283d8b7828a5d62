#include "store/heap.h"

#include <pthread.h>
#include <sqlite3.h>

#include "lib/mem.h"

static void *store__heap_malloc(int n)
{
    return mem_alloc((size_t)n);
}

static void store__heap_free(void *p)
{
    mem_free(p);
}

static void *store__heap_realloc(void *p, int n)
{
    return mem_realloc(p, (size_t)n);
}

static int store__heap_size(void *p)
{
    return (int)mem_usable_size(p);
}

/* SQLite asks for rounded sizes; 8 keeps its structures aligned as its own
 * allocator does. */
static int store__heap_roundup(int n)
{
    return (n + 7) & ~7;
}

static int store__heap_init(void *data)
{
    (void)data;
    return SQLITE_OK;
}

static void store__heap_shutdown(void *data)
{
    (void)data;
}

static sqlite3_mem_methods store__heap = {
    .xMalloc = store__heap_malloc,
    .xFree = store__heap_free,
    .xRealloc = store__heap_realloc,
    .xSize = store__heap_size,
    .xRoundup = store__heap_roundup,
    .xInit = store__heap_init,
    .xShutdown = store__heap_shutdown,
    .pAppData = NULL,
};

static pthread_once_t store__heap_once = PTHREAD_ONCE_INIT;
static bool store__heap_routed;

/* sqlite3_config answers SQLITE_MISUSE once SQLite is initialized: then
 * something opened a database before any store did, and SQLite goes on with
 * its own allocator, which works as well but escapes the fault hook. */
static void store__heap_set(void)
{
    store__heap_routed =
        sqlite3_config(SQLITE_CONFIG_MALLOC, &store__heap) == SQLITE_OK;
}

bool store_install_heap(void)
{
    pthread_once(&store__heap_once, store__heap_set);
    return store__heap_routed;
}
