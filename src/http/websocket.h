/* WebSocket framing (RFC 6455), as pure code: no socket, no clock.
 *
 * A connection upgraded to a WebSocket carries frames both ways. A
 * client's frames are masked, a server's are not; a message is one frame
 * or a first frame and continuation frames; control frames (close, ping,
 * pong) carry at most 125 bytes, are never fragmented, and may come
 * between the fragments of a message. The reader here takes bytes as they
 * come off the socket and hands out whole messages and control frames,
 * checking everything a server must (masking, reserved bits, opcodes,
 * lengths, fragment order, UTF-8 in text and close reasons, close codes,
 * the largest message allowed) and naming the close code of each failure.
 *
 * Memory. A message in one frame is handed out where it lies in the
 * caller's input; only a fragmented message is copied, into a buffer the
 * reader frees once the message is handed out, so an idle reader holds no
 * buffer. The opening handshake's answer (Sec-WebSocket-Accept) is
 * computed here too, with libcrypto's SHA-1. */
#ifndef BERTH_HTTP_WEBSOCKET_H
#define BERTH_HTTP_WEBSOCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/http.h"
#include "lib/buf.h"

/* Opcodes (RFC 6455, 5.2). */
enum ws_opcode {
    WS_OP_CONT = 0,
    WS_OP_TEXT = 1,
    WS_OP_BINARY = 2,
    WS_OP_CLOSE = 8,
    WS_OP_PING = 9,
    WS_OP_PONG = 10,
};

/* Close codes (RFC 6455, 7.4.1) the host uses. */
enum ws_close_code {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_NO_STATUS = 1005, /* never sent: the close carried no code */
    WS_CLOSE_ABNORMAL = 1006,  /* never sent: the connection just dropped */
    WS_CLOSE_INVALID_DATA = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL = 1011,
};

/* The longest head of a frame: 2 bytes, 8 of length, 4 of mask. */
#define WS_HEAD_MAX 14

/* The most a control frame or a close reason carries. */
#define WS_CONTROL_MAX 125
#define WS_REASON_MAX 123

/* The length of a Sec-WebSocket-Accept value, without its NUL. */
#define WS_ACCEPT_LEN 28

/* A frame's head, as read. */
struct ws_head {
    bool fin;
    uint8_t rsv;    /* the three reserved bits, 0 unless an extension */
    uint8_t opcode; /* enum ws_opcode */
    bool masked;
    uint8_t mask[4];
    uint64_t len;    /* the payload's length */
    size_t head_len; /* bytes of the head: 2 to 14 */
};

/* Read a frame's head from the n bytes at p: 0 with *h, or BERTH_EPARTIAL
 * when fewer than its bytes are in, or BERTH_EMALFORMED when a length
 * has its top bit set. Checks nothing else. */
int ws_head_parse(const uint8_t *p, size_t n, struct ws_head *h);

/* Write the head of an unmasked (server) frame into out (WS_HEAD_MAX
 * bytes, the caller's); returns its length. */
size_t ws_head_encode(uint8_t *out, bool fin, uint8_t opcode, uint64_t len);

/* XOR the n bytes at p with mask, as the payload's bytes from offset on. */
void ws_mask(uint8_t *p, size_t n, const uint8_t *mask, uint64_t offset);

/* Return whether a close code may appear in a close frame (RFC 6455,
 * 7.4: 1000-1003, 1007-1011, 3000-4999). */
bool ws_close_code_valid(uint16_t code);

/* What ws_read found. */
enum ws_read {
    WS_READ_MORE,  /* no whole frame in: read more (nothing was used) */
    WS_READ_AGAIN, /* a fragment was taken: call again */
    WS_READ_ITEM,  /* a message or a control frame: see the item */
    WS_READ_ERROR, /* the peer broke the protocol: close with item.code */
};

/* A message or control frame handed out by ws_read. */
struct ws_item {
    uint8_t opcode; /* TEXT, BINARY, CLOSE, PING or PONG */
    /* The payload (a close frame's reason); valid until the next call of
     * ws_read or ws_reader_free, and while the caller's input stays. */
    const uint8_t *data;
    size_t len;
    /* CLOSE: the code, WS_CLOSE_NO_STATUS when none; on WS_READ_ERROR
     * the code to close with. */
    uint16_t code;
    const char *why; /* WS_READ_ERROR: a static description */
};

/* The reader's state, between frames. */
struct ws_reader {
    struct buf msg;     /* the fragments of a message so far */
    uint8_t msg_op;     /* its opcode; 0: no message in progress */
    bool handed;        /* msg was handed out: free it at the next call */
    size_t max_message; /* bytes; a larger message fails with 1009 */
};

/* Initialize a reader that takes messages of at most max_message bytes. */
void ws_reader_init(struct ws_reader *r, size_t max_message);

/* Free what the reader holds. */
void ws_reader_free(struct ws_reader *r);

/* Read the next frame from the n bytes at in, a client's (masked): its
 * payload is unmasked in place. *used says how many bytes of in it took
 * (0 for WS_READ_MORE; the caller drops them before the next call, after
 * it is done with the item, whose data may lie in them). Returns an enum
 * ws_read. */
int ws_read(struct ws_reader *r, uint8_t *in, size_t n, size_t *used,
            struct ws_item *item);

/* Write into out (WS_ACCEPT_LEN + 1 bytes, the caller's) the
 * Sec-WebSocket-Accept value for a Sec-WebSocket-Key; 0 or BERTH_EINVAL
 * when key is not the base64 of 16 bytes. */
int ws_accept_key(const char *key, char *out);

/* How a request asks for a WebSocket. */
enum ws_upgrade {
    WS_UPGRADE_NONE,    /* a plain request */
    WS_UPGRADE_OK,      /* a valid opening handshake */
    WS_UPGRADE_BAD,     /* asks for one, but its handshake is not valid: 400 */
    WS_UPGRADE_VERSION, /* a version other than 13: 426 */
};

/* Return how req asks for a WebSocket (RFC 6455, 4.2.1): a GET whose
 * Upgrade lists "websocket" and Connection lists "upgrade", with
 * Sec-WebSocket-Version 13 and a valid Sec-WebSocket-Key. */
enum ws_upgrade ws_upgrade_kind(const struct http_request *req);

#endif
