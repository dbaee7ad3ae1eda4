/* store_pool.h — which of a backend's pooled connections are taken
 * (private: only the store backends include it).
 *
 * A backend keeps its connections in an array of its own; a store_pool only
 * hands out their indices, one caller at a time, and makes a caller wait
 * while every index is taken. What a connection is, how it is opened and
 * what is reset before it is given back stay with the backend. */
#ifndef SLUICE_STORE_POOL_H
#define SLUICE_STORE_POOL_H

#include <pthread.h>

#define STORE_POOL_MAX 64

struct store_pool {
    int size;                    /* 1..STORE_POOL_MAX */
    int in_use[STORE_POOL_MAX];
    pthread_mutex_t lock;        /* guards in_use; a backend may guard its settings with it too */
    pthread_cond_t freed;
};

/* Set up a pool of `requested` slots, clamped to 1..STORE_POOL_MAX. */
void store_pool_init(struct store_pool *p, int requested);
void store_pool_destroy(struct store_pool *p);

/* Take a free slot and return its index; blocks while all are taken. */
int store_pool_acquire(struct store_pool *p);

/* Give a slot back and wake one waiter. */
void store_pool_release(struct store_pool *p, int slot);

#endif
