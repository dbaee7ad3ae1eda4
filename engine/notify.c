/* notify.c — the notify thread: on the leader, turns new audit entries into
 * outbox rows (one transaction with the cursor), delivers due rows over
 * libcurl with retries, prunes old rows and tells the alert rules which
 * queues' notifications are failing. Alert transitions are enqueued by
 * notify_alert on the ticker. Formats and signatures: notify_format.c. */
#include "notify.h"
#include "leader.h"
#include "log.h"
#include "metrics.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NOTIFY_TICK_MS 1000          /* a pass at least this often */
#define NOTIFY_IDLE_CURSOR_MS 10000  /* no sink declared: the cursor follows the log this often */
#define NOTIFY_FAILING_RECENT_MS (15 * 60 * 1000LL)   /* failed rows count this long */
#define NOTIFY_PRUNE_EVERY_MS 60000
#define NOTIFY_SINK_BATCH 8              /* rows of one sink read per pass */

struct notify {
    struct app *app;
    pthread_t thread;
    pthread_mutex_t lock;            /* stop and kicked; a leaf */
    pthread_cond_t wake;
    int stop, kicked;
    atomic_int stopping;             /* read by curl's progress callback */
    CURL *curl;                      /* the thread's own handle, reused (keep-alive); NULL until the first POST */
    int64_t next_prune_ms;
    int64_t next_idle_cursor_ms;     /* no sink declared: when the cursor next follows the log */
    size_t next_sink;                /* where the next delivery pass starts */
};

/* ---- enqueueing --------------------------------------------------------------- */

/* Rows being built for one transaction; payloads are owned here. */
struct notify_rows {
    struct store_notify_new *rows;
    char **payloads, **ids;
    size_t n, cap;
};

static void notify_rows_free(struct notify_rows *r) {
    for (size_t i = 0; i < r->n; i++) {
        free(r->payloads[i]);
        free(r->ids[i]);
    }
    free(r->rows);
    free(r->payloads);
    free(r->ids);
    memset(r, 0, sizeof *r);
}

/* Render ev for every sink of g that wants it and append the rows. -1 when
 * out of memory (nothing of ev appended is kept apart: the caller drops
 * the whole batch). */
static int notify_rows_add(struct notify_rows *r, struct policy_gen *g,
                           const struct notify_event *ev, int64_t now_ms) {
    for (size_t i = 0; i < policy_gen_sink_count(g); i++) {
        const struct policy_sink *s = policy_gen_sink(g, i);
        if (!policy_sink_wants(s, ev->kind, ev->queue)) continue;
        if (r->n == r->cap) {
            size_t cap = r->cap ? r->cap * 2 : 16;
            struct store_notify_new *rows = realloc(r->rows, cap * sizeof *rows);
            if (rows) r->rows = rows;
            char **payloads = realloc(r->payloads, cap * sizeof *payloads);
            if (payloads) r->payloads = payloads;
            char **ids = realloc(r->ids, cap * sizeof *ids);
            if (ids) r->ids = ids;
            if (!rows || !payloads || !ids) return -1;
            r->cap = cap;
        }
        char *body = notify_render(s->format, ev);
        char *id = strdup(ev->id);
        if (body == NULL || id == NULL) {
            free(body);
            free(id);
            return -1;
        }
        if (strlen(body) >= STORE_NOTIFY_PAYLOAD_MAX) {   /* bounded by the renderers: never */
            log_json(LOG_ERROR, "notification too large; not sent",
                     json_pack("{s:s, s:s}", "sink", s->name, "event_id", ev->id));
            free(body);
            free(id);
            continue;
        }
        r->payloads[r->n] = body;
        r->ids[r->n] = id;
        r->rows[r->n] = (struct store_notify_new){s->name, ev->kind, id, ev->queue, body, now_ms};
        r->n++;
    }
    return 0;
}

/* Turn the audit entries past the cursor into rows. An id missing between
 * the cursor and the next entry may be a transaction of another replica
 * that has not committed yet (PostgreSQL hands out ids before commit):
 * wait for it, unless the entry after the hole is older than
 * NOTIFY_GAP_WAIT_MS (a rollback or a prune made the hole). */
