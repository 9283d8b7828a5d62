/* Caps: how much memory, CPU and how many processes a ship's program may
 * use, as a host enforces them (proc/cgcaps.h).
 *
 * A cap may come from three places: the host's defaults (`berth serve
 * --memory --cpu --pids`), the ship's account (`berth account limit
 * --memory ...`, kept in the account's row and replicated by ACCOUNT
 * entries), and the ship itself (its sandbox, core/sandbox.h: given by
 * `ship new --memory ...`, by a resize, or inherited from its parent). The
 * cap in force is the smallest of those that set one; 0 means "no cap" at
 * every level, so a ship with no cap of its own on a host without defaults
 * runs uncapped. Taking the smallest means no level can lift another's
 * cap: an account capped at 64M cannot be given more by a ship's own
 * --memory, and a host's default bounds every account. CPU is in
 * milliseconds of CPU time per second of wall clock (500: half a core,
 * 2000: two cores).
 *
 * Pure: no I/O. */
#ifndef BERTH_CORE_CAPS_H
#define BERTH_CORE_CAPS_H

#include <stddef.h>
#include <stdint.h>

/* The least memory cap the host accepts: below it a program cannot even
 * load. */
#define CAPS_MEMORY_MIN (4ULL << 20)

/* The least CPU cap, in ms a second: the kernel's least CFS quota is 1 ms
 * of a 100 ms period. */
#define CAPS_CPU_MIN 10

/* The most CPU a cap may give, in ms a second: 1024 cores. */
#define CAPS_CPU_MAX (1024u * 1000)

/* The least pids cap: the program itself and a helper. */
#define CAPS_PIDS_MIN 2

/* One level's caps, or the caps in force; 0: none. */
struct caps {
    uint64_t memory_bytes;
    uint32_t cpu_millis;
    uint32_t pids;
};

/* The levels a cap may come from, from the widest. */
enum caps_level {
    CAPS_LEVEL_NONE,    /* no level sets it: no cap */
    CAPS_LEVEL_HOST,    /* the host's default */
    CAPS_LEVEL_ACCOUNT, /* the ship's account's */
    CAPS_LEVEL_SHIP,    /* the ship's own sandbox */
};

/* Which level each cap in force comes from (enum caps_level). */
struct caps_origin {
    uint8_t memory, cpu, pids;
};

/* Set *out to the caps in force for a ship: each the smallest of the
 * host's, the account's and the ship's that is not 0. Any of the three
 * may be NULL (no caps at that level). */
void caps_resolve(const struct caps *host, const struct caps *account,
                  const struct caps *ship, struct caps *out);

/* Do as caps_resolve, and set *from (may be NULL) to the level each cap in
 * force comes from: of levels that set the same smallest cap, the
 * narrowest (the ship before its account, the account before the host). */
void caps_resolve_from(const struct caps *host, const struct caps *account,
                       const struct caps *ship, struct caps *out,
                       struct caps_origin *from);

/* Return the name of a level as the API and the CLI spell it ("host",
 * "account", "ship", or "none"). */
const char *caps_level_name(uint8_t level);

/* Check caps as a level may set them: each 0 (none) or within the bounds
 * the parsers below accept. Returns 0 or BERTH_EINVAL. */
int caps_check(const struct caps *c);

/* Return whether c has no cap at all. */
int caps_none(const struct caps *c);

/* Parse a memory size: a whole number of bytes with an optional suffix K,
 * M, G (powers of 1024; "64M", "1G", "65536"), or "0" or "none" for no
 * cap. Returns 0 with *bytes set, or BERTH_EINVAL for anything else, a
 * size over 1 TiB, or one under CAPS_MEMORY_MIN. */
int caps_parse_memory(const char *text, uint64_t *bytes);

/* Parse a CPU share in cores: "0.5", "2", "0.25" (at most three decimals),
 * or "0" or "none" for no cap. Returns 0 with *millis set to the CPU
 * milliseconds a second, or BERTH_EINVAL for anything else or a share
 * outside [CAPS_CPU_MIN, CAPS_CPU_MAX] ms. */
int caps_parse_cpu(const char *text, uint32_t *millis);

/* Parse a pids cap: a whole number from CAPS_PIDS_MIN to 4,194,304, or "0"
 * or "none" for no cap. Returns 0 with *pids set, or BERTH_EINVAL. */
int caps_parse_pids(const char *text, uint32_t *pids);

/* Write a memory size as the parser reads it ("64M", "1536K", "100"; "none"
 * for 0) into out (n bytes, at least 24). */
void caps_format_memory(uint64_t bytes, char *out, size_t n);

#endif
