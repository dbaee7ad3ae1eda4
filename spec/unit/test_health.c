/* test_health.c — the queue-health model built from real parts: a SQLite
 * store file, policy files in a temporary directory, a fleet fed with
 * reports and a real redis-server for depth; then its JSON and /metrics
 * renderers, its alert inputs and its publication. */
#include "unit.h"
#include "app.h"
#include "config.h"
#include "events.h"
#include "metrics.h"
#include "bus.h"
#include "fleet.h"
#include "health.h"
#include "scaling.h"
#include "auth.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];
static struct config cfg;
static struct app app;

static const char *const policy_text =
    "defaults { default = 4, min = 1, max = 32, max_step = 8 }\n"
    "queue \"alpha\" { }\n"
    "queue \"beta\" { layout = \"bullmq\" }\n"
    "queue \"gamma\" { default = 2, cooldown_s = 30 }\n"
    "alert \"drift\" { severity = \"warning\", for_s = 0,\n"
    "  worker = function(w, q) return w.state == \"mismatch\" end }\n"
    "alert \"backlog\" { severity = \"critical\", for_s = 60,\n"
    "  queue = function(q) return q.depth.waiting > 2 end }\n";

static void path_of(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s", dir, name);
}

/* What the store holds is what was issued: a higher version is forged. */
static int64_t issued(void *ud, const char *queue) {
    struct store_target t;
    int rc = store_get_target(ud, queue, &t);
    return rc == STORE_OK ? t.version : rc == STORE_NOT_FOUND ? 0 : -1;
}

static int setup(void) {
    struct sandbox_limits lim = {16 << 20, 200000};
    struct store_options opt = {1000, 2};
    char path[160], url[180], err[256];
    strcpy(dir, "/tmp/sluice-health-XXXXXX");
    if (mkdtemp(dir) == NULL) return 0;
    path_of(path, sizeof path, "queues.lua");
    FILE *f = fopen(path, "w");
    if (f == NULL) return 0;
    fputs(policy_text, f);
    fclose(f);
    memset(&cfg, 0, sizeof cfg);
    util_copy(cfg.env, sizeof cfg.env, "local");
    path_of(path, sizeof path, "s.db");
    snprintf(url, sizeof url, "sqlite:%s", path);
    /* No bus: Redis counts as down for the snapshot, as with a bus down. */
    app = (struct app){.cfg = &cfg, .st = store_open(url, &opt, err, sizeof err),
                       .pol = policy_new(dir, &lim), .fl = fleet_new(), .alerts = alerts_new(),
                       .health = health_new()};
    if (app.fl) fleet_set_issuer(app.fl, issued, app.st);
    return app.st && app.pol && app.fl && app.alerts && app.health &&
           store_migrate(app.st, NULL) == STORE_OK && policy_reload(app.pol, 1) == 1;
}

static void teardown(void) {
    static const char *const files[] = {"queues.lua", "s.db", "s.db-wal", "s.db-shm", NULL};
    char path[160];
    health_free(app.health);
    alerts_free(app.alerts);
    fleet_free(app.fl);
    telemetry_free(app.telemetry);
    store_close(app.st);
    policy_free(app.pol);
    for (const char *const *n = files; *n; n++) {
        path_of(path, sizeof path, *n);
        unlink(path);
    }
    rmdir(dir);
}

static int set_desired(const char *queue, int64_t to) {
    struct scaling_change c = {.queue = queue, .to = to, .reason = "test", .actor = "alice",
                               .scopes = AUTH_SCOPE_WRITE, .source = "api", .request_id = "rid"};
    struct api_error err = {0};
    struct scaling_outcome o;
    int ok = scaling_set(&app, &c, &o, &err) == 0;
    api_error_clear(&err);
    return ok;
}

static void beat(const char *id, const char *queue, int conc, int version, int64_t at) {
    char buf[512];
    snprintf(buf, sizeof buf,
             "{\"event\":\"heartbeat\",\"worker\":\"%s\",\"queue\":\"%s\",\"concurrency\":%d,"
             "\"version\":%d,\"completed\":10,\"failed\":2,\"interval_ms\":1000,\"agent\":\"t/1\"}",
             id, queue, conc, version);
    fleet_report(app.fl, buf, strlen(buf), at);
}

/* alpha at 6 (version 1, not relayed yet); four alpha workers: one ok, one
 * in mismatch, one reporting a version never issued, one silent. */