int notify_enqueue_audit(store *st, policy *pol, int64_t now_ms) {
    struct store_audit *entries = NULL;
    struct notify_rows rows = {0};
    size_t count = 0;
    int64_t cursor = 0, moved = 0;
    int rc;
    struct policy_gen *g = policy_acquire(pol);

    if ((rc = store_notify_cursor(st, &cursor)) != STORE_OK) goto done;
    if ((rc = store_list_audit_oldest(st, cursor, 0, NOTIFY_AUDIT_BATCH, &entries, &count)) != STORE_OK)
        goto done;
    moved = cursor;
    for (size_t i = 0; i < count; i++) {
        const struct store_audit *e = &entries[i];
        if (e->id != moved + 1 && now_ms - e->at_ms < NOTIFY_GAP_WAIT_MS) break;
        const char *kind = notify_event_of_audit(e);
        if (kind) {
            char id[STORE_NOTIFY_EVENT_ID_MAX];
            snprintf(id, sizeof id, "audit-%lld", (long long)e->id);
            struct notify_event ev = {kind, id, e->subject, e->at_ms, e, NULL, NULL};
            if (notify_rows_add(&rows, g, &ev, now_ms) != 0) {
                rc = STORE_FAILED;
                goto done;
            }
        }
        moved = e->id;
    }
    if (moved == cursor) goto done;
    rc = store_notify_enqueue(st, rows.rows, rows.n, cursor, moved);
    if (rc != STORE_OK && rc != STORE_NOT_FOUND)
        log_json(LOG_WARN, "could not enqueue notifications; retried on the next pass",
                 json_pack("{s:I, s:i}", "cursor", (json_int_t)cursor, "rc", rc));
done:
    notify_rows_free(&rows);
    free(entries);
    policy_release(g);
    if (rc == STORE_NOT_FOUND) return 0;      /* another leader moved it: its rows stand */
    if (rc != STORE_OK) return rc;
    return moved > cursor ? (int)(moved - cursor) : 0;
}

void notify_alert(struct notify *n, const struct alerts_state *a, const char *state, int64_t now_ms) {
    struct notify_rows rows = {0};
    char id[STORE_NOTIFY_EVENT_ID_MAX];
    if (n == NULL || !leader_is(n->app->leader)) return;
    struct policy_gen *g = policy_acquire(n->app->pol);
    /* The same transition seen twice (a replay after a leader change) keeps
     * its id: the rule, the queue, the worker, the state and when it began. */
    snprintf(id, sizeof id, "alert-%s-%s-%s-%s-%lld", a->hit.alert, a->hit.queue,
             a->hit.worker[0] ? a->hit.worker : "-", state, (long long)a->since_ms);
    struct notify_event ev = {"alert", id, a->hit.queue, now_ms, NULL, a, state};
    if (notify_rows_add(&rows, g, &ev, now_ms) == 0 && rows.n > 0) {
        if (store_notify_enqueue(n->app->st, rows.rows, rows.n, 0, 0) != STORE_OK)
            log_json(LOG_WARN, "could not enqueue an alert notification",
                     json_pack("{s:s, s:s}", "alert", a->hit.alert, "state", state));
        else
            notify_kick(n);
    }
    notify_rows_free(&rows);
    policy_release(g);
}

/* ---- delivery ----------------------------------------------------------------- */

static size_t notify_discard(char *data, size_t size, size_t nmemb, void *ud) {
    (void)data;
    (void)ud;
    return size * nmemb;             /* the receiver's answer is not read */
}

/* Abandon a transfer when sluiced stops (a non-zero return aborts it). */
static int notify_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    (void)dt, (void)dn, (void)ut, (void)un;
    return atomic_load(&((struct notify *)ud)->stopping);
}

/* POST body to sink s. Returns the HTTP status (0: no answer, err says
 * why). The secret is read from the environment here, used, and never
 * logged or stored. */
