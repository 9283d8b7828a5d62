/* The least level of the lines the host writes to its stderr
 * (`berth serve --log-level`), process-wide.
 *
 * Lines are written by code of several layers: the host's structured
 * lines (daemon/host.h, host_log) and the lines of programs' stderr,
 * which proc/proc.c copies with the program's name in front. Each asks
 * here whether its level is written, so one setting filters them all. The
 * level is set once, as the host starts, before any line is written. */
#ifndef BERTH_LIB_LOGLEVEL_H
#define BERTH_LIB_LOGLEVEL_H

#include <stdbool.h>

/* The levels, least severe first. */
enum loglevel {
    LOGLEVEL_DEBUG,
    LOGLEVEL_INFO,
    LOGLEVEL_WARN,
    LOGLEVEL_ERROR,
    LOGLEVEL_FATAL,
};

/* Set *out to the level named name ("debug", "info", "warn" or "error";
 * "fatal" lines are always written, so it is no level to ask for).
 * Returns 0, or BERTH_EINVAL for another name. */
int loglevel_parse(const char *name, int *out);

/* Return the level named name ("debug" to "fatal"), or -1 for a name that
 * is none of them. */
int loglevel_of(const char *name);

/* Write only lines of level and above from now on; the default is
 * LOGLEVEL_INFO. */
void loglevel_set(int level);

/* Return whether a line of level is written at the level in force. */
bool loglevel_enabled(int level);

#endif