static void populate(void) {
    int64_t now = util_mono_ms();
    set_desired("alpha", 6);
    beat("a-ok", "alpha", 6, 1, now);
    beat("b-drift", "alpha", 3, 1, now);
    beat("c-forged", "alpha", 6, 9, now);
    beat("d-gone", "alpha", 6, 1, now - 10000);
}

TEST(one_row_per_declared_queue_with_stored_or_default_targets) {
    ASSERT(setup());
    ASSERT(set_desired("alpha", 6));
    struct health_model *m = health_build(&app);
    ASSERT(m != NULL);
    EXPECT_INT(m->nqueues, 3);
    EXPECT_STR(m->environment, "local");
    EXPECT_INT(m->store, HEALTH_STORE_UP);
    EXPECT_INT(m->writes_enabled, 1);
    EXPECT_INT(m->redis_up, 0);
    EXPECT_INT(m->leader, 1);
    const struct queue_health *a = health_queue(m, "alpha"), *g = health_queue(m, "gamma");
    ASSERT(a && g);
    EXPECT(a->has_target && a->target_shown);
    EXPECT_INT(a->target.desired, 6);
    EXPECT_INT(a->target.version, 1);
    EXPECT_STR(a->target.updated_by, "alice");
    EXPECT_INT(a->unpublished, 1);            /* no relay in this test */
    EXPECT_INT(g->target.desired, 2);          /* never changed: the policy default */
    EXPECT_INT(g->target.version, 0);
    EXPECT_INT(g->bounds.cooldown_s, 30);
    EXPECT_STR(health_queue(m, "beta")->bounds.layout, "bullmq");
    EXPECT(health_queue(m, "nope") == NULL);
    health_release(m);
    teardown();
}

TEST(workers_carry_their_state_and_live_ones_are_summed) {
    ASSERT(setup());
    populate();
    struct health_model *m = health_build(&app);
    ASSERT(m != NULL);
    const struct queue_health *a = health_queue(m, "alpha");
    ASSERT(a != NULL && a->nworkers == 4);
    EXPECT_STR(a->workers[0].id, "a-ok");
    EXPECT_INT(a->workers[0].state, HEALTH_WORKER_OK);
    EXPECT_INT(a->workers[1].state, HEALTH_WORKER_MISMATCH);
    EXPECT_INT(a->workers[2].state, HEALTH_WORKER_INVALID);
    EXPECT_INT(a->workers[3].state, HEALTH_WORKER_STALE);
    EXPECT_STR(a->workers[0].agent, "t/1");
    EXPECT_INT(a->live_workers, 3);
    EXPECT_INT(a->active_concurrency, 6 + 3 + 6);
    EXPECT_INT(a->rates.completed_total, 40);
    EXPECT_INT(a->rates.failed_total, 8);
    /* version 1 is not relayed: pending, and nobody lags behind a relayed one */
    EXPECT_INT(a->pending_updates, 1);
    EXPECT_INT(health_queue(m, "gamma")->nworkers, 0);
    health_release(m);
    teardown();
}

/* ---- a real redis-server for depth ---------------------------------------------- */

static pid_t redis_pid;

static rconn *redis_start(struct rconn_target *t) {
    char port[16], url[64], err[256];
    enum rconn_failure why;
    snprintf(port, sizeof port, "%d", 20000 + (int)(getpid() % 20000));
    snprintf(url, sizeof url, "redis://127.0.0.1:%s", port);
    if (rconn_target_parse(url, NULL, t, err, sizeof err) != 0) return NULL;
    if ((redis_pid = fork()) == 0) {
        if (freopen("/dev/null", "w", stdout) == NULL) _exit(127);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100 && redis_pid > 0; i++) {
        rconn *c = rconn_open(t, 500, &why, err, sizeof err);
        if (c) return c;
        usleep(50000);
    }
    return NULL;
}

static void redis_stop(rconn *c) {
    rconn_free(c);
    if (redis_pid > 0) {
        kill(redis_pid, SIGTERM);
        waitpid(redis_pid, NULL, 0);
    }
    redis_pid = 0;
}

/* One command, its reply dropped (hiredis splits the literal at spaces). */
#define COMMAND(c, ...)                                                       \
    do {                                                                      \
        redisReply *r_ = rconn_command(c, __VA_ARGS__);                       \
        if (r_) freeReplyObject(r_);                                          \
    } while (0)

