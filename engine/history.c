/* history.c — rings of samples per queue, and the history answer. */
#include "history.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HISTORY_I32_NONE INT32_MIN
#define HISTORY_U16_NONE UINT16_MAX
#define HISTORY_TIERS 3

/* One resolution of a queue's past: slot s (a sample's ms / step_ms)
 * lives at index s % slots, and the tier holds slots newest - slots + 1 ..
 * newest. Each slot keeps, per field, the last known value sampled in its
 * step: exactly what a read at this step shows. */
struct history_tier {
    int64_t step_ms;
    size_t slots;
    int64_t newest;                  /* slot of the newest sample; -1: none */
    int32_t *waiting, *active, *desired, *running;
    float *done, *failed;
    uint16_t *workers;
};

/* One queue's day, in the three resolutions the ranges read: 10 s for an
 * hour, 30 s for 6 hours, 120 s for 24 hours (1,800 slots in all, where
 * 24 h of 10 s samples would take 8,640). The arrays are one allocation. */
struct history_ring {
    char queue[UTIL_NAME_MAX + 1];
    int64_t newest_ms;               /* the newest sample's time; -1: none */
    void *block;
    struct history_tier tiers[HISTORY_TIERS];
};

struct history {
    pthread_mutex_t lock;            /* the rings; a leaf */
    struct history_ring rings[HISTORY_MAX_QUEUES];
    size_t nrings;
};

#define HISTORY_SLOT_BYTES (4 * sizeof(int32_t) + 2 * sizeof(float) + sizeof(uint16_t))

static const struct history_range history_ranges[] = {
    {"15m", 15 * 60000LL, 10000},
    {"1h", 3600000LL, 10000},
    {"6h", 6 * 3600000LL, 30000},
    {"24h", 24 * 3600000LL, 120000},
};

/* The tiers: each a range's step, over the longest range of that step. */
static const struct {
    int64_t step_ms;
    size_t slots;
} history_tier_specs[HISTORY_TIERS] = {{10000, 360}, {30000, 720}, {120000, 720}};

static size_t history_ring_slots(void) {
    size_t n = 0;
    for (int t = 0; t < HISTORY_TIERS; t++) n += history_tier_specs[t].slots;
    return n;
}

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

/* Mark slot index i of t as holding no sample. */
static void history_clear(struct history_tier *t, size_t i) {
    t->waiting[i] = t->active[i] = t->desired[i] = t->running[i] = HISTORY_I32_NONE;
    t->done[i] = t->failed[i] = NAN;
    t->workers[i] = HISTORY_U16_NONE;
}

/* Give r (named queue) its arrays, every slot empty. Returns 0 or -1. */
static int history_ring_init(struct history_ring *r, const char *queue) {
    size_t total = history_ring_slots();
    char *block = malloc(total * HISTORY_SLOT_BYTES);
    if (block == NULL) return -1;
    free(r->block);
    r->block = block;
    util_copy(r->queue, sizeof r->queue, queue);
    r->newest_ms = -1;
    /* 4-byte arrays first, then the 2-byte ones: every array aligned. */
    int32_t *i32 = (int32_t *)(void *)block;
    float *f32 = (float *)(void *)(i32 + 4 * total);
    uint16_t *u16 = (uint16_t *)(void *)(f32 + 2 * total);
    for (int k = 0; k < HISTORY_TIERS; k++) {
        struct history_tier *t = &r->tiers[k];
        size_t n = history_tier_specs[k].slots;
        t->step_ms = history_tier_specs[k].step_ms;
        t->slots = n;
        t->newest = -1;
        t->waiting = i32, t->active = i32 + n, t->desired = i32 + 2 * n, t->running = i32 + 3 * n;
        i32 += 4 * n;
        t->done = f32, t->failed = f32 + n;
        f32 += 2 * n;
        t->workers = u16;
        u16 += n;
        for (size_t i = 0; i < n; i++) history_clear(t, i);
    }
    return 0;
}

/* The ring of queue, made (or taken over from the least recently sampled
 * queue) when make is set. NULL when none. Called with the lock held. */
static struct history_ring *history_ring_of(history *h, const char *queue, int make) {
    struct history_ring *oldest = NULL;
    for (size_t i = 0; i < h->nrings; i++) {
        if (strcmp(h->rings[i].queue, queue) == 0) return &h->rings[i];
        if (oldest == NULL || h->rings[i].newest_ms < oldest->newest_ms) oldest = &h->rings[i];
    }
    if (!make) return NULL;
    struct history_ring *r = h->nrings < HISTORY_MAX_QUEUES ? &h->rings[h->nrings] : oldest;
    if (history_ring_init(r, queue) != 0) return NULL;
    if (r == &h->rings[h->nrings]) h->nrings++;
    return r;
}

static int32_t history_i32(int64_t v) {
    return v > INT32_MAX ? INT32_MAX : v < INT32_MIN + 1 ? INT32_MIN + 1 : (int32_t)v;
}

static uint16_t history_u16(int64_t v) {
    return v >= HISTORY_U16_NONE ? HISTORY_U16_NONE - 1 : v < 0 ? 0 : (uint16_t)v;
}

/* Put s into t at at_ms: its slot's known fields become s's known ones
 * (a later sample of the step wins, an unknown field keeps what an earlier
 * one knew); slots skipped since the newest are gaps. */
