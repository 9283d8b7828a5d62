/* The host's log level (see loglevel.h). */
#include "lib/loglevel.h"

#include <string.h>

#include "lib/err.h"

/* The least level written; process-wide, as lines are written by code
 * that holds no host. */
static int loglevel__least = LOGLEVEL_INFO;

static const char *const loglevel__names[] = {
    [LOGLEVEL_DEBUG] = "debug", [LOGLEVEL_INFO] = "info",
    [LOGLEVEL_WARN] = "warn",   [LOGLEVEL_ERROR] = "error",
    [LOGLEVEL_FATAL] = "fatal",
};

int loglevel_of(const char *name)
{
    for (int i = LOGLEVEL_DEBUG; i <= LOGLEVEL_FATAL; i++) {
        if (strcmp(name, loglevel__names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

int loglevel_parse(const char *name, int *out)
{
    int level = loglevel_of(name);
    if (level < 0 || level == LOGLEVEL_FATAL) {
        return BERTH_EINVAL;
    }
    *out = level;
    return 0;
}

void loglevel_set(int level)
{
    loglevel__least = level;
}

bool loglevel_enabled(int level)
{
    return level >= loglevel__least;
}
