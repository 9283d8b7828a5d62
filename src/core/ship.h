/* The lifecycle of a ship on a host, as an explicit state machine.
 *
 *   ASLEEP --wake--> WAKING --booted--> AWAKE --idle--> SLEEPING --> ASLEEP
 *                       |                ^ | ^  |           |
 *                       +--failed-->ASLEEP | |  +--crash-->ASLEEP
 *                                          | +--new event---+
 *                          idle (freeze) v | new event, or sleep (thaw)
 *                                       FROZEN --crash/kill--> ASLEEP
 *
 * ASLEEP: no process; the ship is its store records (and a registry entry).
 * WAKING: the program is being spawned, booted from the snapshot and fed the
 * log's tail. AWAKE: the program serves events. FROZEN: the process is kept
 * but stopped (cgroup freezer, or SIGSTOP), so it uses memory but no CPU,
 * and thawing it is much cheaper than waking. SLEEPING: a snapshot was
 * requested before the process stops; a new event interrupts it and the ship
 * is AWAKE again. REMOVED is final, and reached from ASLEEP only: a removal
 * kills the program first. Every transition goes through ship_state_set,
 * which refuses the ones not drawn above so that a bug shows up at once;
 * core/fleet.c makes them all, and test/unit/test_fleet.c takes each. */
#ifndef BERTH_CORE_SHIP_H
#define BERTH_CORE_SHIP_H

#include <stdbool.h>
#include <stdint.h>

enum ship_state {
    SHIP_ASLEEP = 0,
    SHIP_WAKING,
    SHIP_AWAKE,
    SHIP_SLEEPING,
    SHIP_FROZEN,
    SHIP_REMOVED,
    SHIP__STATE_COUNT
};

/* Return the lower-case name of a state, as the API and CLI print it. */
const char *ship_state_name(enum ship_state s);

/* Set *out to the state named name (as ship_state_name spells it) and
 * return 0, or return BERTH_EINVAL for no such name. */
int ship_state_parse(const char *name, enum ship_state *out);

/* Return whether the machine allows going from one state to another. */
bool ship_state_allowed(enum ship_state from, enum ship_state to);

/* Move *state to next if allowed and return 0, else return BERTH_EINVAL and
 * leave *state unchanged. */
int ship_state_set(enum ship_state *state, enum ship_state next);

/* Return whether a ship id or name is acceptable: 1 to 63 bytes of
 * [a-z0-9-], not starting with '-'. */
bool ship_name_valid(const char *name);

/* Return the name of a child's lifetime (proto/frame.h FRAME_LIFETIME_*:
 * "root", "linked", "ephemeral", "resetting" or "leased"), as the API and
 * CLI print it, or NULL
 * for 0 (a ship the operator made) and any other value. */
const char *ship_lifetime_name(uint8_t lifetime);

/* Set *out to the lifetime named name (as ship_lifetime_name spells it) and
 * return 0, or return BERTH_EINVAL for no such name. */
int ship_lifetime_parse(const char *name, uint8_t *out);

#endif
