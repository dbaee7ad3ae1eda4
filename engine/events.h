/* events.h — live Server-Sent Events streams for /admin/runtime-scaling/events.
 *
 * Each stream is a buffered HTTP answer (http.h's streamed body) that never
 * holds a thread: when it has nothing to send, its connection sleeps;
 * broadcasting, from any thread, appends to every buffer and wakes the
 * connection, whose own pool thread then sends it. A client that reads too slowly is
 * cut off rather than buffered without bound: a stream always takes one
 * event whatever its size (a snapshot of thousands of workers is larger than
 * any fixed buffer), but one that still holds more than EVENTS_BUFFER_MAX,
 * or more than the event itself, when the next arrives is dropped. A client
 * that went away is noticed at the next write (at least every 2 s: the
 * snapshot). Streams are capped in all and per owner (a token), so that one
 * reader cannot take every slot. Thread-safe. */
#ifndef SLUICE_EVENTS_H
#define SLUICE_EVENTS_H

#include <jansson.h>
#include <stddef.h>

#include "http.h"

#define EVENTS_BUFFER_MAX (256 * 1024)

typedef struct events events;

/* Streams opened for a token limited to queues (auth.h's patterns) get
 * only what concerns those: an event whose data names a "queue" reaches
 * them when the patterns allow it; an event without one (json) or sent as
 * text (the snapshot) passes through the scope function, which returns
 * json[0..len) limited to patterns (malloc'd, its length in *n), or NULL
 * to send them nothing. Without a scope function they get no such event. */
typedef char *(*events_scope_fn)(const char *json, size_t len, const char *patterns, size_t *n);

/* At most max_streams in all, and max_per_owner for one owner. */
events *events_new(int max_streams, int max_per_owner);

/* Set the scope function (before streams open; health.c's
 * health_scope_text for snapshots). */
void events_set_scope(events *ev, events_scope_fn fn);

/* Free the registry; streams must be closed first (events_close_all and the
 * HTTP server stopped). NULL is a no-op. */
void events_free(events *ev);

/* Make resp a stream starting with `first` (an event of type "snapshot";
 * borrowed) for owner (a token id; copied). Returns 0, -1 when the total cap
 * is reached or events_close_all ran, -2 when the owner's cap is reached
 * (resp untouched either way). */
int events_open(events *ev, struct http_response *resp, json_t *first, const char *owner);

/* events_open of a stream limited to queues (patterns, copied; NULL or "":
 * every queue); first must already be limited. */
int events_open_scoped(events *ev, struct http_response *resp, json_t *first, const char *owner,
                       const char *queues);

/* Send an event to every stream (data borrowed). */
void events_broadcast(events *ev, const char *type, json_t *data);

/* events_broadcast of an event whose data is already len bytes of compact
 * JSON (a cached body: no tree is built again). */
void events_broadcast_text(events *ev, const char *type, const char *json, size_t len);

/* Like events_broadcast, but only appended to one shared list that the next
 * events_flush hands to every stream: for events raised on a request thread
 * (a change), so that the writer pays one append whatever the number of
 * streams, and the changes of one ticker step leave in one write per
 * stream. At most EVENTS_BUFFER_MAX bytes wait; beyond, events are dropped
 * (a snapshot follows every change anyway). */
void events_post(events *ev, const char *type, json_t *data);

/* Hand what was posted since the last flush to every stream and wake them
 * (the ticker, every step). */
void events_flush(events *ev);

/* Send the ": ping" comment to every stream. */
void events_ping(events *ev);

/* End every stream, and refuse new ones from now on (shutdown): a stream
 * opened later would wait for events nobody sends any more. */
void events_close_all(events *ev);

/* Streams open now. */
int events_count(events *ev);

#endif
