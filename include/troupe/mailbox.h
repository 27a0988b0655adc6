/* SPDX-License-Identifier: MIT */
/*
 * Typed messages. A message is a C struct whose first member is a
 * tr_msg_t header. Each message type is declared once with TR_MESSAGE_TYPE
 * (in a header) and defined once with TR_MESSAGE_DEFINE (in one .c file);
 * the pair yields a type descriptor (name, size, destructor, msgpack
 * encode/decode) and an allocation helper T_new(). Typed references
 * (TR_TYPED_REF, TR_ACCEPTS) are in <troupe/actor.h>, beside tr_send.
 *
 * Ownership: a message is allocated by its sender (T_new / tr_msg_new).
 * Every call that takes a message consumes it: a successful send hands it
 * over, a failed one frees it, so a send is one line whatever happens; a
 * caller that wants it back to retry sends with TR_SEND_KEEP (tr_send_ex,
 * tr_chan_send_ex). A received message belongs to
 * the receiving handler for the duration of the call; the runtime frees it
 * afterwards unless the handler forwarded it, replied with it, or took it
 * with tr_ctx_take().
 */
#ifndef TROUPE_MAILBOX_H
#define TROUPE_MAILBOX_H

#include <troupe/common.h>

TR_BEGIN_DECLS

struct msgpack_packer;
struct msgpack_object;
struct msgpack_sbuffer;

/* A reference to an actor: a by-value handle (runtime, slot, generation).
 * Copy it freely. A ref to an actor that has stopped stays invalid forever:
 * sending to it fails with TR_ENOACTOR and never touches freed memory. */
typedef struct tr_ref {
  uint64_t id;
} tr_ref_t;

#define TR_REF_NULL ((tr_ref_t){0})

static inline int tr_ref_eq(tr_ref_t a, tr_ref_t b) { return a.id == b.id; }
static inline int tr_ref_is_null(tr_ref_t a) { return a.id == 0; }

typedef struct tr_msgtype tr_msgtype_t;

/* What a bounded queue does when it is full: the one overflow vocabulary
 * of bounded mailboxes (tr_mailbox_spec_t) and bounded mpsc channels
 * (tr_chan_opts_t); doc/overflow.md compares them.
 *   TR_OVERFLOW_FAIL         the send fails with TR_EAGAIN.
 *   TR_OVERFLOW_DROP_OLDEST  the oldest queued message is dropped (counted
 *                            as a dead letter, returned to its sender if it
 *                            asked) and the new one is queued.
 *   TR_OVERFLOW_BLOCK        backpressure. A sending actor is never blocked:
 *                            a mailbox accepts the message and deschedules
 *                            the sender until the mailbox drains below its
 *                            low-water mark (as Pony mutes senders); a
 *                            channel refuses with TR_EAGAIN and sends the
 *                            actor one tr_chan_writable_t once it drained.
 *                            A thread outside the runtime blocks on a
 *                            channel (up to its timeout) and gets TR_EAGAIN
 *                            from a mailbox. */
typedef enum tr_overflow {
  TR_OVERFLOW_FAIL = 0,
  TR_OVERFLOW_DROP_OLDEST = 1,
  TR_OVERFLOW_BLOCK = 2
} tr_overflow_t;

/* The header every message struct starts with. The fields are maintained by
 * the runtime; read them through the accessors below. */
typedef struct tr_msg {
  struct tr_msg *next;       /* mailbox link, runtime use only */
  const tr_msgtype_t *type;  /* the type descriptor */
  uint64_t sender;           /* tr_ref_t id of the sender, 0 if none */
  uint64_t tag;              /* request/reply correlation, runtime use */
  uint32_t flags;            /* TR_SEND_* options of its last send */
  uint32_t reserved_;
} tr_msg_t;

/* Message type flags. */
#define TR_MSG_SYSTEM 0x1u /* served before any data message */

/* The descriptor of one message type. Made by TR_MESSAGE_DEFINE. */
struct tr_msgtype {
  const char *name;  /* unique name, also the identity across nodes */
  size_t size;       /* sizeof the whole message struct */
  uint32_t flags;    /* TR_MSG_* */
  /* Releases what the message owns (not the message itself); called when a
   * message is freed, including when it is dropped undelivered. */
  void (*dtor)(void *msg);
  /* msgpack codec used when a message crosses a node boundary. encode
   * packs the payload (not the header); decode fills a zeroed message from
   * the object. Both return 0 or a negative TR_E* code. NULL means the
   * type cannot leave its process (TR_ECODEC). */
  int (*encode)(const void *msg, struct msgpack_packer *pk);
  int (*decode)(const struct msgpack_object *obj, void *msg);
};

/* Declares message type T with the given fields (after the header):
 *   TR_MESSAGE_TYPE(ping_t, int seq; uint64_t stamp;);
 * Put it in a header. It declares the descriptor T__type and the helper
 * T *T_new(void) (NULL when out of memory). */
#define TR_MESSAGE_TYPE(T, ...)                                              \
  typedef struct T {                                                         \
    tr_msg_t hdr;                                                            \
    __VA_ARGS__                                                              \
  } T;                                                                       \
  TR_MESSAGE_DECLARE(T)

/* Declares the descriptor and helpers of a message struct T defined by
 * hand (its first member must be a tr_msg_t named hdr). */

#define TR_MESSAGE_DECLARE(T)                                                \
  extern TR_EXTERN const tr_msgtype_t T##__type;                             \
  static inline T *T##_new(void) {                                          \
    return (T *)tr_msg_new(&T##__type);                                      \
  }

