/* protocol.h — the wire names of the Redis protocol (shared/design/
 * protocol.md), shared by sluiced and libsluice (agents/c).
 *
 * It owns every spelling both sides must agree on: the keys and channels
 * under a prefix (<p>:desired, <p>:scaling, <p>:reports, <p>:alerts,
 * <p>:owner, <p>:fence), the keys of the queue layouts sluiced reads
 * (<p>:q:<queue>:wait|active|failed, and BullMQ's <bull>:<queue>:<state>),
 * the limits of names and messages, and the one rule for names. The Redis
 * URL is parsed by rconn_target_parse (rconn.h), the only parser of it, for
 * both sides as well.
 *
 * It also owns the one format and the one parser of the desired state
 * (the <p>:desired value and the <p>:scaling message), with its "paused"
 * flag, and the rule for "paused" in reports; they use jansson.
 *
 * Nothing here keeps state (protocol_desired_format allocates its answer);
 * every function is safe from any thread. libsluice links protocol.c but exports none of it (libsluice.map). */
#ifndef SLUICE_PROTOCOL_H
#define SLUICE_PROTOCOL_H

#include <stddef.h>

#define PROTOCOL_DEFAULT_PREFIX "sluice"
#define PROTOCOL_DEFAULT_REDIS_URL "redis://127.0.0.1:6379"

#define PROTOCOL_NAME_MAX 64            /* prefix, queue, flag and token names */
#define PROTOCOL_WORKER_ID_MAX 128      /* the "worker" of a report */
#define PROTOCOL_REPORT_MAX 4096        /* bytes; sluiced refuses larger reports */
#define PROTOCOL_DESIRED_MAX 4096       /* bytes; agents ignore larger desired states */
/* Room for any key or channel built below from valid names, NUL included. */
#define PROTOCOL_KEY_MAX (2 * PROTOCOL_NAME_MAX + 16)

/* The keys and channels of one prefix. */
enum protocol_key {
    PROTOCOL_DESIRED,       /* hash queue -> desired state, the copy workers trust */
    PROTOCOL_SCALING,       /* channel: the desired state, as a wake-up */
    PROTOCOL_REPORTS,       /* channel: acks, heartbeats, errors and byes of workers */
    PROTOCOL_ALERTS,        /* channel: alert transitions */
    PROTOCOL_OWNER,         /* string: the store that owns the prefix */
    PROTOCOL_FENCE,         /* string: the newest leader epoch that wrote */
};

/* The lists of one queue in the sluice layout. */
enum protocol_list {
    PROTOCOL_LIST_WAIT,     /* jobs waiting; producers LPUSH */
    PROTOCOL_LIST_ACTIVE,   /* jobs being run */
    PROTOCOL_LIST_FAILED,   /* failed jobs, capped */
};

/* Write "<prefix>:desired" (and so on) into buf, PROTOCOL_KEY_MAX bytes.
 * Returns buf. A prefix that is not a valid name may be cut short. */
char *protocol_key(char buf[PROTOCOL_KEY_MAX], const char *prefix, enum protocol_key which);

/* Write "<prefix>:q:<queue>:wait" (and so on) into buf, PROTOCOL_KEY_MAX
 * bytes. Returns buf; names that are not valid may be cut short. */
char *protocol_queue_key(char buf[PROTOCOL_KEY_MAX], const char *prefix, const char *queue,
                         enum protocol_list list);

/* Write BullMQ's "<bull_prefix>:<queue>:<state>" ("bull:q:wait") into buf,
 * PROTOCOL_KEY_MAX bytes. Returns buf, as protocol_queue_key. */
char *protocol_bullmq_key(char buf[PROTOCOL_KEY_MAX], const char *bull_prefix, const char *queue,
                          const char *state);

/* 1 when c may appear in a name: [A-Za-z0-9_.:-]. */
int protocol_name_char(char c);

/* 1 when s is 1..max characters that protocol_name_char accepts (a worker
 * id; libsluice also checks its queue and prefix this way). 0 otherwise,
 * NULL included. */
int protocol_valid_id(const char *s, size_t max);

/* 1 when s is a name sluiced accepts for a prefix, queue, flag or token:
 * a valid id of 1..PROTOCOL_NAME_MAX characters not starting with '.' or
 * '-' (so it never reads as a path or an option). 0 otherwise. */
int protocol_valid_name(const char *s);

/* The desired state of one queue, as <p>:desired holds it and <p>:scaling
 * carries it: {"queue","concurrency","version","paused","at"}. A paused
 * queue's workers take no new jobs and finish the ones they run; its
 * concurrency is kept, the value they return to on resume. */
struct protocol_desired {
    char queue[PROTOCOL_NAME_MAX + 1];
    long long concurrency;
    long long version;
    int paused;                  /* absent in a message: 0 (a sluiced before pause) */
};

/* The compact JSON of d with "at" (an RFC 3339 time, as sluiced writes it).
 * Returns a malloc'd string the caller frees, or NULL when out of memory. */
char *protocol_desired_format(const struct protocol_desired *d, const char *at);

/* Parse a desired-state payload of len bytes into *out. Returns 0, or -1
 * with *why saying what is wrong: larger than PROTOCOL_DESIRED_MAX, not a
 * JSON object, a queue that is not a name, a concurrency or version that
 * is not an integer (range checks are the reader's), or a "paused" that is
 * neither a boolean nor absent. */
int protocol_desired_parse(const char *payload, size_t len, struct protocol_desired *out,
                           const char **why);

/* The "paused" of a report object (a jansson json_t *, as void * so that
 * this header needs no jansson): 0 or 1, 0 when absent or null (an agent
 * before pause), -1 when it is anything else. */
int protocol_report_paused(const void *report);

#endif
