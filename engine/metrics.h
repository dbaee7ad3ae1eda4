/* metrics.h — Prometheus text exposition for /metrics (names in api.md).
 *
 * Owns the counters that only exist in this process (HTTP requests and
 * their duration histogram, scaling changes by outcome) behind a mutex;
 * everything else is rendered from the queue-health model (health.h), the
 * one /admin/runtime-scaling renders too, so the two never disagree. */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include <stddef.h>

#include "body.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct health_model;
typedef struct metrics metrics;

metrics *metrics_new(void);
void metrics_free(metrics *m);

/* Count one HTTP answer (route pattern, status) and its duration. */
void metrics_observe_request(void *m, const char *route, int status, double seconds);

/* Count one scaling change attempt; outcome "applied" | "rejected". */
void metrics_count_change(metrics *m, const char *queue, const char *outcome);

/* Count one notification attempt to sink: delivered (a 2xx) or failed. */
void metrics_count_notification(metrics *m, const char *sink, int delivered);

/* The whole exposition for the model hm (borrowed) and the number of live
 * event streams, malloc'd (caller frees), or NULL when out of memory. */
char *metrics_render_model(metrics *m, const struct health_model *hm, int event_streams, size_t *len);

/* The same exposition as a body with its ETag, for a published model: the
 * queue families are rendered once per model and kept with it
 * (health_body), the counters of this process rendered now. New body, or
 * NULL when out of memory. */
struct body *metrics_body(metrics *m, struct health_model *hm, int event_streams);

#endif
