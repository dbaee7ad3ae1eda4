/* fleet.c — worker registry from reports, acknowledgement counting and the
 * waiters of wait_ms.
 *
 * Everything below is kept under fl->lock, in indexes that make a report
 * cost a constant amount of work however large the fleet:
 *   - workers by id (an OpenSSL LHASH) and in one dense array (fl->all);
 *   - queues by name (LHASH); a queue holds its workers (dense array), its
 *     waiters sorted by version, its issued version and its totals.
 *
 * Acknowledgements. A wait for version v of a queue is complete when no
 * counted worker of the queue is below v, an invalid worker being below
 * every version (fleet.h). Completion is therefore monotone in v: the wait
 * of the lowest version always ends first, so a queue only keeps `behind`,
 * the number of its counted workers below its lowest waited version. A
 * report changes it by at most one; when it reaches 0, the waits it
 * completes end, and one pass over the queue's workers sets it up for the
 * next version. That pass is paid once per ended wait, never per report.
 *
 * Staleness. "Counted" is the registry's record of a worker being live: a
 * report makes it counted at once; fleet_check_waiters (the ticker, every
 * step) uncounts the workers that missed FLEET_STALE_INTERVALS heartbeats,
 * and looks at the fleet only once the earliest of those deadlines has
 * passed (fl->next_stale_ms), not on every step. Answers to callers
 * (fleet_acks, fleet_workers, the counts a wait ends with) still judge
 * staleness by the clock they are given, as before. */
#include "fleet.h"
#include "log.h"

#include <openssl/lhash.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define FLEET_MAX_QUEUES 256             /* queues with issued versions or totals */
#define FLEET_FULL_TEXT "fleet full (16384 workers)"

typedef struct fleet_rec fleet_rec;
typedef struct fleet_queue fleet_queue;

/* Counters at one heartbeat, as sums of increases (restarts counted from
 * zero), so the increase between any two samples is their difference. */
struct fleet_sample {
    int64_t at_ms;
    double completed, failed;
};

/* One worker as last reported: what struct fleet_worker shows, kept
 * compact (the queue by reference, the rare error string apart), since
 * there may be many thousands. */
struct fleet_rec {
    char id[FLEET_ID_MAX + 1];           /* the LHASH key */
    char host[65], agent[65], last_event[10];
    char *error;                         /* last error report (malloc'd); NULL when none */
    fleet_queue *q;
    uint32_t at_all, at_queue;           /* positions in fl->all and q->workers */
    int64_t concurrency, version, active, completed, failed, pid, interval_ms;
    int paused;                      /* the worker says it takes no new jobs */
    int64_t last_seen_ms, first_seen_ms;
    unsigned char invalid;
    unsigned char counted;               /* live, as far as the last stale sweep knows */
    unsigned char nsamples, sample_head; /* the ring below, oldest at sample_head */
    double run_completed, run_failed;    /* sums of increases since first seen */
    struct fleet_sample samples[FLEET_SAMPLES];
};

struct fleet_waiter {
    char queue[UTIL_NAME_MAX + 1];
    int64_t version, deadline_ms;
    fleet_wait_fn fn;
    void *ud;
    struct fleet_acks acks;              /* the count it ended with */
    struct fleet_waiter *next;           /* in its queue's list, then in a done list */
};

struct fleet_queue {
    char name[UTIL_NAME_MAX + 1];        /* the LHASH key */
    fleet_rec **workers;                 /* stale ones included */
    size_t nworkers, cap;
    struct fleet_waiter *waiters;        /* by version, lowest first */
    int64_t behind;                      /* counted workers below waiters->version */
    fleet_queue *wprev, *wnext;          /* in fl->waiting while it has waiters */
    /* Outlives its workers once it holds either of these (FLEET_MAX_QUEUES). */
    int kept;
    int64_t issued;                      /* newest version issued, as far as we know */
    int64_t asked_ms;                    /* last time the issuer was asked; 0: never */
    uint64_t completed, failed;          /* totals; declared queues only */
};

DEFINE_LHASH_OF(fleet_rec);
DEFINE_LHASH_OF(fleet_queue);

