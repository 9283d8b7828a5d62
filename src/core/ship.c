#include "core/ship.h"

#include <string.h>

#include "lib/err.h"
#include "proto/frame.h"

static const char *ship__names[SHIP__STATE_COUNT] = {
    "asleep", "waking", "awake", "sleeping", "frozen", "removed",
};

/* allowed[from] is a bit set of the states reachable from `from`. */
#define BIT(s) (1u << (s))
static const unsigned ship__allowed[SHIP__STATE_COUNT] = {
    [SHIP_ASLEEP] = BIT(SHIP_WAKING) | BIT(SHIP_REMOVED),
    [SHIP_WAKING] = BIT(SHIP_AWAKE) | BIT(SHIP_ASLEEP),
    [SHIP_AWAKE] = BIT(SHIP_SLEEPING) | BIT(SHIP_FROZEN) | BIT(SHIP_ASLEEP),
    [SHIP_SLEEPING] = BIT(SHIP_AWAKE) | BIT(SHIP_ASLEEP),
    [SHIP_FROZEN] = BIT(SHIP_AWAKE) | BIT(SHIP_ASLEEP),
    [SHIP_REMOVED] = 0,
};

const char *ship_state_name(enum ship_state s)
{
    return (unsigned)s < SHIP__STATE_COUNT ? ship__names[s] : "unknown";
}

int ship_state_parse(const char *name, enum ship_state *out)
{
    for (int i = 0; i < SHIP__STATE_COUNT; i++) {
        if (strcmp(name, ship__names[i]) == 0) {
            *out = (enum ship_state)i;
            return 0;
        }
    }
    return BERTH_EINVAL;
}

bool ship_state_allowed(enum ship_state from, enum ship_state to)
{
    if ((unsigned)from >= SHIP__STATE_COUNT ||
        (unsigned)to >= SHIP__STATE_COUNT) {
        return false;
    }
    return (ship__allowed[from] & BIT(to)) != 0;
}

int ship_state_set(enum ship_state *state, enum ship_state next)
{
    if (!ship_state_allowed(*state, next)) {
        return BERTH_EINVAL;
    }
    *state = next;
    return 0;
}

bool ship_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 63 || name[0] == '-') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
            return false;
        }
    }
    return true;
}

static const char *const ship__lifetimes[] = {
    [FRAME_LIFETIME_ROOT] = "root",
    [FRAME_LIFETIME_LINKED] = "linked",
    [FRAME_LIFETIME_EPHEMERAL] = "ephemeral",
    [FRAME_LIFETIME_RESETTING] = "resetting",
    [FRAME_LIFETIME_LEASED] = "leased",
};

const char *ship_lifetime_name(uint8_t lifetime)
{
    return lifetime < sizeof ship__lifetimes / sizeof ship__lifetimes[0]
               ? ship__lifetimes[lifetime]
               : NULL;
}

int ship_lifetime_parse(const char *name, uint8_t *out)
{
    for (uint8_t i = FRAME_LIFETIME_ROOT; i <= FRAME_LIFETIME_LEASED; i++) {
        if (strcmp(name, ship__lifetimes[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    return BERTH_EINVAL;
}
