/* The service manager's notification protocol (sd_notify), spoken without
 * libsystemd: when $NOTIFY_SOCKET names a unix datagram socket (a path, or
 * an abstract name written with a leading '@'), each notification is one
 * datagram of newline-separated KEY=VALUE lines, such as "READY=1" or
 * "WATCHDOG=1". Without $NOTIFY_SOCKET every call does nothing, so a host
 * run by hand, by a test or by another supervisor is unchanged.
 *
 * berth sends READY=1 once it serves, STATUS=... as what it serves
 * changes, WATCHDOG=1 from its loop at half of $WATCHDOG_USEC (so that a
 * loop that is stuck stops the pings and gets the process restarted), and
 * STOPPING=1 when it begins to stop. */
#ifndef BERTH_LIB_NOTIFY_H
#define BERTH_LIB_NOTIFY_H

#include <stdint.h>

/* Send text (NUL-terminated, borrowed) as one datagram to $NOTIFY_SOCKET.
 * Returns 0 when it was sent or there is no socket to send to,
 * BERTH_EINVAL for a $NOTIFY_SOCKET that is not a socket address, or
 * BERTH_EIO when the send failed. */
int notify_send(const char *text);

/* Send "STATUS=" followed by status (borrowed); as notify_send. */
int notify_status(const char *status);

/* Return the watchdog's period in microseconds from $WATCHDOG_USEC, or 0
 * when there is no watchdog for this process: unset, not a number, or
 * $WATCHDOG_PID set to another process's pid. */
uint64_t notify_watchdog_usec(void);

/* The first descriptor a service manager passes (SD_LISTEN_FDS_START). */
#define NOTIFY_LISTEN_FDS_START 3

/* Take the listening sockets a service manager passed this process
 * (socket activation: $LISTEN_PID is this process, $LISTEN_FDS of them
 * from descriptor 3, named by $LISTEN_FDNAMES): every one is marked
 * close-on-exec, so that no program inherits it, and the variables are
 * removed. Sets *front to the one named "front" (or the only one, when
 * none is named), else -1, and *tls to the one named "tls", else -1.
 * Returns how many were passed (0 without socket activation). */
int notify_listen_fds(int *front, int *tls);

/* Hand the front door's sockets (front, and tls unless it is -1: what
 * notify_listen_fds gave) to the program this process is about to exec in
 * its place, as a service manager would: they stay open across the exec
 * and the variables say so again. Returns 0, or BERTH_EIO when they are
 * not the descriptors from 3 on that a manager passes. */
int notify_listen_fds_pass(int front, int tls);

#endif