struct fleet {
    pthread_mutex_t lock;
    fleet_issuer_fn issuer;
    void *issuer_ud;
    fleet_declared_fn declared;
    void *declared_ud;
    LHASH_OF(fleet_rec) *by_id;
    LHASH_OF(fleet_queue) *by_name;
    fleet_rec **all;
    size_t n, cap;
    size_t nkept;
    fleet_queue *waiting;                /* queues with waiters */
    int64_t next_stale_ms;               /* no counted worker goes stale before */
    int closing;                         /* waits were all finished for shutdown */
    uint64_t malformed, suppressed;
    int64_t last_complaint_ms;
};

/* FNV-1a: ids and names are short, and sequential ids must spread. */
static unsigned long fleet_hash(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (unsigned long)(h ^ (h >> 32));
}
static unsigned long fleet_rec_hash(const fleet_rec *r) { return fleet_hash(r->id); }
static int fleet_rec_cmp(const fleet_rec *a, const fleet_rec *b) { return strcmp(a->id, b->id); }
static unsigned long fleet_queue_hash(const fleet_queue *q) { return fleet_hash(q->name); }
static int fleet_queue_cmp(const fleet_queue *a, const fleet_queue *b) { return strcmp(a->name, b->name); }

static void fleet_run_done(struct fleet_waiter *done);

fleet *fleet_new(void) {
    fleet *fl = calloc(1, sizeof *fl);
    if (fl == NULL) return NULL;
    fl->by_id = lh_fleet_rec_new(fleet_rec_hash, fleet_rec_cmp);
    fl->by_name = lh_fleet_queue_new(fleet_queue_hash, fleet_queue_cmp);
    if (fl->by_id == NULL || fl->by_name == NULL) {
        lh_fleet_rec_free(fl->by_id);
        lh_fleet_queue_free(fl->by_name);
        free(fl);
        return NULL;
    }
    fl->next_stale_ms = INT64_MAX;
    pthread_mutex_init(&fl->lock, NULL);
    return fl;
}

static void fleet_queue_free(fleet_queue *q) {
    free(q->workers);
    free(q);
}

void fleet_free(fleet *fl) {
    if (fl == NULL) return;
    fleet_check_waiters(fl, INT64_MAX, 1);
    for (size_t i = 0; i < fl->n; i++) {
        free(fl->all[i]->error);
        free(fl->all[i]);
    }
    free(fl->all);
    lh_fleet_queue_doall(fl->by_name, fleet_queue_free);
    lh_fleet_queue_free(fl->by_name);
    lh_fleet_rec_free(fl->by_id);
    pthread_mutex_destroy(&fl->lock);
    free(fl);
}

/* ---- queues ------------------------------------------------------------------ */

/* The record of name, made when absent and create; NULL when absent (or
 * out of memory, or name too long to be a queue's). Called locked. */
static fleet_queue *fleet_queue_of(fleet *fl, const char *name, int create) {
    fleet_queue key, *q;
    if (strlen(name) > UTIL_NAME_MAX) return NULL;      /* would match a truncated name */
    util_copy(key.name, sizeof key.name, name);
    if ((q = lh_fleet_queue_retrieve(fl->by_name, &key)) != NULL || !create) return q;
    if ((q = calloc(1, sizeof *q)) == NULL) return NULL;
    util_copy(q->name, sizeof q->name, name);
    lh_fleet_queue_insert(fl->by_name, q);
    if (lh_fleet_queue_error(fl->by_name) > 0) {
        fleet_queue_free(q);
        return NULL;
    }
    return q;
}

/* Make q outlive its workers; 0 when FLEET_MAX_QUEUES are kept already. */
static int fleet_queue_keep(fleet *fl, fleet_queue *q) {
    if (q->kept) return 1;
    if (fl->nkept == FLEET_MAX_QUEUES) return 0;
    q->kept = 1;
    fl->nkept++;
    return 1;
}

/* Drop q when nothing holds it any more. Called locked. */
static void fleet_queue_release(fleet *fl, fleet_queue *q) {
    if (q == NULL || q->kept || q->nworkers > 0 || q->waiters) return;
    lh_fleet_queue_delete(fl->by_name, q);
    fleet_queue_free(q);
}

/* ---- the acknowledgement index ----------------------------------------------- */

/* The version a worker counts with: an invalid one is below every version. */
static int64_t fleet_effective(const fleet_rec *r) { return r->invalid ? INT64_MIN : r->version; }

/* Whether r holds back the lowest wait of its queue. */
static int fleet_holds_back(const fleet_rec *r) {
    return r->counted && r->q->waiters && fleet_effective(r) < r->q->waiters->version;
}

