/* fleet.c — worker registry from reports, acknowledgement counting and the
 * waiters of wait_ms. */
#include "fleet.h"
#include "log.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct fleet_waiter {
    char queue[UTIL_NAME_MAX + 1];
    int64_t version, deadline_ms;
    fleet_wait_fn fn;
    void *ud;
    struct fleet_waiter *next;
};

#define FLEET_MAX_QUEUES 256

/* Totals per queue, kept across workers coming and going. */
struct fleet_totals {
    char queue[UTIL_NAME_MAX + 1];
    uint64_t completed, failed;
};

/* The newest version issued per queue, as far as this process knows. */
struct fleet_issued {
    char queue[UTIL_NAME_MAX + 1];
    int64_t version;
    int64_t asked_ms;                /* last time the issuer was asked; 0: never */
};

struct fleet {
    pthread_mutex_t lock;
    fleet_issuer_fn issuer;
    void *issuer_ud;
    fleet_declared_fn declared;
    void *declared_ud;
    struct fleet_issued issued[FLEET_MAX_QUEUES];
    size_t nissued;
    struct fleet_worker *workers;
    size_t n, cap;
    struct fleet_totals totals[FLEET_MAX_QUEUES];
    size_t ntotals;
    struct fleet_waiter *waiters;
    int closing;                     /* waits were all finished for shutdown */
    uint64_t malformed, suppressed;
    int64_t last_complaint_ms;
};

fleet *fleet_new(void) {
    fleet *fl = calloc(1, sizeof *fl);
    if (fl) pthread_mutex_init(&fl->lock, NULL);
    return fl;
}

void fleet_free(fleet *fl) {
    if (fl == NULL) return;
    fleet_check_waiters(fl, INT64_MAX, 1);
    free(fl->workers);
    pthread_mutex_destroy(&fl->lock);
    free(fl);
}

/* ---- report validation ------------------------------------------------------ */

/* Integer field: absent (allowed unless required) or an integer in range. */
static int fleet_int(json_t *o, const char *key, int required, int64_t lo, int64_t hi,
                     int64_t *out, const char **why) {
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v)) {
        if (required) *why = key;
        return !required;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        *why = key;
        return 0;
    }
    *out = json_integer_value(v);
    return 1;
}

static int fleet_str(json_t *o, const char *key, size_t max, char *out, size_t outsize,
                     const char **why) {
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v)) {
        out[0] = '\0';
        return 1;
    }
    if (!json_is_string(v) || json_string_length(v) > max) {
        *why = key;
        return 0;
    }
    util_copy(out, outsize, json_string_value(v));
    return 1;
}

/* Count and (at most once a second) log a refused report. Called locked. */
static void fleet_complain(fleet *fl, const char *why, int64_t now_ms) {
    fl->malformed++;
    if (now_ms - fl->last_complaint_ms < 1000) {
        fl->suppressed++;
        return;
    }
    log_json(LOG_WARN, "malformed worker report refused",
             json_pack("{s:s, s:I, s:I}", "problem", why, "refused_total", (json_int_t)fl->malformed,
                       "suppressed_since_last", (json_int_t)fl->suppressed));
    fl->suppressed = 0;
    fl->last_complaint_ms = now_ms;
}

static struct fleet_worker *fleet_find(fleet *fl, const char *id) {
    for (size_t i = 0; i < fl->n; i++)
        if (strcmp(fl->workers[i].id, id) == 0) return &fl->workers[i];
    return NULL;
}

/* Increase of a running total from prev to cur; a counter that went down
 * was reset (a restart), so everything it shows now is new. */
static int64_t fleet_increase(int64_t prev, int64_t cur) { return cur >= prev ? cur - prev : cur; }

/* a + inc, never past FLEET_TOTAL_MAX (reports are outside input: a
 * counter near INT64_MAX must not wrap a total into the negative). */
static uint64_t fleet_sat_add(uint64_t a, int64_t inc) {
    if (inc <= 0) return a;
    return (uint64_t)inc >= FLEET_TOTAL_MAX - a ? FLEET_TOTAL_MAX : a + (uint64_t)inc;
}

