/* history.c — rings of samples per queue, and the history answer. */
#include "history.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HISTORY_I32_NONE INT32_MIN
#define HISTORY_U16_NONE UINT16_MAX

/* One queue's day. Slot s (a sample's ms / HISTORY_STEP_MS) lives at index
 * s % HISTORY_SLOTS; the ring holds slots newest - HISTORY_SLOTS + 1 ..
 * newest. The arrays are one allocation (block). */
struct history_ring {
    char queue[UTIL_NAME_MAX + 1];
    int64_t newest;                  /* slot of the newest sample; -1: none */
    void *block;
    int32_t *waiting, *active, *desired, *running;
    float *done, *failed;
    uint16_t *workers;
};

struct history {
    pthread_mutex_t lock;            /* the rings; a leaf */
    struct history_ring rings[HISTORY_MAX_QUEUES];
    size_t nrings;
};

#define HISTORY_RING_BYTES ((size_t)HISTORY_SLOTS * (4 * sizeof(int32_t) + 2 * sizeof(float) + sizeof(uint16_t)))

static const struct history_range history_ranges[] = {
    {"15m", 15 * 60000LL, 10000},
    {"1h", 3600000LL, 10000},
    {"6h", 6 * 3600000LL, 30000},
    {"24h", 24 * 3600000LL, 120000},
};

history *history_new(void) {
    history *h = calloc(1, sizeof *h);
    if (h) pthread_mutex_init(&h->lock, NULL);
    return h;
}

