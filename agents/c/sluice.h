/* sluice.h — libsluice, the C agent a worker process links to follow Sluice.
 *
 * Start an agent with the queue it serves and a callback that changes the
 * worker's concurrency. The agent runs one thread of its own that follows
 * the protocol of Sluice (protocol.md): it reads <prefix>:desired when it
 * starts and after every reconnect, listens on <prefix>:scaling, re-reads
 * the hash on a timer (pub/sub loses messages), applies only versions newer
 * than the last one applied, acknowledges with the concurrency really in
 * force, heartbeats with job counters, reports an error when it clamps a
 * value to the worker's hard limit, and says bye on stop.
 *
 * A queue may be paused (protocol.md's "paused"): the worker must take no
 * new job and finish the ones it runs, whatever the desired concurrency,
 * which is kept for the resume. With a pause callback the agent calls it
 * (1 on pause, 0 on resume) and still applies the desired concurrency, so
 * the worker knows what it returns to; without one it applies 0 while
 * paused and the desired concurrency on resume. Either way reports carry
 * "paused" and, as "concurrency", what the worker runs when not paused, so
 * a paused fleet never looks mismatched.
 *
 * Thread-safety: sluice_agent_job_* and the getters may be called from any
 * thread; the apply callback runs on the agent's thread, never concurrently
 * with itself. Needs hiredis and jansson. */
#ifndef SLUICE_AGENT_H
#define SLUICE_AGENT_H

#include <stddef.h>

#define SLUICE_AGENT_NAME "libsluice/0.3"

/* A desired concurrency above the agent's ceiling, a negative one, or a
 * version that is negative or beyond 2^53 is not something sluiced sends:
 * such a message is ignored (and logged at most once a minute), never
 * applied or acknowledged. */
#define SLUICE_AGENT_CEILING 1000000
#define SLUICE_VERSION_MAX 9007199254740992LL     /* 2^53 */

typedef struct sluice_agent sluice_agent;

/* Make `concurrency` the number of jobs the worker runs at once; return the
 * number really in force (lower when the worker cannot do more). */
typedef int (*sluice_apply_fn)(void *ud, int concurrency);

/* paused 1: take no new job from now on (the running ones finish); 0: take
 * jobs again. Called on the agent's thread, on pause before the desired
 * concurrency is applied and on resume after it; the acknowledgement goes
 * out when it returns. */
typedef void (*sluice_pause_fn)(void *ud, int paused);

struct sluice_config {
    const char *redis_url;       /* redis[s]://[USER[:PASSWORD]@]HOST:PORT[/DB];
                                    NULL: redis://127.0.0.1:6379 */
    const char *prefix;          /* NULL: "sluice" */
    const char *queue;           /* required */
    const char *worker_id;       /* NULL: <queue>-<host>-<pid> */
    int initial_concurrency;     /* in force until the first desired state is read */
    int max_concurrency;         /* hard limit, never exceeded; 0: none */
    int heartbeat_ms;            /* 0: 1000 */
    int poll_ms;                 /* re-read of the desired hash; 0: 5000 */
    sluice_apply_fn apply;       /* required */
    void *ud;
    /* Added in 0.2; zero them (designated initializers do) for the defaults. */
    const char *redis_password;  /* when the URL has none; NULL: none */
    const char *redis_ca;        /* rediss://: CA file; NULL: the system store */
    const char *redis_cert, *redis_key;   /* rediss://: client certificate (mutual TLS) */
    int ceiling;                 /* most concurrency a message may ask; 0: SLUICE_AGENT_CEILING */
    /* Added in 0.3. */
    sluice_pause_fn pause;       /* NULL: apply(0) while paused (see above) */
};

/* Start following. apply is called once before this returns, on the
 * caller's thread, with the initial concurrency (when the queue is paused
 * right now, pause(ud, 1) comes first, or apply gets 0 without a pause
 * callback, so a worker started during a pause takes no job); later calls come from the
 * agent's thread. Redis being down is not an error (the agent retries), but
 * a Redis that refuses us (wrong password, untrusted certificate, a plain
 * connection to a TLS port) is: it would never heal. Returns NULL with a
 * one-line message in err on bad configuration or such a refusal. */
sluice_agent *sluice_agent_start(const struct sluice_config *cfg, char *err, size_t errlen);

/* Say bye, stop the thread and free the agent. NULL is a no-op. */
void sluice_agent_stop(sluice_agent *a);

/* The concurrency in force and the version it came from (0 before any). */
int sluice_agent_concurrency(sluice_agent *a);
long long sluice_agent_version(sluice_agent *a);

/* 1 while the queue is paused (the last version applied said so), else 0.
 * While paused, sluice_agent_concurrency is what the worker returns to. */
int sluice_agent_paused(sluice_agent *a);

/* Job accounting for heartbeats: call when a job starts and when it ends. */
void sluice_agent_job_started(sluice_agent *a);
void sluice_agent_job_finished(sluice_agent *a, int ok);

#endif
