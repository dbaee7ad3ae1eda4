/* fuzz_report.c — the worker report parser (fleet_report in engine/fleet.c)
 * and the registry it feeds.
 *
 * One input is a burst of reports as they arrive on <prefix>:reports,
 * separated by the byte 0x1E (ASCII record separator, which no valid JSON
 * text holds outside a string and no JSON string holds raw). Each input gets
 * a fleet of its own, so a crash replays from its file alone; the burst is
 * what lets one input build state (a worker, then its next heartbeat, a
 * counter that goes down, a "bye") for the later reports to hit.
 *
 * Between reports the clock moves on (400 ms, or 61 s after a report whose
 * length is a multiple of 7, to reach staleness and forgetting), and the
 * harness reads the registry back and checks what fleet.h promises:
 * refused reports are counted one each and change nothing, workers are
 * valid and within their bounds, acknowledgements never exceed the live
 * workers, rates are finite and never negative, totals never go back and
 * stay within FLEET_TOTAL_MAX (and at 0 for queues the policies do not
 * declare: here, names starting with 'x'), and every waiter is called
 * exactly once. */
#include "fuzz.h"
#include "fleet.h"
#include "log.h"

#include <math.h>
#include <string.h>

#define FUZZ_SEPARATOR '\x1e'

struct fuzz_waits {
    int called;
};

#define FUZZ_QUEUES 32

/* The totals last seen per queue, which must never go back. */
struct fuzz_totals {
    char queue[FUZZ_QUEUES][UTIL_NAME_MAX + 1];
    uint64_t completed[FUZZ_QUEUES], failed[FUZZ_QUEUES];
    int n;
};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR);        /* refused reports log a warning each second */
    return 0;
}

/* Stands for the store: queues whose name starts with 'u' cannot be known
 * now (-1); the others have issued up to 5 + the length of their name. */
static int64_t fuzz_issuer(void *ud, const char *queue) {
    (void)ud;
    return queue[0] == 'u' ? -1 : 5 + (int64_t)strlen(queue);
}

/* Stands for the policies: queues whose name starts with 'x' are not
 * declared, so no totals are kept for them. */
static int fuzz_declared(void *ud, const char *queue) {
    (void)ud;
    return queue[0] != 'x';
}

static void fuzz_on_wait(void *ud, const struct fleet_acks *acks, int complete) {
    struct fuzz_waits *w = ud;
    FUZZ_CHECK(acks->acknowledged >= 0 && acks->acknowledged <= acks->expected);
    FUZZ_CHECK(complete == (acks->acknowledged == acks->expected));
    w->called++;
}

static int fuzz_worker_cmp_ok(const struct fleet_worker *a, const struct fleet_worker *b) {
    return strcmp(a->id, b->id) < 0;     /* sorted by id, and ids are unique */
}

static void fuzz_check_totals(struct fuzz_totals *seen, const char *queue,
                              const struct fleet_rates *r) {
    FUZZ_CHECK(r->completed_total <= FLEET_TOTAL_MAX && r->failed_total <= FLEET_TOTAL_MAX);
    if (!fuzz_declared(NULL, queue)) FUZZ_CHECK(r->completed_total == 0 && r->failed_total == 0);
    int i = 0;
    while (i < seen->n && strcmp(seen->queue[i], queue) != 0) i++;
    if (i == seen->n) {
        if (seen->n == FUZZ_QUEUES) return;
        util_copy(seen->queue[seen->n++], sizeof seen->queue[0], queue);
    } else {
        FUZZ_CHECK(r->completed_total >= seen->completed[i] && r->failed_total >= seen->failed[i]);
    }
    seen->completed[i] = r->completed_total;
    seen->failed[i] = r->failed_total;
}

