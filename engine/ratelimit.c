/* ratelimit.c — token buckets per key as the generic cell rate algorithm.
 *
 * A bucket is the time at which it is full again (tat). Taking one moves it
 * one interval later; a take is refused when that would put it more than
 * burst - 1 intervals past now. The table is a plain array scanned in full:
 * it holds at most a few thousand keys and is touched once per write. */
#include "ratelimit.h"
#include "util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct ratelimit_slot {
    char key[RATELIMIT_KEY_MAX + 1];
    int64_t tat_us;              /* when the bucket is full again */
    int64_t used_ms;             /* the last take, for eviction */
};

struct ratelimit {
    int64_t interval_us;         /* one take refills in this long */
    int64_t slack_us;            /* (burst - 1) intervals */
    size_t max, n;
    struct ratelimit_slot *slots;
    pthread_mutex_t lock;
};

ratelimit *ratelimit_new(int per_min, int burst, size_t max_keys) {
    if (per_min < 1 || burst < 1 || max_keys < 1) return NULL;
    ratelimit *rl = calloc(1, sizeof *rl);
    if (rl == NULL) return NULL;
    rl->slots = calloc(max_keys, sizeof *rl->slots);
    if (rl->slots == NULL) {
        free(rl);
        return NULL;
    }
    rl->interval_us = 60000000LL / per_min;
    rl->slack_us = (int64_t)(burst - 1) * rl->interval_us;
    rl->max = max_keys;
    pthread_mutex_init(&rl->lock, NULL);
    return rl;
}

void ratelimit_free(ratelimit *rl) {
    if (rl == NULL) return;
    pthread_mutex_destroy(&rl->lock);
    free(rl->slots);
    free(rl);
}

/* The slot of key, or one to give it: a bucket full again (forgetting it
 * changes nothing), else a free slot, else the least recently used. */
static struct ratelimit_slot *ratelimit_slot_of(ratelimit *rl, const char *key, int64_t now_us) {
    struct ratelimit_slot *reusable = NULL, *oldest = NULL;
    for (size_t i = 0; i < rl->n; i++) {
        struct ratelimit_slot *s = &rl->slots[i];
        if (strcmp(s->key, key) == 0) return s;
        if (reusable == NULL && s->tat_us <= now_us) reusable = s;
        if (oldest == NULL || s->used_ms < oldest->used_ms) oldest = s;
    }
    struct ratelimit_slot *s = reusable ? reusable : rl->n < rl->max ? &rl->slots[rl->n++] : oldest;
    util_copy(s->key, sizeof s->key, key);
    s->tat_us = now_us;
    return s;
}

int ratelimit_take(ratelimit *rl, const char *key, int64_t now_ms, int64_t *retry_after_ms) {
    char cut[RATELIMIT_KEY_MAX + 1];
    int64_t now_us = now_ms * 1000;
    int allowed;
    util_copy(cut, sizeof cut, key);
    pthread_mutex_lock(&rl->lock);
    struct ratelimit_slot *s = ratelimit_slot_of(rl, cut, now_us);
    int64_t tat = s->tat_us > now_us ? s->tat_us : now_us;
    allowed = tat - now_us <= rl->slack_us;
    s->used_ms = now_ms;              /* refused takes too: a key kept busy is never evicted */
    if (allowed) {
        s->tat_us = tat + rl->interval_us;
    } else if (retry_after_ms) {
        int64_t wait_us = tat - rl->slack_us - now_us;
        *retry_after_ms = wait_us <= 0 ? 1 : (wait_us + 999) / 1000;
    }
    pthread_mutex_unlock(&rl->lock);
    return allowed;
}
