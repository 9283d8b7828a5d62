/* The output gate: no effect leaves before the state it reveals is durable.
 *
 * Each event a ship computes becomes one gate item, in the order the events
 * were computed. An item whose event changed state must wait until that event
 * is durable at the ship's ack level; an item whose event changed nothing (a
 * read, a rejection, a failure) needs no logging but still waits behind every
 * earlier item, because its effects may depend on the state they wrote. Items
 * leave strictly from the head. Events of one ship become durable in number
 * order (one log), so marking is a single "durable up to N".
 *
 * Items are intrusive: the caller embeds struct gate_item in its own
 * request object and owns its memory throughout. */
#ifndef BERTH_CORE_GATE_H
#define BERTH_CORE_GATE_H

#include <stdbool.h>
#include <stdint.h>

struct gate_item {
    uint64_t number; /* event number, meaningful when needs_log */
    bool needs_log;  /* the event changed state */
    bool durable;    /* may leave once it reaches the head */
    struct gate_item *next;
};

struct gate {
    struct gate_item *head;
    struct gate_item *tail;
    unsigned len;
};

/* Initialize an empty gate. */
void gate_init(struct gate *g);

/* Append item; a read (needs_log false) is durable at once. The caller sets
 * number and needs_log and keeps ownership of item. */
void gate_push(struct gate *g, struct gate_item *item);

/* Mark every item whose event needs logging and whose number is at most
 * upto as durable. */
void gate_mark_durable(struct gate *g, uint64_t upto);

/* Remove and return the head if it may leave, else return NULL. */
struct gate_item *gate_pop(struct gate *g);

/* Remove and return the head whatever its state, or NULL when empty; used to
 * fail every held item when a ship is torn down. */
struct gate_item *gate_pop_any(struct gate *g);

/* Ack levels: how many hosts must hold an event durably before its
 * effects may leave (a ship's setting, or the host's default).
 *
 *   0        at once, after compute: nothing is durable yet
 *   1        after the leader's own fsync
 *   k        after k hosts' fsync (the leader counts as one); a k above
 *            the number of voters waits for every voter, as all does
 *   quorum   after raft commits the entry (a majority of voters hold it)
 *   all      after every voter holds it, and it is committed
 *
 * Below quorum, an effect may leave for an event that a failover then
 * loses; quorum and all never lose an event whose effects left. Levels
 * are stored in one byte: 0 to GATE_ACKS_MAX hosts, or one of the names. */
#define GATE_ACKS_MAX 99
#define GATE_ACKS_QUORUM 253
#define GATE_ACKS_ALL 254
#define GATE_ACKS_DEFAULT 255 /* the host's default applies */

/* Return whether an event may leave the gate: held is how many hosts hold
 * it durably (0 when unknown), voters how many voters the cluster has, and
 * committed whether raft has committed it. */
bool gate_acks_met(uint8_t level, unsigned held, unsigned voters,
                   bool committed);

/* Set *out to the level named by text ("quorum", "all" or a number up to
 * GATE_ACKS_MAX) and return 0, or return BERTH_EINVAL. */
int gate_acks_parse(const char *text, uint8_t *out);

/* Write the level's name ("quorum", "all", "default" or the number) into
 * out, which has room for 8 bytes, and return out. */
const char *gate_acks_name(uint8_t level, char *out);

#endif