TEST(depth_comes_from_the_telemetry_cache_in_each_layout) {
    struct rconn_target t;
    char err[256];
    ASSERT(setup());
    rconn *c = redis_start(&t);
    ASSERT(c != NULL);
    app.telemetry = telemetry_new(&t, "sluice", err, sizeof err);
    COMMAND(c, "RPUSH sluice:q:alpha:wait j1 j2 j3 j4");
    COMMAND(c, "RPUSH sluice:q:alpha:active j5");
    COMMAND(c, "SET sluice:q:alpha:failed not-a-list");
    COMMAND(c, "RPUSH bull:beta:wait 1 2");
    COMMAND(c, "RPUSH bull:beta:paused 3");
    COMMAND(c, "ZADD bull:beta:delayed 1 d1");
    telemetry_refresh(app.telemetry, app.pol);
    EXPECT_INT(telemetry_redis_up(app.telemetry), 1);
    struct health_model *m = health_build(&app);
    ASSERT(m != NULL);
    const struct queue_health *a = health_queue(m, "alpha"), *b = health_queue(m, "beta");
    ASSERT(a->has_depth && b->has_depth);
    EXPECT_INT(a->depth.nstates, 4);
    EXPECT_STR(a->depth.state[0], "waiting");
    EXPECT_INT(a->depth.count[0], 4);
    EXPECT_INT(a->depth.count[2], -1);         /* wrong type: unknown */
    EXPECT_STR(a->depth.state[3], "delayed");
    EXPECT_INT(a->depth.failed, 0);
    EXPECT_INT(b->depth.nstates, 8);
    EXPECT_INT(b->depth.waiting, 3);           /* paused counts as waiting */
    EXPECT_INT(b->depth.delayed, 1);
    /* Alert rules see the summary whether or not the bus is up. */
    size_t nq = 0;
    struct policy_alert_queue *qs = health_alert_queues(m, &nq);
    ASSERT(qs != NULL && nq == 3);
    EXPECT_STR(qs[0].queue, "alpha");
    EXPECT_INT(qs[0].waiting, 4);
    EXPECT_INT(qs[0].active, 1);
    EXPECT_INT(qs[1].waiting, 3);
    free(qs);
    /* The snapshot shows depth only while both Redis connections are up:
     * this model is not published, so it may be turned to "up" to render. */
    json_t *j = health_json(m);
    EXPECT(json_is_null(json_object_get(json_array_get(json_object_get(j, "queues"), 0), "depth")));
    json_decref(j);
    m->redis_up = 1;
    j = health_json(m);
    json_t *depth = json_object_get(json_array_get(json_object_get(j, "queues"), 0), "depth");
    EXPECT_INT(json_integer_value(json_object_get(depth, "waiting")), 4);
    EXPECT(json_is_null(json_object_get(depth, "failed")));
    EXPECT_INT(json_integer_value(json_object_get(depth, "delayed")), 0);
    depth = json_object_get(json_array_get(json_object_get(j, "queues"), 1), "depth");
    EXPECT_INT(json_integer_value(json_object_get(depth, "paused")), 1);
    EXPECT_INT(json_object_size(depth), 8);
    json_decref(j);
    health_release(m);
    redis_stop(c);
    teardown();
}