static int fleet_is_stale(const fleet_rec *r, int64_t now_ms) {
    return now_ms - r->last_seen_ms > FLEET_STALE_INTERVALS * r->interval_ms;
}

/* Who of q has applied version at now_ms, by the clock (one pass). */
static void fleet_count(const fleet_queue *q, int64_t version, int64_t now_ms, struct fleet_acks *out) {
    memset(out, 0, sizeof *out);
    for (size_t i = 0; q && i < q->nworkers; i++) {
        const fleet_rec *r = q->workers[i];
        if (fleet_is_stale(r, now_ms)) continue;
        out->expected++;
        if (r->version >= version && !r->invalid) out->acknowledged++;
    }
}

/* Count behind afresh for q's lowest wait (its head changed). */
static void fleet_rebase(fleet_queue *q) {
    q->behind = 0;
    for (size_t i = 0; q->waiters && i < q->nworkers; i++) q->behind += fleet_holds_back(q->workers[i]);
}

/* End w (already unlinked) with the count at now_ms onto *done. */
static void fleet_end(const fleet_queue *q, struct fleet_waiter *w, int64_t now_ms,
                      struct fleet_waiter **done) {
    fleet_count(q, w->version, now_ms, &w->acks);
    w->next = *done;
    *done = w;
}

static void fleet_waiting_unlink(fleet *fl, fleet_queue *q) {
    if (q->wprev) q->wprev->wnext = q->wnext;
    else fl->waiting = q->wnext;
    if (q->wnext) q->wnext->wprev = q->wprev;
    q->wprev = q->wnext = NULL;
}

/* End the waits of q that nothing holds back any more: those at or below
 * the lowest version of its counted workers. Called locked. */
static void fleet_settle(fleet *fl, fleet_queue *q, int64_t now_ms, struct fleet_waiter **done) {
    if (q->waiters == NULL || q->behind > 0) return;
    int64_t lowest = INT64_MAX;
    for (size_t i = 0; i < q->nworkers; i++)
        if (q->workers[i]->counted && fleet_effective(q->workers[i]) < lowest)
            lowest = fleet_effective(q->workers[i]);
    while (q->waiters && q->waiters->version <= lowest) {
        struct fleet_waiter *w = q->waiters;
        q->waiters = w->next;
        fleet_end(q, w, now_ms, done);
    }
    if (q->waiters) fleet_rebase(q);
    else fleet_waiting_unlink(fl, q);
}

/* Room in q for one more worker: 0, or -1 when out of memory. */
static int fleet_reserve(fleet_queue *q) {
    if (q->nworkers < q->cap) return 0;
    size_t cap = q->cap ? q->cap * 2 : 8;
    fleet_rec **grown = realloc(q->workers, cap * sizeof *grown);
    if (grown == NULL) return -1;
    q->workers = grown;
    q->cap = cap;
    return 0;
}

/* Add r to q's workers (room reserved), counting it in q's index. Called
 * locked. */
static void fleet_join(fleet_queue *q, fleet_rec *r) {
    r->q = q;
    r->at_queue = q->nworkers;
    q->workers[q->nworkers++] = r;
    q->behind += fleet_holds_back(r);
}

/* Take r out of its queue's workers. Called locked. */
static void fleet_leave(fleet_rec *r) {
    fleet_queue *q = r->q;
    q->behind -= fleet_holds_back(r);
    q->workers[r->at_queue] = q->workers[--q->nworkers];
    q->workers[r->at_queue]->at_queue = r->at_queue;
    r->q = NULL;
}

/* Forget r entirely (bye, or silent too long), ending the waits it held
 * back. Called locked. */
static void fleet_remove(fleet *fl, fleet_rec *r, int64_t now_ms, struct fleet_waiter **done) {
    fleet_queue *q = r->q;
    fleet_leave(r);
    fl->all[r->at_all] = fl->all[--fl->n];
    fl->all[r->at_all]->at_all = r->at_all;
    lh_fleet_rec_delete(fl->by_id, r);
    free(r->error);
    free(r);
    fleet_settle(fl, q, now_ms, done);
    fleet_queue_release(fl, q);
}

/* Uncount the workers gone stale by now_ms, when one can have. Called
 * locked. */