/* Defines the descriptor of T in exactly one .c file. Optional designated
 * initialisers set the other slots:
 *   TR_MESSAGE_DEFINE(ping_t, .encode = ping_encode, .decode = ping_decode);
 */
#define TR_MESSAGE_DEFINE(T, ...)                                            \
  const tr_msgtype_t T##__type = {.name = #T, .size = sizeof(T), __VA_ARGS__}

/* The descriptor of message type T. */
#define TR_TYPE(T) (&T##__type)

/* Allocates a zeroed message of the given type (the memory comes from
 * jemalloc's thread cache). Returns NULL when out of memory. */
TR_EXTERN void *tr_msg_new(const tr_msgtype_t *type);

/* Frees a message the caller owns: runs the type's destructor, then
 * releases the memory. If the message is a request that was never replied
 * to, the asker receives a TR_ENOREPLY reply. NULL is ignored. */
TR_EXTERN void tr_msg_free(void *msg);

/* The type descriptor of a message. */
static inline const tr_msgtype_t *tr_msg_type(const void *msg) {
  return ((const tr_msg_t *)msg)->type;
}

/* The sender of a message (TR_REF_NULL when sent from outside any actor). */
static inline tr_ref_t tr_msg_sender(const void *msg) {
  tr_ref_t r;
  r.id = ((const tr_msg_t *)msg)->sender;
  return r;
}

/* Encodes a message (type name + payload) as one msgpack array into sbuf.
 * Returns TR_ECODEC if the type has no encoder. */
TR_EXTERN int tr_msg_encode(const void *msg, struct msgpack_sbuffer *sbuf);

/* Limits on what the decoder accepts. Input comes from other nodes, so
 * every size it declares is checked by a walk over the bytes BEFORE
 * msgpack-c builds anything: a message over a limit costs no more memory
 * than the bytes it arrived in. Once accepted, decoding allocates about
 * 24 bytes per msgpack object (sizeof(msgpack_object) on 64-bit targets),
 * so max_objects bounds the memory a message may take; strings and binary
 * data are not copied, they point into the input.
 *
 * Every field left 0 takes its default (TR_MSG_DEFAULT_*). Counting: the
 * message's own [name, payload] array is nesting level 1 and holds 2
 * items; every value is one object, a map's keys included.
 *
 * The struct may grow in later releases: it follows the rule of growable
 * config structs (<troupe/common.h>): fill it with tr_msg_limits_init, or
 * write it as {0} / with designated initialisers (size 0: this release's
 * struct). */
typedef struct tr_msg_limits {
  size_t size;          /* sizeof(tr_msg_limits_t); see above */
  size_t max_bytes;     /* input length; 0 = TR_MSG_DEFAULT_MAX_BYTES */
  uint32_t max_depth;   /* nesting of arrays and maps; 0 = default, at
                           most TR_MSG_MAX_DEPTH (msgpack-c's own limit) */
  uint32_t max_items;   /* items of one array, pairs of one map; 0 =
                           TR_MSG_DEFAULT_MAX_ITEMS */
  size_t max_objects;   /* objects in the whole message; 0 =
                           TR_MSG_DEFAULT_MAX_OBJECTS */
} tr_msg_limits_t;

#define TR_MSG_DEFAULT_MAX_BYTES ((size_t)1 << 20)  /* 1 MiB */
#define TR_MSG_DEFAULT_MAX_DEPTH 32u
#define TR_MSG_MAX_DEPTH 32u
#define TR_MSG_DEFAULT_MAX_ITEMS 65536u
#define TR_MSG_DEFAULT_MAX_OBJECTS ((size_t)131072) /* ~3 MiB decoded */

/* Fills lim with the defaults: every limit 0, size = sizeof(*lim) as
 * compiled into the caller (which is why this is inline). */
static inline void tr_msg_limits_init(tr_msg_limits_t *lim) {
  TR_CONFIG_SIZE_INIT(lim);
}

/* Decodes one message produced by tr_msg_encode from exactly len bytes of
 * data, within limits (NULL: the defaults). The type is looked up among
 * the n candidate descriptors by name, so input can only produce the types
 * the caller accepts. On success *out owns a new message; on failure *out
 * is NULL and nothing is leaked.
 *
 * Returns 0, or
 *   TR_EMSGSIZE  the input is over a limit: longer than max_bytes, nested
 *                deeper than max_depth, a container with more than
 *                max_items, or more than max_objects in all;
 *   TR_ECODEC    malformed or truncated msgpack, bytes left after the
 *                message (one call decodes one whole message: a stream
 *                must be framed by the caller), not a [name, payload]
 *                array, an unknown type name, a candidate type without a
 *                decoder, or the type's decoder refused the payload;
 *   TR_EINVAL    a NULL argument, a limits struct with fields unknown
 *                to this library set (or a size too small to hold size), or
 *                max_depth over TR_MSG_MAX_DEPTH;
 *   TR_ENOMEM, or a negative code returned by the type's decoder.
 * Any thread may call; it touches no runtime state. */
TR_EXTERN int tr_msg_decode_ex(const char *data, size_t len,
                               const tr_msgtype_t *const *types, size_t n,
                               const tr_msg_limits_t *limits, void **out);

/* tr_msg_decode_ex with the default limits. */
TR_EXTERN int tr_msg_decode(const char *data, size_t len,
                            const tr_msgtype_t *const *types, size_t n,
                            void **out);

TR_END_DECLS

#endif