TEST(the_json_renderer_gives_the_snapshot_of_api_md) {
    ASSERT(setup());
    populate();
    health_tick(&app, util_now_ms(), NULL, NULL);          /* drift fires at once (for_s = 0) */
    struct health_model *m = health_acquire(app.health);
    ASSERT(m != NULL);
    json_t *j = health_json(m);
    EXPECT_STR(json_string_value(json_object_get(j, "environment")), "local");
    EXPECT(json_is_true(json_object_get(j, "writes_enabled")));
    EXPECT_STR(json_string_value(json_object_get(j, "redis")), "down");
    EXPECT_STR(json_string_value(json_object_get(j, "store")), "up");
    EXPECT(json_is_true(json_object_get(j, "leader")));
    EXPECT(json_is_string(json_object_get(j, "generated_at")));
    json_t *alpha = json_array_get(json_object_get(j, "queues"), 0);
    EXPECT_STR(json_string_value(json_object_get(alpha, "queue")), "alpha");
    EXPECT_STR(json_string_value(json_object_get(alpha, "layout")), "sluice");
    EXPECT_INT(json_integer_value(json_object_get(alpha, "desired_concurrency")), 6);
    EXPECT_INT(json_integer_value(json_object_get(alpha, "version")), 1);
    EXPECT_INT(json_integer_value(json_object_get(alpha, "worker_count")), 3);
    EXPECT_INT(json_integer_value(json_object_get(alpha, "pending_updates")), 1);
    EXPECT_INT(json_integer_value(json_object_get(json_object_get(alpha, "bounds"), "max")), 32);
    json_t *ws = json_object_get(alpha, "workers");
    ASSERT(json_array_size(ws) == 4);
    EXPECT_STR(json_string_value(json_object_get(json_array_get(ws, 1), "state")), "mismatch");
    EXPECT_STR(json_string_value(json_object_get(json_array_get(ws, 3), "state")), "stale");
    EXPECT(json_integer_value(json_object_get(json_array_get(ws, 3), "last_seen_ms")) >= 10000);
    EXPECT(json_is_null(json_object_get(json_array_get(ws, 0), "error")));
    json_t *rates = json_object_get(alpha, "rates");
    EXPECT_INT(json_integer_value(json_object_get(rates, "completed_total")), 40);
    EXPECT(json_is_real(json_object_get(rates, "window_s")));
    json_t *list = json_object_get(alpha, "alerts");
    ASSERT(json_array_size(list) == 1);
    EXPECT_STR(json_string_value(json_object_get(json_array_get(list, 0), "name")), "drift");
    EXPECT_STR(json_string_value(json_object_get(json_array_get(list, 0), "state")), "firing");
    EXPECT_STR(json_string_value(json_object_get(json_array_get(list, 0), "worker")), "b-drift");
    EXPECT_INT(json_array_size(json_object_get(json_array_get(json_object_get(j, "queues"), 2), "alerts")), 0);
    json_decref(j);
    health_release(m);
    teardown();
}

TEST(the_metrics_renderer_reads_the_same_model) {
    size_t len = 0;
    ASSERT(setup());
    populate();
    health_tick(&app, util_now_ms(), NULL, NULL);
    metrics *mx = metrics_new();
    struct health_model *m = health_acquire(app.health);
    ASSERT(m && mx);
    char *text = metrics_render_model(mx, m, 2, &len);
    ASSERT(text != NULL);
    EXPECT_CONTAINS(text, "sluice_desired_concurrency{queue=\"alpha\"} 6\n");
    EXPECT_CONTAINS(text, "sluice_desired_concurrency{queue=\"gamma\"} 2\n");
    EXPECT_CONTAINS(text, "sluice_actual_concurrency{queue=\"alpha\"} 15\n");
    EXPECT_CONTAINS(text, "sluice_workers{queue=\"alpha\"} 3\n");
    EXPECT_CONTAINS(text, "sluice_workers_by_state{queue=\"alpha\",state=\"invalid\"} 1\n");
    EXPECT_CONTAINS(text, "sluice_workers_by_state{queue=\"beta\",state=\"stale\"} 0\n");
    EXPECT_CONTAINS(text, "sluice_jobs_completed_total{queue=\"alpha\"} 40\n");
    EXPECT_CONTAINS(text, "sluice_pending_updates{queue=\"alpha\"} 1\n");
    EXPECT_CONTAINS(text, "sluice_alert_firing{alert=\"drift\",queue=\"alpha\",worker=\"b-drift\"} 1\n");
    EXPECT(strstr(text, "sluice_queue_depth{") == NULL);   /* Redis down: no depth samples */
    EXPECT_CONTAINS(text, "sluice_event_streams 2\n");
    EXPECT_CONTAINS(text, "sluice_redis_up 0\n");
    EXPECT_CONTAINS(text, "sluice_store_up 1\n");
    free(text);
    health_release(m);
    metrics_free(mx);
    teardown();
}

TEST(a_published_model_is_shared_and_an_older_build_never_replaces_it) {
    ASSERT(setup());
    EXPECT(health_acquire(app.health) == NULL);
    struct health_model *older = health_build(&app), *newer = health_build(&app);
    ASSERT(older && newer && older->seq < newer->seq);
    health_publish(app.health, newer);
    health_publish(app.health, older);         /* finished late: ignored */
    struct health_model *cur = health_acquire(app.health);
    EXPECT(cur == newer);
    uint64_t seq = newer->seq;
    health_release(cur);
    health_release(older);
    health_release(newer);                     /* the publisher still holds it */
    cur = health_rebuild(&app);
    EXPECT(cur != NULL && cur->seq > seq);
    struct health_model *again = health_acquire(app.health);
    EXPECT(again == cur);
    health_release(again);
    health_release(cur);
    health_release(NULL);
    teardown();                                /* health_free releases the last */
}

