/* alerts.c — pending/firing/resolved bookkeeping over policy_eval_alerts. */
#include "alerts.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define ALERTS_MAX 10000

struct alert_entry {
    struct policy_alert_hit hit;
    int firing;
    int64_t since_ms;            /* when the condition started to hold */
    int seen;                    /* held in the current tick */
};

struct alerts {
    pthread_mutex_t lock;
    struct alert_entry *items;
    size_t n, cap;
};

alerts *alerts_new(void) {
    alerts *al = calloc(1, sizeof *al);
    if (al) pthread_mutex_init(&al->lock, NULL);
    return al;
}

void alerts_free(alerts *al) {
    if (al == NULL) return;
    free(al->items);
    pthread_mutex_destroy(&al->lock);
    free(al);
}

static int alerts_same(const struct policy_alert_hit *a, const struct policy_alert_hit *b) {
    return strcmp(a->alert, b->alert) == 0 && strcmp(a->queue, b->queue) == 0 &&
           strcmp(a->worker, b->worker) == 0;
}

/* A transition found under the lock, told after it. */
struct alerts_told {
    struct alerts_state a;
    const char *state;
};

/* Append a transition to *told (a failed allocation loses the notice, not
 * the state). */
static void alerts_note(struct alerts_told **told, size_t *n, const struct alert_entry *e,
                        const char *state) {
    struct alerts_told *grown = realloc(*told, (*n + 1) * sizeof **told);
    if (grown == NULL) return;
    *told = grown;
    grown[*n].a.hit = e->hit;
    grown[*n].a.firing = e->firing;
    grown[*n].a.since_ms = e->since_ms;
    grown[*n].state = state;
    (*n)++;
}

void alerts_tick(alerts *al, policy *pol, const struct policy_alert_queue *qs, size_t nq,
                 int64_t now_ms, alerts_notify_fn notify, void *ud) {
    struct policy_alert_hit *hits = NULL;
    struct alerts_told *told = NULL;
    size_t ntold = 0;
    size_t nh = qs ? policy_eval_alerts(pol, qs, nq, &hits) : 0;

    pthread_mutex_lock(&al->lock);
    for (size_t i = 0; i < al->n; i++) al->items[i].seen = 0;
    for (size_t h = 0; h < nh; h++) {
        struct alert_entry *e = NULL;
        for (size_t i = 0; i < al->n && !e; i++)
            if (alerts_same(&al->items[i].hit, &hits[h])) e = &al->items[i];
        if (e == NULL) {
            if (al->n == ALERTS_MAX) continue;
            if (al->n == al->cap) {
                size_t cap = al->cap ? al->cap * 2 : 16;
                struct alert_entry *grown = realloc(al->items, cap * sizeof *grown);
                if (grown == NULL) continue;
                al->items = grown;
                al->cap = cap;
            }
            e = &al->items[al->n++];
            memset(e, 0, sizeof *e);
            e->since_ms = now_ms;
        }
        e->hit = hits[h];                       /* fresh message and severity */
        e->seen = 1;
        if (!e->firing && now_ms - e->since_ms >= e->hit.for_s * 1000) {
            e->firing = 1;
            alerts_note(&told, &ntold, e, "firing");
        }
    }
    for (size_t i = 0; i < al->n;) {
        if (al->items[i].seen) {
            i++;
            continue;
        }
        if (al->items[i].firing) alerts_note(&told, &ntold, &al->items[i], "resolved");
        al->items[i] = al->items[--al->n];
    }
    pthread_mutex_unlock(&al->lock);

    for (size_t i = 0; notify && i < ntold; i++) notify(ud, &told[i].a, told[i].state, now_ms);
    free(told);
    free(hits);
}

size_t alerts_current(alerts *al, struct alerts_state **out) {
    size_t n = 0;
    *out = NULL;
    pthread_mutex_lock(&al->lock);
    if (al->n > 0 && (*out = malloc(al->n * sizeof **out)) != NULL) {
        for (size_t i = 0; i < al->n; i++) {
            (*out)[i].hit = al->items[i].hit;
            (*out)[i].firing = al->items[i].firing;
            (*out)[i].since_ms = al->items[i].since_ms;
        }
        n = al->n;
    }
    pthread_mutex_unlock(&al->lock);
    return n;
}
