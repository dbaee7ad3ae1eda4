/* store_pool.c — the slot-borrowing loop both store backends share (see
 * store_pool.h). */
#include "store_pool.h"

void store_pool_init(struct store_pool *p, int requested) {
    p->size = requested < 1 ? 1 : requested > STORE_POOL_MAX ? STORE_POOL_MAX : requested;
    for (int i = 0; i < STORE_POOL_MAX; i++) p->in_use[i] = 0;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->freed, NULL);
}

void store_pool_destroy(struct store_pool *p) {
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->freed);
}

int store_pool_acquire(struct store_pool *p) {
    int slot = -1;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        for (int i = 0; i < p->size && slot < 0; i++)
            if (!p->in_use[i]) slot = i;
        if (slot >= 0) break;
        pthread_cond_wait(&p->freed, &p->lock);
    }
    p->in_use[slot] = 1;
    pthread_mutex_unlock(&p->lock);
    return slot;
}

void store_pool_release(struct store_pool *p, int slot) {
    pthread_mutex_lock(&p->lock);
    p->in_use[slot] = 0;
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->lock);
}
