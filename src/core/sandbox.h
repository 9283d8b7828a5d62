/* Sandboxes and budgets: what a spawned ship may do, and how much of its
 * parent's account it may take (docs/protocol.md, "Sandboxes").
 *
 * A sandbox is what a parent gives a child in its SPAWN, and never more
 * than the parent has: each restriction is inherited (a child of a ship
 * that may not spawn may not either), each cap is at most the parent's,
 * and a child's list of ships it may send to is within its parent's. A
 * budget is a share of the parent's: at most so many ships, bytes of
 * storage and milliseconds of CPU time (in all, as the usage the store
 * records counts it) for the child and all its descendants together. Zero
 * means "no limit of its own" throughout, so a ship made by the operator,
 * with an empty sandbox, may do everything its account allows, but use
 * the network: that takes the one flag that grants (SANDBOX_NETWORK),
 * given by the operator or by a parent that has it.
 *
 * Kept in the store as one blob (sandbox_encode):
 *
 *     u8 version (2) | u8 flags | u64 memory_bytes | u32 cpu_millis |
 *     u32 events_per_s | u64 budget_ships | u64 budget_bytes |
 *     u64 budget_cpu_ms | u32 send_len | send (a string list of ship ids) |
 *     u32 pids
 *
 * Version 1, written before the pids cap, is the same without its last
 * field, and still decodes (pids 0). The caps (memory, CPU, pids, events
 * per second) are recorded and inherited here; the host enforces memory,
 * CPU and pids on the program's cgroup (proc/cgcaps.h), at the smallest
 * of the host's, the account's and the ship's (core/caps.h). Pure: no
 * I/O. */
#ifndef BERTH_CORE_SANDBOX_H
#define BERTH_CORE_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

/* The ship may not spawn children. */
#define SANDBOX_NO_SPAWN 0x01
/* The front door does not expose the ship: only messages reach it. */
#define SANDBOX_HIDDEN 0x02
/* The ship may send only to the ships on its send list. */
#define SANDBOX_SEND_LIST 0x04
/* The ship's program may use the network: it keeps the host's network
 * rather than an empty namespace (proc/harden.h). Unlike the flags above
 * it grants rather than restricts, so a child has it only when it asks
 * for it and its parent has it. */
#define SANDBOX_NETWORK 0x08
/* Every flag this version knows. */
#define SANDBOX_FLAGS 0x0f

/* The most ship ids on a send list, and its most bytes. */
#define SANDBOX_SEND_MAX 256

/* A ship's sandbox and budget; send points into memory the caller keeps
 * (sandbox_decode: into the blob). */
struct sandbox {
    uint8_t flags;
    uint64_t memory_bytes; /* 0: no cap of its own */
    uint32_t cpu_millis;   /* CPU time per second of wall clock, in ms */
    uint32_t events_per_s;
    uint32_t pids; /* processes and threads at once; 0: no cap of its own */
    uint64_t budget_ships; /* itself and its descendants; 0: no budget */
    uint64_t budget_bytes;
    uint64_t budget_cpu_ms; /* in all, with its descendants */
    const char *send;       /* string list of ids (lib/strlist.h) */
    size_t send_len;
};

/* Append the blob of sb to out; 0, BERTH_ENOMEM or BERTH_ETOOBIG. */
int sandbox_encode(struct buf *out, const struct sandbox *sb);

/* Decode a blob into *sb (len 0: the empty sandbox); 0 or
 * BERTH_EMALFORMED (also for an unknown flag or version). */
int sandbox_decode(const uint8_t *p, size_t len, struct sandbox *sb);

/* Whether sb has nothing in it: no flag, cap, budget or list. */
bool sandbox_empty(const struct sandbox *sb);

/* Fill *child with what a parent whose sandbox is parent may give a child
 * that asks for want: the restricting flags of both and SANDBOX_NETWORK
 * only when both have it, the smaller of each cap and budget
 * (0 counting as none), and want's send list, which must be within the
 * parent's when the parent has one. The lists of *child point into want's
 * or parent's memory. Returns 0, or BERTH_EINVAL with why (a static
 * phrase) when want names a ship the parent may not send to. */
int sandbox_inherit(const struct sandbox *parent, const struct sandbox *want,
                    struct sandbox *child, const char **why);

/* Whether a ship with sandbox sb may send to the ship with id. */
bool sandbox_may_send(const struct sandbox *sb, const char *id);

#endif