static void history_tier_put(struct history_tier *t, const struct history_sample *s, int64_t at_ms) {
    int64_t slot = at_ms / t->step_ms, n = (int64_t)t->slots;
    if (t->newest >= 0 && slot <= t->newest - n) return;     /* older than the tier */
    if (slot > t->newest) {
        int64_t first = t->newest < 0 || slot - t->newest > n ? slot - n + 1 : t->newest + 1;
        for (int64_t k = first; k <= slot; k++) history_clear(t, (size_t)(k % n));
        t->newest = slot;
    }
    size_t i = (size_t)(slot % n);
    if (s->waiting != HISTORY_UNKNOWN) t->waiting[i] = history_i32(s->waiting);
    if (s->active != HISTORY_UNKNOWN) t->active[i] = history_i32(s->active);
    if (s->desired != HISTORY_UNKNOWN) t->desired[i] = history_i32(s->desired);
    if (s->running != HISTORY_UNKNOWN) t->running[i] = history_i32(s->running);
    if (s->workers != HISTORY_UNKNOWN) t->workers[i] = history_u16(s->workers);
    if (!isnan(s->done_per_s)) t->done[i] = (float)s->done_per_s;
    if (!isnan(s->failed_per_s)) t->failed[i] = (float)s->failed_per_s;
}

int history_record(history *h, const char *queue, const struct history_sample *s, int64_t at_ms) {
    int rc = 0;
    pthread_mutex_lock(&h->lock);
    struct history_ring *r = history_ring_of(h, queue, 1);
    if (r == NULL) {
        rc = -1;
    } else {
        for (int k = 0; k < HISTORY_TIERS; k++) history_tier_put(&r->tiers[k], s, at_ms);
        if (at_ms > r->newest_ms) r->newest_ms = at_ms;
    }
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
    return sizeof *h + n * history_ring_slots() * HISTORY_SLOT_BYTES;
}

/* ---- rendering ------------------------------------------------------------ */

/* One step's values, the last known sample of each field in it. */
struct history_point {
    int64_t v[5];                    /* waiting, active, desired, running, workers */
    double rate[2];                  /* done, failed */
};

/* The point of the step that starts at from_ms in t (NULL: no ring). */
static void history_point_of(const struct history_tier *t, int64_t from_ms, struct history_point *p) {
    for (int f = 0; f < 5; f++) p->v[f] = HISTORY_UNKNOWN;
    p->rate[0] = p->rate[1] = NAN;
    int64_t slot = t ? from_ms / t->step_ms : 0;
    if (t == NULL || t->newest < 0 || slot > t->newest || slot <= t->newest - (int64_t)t->slots) return;
    size_t i = (size_t)(slot % (int64_t)t->slots);
    const int32_t *ints[4] = {t->waiting, t->active, t->desired, t->running};
    for (int f = 0; f < 4; f++)
        if (ints[f][i] != HISTORY_I32_NONE) p->v[f] = ints[f][i];
    if (t->workers[i] != HISTORY_U16_NONE) p->v[4] = t->workers[i];
    p->rate[0] = t->done[i];
    p->rate[1] = t->failed[i];
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
    const struct history_tier *tier = NULL;
    for (int t = 0; ring && t < HISTORY_TIERS; t++)
        if (ring->tiers[t].step_ms == r->step_ms) tier = &ring->tiers[t];
    for (size_t k = 0; k < n; k++) history_point_of(tier, first_ms + (int64_t)k * r->step_ms, &pts[k]);
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

size_t history_recent(history *h, const char *queue, int64_t since_ms, struct history_sample_at *out,
                      size_t max) {
    size_t n = 0;
    pthread_mutex_lock(&h->lock);
    struct history_ring *r = history_ring_of(h, queue, 0);
    const struct history_tier *t = r ? &r->tiers[0] : NULL;
    if (t && t->newest >= 0) {
        int64_t first = since_ms / t->step_ms, oldest = t->newest - (int64_t)t->slots + 1;
        if (first < oldest) first = oldest;
        for (int64_t slot = first; slot <= t->newest && n < max; slot++) {
            size_t i = (size_t)(slot % (int64_t)t->slots);
            struct history_sample s = {
                t->waiting[i] == HISTORY_I32_NONE ? HISTORY_UNKNOWN : t->waiting[i],
                t->active[i] == HISTORY_I32_NONE ? HISTORY_UNKNOWN : t->active[i],
                t->desired[i] == HISTORY_I32_NONE ? HISTORY_UNKNOWN : t->desired[i],
                t->running[i] == HISTORY_I32_NONE ? HISTORY_UNKNOWN : t->running[i],
                t->workers[i] == HISTORY_U16_NONE ? HISTORY_UNKNOWN : t->workers[i],
                t->done[i], t->failed[i]};
            if (s.waiting == HISTORY_UNKNOWN && s.desired == HISTORY_UNKNOWN &&
                s.running == HISTORY_UNKNOWN && s.workers == HISTORY_UNKNOWN)
                continue;                            /* a gap */
            out[n].at_ms = slot * t->step_ms;
            out[n++].s = s;
        }
    }
    pthread_mutex_unlock(&h->lock);
    return n;
}