static struct fleet_totals *fleet_totals_of(fleet *fl, const char *queue) {
    for (size_t i = 0; i < fl->ntotals; i++)
        if (strcmp(fl->totals[i].queue, queue) == 0) return &fl->totals[i];
    if (fl->ntotals == FLEET_MAX_QUEUES) return NULL;
    struct fleet_totals *t = &fl->totals[fl->ntotals++];
    memset(t, 0, sizeof *t);
    util_copy(t->queue, sizeof t->queue, queue);
    return t;
}

/* Record the counters of a report into the worker's ring and the queue's
 * totals. Called locked, with cur holding the previous report. */
static void fleet_sample(fleet *fl, struct fleet_worker *w, const struct fleet_worker *prev,
                         int64_t now_ms, int declared) {
    struct fleet_totals *t = declared ? fleet_totals_of(fl, w->queue) : NULL;
    if (prev) {
        memcpy(w->samples, prev->samples, sizeof w->samples);
        w->nsamples = prev->nsamples;
        w->sample_head = prev->sample_head;
        if (t && strcmp(prev->queue, w->queue) == 0) {
            t->completed = fleet_sat_add(t->completed, fleet_increase(prev->completed, w->completed));
            t->failed = fleet_sat_add(t->failed, fleet_increase(prev->failed, w->failed));
        }
    } else if (t) {
        /* A worker new to us brings what it did so far. */
        t->completed = fleet_sat_add(t->completed, w->completed);
        t->failed = fleet_sat_add(t->failed, w->failed);
    }
    int slot = (w->sample_head + w->nsamples) % FLEET_SAMPLES;
    if (w->nsamples == FLEET_SAMPLES) w->sample_head = (w->sample_head + 1) % FLEET_SAMPLES;
    else w->nsamples++;
    w->samples[slot].at_ms = now_ms;
    w->samples[slot].completed = w->completed;
    w->samples[slot].failed = w->failed;
}

void fleet_set_issuer(fleet *fl, fleet_issuer_fn fn, void *ud) {
    pthread_mutex_lock(&fl->lock);
    fl->issuer = fn;
    fl->issuer_ud = ud;
    pthread_mutex_unlock(&fl->lock);
}

/* The entry of queue, made when absent (NULL when the table is full).
 * Called locked. */
static struct fleet_issued *fleet_issued_of(fleet *fl, const char *queue) {
    for (size_t i = 0; i < fl->nissued; i++)
        if (strcmp(fl->issued[i].queue, queue) == 0) return &fl->issued[i];
    if (fl->nissued == FLEET_MAX_QUEUES) return NULL;
    struct fleet_issued *e = &fl->issued[fl->nissued++];
    util_copy(e->queue, sizeof e->queue, queue);
    e->version = 0;
    e->asked_ms = 0;
    return e;
}

void fleet_set_declared(fleet *fl, fleet_declared_fn fn, void *ud) {
    pthread_mutex_lock(&fl->lock);
    fl->declared = fn;
    fl->declared_ud = ud;
    pthread_mutex_unlock(&fl->lock);
}

void fleet_issued(fleet *fl, const char *queue, int64_t version) {
    pthread_mutex_lock(&fl->lock);
    struct fleet_issued *e = fleet_issued_of(fl, queue);
    if (e && version > e->version) e->version = version;
    pthread_mutex_unlock(&fl->lock);
}

/* 1 when version of queue was never issued. Asks the issuer (unlocked) when
 * the version is beyond what is known and it was not asked lately. */