static int notify_post(struct notify *n, const struct policy_sink *s, const struct store_notify_due *d,
                       char *err, size_t errlen) {
    char ts[32], hdr[STORE_NOTIFY_EVENT_ID_MAX + 64], sig[NOTIFY_SIGNATURE_MAX];
    char curl_err[CURL_ERROR_SIZE] = "";
    struct curl_slist *h = NULL;
    long status = 0;
    size_t len = strlen(d->payload);
    /* libcurl (and the TLS library under it) is set up on the first POST:
     * a sluiced without sinks never pays its memory. */
    if (n->curl == NULL && (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
                            (n->curl = curl_easy_init()) == NULL)) {
        snprintf(err, errlen, "libcurl could not be initialised");
        return 0;
    }
    CURL *c = n->curl;

    snprintf(ts, sizeof ts, "%lld", (long long)(util_now_ms() / 1000));
    h = curl_slist_append(h, "Content-Type: application/json");
    snprintf(hdr, sizeof hdr, "X-Sluice-Event: %s", d->n.event);
    h = curl_slist_append(h, hdr);
    snprintf(hdr, sizeof hdr, "X-Sluice-Event-Id: %s", d->n.event_id);
    h = curl_slist_append(h, hdr);
    snprintf(hdr, sizeof hdr, "X-Sluice-Delivery: %lld", (long long)d->n.id);
    h = curl_slist_append(h, hdr);
    snprintf(hdr, sizeof hdr, "X-Sluice-Timestamp: %s", ts);
    h = curl_slist_append(h, hdr);
    const char *secret = s->secret_env[0] ? getenv(s->secret_env) : NULL;
    if (secret && secret[0] && notify_sign(secret, ts, d->payload, len, sig) == 0) {
        snprintf(hdr, sizeof hdr, "X-Sluice-Signature: %s", sig);
        h = curl_slist_append(h, hdr);
    }
    h = curl_slist_append(h, "Expect:");   /* no 100-continue round trip */
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, s->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)NOTIFY_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)NOTIFY_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "sluiced/" SLUICE_VERSION);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, d->payload);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, notify_discard);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, notify_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, n);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (status < 200 || status > 299) snprintf(err, errlen, "HTTP %ld", status);
    } else {
        /* libcurl's message names the host, never the path or query (where
         * a chat webhook keeps its token). */
        snprintf(err, errlen, "%s", curl_err[0] ? curl_err : curl_easy_strerror(rc));
        char *q = strpbrk(err, "?");
        if (q) *q = '\0';
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(h);
    return (int)status;
}

/* One attempt at d: POST and record the outcome. Returns 1 when delivered. */
static int notify_attempt(struct notify *n, const struct policy_sink *s, const struct store_notify_due *d,
                          int64_t now_ms) {
    char err[STORE_NOTIFY_ERROR_MAX] = "";
    int status = s ? notify_post(n, s, d, err, sizeof err) : 0;
    int delivered = status >= 200 && status <= 299;
    int64_t done_ms = util_now_ms();
    struct store_notify_attempt a = {d->n.id, "delivered", done_ms, done_ms, status, ""};
    if (s == NULL) snprintf(err, sizeof err, "sink '%s' is no longer declared", d->n.sink);
    if (!delivered) {
        int attempts = d->n.attempts + 1;
        a.status = s == NULL || attempts >= NOTIFY_MAX_ATTEMPTS ||
                           now_ms - d->n.created_ms >= NOTIFY_MAX_AGE_MS
                       ? "failed" : "pending";
        a.next_attempt_ms = done_ms + notify_backoff_ms(attempts);
        a.error = err;
    }
    if (store_notify_mark(n->app->st, &a) != STORE_OK)
        log_json(LOG_WARN, "could not record a notification attempt; it will be retried",
                 json_pack("{s:I}", "id", (json_int_t)d->n.id));
    metrics_count_notification(n->app->metrics, d->n.sink, delivered);
    if (!delivered)
        log_json(strcmp(a.status, "failed") == 0 ? LOG_ERROR : LOG_WARN,
                 strcmp(a.status, "failed") == 0 ? "notification failed; giving up"
                                                 : "notification failed; will retry",
                 json_pack("{s:s, s:s, s:i, s:s}", "sink", d->n.sink, "event_id", d->n.event_id,
                           "attempts", d->n.attempts + 1, "error", err));
    return delivered;
}

/* The sink named, copied out of the generation in force (so that no
 * reference or lock is held during the POST); 0, or -1 when undeclared. */