void history_free(history *h) {
    if (h == NULL) return;
    for (size_t i = 0; i < h->nrings; i++) free(h->rings[i].block);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* Mark slot index i of r as holding no sample. */
static void history_clear(struct history_ring *r, size_t i) {
    r->waiting[i] = r->active[i] = r->desired[i] = r->running[i] = HISTORY_I32_NONE;
    r->done[i] = r->failed[i] = NAN;
    r->workers[i] = HISTORY_U16_NONE;
}

/* Give r (named queue) its arrays, every slot empty. Returns 0 or -1. */
static int history_ring_init(struct history_ring *r, const char *queue) {
    char *at = malloc(HISTORY_RING_BYTES);
    if (at == NULL) return -1;
    free(r->block);
    r->block = at;
    util_copy(r->queue, sizeof r->queue, queue);
    r->newest = -1;
    /* 4-byte arrays first, then the 2-byte one: every array aligned. */
    r->waiting = (int32_t *)(void *)at;
    r->active = r->waiting + HISTORY_SLOTS;
    r->desired = r->active + HISTORY_SLOTS;
    r->running = r->desired + HISTORY_SLOTS;
    r->done = (float *)(void *)(r->running + HISTORY_SLOTS);
    r->failed = r->done + HISTORY_SLOTS;
    r->workers = (uint16_t *)(void *)(r->failed + HISTORY_SLOTS);
    for (size_t i = 0; i < HISTORY_SLOTS; i++) history_clear(r, i);
    return 0;
}

/* The ring of queue, made (or taken over from the least recently sampled
 * queue) when make is set. NULL when none. Called with the lock held. */
static struct history_ring *history_ring_of(history *h, const char *queue, int make) {
    struct history_ring *oldest = NULL;
    for (size_t i = 0; i < h->nrings; i++) {
        if (strcmp(h->rings[i].queue, queue) == 0) return &h->rings[i];
        if (oldest == NULL || h->rings[i].newest < oldest->newest) oldest = &h->rings[i];
    }
    if (!make) return NULL;
    struct history_ring *r = h->nrings < HISTORY_MAX_QUEUES ? &h->rings[h->nrings] : oldest;
    if (history_ring_init(r, queue) != 0) return NULL;
    if (r == &h->rings[h->nrings]) h->nrings++;
    return r;
}

static int32_t history_i32(int64_t v) {
    if (v == HISTORY_UNKNOWN) return HISTORY_I32_NONE;
    return v > INT32_MAX ? INT32_MAX : v < INT32_MIN + 1 ? INT32_MIN + 1 : (int32_t)v;
}

static uint16_t history_u16(int64_t v) {
    if (v == HISTORY_UNKNOWN) return HISTORY_U16_NONE;
    return v >= HISTORY_U16_NONE ? HISTORY_U16_NONE - 1 : v < 0 ? 0 : (uint16_t)v;
}

int history_record(history *h, const char *queue, const struct history_sample *s, int64_t at_ms) {
    int64_t slot = at_ms / HISTORY_STEP_MS;
    int rc = 0;
    pthread_mutex_lock(&h->lock);
    struct history_ring *r = history_ring_of(h, queue, 1);
    if (r == NULL) {
        rc = -1;
        goto done;
    }
    if (r->newest >= 0 && slot <= r->newest - HISTORY_SLOTS) goto done;   /* older than a day */
    if (slot > r->newest) {
        /* The slots between the newest sample and this one are gaps. */
        int64_t first = r->newest < 0 || slot - r->newest > HISTORY_SLOTS ? slot - HISTORY_SLOTS + 1
                                                                          : r->newest + 1;
        for (int64_t k = first; k < slot; k++) history_clear(r, (size_t)(k % HISTORY_SLOTS));
        r->newest = slot;
    }
    size_t i = (size_t)(slot % HISTORY_SLOTS);
    r->waiting[i] = history_i32(s->waiting);
    r->active[i] = history_i32(s->active);
    r->desired[i] = history_i32(s->desired);
    r->running[i] = history_i32(s->running);
    r->workers[i] = history_u16(s->workers);
    r->done[i] = (float)s->done_per_s;
    r->failed[i] = (float)s->failed_per_s;
done:
    pthread_mutex_unlock(&h->lock);
    return rc;
}

void history_sample_model(history *h, const struct health_model *m, int64_t at_ms) {
    for (size_t i = 0; h && m && i < m->nqueues; i++) {
        const struct queue_health *q = &m->queues[i];
        struct history_sample s;
        int depth = m->redis_up && q->has_depth;
        s.waiting = depth && q->depth.waiting >= 0 ? q->depth.waiting : HISTORY_UNKNOWN;
        s.active = depth && q->depth.active >= 0 ? q->depth.active : HISTORY_UNKNOWN;
        s.desired = q->target_shown ? q->target.desired : HISTORY_UNKNOWN;
        s.running = q->active_concurrency;
        s.workers = q->live_workers;
        /* Reports come over Redis: without it, rates say nothing now. */
        s.done_per_s = m->redis_up ? q->rates.completed_per_s : NAN;
        s.failed_per_s = m->redis_up ? q->rates.failed_per_s : NAN;
        history_record(h, q->name, &s, at_ms);
    }
}

const struct history_range *history_range_named(const char *name) {
    for (size_t i = 0; name && i < sizeof history_ranges / sizeof history_ranges[0]; i++)
        if (strcmp(history_ranges[i].name, name) == 0) return &history_ranges[i];
    return NULL;
}

/* The start of the step that holds now_ms. */
static int64_t history_last_step(const struct history_range *r, int64_t now_ms) {
    return now_ms / r->step_ms * r->step_ms;
}

int64_t history_range_start(const struct history_range *r, int64_t now_ms) {
    return history_last_step(r, now_ms) - (r->span_ms / r->step_ms - 1) * r->step_ms;
}

size_t history_memory(history *h) {
    pthread_mutex_lock(&h->lock);
    size_t n = h->nrings;
    pthread_mutex_unlock(&h->lock);
    return sizeof *h + n * HISTORY_RING_BYTES;
}

/* ---- rendering ------------------------------------------------------------ */

/* One step's values, the last known sample of each field in it. */
struct history_point {
    int64_t v[5];                    /* waiting, active, desired, running, workers */
    double rate[2];                  /* done, failed */
};

/* The point of the step [from_ms, from_ms + step_ms) of r (NULL: no ring). */
static void history_point_of(const struct history_ring *r, int64_t from_ms, int64_t step_ms,
                             struct history_point *p) {
    for (int f = 0; f < 5; f++) p->v[f] = HISTORY_UNKNOWN;
    p->rate[0] = p->rate[1] = NAN;
    if (r == NULL || r->newest < 0) return;
    int64_t first = from_ms / HISTORY_STEP_MS, last = (from_ms + step_ms) / HISTORY_STEP_MS - 1;
    if (last > r->newest) last = r->newest;
    if (first <= r->newest - HISTORY_SLOTS) first = r->newest - HISTORY_SLOTS + 1;
    for (int64_t k = last; k >= first; k--) {
        size_t i = (size_t)(k % HISTORY_SLOTS);
        const int32_t *ints[4] = {r->waiting, r->active, r->desired, r->running};
        for (int f = 0; f < 4; f++)
            if (p->v[f] == HISTORY_UNKNOWN && ints[f][i] != HISTORY_I32_NONE) p->v[f] = ints[f][i];
        if (p->v[4] == HISTORY_UNKNOWN && r->workers[i] != HISTORY_U16_NONE) p->v[4] = r->workers[i];
        if (isnan(p->rate[0]) && !isnan(r->done[i])) p->rate[0] = r->done[i];
        if (isnan(p->rate[1]) && !isnan(r->failed[i])) p->rate[1] = r->failed[i];
    }
}

/* Fill the desired of the points without one with the value in force at
 * the end of their step, walking back from now through the changes. */
static void history_fill_desired(struct history_point *pts, size_t n, int64_t first_ms,
                                 int64_t step_ms, const struct history_audit *a) {
    int64_t value = a ? a->desired_now : HISTORY_UNKNOWN;
    size_t c = 0;
    if (value == HISTORY_UNKNOWN) return;
    for (size_t k = n; k-- > 0;) {
        int64_t end = first_ms + (int64_t)(k + 1) * step_ms - 1;
        for (; c < a->nchanges && a->changes[c].at_ms > end; c++) value = a->changes[c].from;
        if (c == a->nchanges && !a->complete && a->nchanges > 0) return;   /* older ones cut off */
        if (pts[k].v[2] == HISTORY_UNKNOWN) pts[k].v[2] = value;
    }
}

static void history_write_int(struct body_writer *w, int64_t v, int first) {
    char num[32];
    int len = v == HISTORY_UNKNOWN ? snprintf(num, sizeof num, "%snull", first ? "" : ",")
                                   : snprintf(num, sizeof num, "%s%lld", first ? "" : ",", (long long)v);
    body_write(w, num, (size_t)len);
}

static void history_write_rate(struct body_writer *w, double v, int first) {
    char num[40];
    /* Rates as floats keep about 7 digits: print no more than that. */
    int len = isnan(v) || isinf(v) ? snprintf(num, sizeof num, "%snull", first ? "" : ",")
                                   : snprintf(num, sizeof num, "%s%.6g", first ? "" : ",", v);
    body_write(w, num, (size_t)len);
}

/* "name":[...] of one field of the points (f < 5: integers, else a rate). */
static void history_write_series(struct body_writer *w, const char *name,
                                 const struct history_point *pts, size_t n, int f, int comma) {
    body_write_str(w, comma ? ",\"" : "\"");
    body_write_str(w, name);
    body_write_str(w, "\":[");
    for (size_t k = 0; k < n; k++) {
        if (f < 5) history_write_int(w, pts[k].v[f], k == 0);
        else history_write_rate(w, pts[k].rate[f - 5], k == 0);
    }
    body_write_str(w, "]");
}

/* The markers: the changes in [from_ms, to_ms) that moved the value,
 * oldest first. */
static void history_write_markers(struct body_writer *w, const struct history_audit *a,
                                  int64_t from_ms, int64_t to_ms) {
    char ts[UTIL_TIME_MAX];
    int first = 1;
    body_write_str(w, "\"markers\":[");
    for (size_t i = a ? a->nchanges : 0; i-- > 0;) {
        const struct store_audit *e = &a->changes[i];
        if (e->from == e->to || e->at_ms < from_ms || e->at_ms >= to_ms) continue;
        json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:I, s:s, s:s, s:s}", "at",
                              util_format_time(e->at_ms, ts), "at_ms", (json_int_t)e->at_ms, "from",
                              (json_int_t)e->from, "to", (json_int_t)e->to, "version",
                              (json_int_t)e->version, "actor", e->actor, "source", e->source,
                              "reason", e->reason);
        if (!first) body_write(w, ",", 1);
        body_write_json(w, j);               /* a NULL j fails the writer */
        json_decref(j);
        first = 0;
    }
    body_write_str(w, "],");
}

