/* The host and its service manager (lib/notify.h): READY=1 once it serves,
 * a STATUS line that says whether it leads, follows or waits for a leader,
 * WATCHDOG=1 from a loop timer at half the watchdog's period, and
 * STOPPING=1 on a stop. Each is a no-op unless the host runs under a
 * manager that set $NOTIFY_SOCKET (systemd's Type=notify unit,
 * packaging/berth.service). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "consensus/log.h"
#include "daemon/host.h"
#include "lib/err.h"
#include "lib/notify.h"

static void host__service_text(struct host *h, char *out, size_t size)
{
    unsigned ships = registry_count(&h->reg);
    if (h->stopping) {
        snprintf(out, size, "stopping");
    } else if (h->leading) {
        snprintf(out, size, "serving %u ships, leading", ships);
    } else if (log_leader(h->log) != 0) {
        snprintf(out, size, "serving %u ships, following host %016" PRIx64,
                 ships, log_leader(h->log));
    } else {
        snprintf(out, size, "%u ships, waiting for a leader", ships);
    }
}

void host_service_status(struct host *h)
{
    char text[sizeof h->service_status];
    /* Nothing before READY: the first STATUS goes with it. */
    if (!h->service_ready) {
        return;
    }
    host__service_text(h, text, sizeof text);
    if (strcmp(text, h->service_status) == 0) {
        return;
    }
    memcpy(h->service_status, text, sizeof text);
    int rv = notify_status(text);
    if (rv != 0) {
        host_log("warn", "cannot notify the service manager", "error",
                 err_str(rv), NULL);
    }
}

static void host__watchdog_cb(uv_timer_t *t)
{
    struct host *h = t->data;
    notify_send("WATCHDOG=1");
    host_service_status(h);
}

void host_service_ready(struct host *h)
{
    h->service_ready = true;
    host_service_status(h);
    int rv = notify_send("READY=1");
    if (rv != 0) {
        host_log("warn", "cannot notify the service manager", "error",
                 err_str(rv), NULL);
    }
    uint64_t usec = notify_watchdog_usec();
    if (usec == 0) {
        return;
    }
    /* Pinged at half the period, from the loop: a loop stuck for half of
     * it is late, and one stuck for all of it is restarted. */
    uint64_t ms = usec / 2000;
    if (ms == 0) {
        ms = 1;
    }
    uv_timer_init(&h->loop, &h->watchdog);
    h->watchdog.data = h;
    h->watchdog_on = true;
    uv_timer_start(&h->watchdog, host__watchdog_cb, ms, ms);
    char period[32];
    snprintf(period, sizeof period, "%" PRIu64, ms);
    host_log("info", "watchdog on", "ping_ms", period, NULL);
}

void host_service_stopping(struct host *h)
{
    notify_send("STOPPING=1");
    host_service_status(h);
}

void host_service_stop(struct host *h)
{
    if (h->watchdog_on) {
        uv_timer_stop(&h->watchdog);
        h->watchdog_on = false;
    }
}
