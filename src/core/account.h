/* Accounts: the rules of who owns a ship and what a caller may do.
 *
 * Every ship belongs to one account. Account 0, "anonymous", exists on
 * every host from the start and holds every ship made without an account
 * (and every ship made before accounts existed). Other accounts are made by
 * the operator; each comes with a token of the admin API (core/auth.h)
 * that belongs to it.
 *
 * A caller of the admin API acts in a **scope**: ACCOUNT_ALL for the
 * operator (the Unix socket, or a token that belongs to no account), else
 * the id of the one account its token belongs to. A scope sees and touches
 * only its account's ships; a ship of another account is, to it, a ship
 * that does not exist.
 *
 * An ACCOUNT log entry (core/record.h) carries every change of accounts, so
 * every host of a cluster holds the same accounts; its operations are
 * enum account_op.
 *
 * Nothing here touches the store, the loop or the clock. */
#ifndef BERTH_CORE_ACCOUNT_H
#define BERTH_CORE_ACCOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The account of ships made without one. */
#define ACCOUNT_ANONYMOUS 0
#define ACCOUNT_ANONYMOUS_NAME "anonymous"

/* The scope of the operator: every account. */
#define ACCOUNT_ALL UINT64_MAX

/* The longest account name. */
#define ACCOUNT_NAME_MAX 63

/* The header that carries a caller's scope to the admin handler, and to
 * the leader when a request is forwarded: the account's id in decimal. A
 * host sets it from the token on TCP and drops any a client sent. */
#define ACCOUNT_HEADER "berth-account"

/* What an ACCOUNT entry does. */
enum account_op {
    ACCOUNT_OP_NEW = 1,       /* make an account and its token */
    ACCOUNT_OP_DISABLE = 2,   /* its ships stop serving and sleep */
    ACCOUNT_OP_ENABLE = 3,    /* they serve again */
    ACCOUNT_OP_REMOVE = 4,    /* the account and its tokens go */
    ACCOUNT_OP_ANONYMOUS = 5, /* ships may (value 1) or may not (0) be made
                                 in the anonymous account */
    ACCOUNT_OP_LIMIT = 6,     /* set the account's limits (core/quota.h)
                                 and caps (core/caps.h) */
};

/* Return 0 when name may name a new account: 1 to ACCOUNT_NAME_MAX of
 * a-z, 0-9 and '-', not starting with '-', not all digits, and not
 * "anonymous"; else BERTH_EINVAL. The caller keeps name. */
int account_name_check(const char *name);

/* Read a scope from the value of ACCOUNT_HEADER (NULL: none, the
 * operator's) into *scope; 0, or BERTH_EINVAL for anything but a decimal
 * account id. The caller keeps value. */
int account_scope_parse(const char *value, uint64_t *scope);

/* Return whether scope sees a ship of account. */
bool account_scope_sees(uint64_t scope, uint64_t account);

/* Return whether scope may use the admin route of method and path (no
 * query): the operator any, an account only its ships' routes
 * (/v1/ships and what is under it, but for block and unblock) and
 * /healthz. The caller keeps both
 * strings. */
bool account_route_allowed(uint64_t scope, const char *method,
                           const char *path);

/* Check whether scope may make a ship in account, which is disabled or
 * not, while anonymous creation is open or not. Returns 0, BERTH_EDENIED
 * when scope names another account than its own or when account is the
 * anonymous one and anonymous creation is off, or BERTH_EDISABLED. */
int account_create_check(uint64_t scope, uint64_t account, bool disabled,
                         bool anonymous_open);

/* Check whether op may be done to account: 0, or BERTH_EINVAL for an
 * unknown op or for removing the anonymous account. */
int account_op_check(uint8_t op, uint64_t account);

/* Return the name of op ("new", "disable", ...; "unknown"). */
const char *account_op_name(uint8_t op);

#endif