/* Everything the registry shows must be something a valid report could say. */
static void fuzz_check_registry(fleet *fl, int64_t now, struct fuzz_totals *seen) {
    struct fleet_worker *ws = NULL;
    size_t n = fleet_workers(fl, NULL, now, &ws);
    FUZZ_CHECK(ws != NULL);
    FUZZ_CHECK(n <= FLEET_MAX_WORKERS);
    for (size_t i = 0; i < n; i++) {
        const struct fleet_worker *w = &ws[i];
        FUZZ_CHECK(memchr(w->id, '\0', sizeof w->id) != NULL && w->id[0] != '\0');
        FUZZ_CHECK(protocol_valid_name(w->queue));
        FUZZ_CHECK(w->concurrency >= 0 && w->concurrency <= 1000000);
        FUZZ_CHECK(w->active >= 0 && w->active <= 1000000);
        FUZZ_CHECK(w->version >= 0 && w->completed >= 0 && w->failed >= 0);
        FUZZ_CHECK(w->interval_ms >= 50 && w->interval_ms <= 60000);
        FUZZ_CHECK(w->nsamples >= 1 && w->nsamples <= FLEET_SAMPLES);
        FUZZ_CHECK(w->first_seen_ms <= w->last_seen_ms && w->last_seen_ms <= now);
        FUZZ_CHECK(strlen(w->host) <= 64 && strlen(w->agent) <= 64 && strlen(w->error) <= 256);
        if (i > 0) FUZZ_CHECK(fuzz_worker_cmp_ok(&ws[i - 1], w));

        struct fleet_acks acks;
        size_t of_queue = 0;
        for (size_t k = 0; k < n; k++) of_queue += strcmp(ws[k].queue, w->queue) == 0;
        fleet_acks(fl, w->queue, w->version, now, &acks);
        FUZZ_CHECK(acks.acknowledged >= 0 && acks.acknowledged <= acks.expected);
        FUZZ_CHECK((size_t)acks.expected <= of_queue);

        struct fleet_rates r;
        fleet_rates(fl, w->queue, now, &r);
        FUZZ_CHECK(isfinite(r.completed_per_s) && r.completed_per_s >= 0);
        FUZZ_CHECK(isfinite(r.failed_per_s) && r.failed_per_s >= 0);
        FUZZ_CHECK(isfinite(r.window_s) && r.window_s >= 0);
        fuzz_check_totals(seen, w->queue, &r);
    }
    free(ws);
}

/* The registry shows the same workers, field for field, as `before`. */
static void fuzz_check_unchanged(fleet *fl, int64_t now, const struct fleet_worker *before,
                                 size_t nbefore) {
    struct fleet_worker *after = NULL;
    size_t n = fleet_workers(fl, NULL, now, &after);
    FUZZ_CHECK(n == nbefore);
    for (size_t i = 0; i < n; i++) {
        const struct fleet_worker *a = &before[i], *b = &after[i];
        FUZZ_CHECK(strcmp(a->id, b->id) == 0 && strcmp(a->queue, b->queue) == 0);
        FUZZ_CHECK(a->version == b->version && a->concurrency == b->concurrency);
        FUZZ_CHECK(a->active == b->active && a->completed == b->completed && a->failed == b->failed);
        FUZZ_CHECK(a->last_seen_ms == b->last_seen_ms && a->nsamples == b->nsamples);
        FUZZ_CHECK(a->invalid == b->invalid && strcmp(a->error, b->error) == 0);
    }
    free(after);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = (const char *)data, *end = p + size;
    struct fuzz_waits waits = {0};
    struct fuzz_totals seen;
    int registered = 0;
    /* Far past any real CLOCK_MONOTONIC, as it always was; every call is
     * given this clock, so the outcome depends on the input alone. */
    int64_t now = INT64_C(1) << 50;
    fleet *fl = fleet_new();
    FUZZ_CHECK(fl != NULL);
    memset(&seen, 0, sizeof seen);
    fleet_set_issuer(fl, fuzz_issuer, NULL);
    fleet_set_declared(fl, fuzz_declared, NULL);
    fleet_issued(fl, "alpha", 3);

    for (int k = 0; p <= end; k++) {
        const char *sep = memchr(p, FUZZ_SEPARATOR, (size_t)(end - p));
        size_t len = (size_t)((sep ? sep : end) - p);

        /* Waiters that never time out: only acknowledgements, or the end
         * of the fleet, finish them. */
        if (k == 1 || k == 3) {
            FUZZ_CHECK(fleet_wait(fl, k == 1 ? "alpha" : "beta", k, now, INT64_MAX, fuzz_on_wait,
                                  &waits) == 0);
            registered++;
        }
        uint64_t refused = fleet_malformed(fl);
        struct fleet_worker *before = NULL;
        size_t nbefore = fleet_workers(fl, NULL, now, &before);
        int rc = fleet_report(fl, p, len, now);
        FUZZ_CHECK(rc == 0 || rc == -1);
        if (rc == 0) {
            FUZZ_CHECK(fleet_malformed(fl) == refused);
        } else {
            /* Refused: counted once (not at all only when out of memory),
             * and the registry is as it was. */
            FUZZ_CHECK(fleet_malformed(fl) - refused <= 1);
            fuzz_check_unchanged(fl, now, before, nbefore);
        }
        free(before);

        fleet_check_waiters(fl, now, 0);
        fuzz_check_registry(fl, now, &seen);
        fleet_sweep(fl, now);
        now += len % 7 == 0 ? FLEET_FORGET_MS + 1000 : 400;
        if (sep == NULL) break;
        p = sep + 1;
    }
    fleet_free(fl);                      /* ends the waits still open */
    FUZZ_CHECK(waits.called == registered);
    return 0;
}