static int fleet_never_issued(fleet *fl, const char *queue, int64_t version, int64_t now_ms) {
    fleet_issuer_fn fn;
    void *ud;
    int ask = 0, unknown = 0;
    pthread_mutex_lock(&fl->lock);
    struct fleet_issued *e = fleet_issued_of(fl, queue);
    fn = fl->issuer;
    ud = fl->issuer_ud;
    if (e == NULL || version <= e->version) {
        pthread_mutex_unlock(&fl->lock);
        return 0;
    }
    if (fn && (e->asked_ms == 0 || now_ms - e->asked_ms >= FLEET_ISSUER_EVERY_MS)) {
        e->asked_ms = now_ms;
        ask = 1;
    }
    pthread_mutex_unlock(&fl->lock);
    if (!ask) return fn != NULL;         /* asked a moment ago: still beyond it */
    int64_t newest = fn(ud, queue);
    if (newest < 0) unknown = 1;         /* the store cannot say: accuse nobody */
    else fleet_issued(fl, queue, newest);
    return !unknown && version > newest;
}

static void fleet_remove_at(fleet *fl, size_t i) {
    fl->workers[i] = fl->workers[--fl->n];
}

int fleet_report(fleet *fl, const char *payload, size_t len, int64_t now_ms) {
    struct fleet_worker w;
    const char *why = NULL;
    json_error_t jerr;
    json_t *o = NULL;
    int rc = -1;

    memset(&w, 0, sizeof w);
    w.interval_ms = 1000;
    if (len > FLEET_REPORT_MAX) why = "larger than 4096 bytes";
    else if ((o = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) why = "not JSON";
    else if (!json_is_object(o)) why = "not a JSON object";
    if (why) goto refuse;

    json_t *ev = json_object_get(o, "event"), *id = json_object_get(o, "worker"),
           *queue = json_object_get(o, "queue");
    const char *event = json_is_string(ev) ? json_string_value(ev) : "";
    if (strcmp(event, "ack") && strcmp(event, "heartbeat") && strcmp(event, "error") &&
        strcmp(event, "bye")) {
        why = "event";
        goto refuse;
    }
    if (!json_is_string(id) || !protocol_valid_id(json_string_value(id), FLEET_ID_MAX)) { why = "worker"; goto refuse; }
    if (!json_is_string(queue) || !protocol_valid_name(json_string_value(queue))) { why = "queue"; goto refuse; }
    util_copy(w.id, sizeof w.id, json_string_value(id));
    util_copy(w.queue, sizeof w.queue, json_string_value(queue));
    util_copy(w.last_event, sizeof w.last_event, event);
    int needs_state = strcmp(event, "bye") != 0;
    if (!fleet_int(o, "concurrency", needs_state, 0, 1000000, &w.concurrency, &why) ||
        !fleet_int(o, "version", needs_state, 0, INT64_MAX, &w.version, &why) ||
        !fleet_int(o, "active", 0, 0, 1000000, &w.active, &why) ||
        !fleet_int(o, "completed", 0, 0, INT64_MAX, &w.completed, &why) ||
        !fleet_int(o, "failed", 0, 0, INT64_MAX, &w.failed, &why) ||
        !fleet_int(o, "pid", 0, 0, INT32_MAX, &w.pid, &why) ||
        !fleet_int(o, "interval_ms", 0, 50, 60000, &w.interval_ms, &why) ||
        !fleet_str(o, "host", 64, w.host, sizeof w.host, &why) ||
        !fleet_str(o, "agent", 64, w.agent, sizeof w.agent, &why) ||
        !fleet_str(o, "error", 256, w.error, sizeof w.error, &why))
        goto refuse;
    pthread_mutex_lock(&fl->lock);
    fleet_declared_fn is_declared = fl->declared;
    void *declared_ud = fl->declared_ud;
    pthread_mutex_unlock(&fl->lock);
    int declared = is_declared == NULL || is_declared(declared_ud, w.queue);
    /* Undeclared queues have no versions: nothing to check, no entry made. */
    if (needs_state && declared) w.invalid = fleet_never_issued(fl, w.queue, w.version, now_ms);

    pthread_mutex_lock(&fl->lock);
    struct fleet_worker *cur = fleet_find(fl, w.id);
    if (strcmp(event, "bye") == 0) {
        if (cur) fleet_remove_at(fl, (size_t)(cur - fl->workers));
        rc = 0;
    } else if (cur == NULL && fl->n == FLEET_MAX_WORKERS) {
        fleet_complain(fl, "fleet full (4096 workers)", now_ms);
    } else {
        if (cur == NULL) {
            if (fl->n == fl->cap) {
                size_t cap = fl->cap ? fl->cap * 2 : 16;
                struct fleet_worker *grown = realloc(fl->workers, cap * sizeof *grown);
                if (grown == NULL) {
                    pthread_mutex_unlock(&fl->lock);
                    goto done;
                }
                fl->workers = grown;
                fl->cap = cap;
            }
            cur = &fl->workers[fl->n++];
            w.first_seen_ms = now_ms;
            w.last_seen_ms = now_ms;
            fleet_sample(fl, &w, NULL, now_ms, declared);
        } else {
            w.first_seen_ms = cur->first_seen_ms;
            /* A version never goes backwards: a late, reordered report must
             * not undo a newer acknowledgement. */
            if (w.version < cur->version && strcmp(w.queue, cur->queue) == 0 && !cur->invalid)
                w.version = cur->version;
            w.last_seen_ms = now_ms;
            /* An error report stands until a later ack says otherwise. */
            if (w.error[0] == '\0' && strcmp(event, "heartbeat") == 0) util_copy(w.error, sizeof w.error, cur->error);
            fleet_sample(fl, &w, cur, now_ms, declared);
        }
        *cur = w;
        rc = 0;
    }
    pthread_mutex_unlock(&fl->lock);
    goto done;
refuse:
    pthread_mutex_lock(&fl->lock);
    fleet_complain(fl, why, now_ms);
    pthread_mutex_unlock(&fl->lock);
done:
    json_decref(o);
    return rc;
}

static int fleet_is_stale(const struct fleet_worker *w, int64_t now_ms) {
    return now_ms - w->last_seen_ms > FLEET_STALE_INTERVALS * w->interval_ms;
}

void fleet_sweep(fleet *fl, int64_t now_ms) {
    pthread_mutex_lock(&fl->lock);
    for (size_t i = 0; i < fl->n;) {
        if (now_ms - fl->workers[i].last_seen_ms > FLEET_FORGET_MS) fleet_remove_at(fl, i);
        else i++;
    }
    pthread_mutex_unlock(&fl->lock);
}

static int fleet_id_cmp(const void *a, const void *b) {
    return strcmp(((const struct fleet_worker *)a)->id, ((const struct fleet_worker *)b)->id);
}

size_t fleet_workers(fleet *fl, const char *queue, int64_t now_ms, struct fleet_worker **out) {
    size_t n = 0;
    pthread_mutex_lock(&fl->lock);
    *out = malloc((fl->n ? fl->n : 1) * sizeof **out);
    for (size_t i = 0; *out && i < fl->n; i++) {
        if (queue && strcmp(fl->workers[i].queue, queue) != 0) continue;
        (*out)[n] = fl->workers[i];
        (*out)[n++].stale = fleet_is_stale(&fl->workers[i], now_ms);
    }
    pthread_mutex_unlock(&fl->lock);
    if (*out) qsort(*out, n, sizeof **out, fleet_id_cmp);
    return n;
}

void fleet_rates(fleet *fl, const char *queue, int64_t now_ms, struct fleet_rates *out) {
    double completed = 0, failed = 0, span_max = 0;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&fl->lock);
    for (size_t i = 0; i < fl->n; i++) {
        const struct fleet_worker *w = &fl->workers[i];
        if (strcmp(w->queue, queue) != 0) continue;
        /* Sum the increases between consecutive samples inside the window;
         * divide by the span they cover. */
        double inc_c = 0, inc_f = 0;             /* doubles: a sum of huge increases must not wrap */
        int64_t first = 0, last = 0;
        const struct fleet_sample *prev = NULL;
        for (int k = 0; k < w->nsamples; k++) {
            const struct fleet_sample *sm = &w->samples[(w->sample_head + k) % FLEET_SAMPLES];
            if (now_ms - sm->at_ms > FLEET_RATE_WINDOW_MS) continue;
            if (prev) {
                inc_c += (double)fleet_increase(prev->completed, sm->completed);
                inc_f += (double)fleet_increase(prev->failed, sm->failed);
            } else {
                first = sm->at_ms;
            }
            last = sm->at_ms;
            prev = sm;
        }
        double span = (double)(last - first) / 1000.0;
        if (span <= 0) continue;
        completed += inc_c / span;
        failed += inc_f / span;
        if (span > span_max) span_max = span;
    }
    for (size_t i = 0; i < fl->ntotals; i++) {
        if (strcmp(fl->totals[i].queue, queue) != 0) continue;
        out->completed_total = fl->totals[i].completed;
        out->failed_total = fl->totals[i].failed;
    }
    pthread_mutex_unlock(&fl->lock);
    out->completed_per_s = completed;
    out->failed_per_s = failed;
    out->window_s = span_max > 0 ? span_max : 0;
}

