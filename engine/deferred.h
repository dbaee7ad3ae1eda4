/* deferred.h — answers that are not ready when the handler returns.
 *
 * Two kinds, both asked for by a Lua handler and both holding no HTTP thread
 * while they wait:
 *   - a wait (sluice.scaling.await; PUT .../scaling/{queue} with wait_ms):
 *     the 200 answer is held, its connection suspended, until every live
 *     worker of the queue has applied the version or the wait's deadline
 *     passed; it then gains "acks": {expected, acknowledged, complete};
 *   - a stream (sluice.telemetry.stream): the answer becomes a Server-Sent
 *     Events stream of events.c.
 *
 * The handler cannot build these answers itself: it returns its status and
 * body like any other. A binding therefore records a plan on the request
 * (deferred_plan_wait, deferred_plan_stream); when the handler has
 * returned, the host (script.c) hands the plan and the handler's answer to
 * deferred_answer(), which either takes the answer over or says it does not
 * apply (another status, no JSON object to hold), and then the host sends
 * the answer as usual. Built on http.h (http_defer, http_complete, streamed
 * bodies); nothing here touches libmicrohttpd.
 *
 * Which thread completes what. A held wait is completed (http_complete) by
 * the thread that ends it in fleet.c: the HTTP pool thread that served the
 * request when it is over at once (no live worker, all there already,
 * wait_ms 0, shutdown begun, out of memory); the Redis subscriber thread
 * (bus.c), inside fleet_report, on the report that completes it; the main
 * thread's ticker at the deadline (a step late at most) or when the last
 * worker holding it back goes stale; the main thread at shutdown. A stream is filled by whichever thread broadcasts (the pool
 * thread of a PUT, the ticker's snapshots, pings and alerts). In both cases
 * http.c sends on the connection's own pool thread.
 *
 * Shutdown (deferred_shutdown) ends every wait and every stream and refuses
 * new ones, so that no connection stays suspended with nobody left to wake
 * it; libmicrohttpd cannot stop with one suspended. Uses fleet.h, events.h
 * and http.h. Thread-safe. */
#ifndef SLUICE_DEFERRED_H
#define SLUICE_DEFERRED_H

#include <jansson.h>
#include <stdint.h>

#include "events.h"
#include "fleet.h"
#include "http.h"
#include "util.h"

#define DEFERRED_WAIT_MAX_MS 30000
#define DEFERRED_DRAIN_MS 2000       /* at shutdown, for the last answers to leave */

enum deferred_kind {
    DEFERRED_NONE = 0,
    DEFERRED_WAIT,                   /* hold a 200 JSON object until acknowledged */
    DEFERRED_STREAM,                 /* turn a 200 answer into an event stream */
};

/* What a handler asked to become of its answer. All zero: nothing. Kept
 * by value in the request being served (script_request). */
struct deferred_plan {
    enum deferred_kind kind;
    char queue[UTIL_NAME_MAX + 1];   /* DEFERRED_WAIT: for version of queue, */
    int64_t version, wait_ms;        /* at most wait_ms */
};

/* Where the answers come from. */
struct deferred_sources {
    fleet *fl;                       /* acknowledgements, for waits */
    events *ev;                      /* the stream registry */
    /* A stream's first event (the snapshot, limited to queues); a new reference. */
    json_t *(*snapshot)(void *ud);
    void *snapshot_ud;
    /* The queues the stream is limited to (auth.h's patterns; NULL or "":
     * every queue). */
    const char *queues;
};

/* Plan a wait for version of queue (a valid name), wait_ms 0..30000. A
 * later wait replaces an earlier one; a planned stream stays, as it would
 * take the answer first anyway. */
void deferred_plan_wait(struct deferred_plan *plan, const char *queue, int64_t version,
                        int64_t wait_ms);

/* Plan a stream; it replaces a planned wait. */
void deferred_plan_stream(struct deferred_plan *plan);

/* Apply plan to the handler's answer: status, and *body (a JSON value or
 * NULL; a text body is never deferred and is not passed here). resp may
 * already hold the handler's headers, which the answer keeps. Returns 1
 * when the plan took the answer: *body is consumed (NULL on return) and
 * resp holds the answer, or is left empty for a deferred one. Returns 0
 * when there is no plan or it does not apply (a stream needs status 200; a
 * wait needs 200 and a JSON object): nothing was touched. owner is who
 * opens a stream (a token id, "" for none); copied. */
int deferred_answer(const struct deferred_plan *plan, const struct deferred_sources *src,
                    struct http_request *req, struct http_response *resp, int status,
                    json_t **body, const char *owner);

/* Hold body (a JSON object; ownership taken) as the status answer of req
 * until every live worker of queue has applied version, or wait_ms passed,
 * then add "acks" and send it with resp's headers; resp is left empty and
 * the request deferred. Out of memory, the answer goes out at once without
 * "acks" (as resp). */
void deferred_wait(fleet *fl, struct http_request *req, struct http_response *resp, int status,
                   json_t *body, const char *queue, int64_t version, int64_t wait_ms);

/* Make resp an event stream beginning with first (borrowed) for owner,
 * limited to queues (events_open_scoped). At
 * a cap (or after shutdown began) resp becomes the refusal of api.md
 * instead: 429 too_many_streams for the owner's, 503 for the total. */
void deferred_stream(events *ev, struct http_request *req, struct http_response *resp,
                     json_t *first, const char *owner,
                     const char *queues);

/* Shutdown, before http_stop: stop accepting connections, end every stream
 * and every wait (and, from now on, new ones at once, for the requests
 * still arriving on open connections), then give those answers
 * DEFERRED_DRAIN_MS to reach their clients and the streams to finish. NULL
 * http: nothing was served, nothing to do. */
void deferred_shutdown(http_server *http, events *ev, fleet *fl);

#endif
