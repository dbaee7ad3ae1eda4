/* deferred.c — held wait_ms answers, event streams opened for a handler,
 * and the shutdown that ends both. */
#include "deferred.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- plans ------------------------------------------------------------------- */

void deferred_plan_wait(struct deferred_plan *plan, const char *queue, int64_t version,
                        int64_t wait_ms) {
    if (plan->kind == DEFERRED_STREAM) return;
    plan->kind = DEFERRED_WAIT;
    util_copy(plan->queue, sizeof plan->queue, queue);
    plan->version = version;
    plan->wait_ms = wait_ms;
}

void deferred_plan_stream(struct deferred_plan *plan) {
    memset(plan, 0, sizeof *plan);
    plan->kind = DEFERRED_STREAM;
}

int deferred_answer(const struct deferred_plan *plan, const struct deferred_sources *src,
                    struct http_request *req, struct http_response *resp, int status,
                    json_t **body, const char *owner) {
    if (status != 200) return 0;
    switch (plan->kind) {
    case DEFERRED_STREAM: {
        json_t *first = src->snapshot(src->snapshot_ud);
        deferred_stream(src->ev, req, resp, first, owner, src->queues);
        json_decref(first);
        json_decref(*body);                      /* a stream's body is its events */
        *body = NULL;
        return 1;
    }
    case DEFERRED_WAIT:
        if (!json_is_object(*body)) return 0;
        deferred_wait(src->fl, req, resp, status, *body, plan->queue, plan->version,
                      plan->wait_ms);
        *body = NULL;
        return 1;
    case DEFERRED_NONE:
        break;
    }
    return 0;
}

/* ---- waits --------------------------------------------------------------------- */

/* A 200 answer held back until the workers acknowledged. */
struct deferred_waiter {
    struct http_request *req;
    json_t *body;
    struct http_response resp;   /* status and headers of the answer */
};

/* fleet_wait_fn: add "acks" and send the held answer. Runs on whichever
 * thread ended the wait (deferred.h). */
static void deferred_on_acks(void *ud, const struct fleet_acks *acks, int complete) {
    struct deferred_waiter *w = ud;
    json_object_set_new(w->body, "acks",
                        json_pack("{s:i, s:i, s:b}", "expected", acks->expected, "acknowledged",
                                  acks->acknowledged, "complete", complete));
    http_respond_json(&w->resp, w->resp.status, w->body);
    http_complete(w->req, &w->resp);
    http_response_clear(&w->resp);
    free(w);
}

void deferred_wait(fleet *fl, struct http_request *req, struct http_response *resp, int status,
                   json_t *body, const char *queue, int64_t version, int64_t wait_ms) {
    struct deferred_waiter *w = calloc(1, sizeof *w);
    struct fleet_acks now;
    if (w == NULL) {
        http_respond_json(resp, status, body);
        return;
    }
    w->req = req;
    w->body = body;
    w->resp = *resp;                             /* the handler's headers */
    w->resp.status = status;
    memset(resp, 0, sizeof *resp);
    http_defer(req);
    int64_t at = util_mono_ms();
    if (fleet_wait(fl, queue, version, at, at + wait_ms, deferred_on_acks, w) != 0) {
        /* Not registered (out of memory): answer with what is known now. */
        fleet_acks(fl, queue, version, util_mono_ms(), &now);
        deferred_on_acks(w, &now, now.acknowledged == now.expected);
    }
}

/* ---- streams --------------------------------------------------------------------- */

void deferred_stream(events *ev, struct http_request *req, struct http_response *resp,
                     json_t *first, const char *owner, const char *queues) {
    int rc = events_open_scoped(ev, resp, first, owner, queues);
    if (rc == -2)
        http_respond_error(resp, req, 429, "too_many_streams",
                           "these credentials hold as many live event streams as allowed; close one",
                           NULL);
    else if (rc != 0)
        http_respond_error(resp, req, 503, "too_many_streams",
                           "the limit of live event streams is reached; retry later", NULL);
}

/* ---- shutdown --------------------------------------------------------------------- */

void deferred_shutdown(http_server *http, events *ev, fleet *fl) {
    if (http == NULL) return;
    /* Stop accepting, answer every held wait and end the streams, and give
     * those answers a moment to reach their clients. The closing flags of
     * events.c and fleet.c also answer at once what arrives meanwhile on
     * connections already open. */
    http_drain(http, 0);
    events_close_all(ev);
    fleet_check_waiters(fl, util_mono_ms(), 1);
    http_drain(http, DEFERRED_DRAIN_MS);
    /* A woken stream is still on libmicrohttpd's suspended list until its
     * thread runs again, and it aborts when stopped with one there: wait
     * for the streams to end (each unregisters as it does). */
    for (int waited = 0; waited < DEFERRED_DRAIN_MS && events_count(ev) > 0; waited += 10) {
        struct timespec ts = {0, 10000000L};
        nanosleep(&ts, NULL);
    }
}