static void fleet_count_locked(fleet *fl, const char *queue, int64_t version, int64_t now_ms,
                               struct fleet_acks *out) {
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < fl->n; i++) {
        const struct fleet_worker *w = &fl->workers[i];
        if (strcmp(w->queue, queue) != 0 || fleet_is_stale(w, now_ms)) continue;
        out->expected++;
        if (w->version >= version && !w->invalid) out->acknowledged++;
    }
}

void fleet_acks(fleet *fl, const char *queue, int64_t version, int64_t now_ms,
                struct fleet_acks *out) {
    pthread_mutex_lock(&fl->lock);
    fleet_count_locked(fl, queue, version, now_ms, out);
    pthread_mutex_unlock(&fl->lock);
}

uint64_t fleet_malformed(fleet *fl) {
    pthread_mutex_lock(&fl->lock);
    uint64_t n = fl->malformed;
    pthread_mutex_unlock(&fl->lock);
    return n;
}

/* ---- waiters ------------------------------------------------------------------- */

int fleet_wait(fleet *fl, const char *queue, int64_t version, int64_t deadline_ms,
               fleet_wait_fn fn, void *ud) {
    struct fleet_waiter *w = calloc(1, sizeof *w);
    if (w == NULL) return -1;
    util_copy(w->queue, sizeof w->queue, queue);
    w->version = version;
    w->deadline_ms = deadline_ms;
    w->fn = fn;
    w->ud = ud;
    pthread_mutex_lock(&fl->lock);
    w->next = fl->waiters;
    fl->waiters = w;
    int closing = fl->closing;
    pthread_mutex_unlock(&fl->lock);
    /* During shutdown nobody would end a new wait: end it now, as it is. */
    fleet_check_waiters(fl, util_mono_ms(), closing);
    return 0;
}

