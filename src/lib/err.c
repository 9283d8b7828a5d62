#include "lib/err.h"

#include <stdarg.h>
#include <stdio.h>

static const struct {
    const char *name;
    const char *text;
} err__table[BERTH__ERR_COUNT] = {
    {"OK", "success"},
    {"ENOMEM", "out of memory"},
    {"EINVAL", "invalid argument"},
    {"ENOTFOUND", "not found"},
    {"EEXIST", "already exists"},
    {"ETOOBIG", "too big"},
    {"EMALFORMED", "malformed data"},
    {"EIO", "input/output error"},
    {"ECORRUPT", "stored data is corrupt"},
    {"EPROGRAM", "program failed"},
    {"ETIMEOUT", "timed out"},
    {"ESHUTDOWN", "shutting down"},
    {"EBUSY", "busy"},
    {"EREJECTED", "rejected by program"},
    {"ENOTLEADER", "not the cluster leader"},
    {"EPARTIAL", "incomplete data"},
    {"ENOCONNECT", "cannot connect"},
    {"EDISABLED", "account disabled"},
    {"EDENIED", "not allowed for this account"},
    {"ELIMIT", "over an account's limit"},
};

const char *err_name(int rv)
{
    if (rv > 0 || -rv >= BERTH__ERR_COUNT) {
        return "EUNKNOWN";
    }
    return err__table[-rv].name;
}

const char *err_str(int rv)
{
    if (rv > 0 || -rv >= BERTH__ERR_COUNT) {
        return "unknown error";
    }
    return err__table[-rv].text;
}

void err_printf(char *errmsg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, ERRMSG_SIZE, fmt, ap);
    va_end(ap);
}