static int notify_find_sink(struct notify *n, const char *name, struct policy_sink *out) {
    struct policy_gen *g = policy_acquire(n->app->pol);
    int rc = -1;
    for (size_t i = 0; i < policy_gen_sink_count(g) && rc != 0; i++) {
        if (strcmp(policy_gen_sink(g, i)->name, name) == 0) {
            *out = *policy_gen_sink(g, i);
            rc = 0;
        }
    }
    policy_release(g);
    return rc;
}

/* Deliver the due rows of one sink, oldest first, while they succeed: a
 * sink's rows go in order, so one waiting for its retry, or one that just
 * failed, holds back the rows behind it (and only those). Counts attempts
 * into *tried, up to NOTIFY_DELIVERY_BATCH. */
static int notify_deliver_sink(struct notify *n, const char *name, int64_t now_ms, size_t *tried) {
    struct store_notify_due *due = NULL;
    struct policy_sink sink;
    size_t count = 0, sent = 0;
    int have = notify_find_sink(n, name, &sink) == 0;
    if (store_notify_pending(n->app->st, name, NOTIFY_SINK_BATCH, &due, &count) != STORE_OK) return 0;
    for (size_t i = 0; i < count && *tried < NOTIFY_DELIVERY_BATCH; i++) {
        if (atomic_load(&n->stopping) || !leader_is(n->app->leader)) break;
        if (due[i].n.next_attempt_ms > now_ms) break;
        (*tried)++;
        if (!notify_attempt(n, have ? &sink : NULL, &due[i], now_ms) && have) break;
        sent++;
    }
    free(due);
    return sent == NOTIFY_SINK_BATCH;         /* a backlog: more may be due now */
}

/* Deliver what is due, sink by sink (the sinks with pending rows, declared
 * or not: rows of a sink no longer declared are marked failed). */
static int notify_deliver(struct notify *n, int64_t now_ms) {
    struct store_notify_summary *sum = NULL;
    size_t ns = 0, tried = 0;
    int more = 0;
    if (store_notify_summarize(n->app->st, &sum, &ns) != STORE_OK) return 0;
    /* Each pass starts one sink further, so that a busy sink first in the
     * list never keeps the others past NOTIFY_DELIVERY_BATCH. */
    size_t first = ns ? n->next_sink++ % ns : 0;
    for (size_t k = 0; k < ns && tried < NOTIFY_DELIVERY_BATCH; k++) {
        const struct store_notify_summary *s = &sum[(first + k) % ns];
        if (s->pending > 0) more |= notify_deliver_sink(n, s->sink, now_ms, &tried);
    }
    free(sum);
    return more || tried >= NOTIFY_DELIVERY_BATCH;
}

/* Count, per queue, the notifications whose last attempt failed: pending
 * rows retrying and rows given up in the last NOTIFY_FAILING_RECENT_MS.
 * The alert rules see it as q.notify_failures. */
static void notify_count_failing(struct notify *n, int64_t now_ms) {
    struct store_notification *rows = NULL, *failed = NULL;
    size_t nr = 0, nf = 0, nq = 0;
    char (*queues)[UTIL_NAME_MAX + 1] = calloc(POLICY_MAX_QUEUES, sizeof *queues);
    int64_t *counts = calloc(POLICY_MAX_QUEUES, sizeof *counts);
    if (queues == NULL || counts == NULL) goto done;
    if (store_notify_list(n->app->st, NULL, "pending", 200, &rows, &nr) != STORE_OK ||
        store_notify_list(n->app->st, NULL, "failed", 200, &failed, &nf) != STORE_OK)
        goto done;
    for (size_t i = 0; i < nr + nf; i++) {
        const struct store_notification *x = i < nr ? &rows[i] : &failed[i - nr];
        if (x->attempts == 0 || (i >= nr && now_ms - x->last_attempt_ms > NOTIFY_FAILING_RECENT_MS))
            continue;
        size_t k = 0;
        while (k < nq && strcmp(queues[k], x->queue) != 0) k++;
        if (k == nq) {
            if (nq == POLICY_MAX_QUEUES) continue;
            util_copy(queues[nq++], sizeof queues[0], x->queue);
        }
        counts[k]++;
    }
    policy_set_notify_failures(n->app->pol, (const char (*)[UTIL_NAME_MAX + 1])queues, counts, nq);
done:
    free(rows);
    free(failed);
    free(queues);
    free(counts);
}