static void fleet_mark_stale(fleet *fl, int64_t now_ms, struct fleet_waiter **done) {
    if (now_ms < fl->next_stale_ms) return;
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < fl->n; i++) {
        fleet_rec *r = fl->all[i];
        if (!r->counted) continue;
        int64_t due = r->last_seen_ms + FLEET_STALE_INTERVALS * r->interval_ms + 1;
        if (now_ms < due) {
            if (due < next) next = due;
            continue;
        }
        r->q->behind -= fleet_holds_back(r);
        r->counted = 0;
        fleet_settle(fl, r->q, now_ms, done);
    }
    fl->next_stale_ms = next;
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

/* Parse and check payload into *w (id, queue, last_event and the numbers
 * and strings of protocol.md). Returns NULL, or what is wrong with it. */
static const char *fleet_parse(const char *payload, size_t len, struct fleet_worker *w) {
    const char *why = NULL;
    json_error_t jerr;
    json_t *o = NULL;

    if (len > FLEET_REPORT_MAX) return "larger than 4096 bytes";
    if ((o = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) return "not JSON";
    if (!json_is_object(o)) {
        why = "not a JSON object";
        goto done;
    }
    json_t *ev = json_object_get(o, "event"), *id = json_object_get(o, "worker"),
           *queue = json_object_get(o, "queue");
    const char *event = json_is_string(ev) ? json_string_value(ev) : "";
    if (strcmp(event, "ack") && strcmp(event, "heartbeat") && strcmp(event, "error") &&
        strcmp(event, "bye")) {
        why = "event";
        goto done;
    }
    if (!json_is_string(id) || !protocol_valid_id(json_string_value(id), FLEET_ID_MAX)) {
        why = "worker";
        goto done;
    }
    if (!json_is_string(queue) || !protocol_valid_name(json_string_value(queue))) {
        why = "queue";
        goto done;
    }
    util_copy(w->id, sizeof w->id, json_string_value(id));
    util_copy(w->queue, sizeof w->queue, json_string_value(queue));
    util_copy(w->last_event, sizeof w->last_event, event);
    int needs_state = strcmp(event, "bye") != 0;
    if (!fleet_int(o, "concurrency", needs_state, 0, 1000000, &w->concurrency, &why) ||
        !fleet_int(o, "version", needs_state, 0, INT64_MAX, &w->version, &why) ||
        !fleet_int(o, "active", 0, 0, 1000000, &w->active, &why) ||
        !fleet_int(o, "completed", 0, 0, INT64_MAX, &w->completed, &why) ||
        !fleet_int(o, "failed", 0, 0, INT64_MAX, &w->failed, &why) ||
        !fleet_int(o, "pid", 0, 0, INT32_MAX, &w->pid, &why) ||
        !fleet_int(o, "interval_ms", 0, 50, 60000, &w->interval_ms, &why) ||
        !fleet_str(o, "host", 64, w->host, sizeof w->host, &why) ||
        !fleet_str(o, "agent", 64, w->agent, sizeof w->agent, &why) ||
        !fleet_str(o, "error", 256, w->error, sizeof w->error, &why))
        goto done;
    if ((w->paused = protocol_report_paused(o)) < 0) why = "paused";
done:
    json_decref(o);
    return why;
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

/* ---- counters ------------------------------------------------------------------ */

/* Increase of a running total from prev to cur; a counter that went down
 * was reset (a restart), so everything it shows now is new. */
static int64_t fleet_increase(int64_t prev, int64_t cur) { return cur >= prev ? cur - prev : cur; }

/* a + inc, never past FLEET_TOTAL_MAX (reports are outside input: a
 * counter near INT64_MAX must not wrap a total into the negative). */
static uint64_t fleet_sat_add(uint64_t a, int64_t inc) {
    if (inc <= 0) return a;
    return (uint64_t)inc >= FLEET_TOTAL_MAX - a ? FLEET_TOTAL_MAX : a + (uint64_t)inc;
}

/* Take the counters of report w into r (still holding its previous
 * report and queue, unless is_new) and into the totals of q (w's queue; NULL when it
 * is not declared). The newest sample is overwritten while it is closer
 * than FLEET_SAMPLE_EVERY_MS to the one before, so that few samples span
 * the rate window. Called locked. */
static void fleet_take_counters(fleet *fl, fleet_rec *r, const struct fleet_worker *w, int is_new,
                                fleet_queue *q, int64_t now_ms) {
    if (q && !fleet_queue_keep(fl, q)) q = NULL;        /* table full: no totals */
    int64_t inc_c = is_new ? w->completed : fleet_increase(r->completed, w->completed);
    int64_t inc_f = is_new ? w->failed : fleet_increase(r->failed, w->failed);
    /* A worker new to us brings what it did so far; one moving in from
     * another queue brings nothing. */
    if (q && (is_new || r->q == q)) {
        q->completed = fleet_sat_add(q->completed, inc_c);
        q->failed = fleet_sat_add(q->failed, inc_f);
    }
    if (!is_new) {
        r->run_completed += (double)inc_c;
        r->run_failed += (double)inc_f;
    }
    int n = r->nsamples, slot = (r->sample_head + n) % FLEET_SAMPLES;
    if (n >= 2) {
        int newest = (r->sample_head + n - 1) % FLEET_SAMPLES;
        if (now_ms - r->samples[(newest + FLEET_SAMPLES - 1) % FLEET_SAMPLES].at_ms < FLEET_SAMPLE_EVERY_MS)
            slot = newest, n--;
    }
    if (n == FLEET_SAMPLES) r->sample_head = (unsigned char)((r->sample_head + 1) % FLEET_SAMPLES);
    else n++;
    r->nsamples = (unsigned char)n;
    r->samples[slot].at_ms = now_ms;
    r->samples[slot].completed = r->run_completed;
    r->samples[slot].failed = r->run_failed;
}

/* ---- issued versions ------------------------------------------------------------ */

void fleet_set_issuer(fleet *fl, fleet_issuer_fn fn, void *ud) {
    pthread_mutex_lock(&fl->lock);
    fl->issuer = fn;
    fl->issuer_ud = ud;
    pthread_mutex_unlock(&fl->lock);
}

void fleet_set_declared(fleet *fl, fleet_declared_fn fn, void *ud) {
    pthread_mutex_lock(&fl->lock);
    fl->declared = fn;
    fl->declared_ud = ud;
    pthread_mutex_unlock(&fl->lock);
}

/* The kept record of queue for its issued version, or NULL (table full or
 * out of memory). Called locked. */
static fleet_queue *fleet_issued_of(fleet *fl, const char *queue) {
    fleet_queue *q = fleet_queue_of(fl, queue, 1);
    if (q && !fleet_queue_keep(fl, q)) {
        fleet_queue_release(fl, q);
        return NULL;
    }
    return q;
}

void fleet_issued(fleet *fl, const char *queue, int64_t version) {
    pthread_mutex_lock(&fl->lock);
    fleet_queue *q = fleet_issued_of(fl, queue);
    if (q && version > q->issued) q->issued = version;
    pthread_mutex_unlock(&fl->lock);
}

/* 1 when version of queue was never issued. Asks the issuer (unlocked) when
 * the version is beyond what is known and it was not asked lately. */
static int fleet_never_issued(fleet *fl, const char *queue, int64_t version, int64_t now_ms) {
    fleet_issuer_fn fn;
    void *ud;
    int ask = 0;
    pthread_mutex_lock(&fl->lock);
    fleet_queue *q = fleet_issued_of(fl, queue);
    fn = fl->issuer;
    ud = fl->issuer_ud;
    if (q == NULL || version <= q->issued) {
        pthread_mutex_unlock(&fl->lock);
        return 0;
    }
    if (fn && (q->asked_ms == 0 || now_ms - q->asked_ms >= FLEET_ISSUER_EVERY_MS)) {
        q->asked_ms = now_ms;
        ask = 1;
    }
    pthread_mutex_unlock(&fl->lock);
    if (!ask) return fn != NULL;         /* asked a moment ago: still beyond it */
    int64_t newest = fn(ud, queue);
    if (newest < 0) return 0;            /* the store cannot say: accuse nobody */
    fleet_issued(fl, queue, newest);
    return version > newest;
}

/* ---- reports ------------------------------------------------------------------- */

/* A new worker for report w, registered by id (not yet in a queue). NULL
 * when out of memory. Called locked. */
static fleet_rec *fleet_add(fleet *fl, const struct fleet_worker *w) {
    fleet_rec *r = NULL;
    if (fl->n == fl->cap) {
        size_t cap = fl->cap ? fl->cap * 2 : 64;
        fleet_rec **grown = realloc(fl->all, cap * sizeof *grown);
        if (grown == NULL) return NULL;
        fl->all = grown;
        fl->cap = cap;
    }
    if ((r = calloc(1, sizeof *r)) == NULL) return NULL;
    util_copy(r->id, sizeof r->id, w->id);
    lh_fleet_rec_insert(fl->by_id, r);
    if (lh_fleet_rec_error(fl->by_id) > 0) {
        free(r);
        return NULL;
    }
    r->at_all = fl->n;
    fl->all[fl->n++] = r;
    return r;
}

/* Apply report w (checked; w->invalid set) to the registry at now_ms.
 * Returns 0, or -1 when the fleet is full or out of memory (nothing
 * changed). Called locked. */
static int fleet_apply(fleet *fl, const struct fleet_worker *w, int declared, int64_t now_ms,
                       struct fleet_waiter **done) {
    fleet_rec key, *r;
    util_copy(key.id, sizeof key.id, w->id);
    r = lh_fleet_rec_retrieve(fl->by_id, &key);
    if (strcmp(w->last_event, "bye") == 0) {
        if (r) fleet_remove(fl, r, now_ms, done);
        return 0;
    }
    if (r == NULL && fl->n == FLEET_MAX_WORKERS) {
        fleet_complain(fl, FLEET_FULL_TEXT, now_ms);
        return -1;
    }
    /* Everything that can fail first, so that a worker is never left
     * half-indexed. */
    fleet_queue *was = r ? r->q : NULL, *q = fleet_queue_of(fl, w->queue, 1);
    char *error = w->error[0] ? strdup(w->error) : NULL;
    if (q == NULL || (w->error[0] && error == NULL) || fleet_reserve(q) != 0 ||
        (r == NULL && (r = fleet_add(fl, w)) == NULL)) {
        free(error);
        fleet_queue_release(fl, q);
        return -1;
    }
    int64_t version = w->version;
    fleet_take_counters(fl, r, w, was == NULL, declared ? q : NULL, now_ms);
    if (was == NULL) {
        r->first_seen_ms = now_ms;
    } else {
        /* A version never goes backwards: a late, reordered report must
         * not undo a newer acknowledgement. */
        if (version < r->version && was == q && !r->invalid) version = r->version;
        fleet_leave(r);                  /* counted out with its old state */
    }
    /* An error report stands until a later ack says otherwise. */
    if (error || strcmp(w->last_event, "heartbeat") != 0) {
        free(r->error);
        r->error = error;
    }
    /* A report that leaves out host or pid (an error report may) does not
     * forget them: they belong to the process, not to the report. */
    if (w->host[0]) util_copy(r->host, sizeof r->host, w->host);
    util_copy(r->agent, sizeof r->agent, w->agent);
    util_copy(r->last_event, sizeof r->last_event, w->last_event);
    r->concurrency = w->concurrency;
    r->paused = w->paused;
    r->version = version;
    r->active = w->active;
    r->completed = w->completed;
    r->failed = w->failed;
    if (w->pid > 0) r->pid = w->pid;
    r->interval_ms = w->interval_ms;
    r->last_seen_ms = now_ms;
    r->invalid = w->invalid != 0;
    r->counted = 1;
    fleet_join(q, r);                    /* and in with the new state */
    int64_t due = now_ms + FLEET_STALE_INTERVALS * w->interval_ms + 1;
    if (due < fl->next_stale_ms) fl->next_stale_ms = due;
    fleet_settle(fl, q, now_ms, done);
    if (was && was != q) {
        fleet_settle(fl, was, now_ms, done);
        fleet_queue_release(fl, was);
    }
    return 0;
}

int fleet_report(fleet *fl, const char *payload, size_t len, int64_t now_ms) {
    struct fleet_worker w;
    struct fleet_waiter *done = NULL;

    memset(&w, 0, sizeof w);
    w.interval_ms = 1000;
    const char *why = fleet_parse(payload, len, &w);
    if (why) {
        pthread_mutex_lock(&fl->lock);
        fleet_complain(fl, why, now_ms);
        pthread_mutex_unlock(&fl->lock);
        return -1;
    }
    pthread_mutex_lock(&fl->lock);
    fleet_declared_fn is_declared = fl->declared;
    void *declared_ud = fl->declared_ud;
    pthread_mutex_unlock(&fl->lock);
    int declared = is_declared == NULL || is_declared(declared_ud, w.queue);
    /* Undeclared queues have no versions: nothing to check, no entry made. */
    if (strcmp(w.last_event, "bye") != 0 && declared)
        w.invalid = fleet_never_issued(fl, w.queue, w.version, now_ms);
    pthread_mutex_lock(&fl->lock);
    int rc = fleet_apply(fl, &w, declared, now_ms, &done);
    pthread_mutex_unlock(&fl->lock);
    fleet_run_done(done);
    return rc;
}

void fleet_sweep(fleet *fl, int64_t now_ms) {
    struct fleet_waiter *done = NULL;
    pthread_mutex_lock(&fl->lock);
    for (size_t i = 0; i < fl->n;) {
        if (now_ms - fl->all[i]->last_seen_ms > FLEET_FORGET_MS) fleet_remove(fl, fl->all[i], now_ms, &done);
        else i++;
    }
    pthread_mutex_unlock(&fl->lock);
    fleet_run_done(done);
}

/* ---- reading ------------------------------------------------------------------- */

/* The rates of r over the last FLEET_RATE_WINDOW_MS: the increase between
 * the first and the last sample inside the window, over the span they
 * cover (0 when they cover none). Returns the span in seconds. */
static double fleet_rec_rates(const fleet_rec *r, int64_t now_ms, double *completed, double *failed) {
    const struct fleet_sample *first = NULL, *last = NULL;
    for (int k = 0; k < r->nsamples; k++) {
        const struct fleet_sample *sm = &r->samples[(r->sample_head + k) % FLEET_SAMPLES];
        if (now_ms - sm->at_ms > FLEET_RATE_WINDOW_MS) continue;
        if (first == NULL) first = sm;
        last = sm;
    }
    double span = first ? (double)(last->at_ms - first->at_ms) / 1000.0 : 0;
    *completed = span > 0 ? (last->completed - first->completed) / span : 0;
    *failed = span > 0 ? (last->failed - first->failed) / span : 0;
    return span;
}

/* The public view of r at now_ms. */
static void fleet_export(const fleet_rec *r, int64_t now_ms, struct fleet_worker *out) {
    memset(out, 0, sizeof *out);
    util_copy(out->id, sizeof out->id, r->id);
    util_copy(out->queue, sizeof out->queue, r->q->name);
    util_copy(out->host, sizeof out->host, r->host);
    util_copy(out->agent, sizeof out->agent, r->agent);
    util_copy(out->last_event, sizeof out->last_event, r->last_event);
    util_copy(out->error, sizeof out->error, r->error ? r->error : "");
    out->concurrency = r->concurrency;
    out->paused = r->paused;
    out->version = r->version;
    out->active = r->active;
    out->completed = r->completed;
    out->failed = r->failed;
    out->pid = r->pid;
    out->interval_ms = r->interval_ms;
    out->last_seen_ms = r->last_seen_ms;
    out->first_seen_ms = r->first_seen_ms;
    out->stale = fleet_is_stale(r, now_ms);
    out->invalid = r->invalid;
    out->nsamples = r->nsamples;
    fleet_rec_rates(r, now_ms, &out->completed_per_s, &out->failed_per_s);
}

static int fleet_id_cmp(const void *a, const void *b) {
    return strcmp(((const struct fleet_worker *)a)->id, ((const struct fleet_worker *)b)->id);
}

size_t fleet_workers(fleet *fl, const char *queue, int64_t now_ms, struct fleet_worker **out) {
    size_t n = 0;
    pthread_mutex_lock(&fl->lock);
    fleet_queue *q = queue ? fleet_queue_of(fl, queue, 0) : NULL;
    fleet_rec **from = queue ? (q ? q->workers : NULL) : fl->all;
    size_t count = queue ? (q ? q->nworkers : 0) : fl->n;
    *out = malloc((count ? count : 1) * sizeof **out);
    for (size_t i = 0; *out && i < count; i++) fleet_export(from[i], now_ms, &(*out)[n++]);
    pthread_mutex_unlock(&fl->lock);
    if (*out) qsort(*out, n, sizeof **out, fleet_id_cmp);
    return n;
}

void fleet_rates(fleet *fl, const char *queue, int64_t now_ms, struct fleet_rates *out) {
    double completed = 0, failed = 0, span_max = 0;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&fl->lock);
    fleet_queue *q = fleet_queue_of(fl, queue, 0);
    for (size_t i = 0; q && i < q->nworkers; i++) {
        double c, f, span = fleet_rec_rates(q->workers[i], now_ms, &c, &f);
        if (span <= 0) continue;
        completed += c;
        failed += f;
        if (span > span_max) span_max = span;
    }
    if (q) {
        out->completed_total = q->completed;
        out->failed_total = q->failed;
    }
    pthread_mutex_unlock(&fl->lock);
    out->completed_per_s = completed;
    out->failed_per_s = failed;
    out->window_s = span_max > 0 ? span_max : 0;
}

void fleet_acks(fleet *fl, const char *queue, int64_t version, int64_t now_ms,
                struct fleet_acks *out) {
    pthread_mutex_lock(&fl->lock);
    fleet_count(fleet_queue_of(fl, queue, 0), version, now_ms, out);
    pthread_mutex_unlock(&fl->lock);
}

uint64_t fleet_malformed(fleet *fl) {
    pthread_mutex_lock(&fl->lock);
    uint64_t n = fl->malformed;
    pthread_mutex_unlock(&fl->lock);
    return n;
}

/* ---- waiters ------------------------------------------------------------------- */

/* Tell the ended waits, unlocked: they may resume HTTP connections. */
static void fleet_run_done(struct fleet_waiter *done) {
    while (done) {
        struct fleet_waiter *w = done;
        done = w->next;
        w->fn(w->ud, &w->acks, w->acks.acknowledged == w->acks.expected);
        free(w);
    }
}

/* Put w among q's waiters, after those of its version and below. Called
 * locked. */
static void fleet_enqueue(fleet *fl, fleet_queue *q, struct fleet_waiter *w) {
    struct fleet_waiter **pw = &q->waiters;
    while (*pw && (*pw)->version <= w->version) pw = &(*pw)->next;
    w->next = *pw;
    *pw = w;
    if (w->next == NULL && q->waiters == w) {          /* the queue's first wait */
        q->wnext = fl->waiting;
        if (fl->waiting) fl->waiting->wprev = q;
        fl->waiting = q;
    }
    if (q->waiters == w) fleet_rebase(q);               /* a new lowest version */
}

/* End q's waits past their deadline at now_ms (all of them when all).
 * Called locked; q may be freed. */
static void fleet_expire(fleet *fl, fleet_queue *q, int64_t now_ms, int all, struct fleet_waiter **done) {
    struct fleet_waiter *head = q->waiters;
    for (struct fleet_waiter **pw = &q->waiters; *pw;) {
        struct fleet_waiter *w = *pw;
        if (!all && now_ms < w->deadline_ms) {
            pw = &w->next;
            continue;
        }
        *pw = w->next;
        fleet_end(q, w, now_ms, done);
    }
    if (q->waiters == NULL) fleet_waiting_unlink(fl, q);
    else if (q->waiters != head) fleet_rebase(q);
    fleet_settle(fl, q, now_ms, done);
    fleet_queue_release(fl, q);
}

int fleet_wait(fleet *fl, const char *queue, int64_t version, int64_t now_ms, int64_t deadline_ms,
               fleet_wait_fn fn, void *ud) {
    struct fleet_waiter *w = calloc(1, sizeof *w), *done = NULL;
    if (w == NULL) return -1;
    util_copy(w->queue, sizeof w->queue, queue);
    w->version = version;
    w->deadline_ms = deadline_ms;
    w->fn = fn;
    w->ud = ud;
    pthread_mutex_lock(&fl->lock);
    fleet_queue *q = fleet_queue_of(fl, queue, 1);
    if (q == NULL) {
        pthread_mutex_unlock(&fl->lock);
        free(w);
        return -1;
    }
    fleet_mark_stale(fl, now_ms, &done);
    fleet_enqueue(fl, q, w);
    /* During shutdown nobody would end a new wait: end it now, as it is. */
    if (fl->closing || now_ms >= deadline_ms) {
        fleet_expire(fl, q, now_ms, fl->closing, &done);
    } else {
        fleet_settle(fl, q, now_ms, &done);
        fleet_queue_release(fl, q);
    }
    pthread_mutex_unlock(&fl->lock);
    fleet_run_done(done);
    return 0;
}

void fleet_check_waiters(fleet *fl, int64_t now_ms, int finish_all) {
    struct fleet_waiter *done = NULL;
    /* Waits ended at shutdown report the count of that moment. */
    int64_t count_at = now_ms == INT64_MAX ? util_mono_ms() : now_ms;
    pthread_mutex_lock(&fl->lock);
    if (finish_all) fl->closing = 1;
    else fleet_mark_stale(fl, now_ms, &done);
    for (fleet_queue *q = fl->waiting, *next; q; q = next) {
        next = q->wnext;
        fleet_expire(fl, q, count_at, finish_all, &done);
    }
    pthread_mutex_unlock(&fl->lock);
    fleet_run_done(done);
}