struct body *history_render(history *h, const char *queue, const struct history_range *r,
                            int64_t now_ms, const struct history_audit *audit) {
    static const char *const names[] = {"waiting", "active", "desired", "running", "workers",
                                        "done_per_s", "failed_per_s"};
    /* The series in the order of their names, as sorted keys would put them. */
    static const int order[] = {1, 2, 5, 6, 3};
    size_t n = (size_t)(r->span_ms / r->step_ms);
    int64_t first_ms = history_range_start(r, now_ms), to_ms = first_ms + (int64_t)n * r->step_ms;
    struct history_point *pts = malloc(n * sizeof *pts);
    struct body_writer w;
    char ts[UTIL_TIME_MAX], head[256];
    json_t *qname;
    if (pts == NULL) return NULL;
    pthread_mutex_lock(&h->lock);
    const struct history_ring *ring = history_ring_of(h, queue, 0);
    for (size_t k = 0; k < n; k++)
        history_point_of(ring, first_ms + (int64_t)k * r->step_ms, r->step_ms, &pts[k]);
    pthread_mutex_unlock(&h->lock);
    history_fill_desired(pts, n, first_ms, r->step_ms, audit);

    body_writer_init(&w, 512 + n * 64);
    snprintf(head, sizeof head, "{\"from\":\"%s\",", util_format_time(first_ms, ts));
    body_write_str(&w, head);
    history_write_markers(&w, audit, first_ms, to_ms);
    body_write_str(&w, "\"queue\":");
    qname = json_string(queue);
    body_write_json(&w, qname);
    json_decref(qname);
    snprintf(head, sizeof head, ",\"range\":\"%s\",\"series\":{", r->name);
    body_write_str(&w, head);
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        history_write_series(&w, names[order[i]], pts, n, order[i], i > 0);
    body_write_str(&w, ",\"t\":[");
    for (size_t k = 0; k < n; k++) history_write_int(&w, first_ms + (int64_t)k * r->step_ms, k == 0);
    body_write_str(&w, "]");
    history_write_series(&w, names[0], pts, n, 0, 1);
    history_write_series(&w, names[4], pts, n, 4, 1);
    snprintf(head, sizeof head, "},\"step_s\":%lld,\"to\":\"%s\"}", (long long)(r->step_ms / 1000),
             util_format_time(to_ms, ts));
    body_write_str(&w, head);
    free(pts);
    return body_writer_finish(&w, BODY_JSON);
}
