/* metrics.h — Prometheus text exposition for /metrics (names in api.md).
 *
 * Owns the counters that only exist in this process (HTTP requests and
 * their duration histogram, scaling changes by outcome) behind a mutex;
 * everything else is read at render time from the telemetry snapshot, so
 * /metrics and /admin/runtime-scaling never disagree. */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include <stddef.h>

struct app;
typedef struct metrics metrics;

metrics *metrics_new(void);
void metrics_free(metrics *m);

/* Count one HTTP answer (route pattern, status) and its duration. */
void metrics_observe_request(void *m, const char *route, int status, double seconds);

/* Count one scaling change attempt; outcome "applied" | "rejected". */
void metrics_count_change(metrics *m, const char *queue, const char *outcome);

/* The whole exposition, malloc'd (caller frees), or NULL. */
char *metrics_render(metrics *m, struct app *app, size_t *len);

#endif
