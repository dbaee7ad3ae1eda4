/* test_metrics.c — the Prometheus text exposition: every sample after its
 * HELP and TYPE, counters that only go up, a cumulative histogram, label
 * escapes, and the per-queue families of a model built by hand. */
#include "unit.h"
#include "health.h"
#include "metrics.h"

#include <stdlib.h>

/* The value of the sample line that starts with prefix (name and labels),
 * or -1 when there is none. */
static double sample(const char *text, const char *prefix) {
    size_t n = strlen(prefix);
    for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL)
        if (strncmp(line, prefix, n) == 0 && line[n] == ' ') return strtod(line + n + 1, NULL);
    return -1;
}

/* Every line is a HELP, a TYPE, or a sample of the family declared last. */
static int well_formed(const char *text, char *bad, size_t badlen) {
    char family[128] = "";
    const char *line = text;
    while (*line) {
        const char *end = strchr(line, '\n');
        if (end == NULL) return snprintf(bad, badlen, "no final newline"), 0;
        size_t len = (size_t)(end - line);
        if (strncmp(line, "# HELP ", 7) == 0) {
            size_t k = strcspn(line + 7, " ");
            if (k >= sizeof family) return 0;
            memcpy(family, line + 7, k);
            family[k] = '\0';
        } else if (strncmp(line, "# TYPE ", 7) == 0) {
            if (strncmp(line + 7, family, strlen(family)) != 0) return snprintf(bad, badlen, "%.*s", (int)len, line), 0;
        } else if (family[0] == '\0' || strncmp(line, family, strlen(family)) != 0 ||
                   memchr(line, ' ', len) == NULL) {
            return snprintf(bad, badlen, "%.*s", (int)len, line), 0;
        }
        line = end + 1;
    }
    return 1;
}

/* One queue, alpha, desired 5, one live worker in mismatch, one stale,
 * depth known, one firing alert on a worker. */
static struct health_model *hand_made_model(struct health_worker ws[2], struct alerts_state *al) {
    struct health_model *m = calloc(1, sizeof *m);
    struct queue_health *q = calloc(1, sizeof *q);
    if (m == NULL || q == NULL) return free(m), free(q), NULL;
    atomic_init(&m->refs, 1);
    m->store = HEALTH_STORE_UP;
    m->redis_up = 1;
    m->queues = q;
    m->nqueues = 1;
    util_copy(q->name, sizeof q->name, "alpha");
    q->has_target = q->target_shown = 1;
    q->target.desired = 5;
    q->has_depth = 1;
    q->depth = (struct telemetry_depth){.nstates = 4, .state = {"waiting", "active", "failed", "delayed"},
                                        .count = {12, 3, -1, 0}};
    q->workers = ws;
    q->nworkers = 2;
    q->live_workers = 1;
    q->active_concurrency = 4;
    q->rates.completed_total = 9007199254740991ULL;
    q->pending_updates = 2;
    q->alerts = al;
    q->nalerts = 1;
    return m;
}

TEST(queue_families_come_from_the_model_in_exposition_format) {
    struct health_worker ws[2] = {{.id = "w1", .concurrency = 4, .state = HEALTH_WORKER_MISMATCH},
                                  {.id = "w2", .state = HEALTH_WORKER_STALE}};
    struct alerts_state al = {.hit = {.alert = "drift", .queue = "alpha", .worker = "w1"}, .firing = 1};
    struct health_model *hm = hand_made_model(ws, &al);
    metrics *m = metrics_new();
    size_t len = 0;
    char bad[256] = "";
    ASSERT(hm && m);
    char *text = metrics_render_model(m, hm, 0, &len);
    ASSERT(text != NULL);
    EXPECT_INT(strlen(text), len);
    EXPECT(well_formed(text, bad, sizeof bad));
    if (bad[0]) printf("#   bad line: %s\n", bad);
    EXPECT_CONTAINS(text, "# TYPE sluice_desired_concurrency gauge\n");
    EXPECT_INT(sample(text, "sluice_desired_concurrency{queue=\"alpha\"}"), 5);
    EXPECT_INT(sample(text, "sluice_actual_concurrency{queue=\"alpha\"}"), 4);
    EXPECT_INT(sample(text, "sluice_workers_by_state{queue=\"alpha\",state=\"mismatch\"}"), 1);
    EXPECT_INT(sample(text, "sluice_workers_by_state{queue=\"alpha\",state=\"stale\"}"), 1);
    EXPECT_INT(sample(text, "sluice_workers_by_state{queue=\"alpha\",state=\"ok\"}"), 0);
    EXPECT_INT(sample(text, "sluice_queue_depth{queue=\"alpha\",state=\"waiting\"}"), 12);
    EXPECT_INT(sample(text, "sluice_queue_depth{queue=\"alpha\",state=\"failed\"}"), -1);   /* unknown: absent */
    EXPECT_CONTAINS(text, "sluice_jobs_completed_total{queue=\"alpha\"} 9007199254740991\n");
    EXPECT_INT(sample(text, "sluice_pending_updates{queue=\"alpha\"}"), 2);
    EXPECT_CONTAINS(text, "sluice_alert_firing{alert=\"drift\",queue=\"alpha\",worker=\"w1\"} 1\n");
    EXPECT_CONTAINS(text, "sluice_redis_up 1\n");
    EXPECT_CONTAINS(text, "sluice_store_up 1\n");
    free(text);
    /* Without a desired state in view: no sample, and nobody in mismatch. */
    hm->queues[0].target_shown = 0;
    hm->store = HEALTH_STORE_FULL;
    text = metrics_render_model(m, hm, 0, &len);
    ASSERT(text != NULL);
    EXPECT_INT(sample(text, "sluice_desired_concurrency{queue=\"alpha\"}"), -1);
    EXPECT_INT(sample(text, "sluice_workers_by_state{queue=\"alpha\",state=\"ok\"}"), 1);
    EXPECT_CONTAINS(text, "sluice_store_up 0\n");
    free(text);
    free(hm->queues);
    free(hm);
    metrics_free(m);
}