static int renders;

static struct body *count_render(const struct health_model *m, size_t index, void *ud) {
    const char *name = m->queues[index].name;
    (void)ud;
    renders++;
    return body_new(name, strlen(name), "text/plain");
}

TEST(a_body_is_rendered_once_per_model_and_kept_with_it) {
    ASSERT(setup());
    struct health_model *m = health_build(&app);
    ASSERT(m != NULL && m->nqueues == 3);
    renders = 0;
    struct body *a = health_body(m, HEALTH_BODY_TARGET, 1, count_render, NULL);
    struct body *b = health_body(m, HEALTH_BODY_TARGET, 1, count_render, NULL);
    ASSERT(a != NULL);
    EXPECT(a == b);
    EXPECT_INT(renders, 1);
    EXPECT_STR(a->bytes, "beta");
    EXPECT(health_body(m, HEALTH_BODY_TARGET, 3, count_render, NULL) == NULL);   /* no such queue */
    body_release(a);
    body_release(b);
    /* The snapshot body is health_json's answer, byte for byte. */
    struct body *snap = health_snapshot_body(m);
    json_t *j = health_json(m);
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    ASSERT(snap && text);
    EXPECT_STR(snap->bytes, text);
    free(text);
    json_decref(j);
    /* Another model renders its own, with the same ETag for the same bytes. */
    struct health_model *m2 = health_build(&app);
    struct body *c = health_body(m2, HEALTH_BODY_TARGET, 1, count_render, NULL);
    EXPECT_INT(renders, 2);
    ASSERT(c != NULL);
    EXPECT_STR(c->etag, health_body(m, HEALTH_BODY_TARGET, 1, count_render, NULL)->etag);
    body_release(c);
    body_release(a);                           /* the extra reference just taken */
    health_release(m2);
    health_release(m);                         /* frees the bodies it kept */
    body_release(snap);
    teardown();
}

/* A token limited to queues: its snapshot holds those only, kept with the
 * model per pattern string; every queue: the model's own body. */
TEST(a_snapshot_limited_to_queues_is_kept_per_pattern_string) {
    ASSERT(setup());
    populate();
    struct health_model *m = health_build(&app);
    ASSERT(m != NULL);
    struct body *all = health_snapshot_body_for(m, "");
    struct body *own = health_snapshot_body(m);
    EXPECT(all == own && all != NULL);
    body_release(own);
    struct body *a = health_snapshot_body_for(m, "alpha");
    struct body *a2 = health_snapshot_body_for(m, "alpha");
    struct body *bg = health_snapshot_body_for(m, "b*,gamma");
    ASSERT(a != NULL && bg != NULL);
    EXPECT(a == a2);                           /* rendered once for this model */
    EXPECT(a != all);
    EXPECT_INT((int)m->nscoped, 2);
    json_t *ja = json_loadb(a->bytes, a->len, 0, NULL), *jb = json_loadb(bg->bytes, bg->len, 0, NULL);
    ASSERT(ja && jb);
    EXPECT_INT((int)json_array_size(json_object_get(ja, "queues")), 1);
    EXPECT_STR(json_string_value(json_object_get(json_array_get(json_object_get(ja, "queues"), 0), "queue")), "alpha");
    /* alpha's workers and alerts go with it. */
    EXPECT(strstr(a->bytes, "b-drift") != NULL);
    EXPECT(strstr(bg->bytes, "b-drift") == NULL && strstr(bg->bytes, "\"alpha\"") == NULL);
    EXPECT_INT((int)json_array_size(json_object_get(jb, "queues")), 2);
    /* The same tree health_snapshot_for gives, and as the text filter cuts it. */
    json_t *tree = health_snapshot_for(&app, "alpha");
    EXPECT_INT((int)json_array_size(json_object_get(tree, "queues")), 1);
    size_t n = 0;
    char *cut = health_scope_text(all->bytes, all->len, "alpha", &n);
    ASSERT(cut != NULL);
    json_t *jc = json_loadb(cut, n, 0, NULL);
    EXPECT_INT((int)json_array_size(json_object_get(jc, "queues")), 1);
    EXPECT(health_scope_text("not json", 8, "alpha", &n) == NULL);
    free(cut);
    json_decref(jc);
    json_decref(tree);
    json_decref(ja);
    json_decref(jb);
    body_release(a);
    body_release(a2);
    body_release(bg);
    body_release(all);
    health_release(m);                         /* frees what it kept */
    teardown();
}