void fleet_check_waiters(fleet *fl, int64_t now_ms, int finish_all) {
    if (finish_all) {
        pthread_mutex_lock(&fl->lock);
        fl->closing = 1;
        pthread_mutex_unlock(&fl->lock);
    }
    struct fleet_waiter *done = NULL;
    struct fleet_acks acks;
    pthread_mutex_lock(&fl->lock);
    for (struct fleet_waiter **pw = &fl->waiters; *pw;) {
        struct fleet_waiter *w = *pw;
        fleet_count_locked(fl, w->queue, w->version, finish_all ? 0 : now_ms, &acks);
        if (finish_all || acks.acknowledged == acks.expected || now_ms >= w->deadline_ms) {
            *pw = w->next;
            w->next = done;
            done = w;
        } else {
            pw = &w->next;
        }
    }
    pthread_mutex_unlock(&fl->lock);
    /* Callbacks run unlocked: they may resume HTTP connections. Counted
     * again so each sees the state at its own end. */
    while (done) {
        struct fleet_waiter *w = done;
        done = w->next;
        fleet_acks(fl, w->queue, w->version, now_ms == INT64_MAX ? util_mono_ms() : now_ms, &acks);
        w->fn(w->ud, &acks, acks.acknowledged == acks.expected);
        free(w);
    }
}