TEST(counters_only_go_up_and_the_histogram_is_cumulative) {
    struct health_model empty = {.store = HEALTH_STORE_UP};
    metrics *m = metrics_new();
    size_t len = 0;
    ASSERT(m != NULL);
    metrics_observe_request(m, "/api/v1/scaling", 200, 0.002);
    metrics_observe_request(m, "/api/v1/scaling", 200, 0.3);
    metrics_count_change(m, "alpha", "applied");
    char *before = metrics_render_model(m, &empty, 3, &len);
    metrics_observe_request(m, "/api/v1/scaling", 200, 20);
    metrics_observe_request(m, "/api/v1/scaling", 404, 0.001);
    metrics_count_change(m, "alpha", "applied");
    metrics_count_change(m, "alpha", "rejected");
    char *after = metrics_render_model(m, &empty, 3, &len);
    ASSERT(before && after);
    const char *req = "sluice_http_requests_total{route=\"/api/v1/scaling\",status=\"200\"}";
    EXPECT_INT(sample(before, req), 2);
    EXPECT_INT(sample(after, req), 3);
    EXPECT_INT(sample(after, "sluice_http_requests_total{route=\"/api/v1/scaling\",status=\"404\"}"), 1);
    EXPECT_INT(sample(before, "sluice_scaling_changes_total{queue=\"alpha\",outcome=\"applied\"}"), 1);
    EXPECT_INT(sample(after, "sluice_scaling_changes_total{queue=\"alpha\",outcome=\"applied\"}"), 2);
    EXPECT_INT(sample(after, "sluice_scaling_changes_total{queue=\"alpha\",outcome=\"rejected\"}"), 1);
    EXPECT_INT(sample(before, "sluice_http_request_duration_seconds_bucket{le=\"0.0025\"}"), 1);
    EXPECT_INT(sample(before, "sluice_http_request_duration_seconds_bucket{le=\"0.5\"}"), 2);
    EXPECT_INT(sample(after, "sluice_http_request_duration_seconds_bucket{le=\"0.001\"}"), 1);
    EXPECT_INT(sample(after, "sluice_http_request_duration_seconds_bucket{le=\"10\"}"), 3);
    EXPECT_INT(sample(after, "sluice_http_request_duration_seconds_bucket{le=\"+Inf\"}"), 4);
    EXPECT_INT(sample(after, "sluice_http_request_duration_seconds_count"), 4);
    EXPECT(sample(after, "sluice_http_request_duration_seconds_sum") > 20.3);
    EXPECT_INT(sample(after, "sluice_event_streams"), 3);
    free(before);
    free(after);
    metrics_free(m);
}

TEST(label_values_are_escaped) {
    struct health_model empty = {.store = HEALTH_STORE_UP};
    metrics *m = metrics_new();
    size_t len = 0;
    char bad[256] = "";
    ASSERT(m != NULL);
    metrics_observe_request(m, "/a\"b\\c\nd", 200, 0.01);
    char *text = metrics_render_model(m, &empty, 0, &len);
    ASSERT(text != NULL);
    EXPECT_CONTAINS(text, "sluice_http_requests_total{route=\"/a\\\"b\\\\c\\nd\",status=\"200\"} 1\n");
    EXPECT(well_formed(text, bad, sizeof bad));
    free(text);
    metrics_free(m);
}

int main(void) {
    RUN(queue_families_come_from_the_model_in_exposition_format);
    RUN(counters_only_go_up_and_the_histogram_is_cumulative);
    RUN(label_values_are_escaped);
    return UNIT_DONE();
}
