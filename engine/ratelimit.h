/* ratelimit.h — a token bucket per key (an API token id), in memory.
 *
 * Each key may take `burst` at once, then one every 60/per_min seconds: the
 * generic cell rate algorithm, so a bucket is one timestamp (when it is full
 * again). The table holds at most max_keys keys: a key whose bucket is full
 * again is forgotten first (that changes nothing), else the one used least
 * recently gives up its slot, and starts again with a full bucket. Nothing is
 * shared between processes: each replica limits on its own. Safe to call
 * from any thread. */
#ifndef SLUICE_RATELIMIT_H
#define SLUICE_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_KEY_MAX 32     /* longer keys are cut: token ids have 12 */

typedef struct ratelimit ratelimit;

/* A table of up to max_keys buckets of `burst` takes, refilled at per_min a
 * minute (1..60000). Returns NULL when out of memory. Free with
 * ratelimit_free; ratelimit_free(NULL) is a no-op. */
ratelimit *ratelimit_new(int per_min, int burst, size_t max_keys);
void ratelimit_free(ratelimit *rl);

/* Take one from key's bucket at now_ms (a monotonic clock). Returns 1 when
 * allowed; 0 when the bucket is empty, with *retry_after_ms (may be NULL)
 * set to the wait until the next take would be allowed (at least 1). */
int ratelimit_take(ratelimit *rl, const char *key, int64_t now_ms, int64_t *retry_after_ms);

#endif