TEST(a_read_takes_the_published_model_until_a_change_or_its_age_says_otherwise) {
    ASSERT(setup());
    struct health_model *first = health_current(&app);
    ASSERT(first != NULL);
    struct health_model *same = health_current(&app);
    EXPECT(same == first);                     /* fresh: shared, not rebuilt */
    health_release(same);
    /* An announced change: the next read builds a model that has it. */
    ASSERT(set_desired("gamma", 3));
    health_changed(app.health);
    struct health_model *after = health_current(&app);
    ASSERT(after != NULL);
    EXPECT(after != first && after->seq > first->seq);
    EXPECT_INT(health_queue(after, "gamma")->target.version, 1);
    EXPECT_INT(health_take_changed(app.health), 1);   /* the ticker still hears of it */
    /* Older than HEALTH_FRESH_MS: rebuilt for the read. */
    usleep((HEALTH_FRESH_MS + 20) * 1000);
    struct health_model *aged = health_current(&app);
    EXPECT(aged != after);
    health_release(aged);
    health_release(after);
    health_release(first);
    teardown();
}

TEST(the_metrics_body_is_the_exposition_with_an_etag) {
    ASSERT(setup());
    metrics *mx = metrics_new();
    struct health_model *m = health_build(&app);
    size_t len = 0;
    ASSERT(mx && m);
    char *text = metrics_render_model(mx, m, 2, &len);
    struct body *b = metrics_body(mx, m, 2);
    ASSERT(text && b);
    EXPECT_INT(b->len, len);
    EXPECT(memcmp(b->bytes, text, len) == 0);
    EXPECT_STR(b->content_type, METRICS_CONTENT_TYPE);
    /* Only the counters are hashed per request: the ETag of the whole all the same. */
    struct body *whole = body_new(text, len, METRICS_CONTENT_TYPE);
    ASSERT(whole != NULL);
    EXPECT_STR(b->etag, whole->etag);
    body_release(whole);
    metrics_observe_request(mx, "/x", 200, 0.001);
    struct body *b2 = metrics_body(mx, m, 2);
    ASSERT(b2 != NULL);
    EXPECT(strcmp(b->etag, b2->etag) != 0);     /* a counter moved: another body */
    body_release(b2);
    body_release(b);
    free(text);
    health_release(m);
    metrics_free(mx);
    teardown();
}

/* ---- the snapshot written in place ---------------------------------------------- */

/* A model built by hand with everything the snapshot can show: strings to
 * escape, empty and long errors (rows larger than the writer's estimate,
 * so the body grows), alerts with and without a worker, a depth count of
 * the wrong type, a queue without workers or a shown target, the store
 * full and the writes flag unknown. */
struct hand_model {
    struct health_model m;
    struct queue_health q[3];
    struct health_worker w[300];
    struct alerts_state al[2];
    char ids[300][40], errors[300][260];
};

