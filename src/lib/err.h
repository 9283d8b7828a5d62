/* Error codes shared by every berth module.
 *
 * Functions return 0 on success or one of the negative codes below, in the
 * way libuv and raft do. Long-lived objects keep a human-readable message with
 * context next to the code; err_str() gives the generic text of a code. */
#ifndef BERTH_LIB_ERR_H
#define BERTH_LIB_ERR_H

enum {
    BERTH_OK = 0,
    BERTH_ENOMEM = -1,     /* An allocation failed. */
    BERTH_EINVAL = -2,     /* An argument or request is not valid. */
    BERTH_ENOTFOUND = -3,  /* The named thing does not exist. */
    BERTH_EEXIST = -4,     /* The named thing exists already. */
    BERTH_ETOOBIG = -5,    /* A size limit was exceeded. */
    BERTH_EMALFORMED = -6, /* Bytes do not decode. */
    BERTH_EIO = -7,        /* A system call on a file or socket failed. */
    BERTH_ECORRUPT = -8,   /* Stored data fails its checks. */
    BERTH_EPROGRAM = -9,  /* A program crashed, exited or broke the protocol. */
    BERTH_ETIMEOUT = -10, /* A deadline passed. */
    BERTH_ESHUTDOWN = -11,  /* The object is closing. */
    BERTH_EBUSY = -12,      /* The object cannot take this now. */
    BERTH_EREJECTED = -13,  /* A program rejected an event. */
    BERTH_ENOTLEADER = -14, /* This host does not lead the cluster. */
    BERTH_EPARTIAL = -15,   /* More bytes are needed to finish decoding. */
    BERTH_ENOCONNECT = -16, /* No connection could be made: nothing was sent. */
    BERTH_EDISABLED = -17,  /* The account it belongs to is disabled. */
    BERTH_EDENIED = -18,    /* The caller's account may not do this. */
    BERTH_ELIMIT = -19,     /* It would take an account over a limit. */
    BERTH__ERR_COUNT = 20
};

/* Return a static short name for an error code, such as "ENOTFOUND". */
const char *err_name(int rv);

/* Return a static one-line description of an error code. */
const char *err_str(int rv);

/* Size of the message buffers that long-lived objects embed. */
#define ERRMSG_SIZE 256

/* Format a message into an ERRMSG_SIZE buffer; truncates silently. */
void err_printf(char *errmsg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