/* ---- the thread --------------------------------------------------------------- */

/* One pass; returns 1 when a backlog is left that is due now. */
static int notify_pass(struct notify *n) {
    int64_t now_ms = util_now_ms();
    if (!leader_is(n->app->leader)) {
        /* Only the leader knows: a follower's rules see no failures. */
        policy_set_notify_failures(n->app->pol, NULL, NULL, 0);
        return 0;
    }
    struct policy_gen *g = policy_acquire(n->app->pol);
    size_t sinks = policy_gen_sink_count(g);
    policy_release(g);
    int more = 0;
    /* Without a sink the cursor only has to keep up (a sink declared later
     * starts about there): every NOTIFY_IDLE_CURSOR_MS, not every pass, so
     * an idle feature costs changes no write. */
    if (sinks > 0 || now_ms >= n->next_idle_cursor_ms) {
        more = notify_enqueue_audit(n->app->st, n->app->pol, now_ms) >= NOTIFY_AUDIT_BATCH;
        n->next_idle_cursor_ms = now_ms + NOTIFY_IDLE_CURSOR_MS;
    }
    more |= notify_deliver(n, now_ms);
    if (sinks > 0) notify_count_failing(n, util_now_ms());
    else policy_set_notify_failures(n->app->pol, NULL, NULL, 0);
    if (now_ms >= n->next_prune_ms) {
        int64_t deleted = 0;
        store_notify_prune(n->app->st, now_ms - NOTIFY_KEEP_MS, NOTIFY_KEEP_ROWS, &deleted);
        n->next_prune_ms = now_ms + NOTIFY_PRUNE_EVERY_MS;
    }
    return more;
}

static void *notify_main(void *ud) {
    struct notify *n = ud;
    pthread_mutex_lock(&n->lock);
    while (!n->stop) {
        pthread_mutex_unlock(&n->lock);
        int more = notify_pass(n);
        pthread_mutex_lock(&n->lock);
        if (n->stop || n->kicked || more) {
            n->kicked = 0;
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += NOTIFY_TICK_MS / 1000;
        pthread_cond_timedwait(&n->wake, &n->lock, &ts);
        n->kicked = 0;
    }
    pthread_mutex_unlock(&n->lock);
    return NULL;
}

void notify_kick(struct notify *n) {
    if (n == NULL) return;
    /* No sink declared: nothing to send now. The regular pass still moves
     * the cursor, so a sink added later starts from then; waking on every
     * change would cost each one a cursor write and four reads of the
     * outbox for nobody (`make bench ONLY=propagation:100`: p99 of a
     * change all 100 workers acknowledge was 2.3x its floor, 1.4x without). */
    struct policy_gen *g = policy_acquire(n->app->pol);
    size_t sinks = policy_gen_sink_count(g);
    policy_release(g);
    if (sinks == 0) return;
    pthread_mutex_lock(&n->lock);
    n->kicked = 1;
    pthread_cond_signal(&n->wake);
    pthread_mutex_unlock(&n->lock);
}

struct notify *notify_start(struct app *app, char *err, size_t errlen) {
    pthread_condattr_t attr;
    struct notify *n = calloc(1, sizeof *n);
    if (n == NULL) {
        snprintf(err, errlen, "notify: out of memory");
        return NULL;
    }
    n->app = app;
    pthread_mutex_init(&n->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&n->wake, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&n->thread, NULL, notify_main, n) != 0) {
        snprintf(err, errlen, "notify: cannot start its thread");
        pthread_mutex_destroy(&n->lock);
        pthread_cond_destroy(&n->wake);
        curl_easy_cleanup(n->curl);
        free(n);
        return NULL;
    }
    return n;
}

void notify_stop(struct notify *n) {
    if (n == NULL) return;
    atomic_store(&n->stopping, 1);
    pthread_mutex_lock(&n->lock);
    n->stop = 1;
    pthread_cond_signal(&n->wake);
    pthread_mutex_unlock(&n->lock);
    pthread_join(n->thread, NULL);
    curl_easy_cleanup(n->curl);
    pthread_mutex_destroy(&n->lock);
    pthread_cond_destroy(&n->wake);
    free(n);
}