static void hand_model_init(struct hand_model *h) {
    memset(h, 0, sizeof *h);
    atomic_init(&h->m.refs, 1);
    util_copy(h->m.environment, sizeof h->m.environment, "pro\"d\\é");
    h->m.built_at_ms = 1767225600123;
    h->m.built_mono_ms = 50000;
    h->m.store = HEALTH_STORE_FULL;
    h->m.writes_enabled = -1;
    h->m.redis_up = 1;
    h->m.queues = h->q;
    h->m.nqueues = 3;
    for (size_t i = 0; i < 3; i++) {
        struct queue_health *q = &h->q[i];
        snprintf(q->name, sizeof q->name, "queue-%zu", i);
        q->bounds = (struct policy_bounds){.def = 4, .min = 1, .max = 64, .max_step = 8,
                                           .confirm_above = -1, .layout = "sluice"};
        q->has_target = q->target_shown = i != 1;
        q->target.desired = 6;
        q->target.version = 3;
        q->pending_updates = (int64_t)i;
        q->rates = (struct fleet_rates){.completed_per_s = 2.5, .failed_per_s = 0.1 * (double)i,
                                        .window_s = 60, .completed_total = 1000, .failed_total = 7};
    }
    /* An override running past its end, bounds it lies outside, and the
     * audit figures behind a cooldown and a spent budget. */
    h->m.built_at_ms = 1767225600000;
    h->q[0].target.expires_at_ms = 1767229200000;
    h->q[0].target.revert_to = 4;
    h->q[0].has_recent = 1;
    h->q[0].bounds.cooldown_s = 60;
    h->q[0].bounds.changes_per_hour = 2;
    h->q[0].recent = (struct policy_recent){2, 1767223000000, 1767225590000};
    h->q[2].target.desired = 70;
    h->q[2].has_recent = 1;
    h->m.writes_set = 1;
    snprintf(h->m.writes_by, sizeof h->m.writes_by, "alice");
    h->m.writes_at_ms = 1767225000000;
    snprintf(h->m.writes_reason, sizeof h->m.writes_reason, "freeze \"for\" the release");
    h->m.policy = json_pack("{s:s, s:[s], s:[{s:s, s:s, s:s, s:s}], s:n}", "sha256", "ab12",
                            "files", "queues.lua", "failing_rules", "alert", "drift", "queue",
                            "queue-0", "error", "attempt to index a nil value", "at",
                            "2026-01-01T00:00:00.000Z", "last_error");
    h->q[0].has_depth = 1;
    h->q[0].depth = (struct telemetry_depth){.nstates = 4, .state = {"waiting", "active", "failed", "delayed"},
                                             .count = {12, 3, -1, 0}};
    h->q[0].workers = h->w;
    h->q[0].nworkers = 3;
    h->q[2].workers = h->w + 3;
    h->q[2].nworkers = 297;
    for (size_t k = 0; k < 300; k++) {
        snprintf(h->ids[k], sizeof h->ids[k], "host-%03zu/worker \"%zu\"", k % 7, k);
        h->w[k] = (struct health_worker){.id = h->ids[k], .agent = k % 2 ? "libsluice/0.2.0" : "",
                                         .error = "", .concurrency = (int64_t)k % 9, .version = 3,
                                         .active = (int64_t)k % 4, .last_seen_ms = 50000 - (int64_t)k,
                                         .state = (enum health_worker_state)(k % 4),
                                         .host = k % 3 ? "build-host-\"7\"" : "", .pid = (int64_t)k % 5 * 1000,
                                         .first_seen_ms = 1000 + (int64_t)k,
                                         .completed_per_s = 0.5 * (double)k, .failed_per_s = k % 2 ? 0.125 : 0};
        if (k % 2 == 0) {
            memset(h->errors[k], 'x', 250);
            snprintf(h->errors[k] + 250, 10, "\n\"\t\xe2\x82\xac");
            h->w[k].error = h->errors[k];
        }
    }
    h->al[0] = (struct alerts_state){.hit = {.alert = "drift", .queue = "queue-0", .worker = "host-000/worker \"0\"",
                                             .severity = "warning", .message = "a \"quoted\" message"},
                                     .firing = 1, .since_ms = 1767225000000};
    h->al[1] = (struct alerts_state){.hit = {.alert = "backlog", .queue = "queue-0", .severity = "critical",
                                             .message = "waiting > 2"},
                                     .since_ms = 1767225500000};
    h->m.alerts = h->al;
    h->m.nalerts = 2;
    h->q[0].alerts = h->al;
    h->q[0].nalerts = 2;
}

