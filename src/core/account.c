#include "core/account.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"

int account_name_check(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > ACCOUNT_NAME_MAX || name[0] == '-' ||
        strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-") != n ||
        strspn(name, "0123456789") == n ||
        strcmp(name, ACCOUNT_ANONYMOUS_NAME) == 0) {
        return BERTH_EINVAL;
    }
    return 0;
}

int account_scope_parse(const char *value, uint64_t *scope)
{
    if (value == NULL) {
        *scope = ACCOUNT_ALL;
        return 0;
    }
    size_t n = strlen(value);
    if (n == 0 || n > 20 || strspn(value, "0123456789") != n) {
        return BERTH_EINVAL;
    }
    errno = 0;
    unsigned long long v = strtoull(value, NULL, 10);
    if (errno != 0 || v >= ACCOUNT_ALL) {
        return BERTH_EINVAL;
    }
    *scope = (uint64_t)v;
    return 0;
}

bool account_scope_sees(uint64_t scope, uint64_t account)
{
    return scope == ACCOUNT_ALL || scope == account;
}

bool account_route_allowed(uint64_t scope, const char *method, const char *path)
{
    (void)method;
    if (scope == ACCOUNT_ALL) {
        return true;
    }
    /* Blocking is the operator's lever against a ship: its owner may not
     * lift it. */
    size_t n = strlen(path);
    if ((n >= 6 && strcmp(path + n - 6, "/block") == 0) ||
        (n >= 8 && strcmp(path + n - 8, "/unblock") == 0)) {
        return false;
    }
    return strcmp(path, "/healthz") == 0 || strcmp(path, "/v1/ships") == 0 ||
           (strncmp(path, "/v1/ships/", 10) == 0 && path[10] != '\0');
}

int account_create_check(uint64_t scope, uint64_t account, bool disabled,
                         bool anonymous_open)
{
    if (!account_scope_sees(scope, account)) {
        return BERTH_EDENIED;
    }
    if (disabled) {
        return BERTH_EDISABLED;
    }
    if (account == ACCOUNT_ANONYMOUS && !anonymous_open) {
        return BERTH_EDENIED;
    }
    return 0;
}

int account_op_check(uint8_t op, uint64_t account)
{
    if (op < ACCOUNT_OP_NEW || op > ACCOUNT_OP_LIMIT) {
        return BERTH_EINVAL;
    }
    if (op == ACCOUNT_OP_REMOVE && account == ACCOUNT_ANONYMOUS) {
        return BERTH_EINVAL;
    }
    return 0;
}

const char *account_op_name(uint8_t op)
{
    switch (op) {
    case ACCOUNT_OP_NEW:
        return "new";
    case ACCOUNT_OP_DISABLE:
        return "disable";
    case ACCOUNT_OP_ENABLE:
        return "enable";
    case ACCOUNT_OP_REMOVE:
        return "remove";
    case ACCOUNT_OP_ANONYMOUS:
        return "anonymous";
    case ACCOUNT_OP_LIMIT:
        return "limit";
    default:
        return "unknown";
    }
}