TEST(the_snapshot_written_in_place_is_the_dump_of_the_json_tree) {
    struct hand_model *h = malloc(sizeof *h);
    ASSERT(h != NULL);
    for (int variant = 0; variant < 2; variant++) {
        hand_model_init(h);
        if (variant == 1) {                    /* the other values of the top level */
            h->m.store = HEALTH_STORE_DOWN;
            h->m.writes_enabled = 0;
            h->m.redis_up = 0;
            h->m.leader = 1;
            h->m.nqueues = 0;
        }
        pthread_mutex_init(&h->m.render_lock, NULL);
        json_t *tree = health_json(&h->m);
        char *text = json_dumps(tree, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        struct body *b = health_snapshot_body(&h->m);
        ASSERT(tree && text && b);
        EXPECT_INT(b->len, strlen(text));
        EXPECT(memcmp(b->bytes, text, b->len) == 0);
        if (variant == 0) EXPECT(b->len > 256 + 3 * 1536 + 300 * 384);   /* outgrew its first room */
        struct body *again = health_snapshot_body(&h->m);
        EXPECT(again == b);                    /* kept with the model */
        body_release(again);
        body_release(b);
        body_release(atomic_load(&h->m.bodies[HEALTH_BODY_SNAPSHOT]));
        pthread_mutex_destroy(&h->m.render_lock);
        if (variant == 0) {                    /* the fields issue 17 added, as the UI reads them */
            json_t *q0 = json_array_get(json_object_get(tree, "queues"), 0);
            json_t *cw = json_object_get(q0, "change_window");
            EXPECT_INT(json_integer_value(json_object_get(cw, "cooldown_remaining_s")), 50);
            EXPECT_INT(json_integer_value(json_object_get(cw, "budget_left")), 0);
            EXPECT_INT(json_integer_value(json_object_get(cw, "reachable_max")), 14);
            EXPECT(json_is_false(json_object_get(q0, "out_of_bounds")));
            EXPECT_INT(json_integer_value(json_object_get(q0, "revert_to")), 4);
            json_t *q2 = json_array_get(json_object_get(tree, "queues"), 2);
            EXPECT(json_is_true(json_object_get(q2, "out_of_bounds")));
            json_t *q1 = json_array_get(json_object_get(tree, "queues"), 1);   /* row not shown */
            EXPECT(json_is_null(json_object_get(q1, "out_of_bounds")));
            EXPECT(json_is_null(json_object_get(q1, "change_window")));
            json_t *w1 = json_array_get(json_object_get(q0, "workers"), 1);
            EXPECT_INT(json_integer_value(json_object_get(w1, "pid")), 1000);
            EXPECT_STR(json_string_value(json_object_get(w1, "host")), "build-host-\"7\"");
            EXPECT_STR(json_string_value(json_object_get(json_object_get(tree, "writes"), "updated_by")), "alice");
            EXPECT_INT(json_array_size(json_object_get(json_object_get(tree, "policy"), "failing_rules")), 1);
        }
        json_decref(h->m.policy);
        free(text);
        json_decref(tree);
    }
    free(h);
}

TEST(a_worker_keeps_only_its_own_strings) {
    ASSERT(setup());
    int64_t now = util_mono_ms();
    const char *clamped = "{\"event\":\"heartbeat\",\"worker\":\"e-1\",\"queue\":\"beta\",\"concurrency\":2,"
                          "\"version\":0,\"interval_ms\":1000,\"agent\":\"\",\"error\":\"clamped to 2\"}";
    fleet_report(app.fl, clamped, strlen(clamped), now);
    beat("e-2", "beta", 4, 0, now);
    struct health_model *m = health_build(&app);
    ASSERT(m != NULL);
    const struct queue_health *b = health_queue(m, "beta");
    ASSERT(b != NULL && b->nworkers == 2);
    EXPECT_STR(b->workers[0].id, "e-1");
    EXPECT_STR(b->workers[0].agent, "");
    EXPECT_STR(b->workers[0].error, "clamped to 2");
    EXPECT_STR(b->workers[1].id, "e-2");
    EXPECT_STR(b->workers[1].agent, "t/1");
    EXPECT_STR(b->workers[1].error, "");
    /* Every string lies in the queue's one block, but the empty ones. */
    EXPECT(b->workers[0].id >= b->strings && b->workers[1].agent > b->workers[0].error);
    EXPECT(health_queue(m, "gamma")->strings == NULL);
    health_release(m);
    teardown();
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    RUN(one_row_per_declared_queue_with_stored_or_default_targets);
    RUN(workers_carry_their_state_and_live_ones_are_summed);
    RUN(depth_comes_from_the_telemetry_cache_in_each_layout);
    RUN(the_json_renderer_gives_the_snapshot_of_api_md);
    RUN(the_metrics_renderer_reads_the_same_model);
    RUN(a_published_model_is_shared_and_an_older_build_never_replaces_it);
    RUN(a_body_is_rendered_once_per_model_and_kept_with_it);
    RUN(a_snapshot_limited_to_queues_is_kept_per_pattern_string);
    RUN(a_read_takes_the_published_model_until_a_change_or_its_age_says_otherwise);
    RUN(the_metrics_body_is_the_exposition_with_an_etag);
    RUN(the_snapshot_written_in_place_is_the_dump_of_the_json_tree);
    RUN(a_worker_keeps_only_its_own_strings);
    return UNIT_DONE();
}
