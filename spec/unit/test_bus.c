/* test_bus.c — the outbox relay and the report subscriber of bus.h against a
 * real, private redis-server (started here on a free 127.0.0.1 port without
 * persistence, killed at the end) and a SQLite store: rows relayed in order
 * with their version and marked published, nothing written before bus_open,
 * the desired hash rewritten from the database (at start, after FLUSHALL,
 * after a Redis restart, on bus_resync) and never moved backwards, the
 * fence and the owner claim, alerts out and reports in.
 *
 * The bus is driven through bus.h only; rows are made through store.h, and
 * the test reads Redis over a hiredis connection of its own. */
#include "unit.h"
#include "bus.h"
#include "log.h"

#include <hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const struct sandbox_limits limits = {16 << 20, 200000};

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Poll cond every 20 ms for up to ms; the caller then checks it. */
#define WAIT_UNTIL(cond, ms)                                                  \
    for (int64_t until_ = util_mono_ms() + (ms); !(cond) && util_mono_ms() < until_;) sleep_ms(20)

/* ---- a private redis-server -------------------------------------------------------- */

static int redis_port;
static pid_t redis_pid;
static redisContext *rd;         /* the test's own connection */

static int free_port(void) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int s = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(s, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    if (s >= 0) close(s);
    return port;
}

/* A connection to the private server, or NULL. */
static redisContext *redis_connect(void) {
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
    if (c && c->err) {
        redisFree(c);
        return NULL;
    }
    if (c) redisSetTimeout(c, tv);
    return c;
}

/* Start redis-server on redis_port (empty, nothing saved) and connect rd. */
static int redis_start(void) {
    char port[16];
    snprintf(port, sizeof port, "%d", redis_port);
    redis_pid = fork();
    if (redis_pid < 0) return -1;
    if (redis_pid == 0) {
        freopen("/dev/null", "w", stdout);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 250 && rd == NULL; i++) {
        sleep_ms(20);
        rd = redis_connect();
    }
    return rd ? 0 : -1;
}

static void redis_stop(void) {
    if (rd) redisFree(rd);
    rd = NULL;
    if (redis_pid > 0) {
        kill(redis_pid, SIGTERM);
        waitpid(redis_pid, NULL, 0);
    }
    redis_pid = 0;
}

/* One command's answer as text ("" for nil, "ERR ..." for an error). */
static const char *cmd(const char *fmt, ...) {
    static char out[1024];
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = rd ? redisvCommand(rd, fmt, ap) : NULL;
    va_end(ap);
    out[0] = '\0';
    if (r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR))
        snprintf(out, sizeof out, "%s%s", r->type == REDIS_REPLY_ERROR ? "ERR " : "", r->str);
    else if (r && r->type == REDIS_REPLY_INTEGER)
        snprintf(out, sizeof out, "%lld", r->integer);
    freeReplyObject(r);
    return out;
}

/* A new connection subscribed to channel, or NULL. */
static redisContext *subscribe(const char *channel) {
    redisContext *c = redis_connect();
    redisReply *r = c ? redisCommand(c, "SUBSCRIBE %s", channel) : NULL;
    int ok = r && r->type == REDIS_REPLY_ARRAY;
    freeReplyObject(r);
    if (!ok && c) redisFree(c);
    return ok ? c : NULL;
}

/* The next message's payload (malloc'd), or NULL after 2 s without one. */
static char *next_message(redisContext *c) {
    redisReply *r = NULL;
    char *out = NULL;
    if (c && redisGetReply(c, (void **)&r) == REDIS_OK && r && r->type == REDIS_REPLY_ARRAY &&
        r->elements == 3 && r->element[2]->type == REDIS_REPLY_STRING)
        out = strdup(r->element[2]->str);
    freeReplyObject(r);
    return out;
}

/* ---- one store, policy, fleet and bus ----------------------------------------------------- */

struct rig {
    char dir[64], db_url[160], prefix[32], key[64];
    char owner[STORE_IDENTITY_MAX + 1];
    store *st;
    policy *pol;
    fleet *fl;
    leader *ld;
    struct rconn_target redis;
    bus *b;
};

static void put_file(const struct rig *g, const char *name, const char *text) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", g->dir, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* A migrated store, a policy declaring alpha and beta, a fleet, and a
 * prefix of its own; with_leader: a leader with an epoch (SQLite: always
 * leads), else none (epoch 0). Returns 0 or -1. */
static int rig_up(struct rig *g, int with_leader) {
    static int serial;
    struct store_options opt = {5000, 2};
    char err[256];
    memset(g, 0, sizeof *g);
    strcpy(g->dir, "/tmp/sluice-bus-XXXXXX");
    if (mkdtemp(g->dir) == NULL) return -1;
    snprintf(g->db_url, sizeof g->db_url, "sqlite:%s/s.db", g->dir);
    snprintf(g->prefix, sizeof g->prefix, "t%d", ++serial);
    put_file(g, "queues.lua",
             "defaults { default = 4, min = 0, max = 100 }\n"
             "queue \"alpha\" { max = 100 }\n"
             "queue \"beta\" { max = 100 }\n");
    snprintf(err, sizeof err, "redis://127.0.0.1:%d", redis_port);
    if (rconn_target_parse(err, NULL, &g->redis, err, sizeof err) != 0) return -1;
    if ((g->st = store_open(g->db_url, &opt, err, sizeof err)) == NULL) return -1;
    if (store_migrate(g->st, NULL) != STORE_OK || store_identity(g->st, g->owner) != STORE_OK) return -1;
    if ((g->pol = policy_new(g->dir, &limits)) == NULL || policy_reload(g->pol, 1) != 1) return -1;
    if ((g->fl = fleet_new()) == NULL) return -1;
    if (with_leader && (g->ld = leader_start(g->db_url, 2000, err, sizeof err)) == NULL) return -1;
    return 0;
}

static struct bus_options rig_options(struct rig *g, int take_over) {
    struct bus_options o = {&g->redis, g->prefix, g->owner, take_over, g->st, g->pol, g->fl, g->ld};
    return o;
}

static bus *rig_bus(struct rig *g, int take_over) {
    char err[256];
    struct bus_options o = rig_options(g, take_over);
    g->b = bus_start(&o, err, sizeof err);
    if (g->b == NULL) printf("#   bus_start: %s\n", err);
    return g->b;
}

static void rig_down(struct rig *g) {
    char path[160];
    bus_stop(g->b);
    leader_stop(g->ld);
    fleet_free(g->fl);
    policy_free(g->pol);
    store_close(g->st);
    static const char *const files[] = {"s.db", "s.db-wal", "s.db-shm", "queues.lua", "more.lua", NULL};
    for (const char *const *f = files; *f; f++) {
        snprintf(path, sizeof path, "%s/%s", g->dir, *f);
        unlink(path);
    }
    rmdir(g->dir);
}

/* Redis key or channel <prefix>:<name>. */
static const char *key(struct rig *g, const char *name) {
    snprintf(g->key, sizeof g->key, "%s:%s", g->prefix, name);
    return g->key;
}

static int accept_judge(void *ud, const struct store_target *cur, const struct store_stats *stats,
                        char code[STORE_CODE_MAX]) {
    (void)ud;
    (void)cur;
    (void)stats;
    (void)code;
    return 1;
}

/* Commit a change of queue to `to`; its version, or -1. */
static int64_t change(struct rig *g, const char *queue, int64_t to) {
    struct store_change c = {.queue = queue, .to = to, .default_value = 4, .actor = "alice", .source = "api",
                              .reason = "test", .request_id = "rid", .now_ms = util_now_ms()};
    struct store_change_result r;
    if (store_apply_change(g->st, &c, accept_judge, NULL, &r) != STORE_OK) return -1;
    return r.target.version;
}

static long pending(struct rig *g) {
    struct store_outbox *rows = NULL;
    size_t n = 0;
    int rc = store_outbox_pending(g->st, 1000, &rows, &n);
    free(rows);
    return rc == STORE_OK ? (long)n : -1;
}

/* The desired entry of queue in Redis: 1 with its fields, 0 when absent. */
static int desired(struct rig *g, const char *queue, int64_t *concurrency, int64_t *version) {
    const char *text = cmd("HGET %s %s", key(g, "desired"), queue);
    json_t *j = text[0] ? json_loads(text, 0, NULL) : NULL;
    *concurrency = *version = -1;
    if (j == NULL) return 0;
    *concurrency = json_integer_value(json_object_get(j, "concurrency"));
    *version = json_integer_value(json_object_get(j, "version"));
    json_decref(j);
    return 1;
}

static int64_t desired_version(struct rig *g, const char *queue) {
    int64_t c, v;
    return desired(g, queue, &c, &v) ? v : -1;
}

/* A JSON field of a payload as text ("" when absent or not a string). */
static const char *field(json_t *j, const char *name) {
    const char *v = json_string_value(json_object_get(j, name));
    return v ? v : "";
}

/* ---- before the relay may write ------------------------------------------------------ */

TEST(preflight_accepts_a_free_or_own_prefix_and_refuses_another_stores) {
    struct rig g;
    char err[512] = "";
    ASSERT(rig_up(&g, 0) == 0);
    struct bus_options o = rig_options(&g, 0);
    EXPECT_INT(bus_preflight(&o, err, sizeof err), 0);
    EXPECT_STR(cmd("EXISTS %s", key(&g, "owner")), "0");          /* it only reads */
    cmd("SET %s %s", key(&g, "owner"), g.owner);
    EXPECT_INT(bus_preflight(&o, err, sizeof err), 0);
    cmd("SET %s %s", key(&g, "owner"), "another-store");
    EXPECT_INT(bus_preflight(&o, err, sizeof err), -1);
    EXPECT_CONTAINS(err, "another-store");
    EXPECT_CONTAINS(err, g.prefix);
    o.take_over = 1;
    EXPECT_INT(bus_preflight(&o, err, sizeof err), 0);
    EXPECT_STR(cmd("GET %s", key(&g, "owner")), "another-store");  /* taken over later, by the relay */
    /* Redis unreachable now is not an error: the relay claims it when it answers. */
    struct rconn_target down = g.redis;
    down.port = free_port();
    o.redis = &down;
    o.take_over = 0;
    EXPECT_INT(bus_preflight(&o, err, sizeof err), 0);
    rig_down(&g);
}

TEST(relay_writes_nothing_before_bus_open) {
    struct rig g;
    int64_t c, v;
    ASSERT(rig_up(&g, 0) == 0);
    ASSERT(change(&g, "alpha", 7) == 1);
    ASSERT(rig_bus(&g, 0) != NULL);
    bus_kick(g.b);
    sleep_ms(700);
    EXPECT_STR(cmd("EXISTS %s", key(&g, "owner")), "0");
    EXPECT_STR(cmd("EXISTS %s", key(&g, "desired")), "0");
    EXPECT_INT(pending(&g), 1);
    EXPECT_INT(bus_redis_up(g.b), 0);
    bus_open(g.b);
    WAIT_UNTIL(pending(&g) == 0 && desired_version(&g, "beta") == 0, 5000);
    EXPECT_INT(pending(&g), 0);
    EXPECT_STR(cmd("GET %s", key(&g, "owner")), g.owner);           /* claimed on first write */
    EXPECT(desired(&g, "alpha", &c, &v) && c == 7 && v == 1);
    EXPECT(desired(&g, "beta", &c, &v) && c == 4 && v == 0);       /* never changed: the default */
    WAIT_UNTIL(bus_redis_up(g.b), 3000);
    EXPECT_INT(bus_redis_up(g.b), 1);
    rig_down(&g);
}

/* ---- the relay ------------------------------------------------------------------------------ */

TEST(relay_publishes_outbox_rows_in_order_with_their_version_and_marks_them) {
    struct rig g;
    char *msgs[6] = {NULL};
    ASSERT(rig_up(&g, 0) == 0);
    ASSERT(rig_bus(&g, 0) != NULL);
    bus_open(g.b);
    WAIT_UNTIL(desired_version(&g, "alpha") == 0, 5000);           /* the first rewrite is done */
    redisContext *sub = subscribe(key(&g, "scaling"));
    ASSERT(sub != NULL);
    for (int i = 0; i < 5; i++) EXPECT_INT(change(&g, "alpha", 10 + i), i + 1);
    EXPECT_INT(change(&g, "beta", 20), 1);
    bus_kick(g.b);
    WAIT_UNTIL(pending(&g) == 0, 5000);
    EXPECT_INT(pending(&g), 0);
    int64_t next_alpha = 1;
    for (int i = 0; i < 6; i++) {
        msgs[i] = next_message(sub);
        json_t *j = msgs[i] ? json_loads(msgs[i], 0, NULL) : NULL;
        if (j == NULL) {
            UNIT_FAIL("message %d: %s", i, msgs[i] ? msgs[i] : "none");
            continue;
        }
        int64_t version = json_integer_value(json_object_get(j, "version"));
        int64_t conc = json_integer_value(json_object_get(j, "concurrency"));
        EXPECT(field(j, "at")[0] != '\0');
        if (strcmp(field(j, "queue"), "alpha") == 0) {
            EXPECT_INT(version, next_alpha);                        /* in commit order */
            EXPECT_INT(conc, 9 + next_alpha);
            next_alpha++;
        } else {
            EXPECT_STR(field(j, "queue"), "beta");
            EXPECT(version == 1 && conc == 20);
        }
        json_decref(j);
    }
    EXPECT_INT(next_alpha, 6);
    /* The hash holds what was published last. */
    if (msgs[5] && strstr(msgs[5], "\"alpha\"")) EXPECT_STR(cmd("HGET %s alpha", key(&g, "desired")), msgs[5]);
    EXPECT_INT(desired_version(&g, "alpha"), 5);
    for (int i = 0; i < 6; i++) free(msgs[i]);
    redisFree(sub);
    rig_down(&g);
}

TEST(desired_hash_never_moves_a_queue_backwards) {
    struct rig g;
    int64_t c, v;
    ASSERT(rig_up(&g, 0) == 0);
    ASSERT(change(&g, "alpha", 7) == 1 && change(&g, "alpha", 8) == 2);
    /* Redis already has a newer version than anything in the database. */
    cmd("HSET %s alpha %s", key(&g, "desired"), "{\"queue\":\"alpha\",\"concurrency\":42,\"version\":5,\"at\":\"x\"}");
    ASSERT(rig_bus(&g, 0) != NULL);
    bus_open(g.b);
    WAIT_UNTIL(pending(&g) == 0 && desired_version(&g, "beta") == 0, 5000);
    EXPECT_INT(pending(&g), 0);                                     /* sent, refused as older: done */
    EXPECT(desired(&g, "alpha", &c, &v) && c == 42 && v == 5);      /* neither the rows nor the rewrite */
    rig_down(&g);
}

TEST(emptied_redis_is_refilled_from_the_database) {
    struct rig g;
    int64_t c, v;
    ASSERT(rig_up(&g, 0) == 0);
    ASSERT(rig_bus(&g, 0) != NULL);
    bus_open(g.b);
    ASSERT(change(&g, "alpha", 9) == 1);
    bus_kick(g.b);
    WAIT_UNTIL(pending(&g) == 0 && desired_version(&g, "alpha") == 1, 5000);
    ASSERT(desired_version(&g, "alpha") == 1);
    EXPECT_STR(cmd("FLUSHALL"), "OK");
    WAIT_UNTIL(desired_version(&g, "alpha") == 1 && desired_version(&g, "beta") == 0, 5000);
    EXPECT(desired(&g, "alpha", &c, &v) && c == 9 && v == 1);
    EXPECT(desired(&g, "beta", &c, &v) && c == 4 && v == 0);
    EXPECT_STR(cmd("GET %s", key(&g, "owner")), g.owner);           /* claimed again */
    rig_down(&g);
}

TEST(rows_wait_while_redis_is_down_and_go_out_when_it_returns) {
    struct rig g;
    int64_t c, v;
    ASSERT(rig_up(&g, 0) == 0);
    ASSERT(rig_bus(&g, 0) != NULL);
    bus_open(g.b);
    WAIT_UNTIL(bus_redis_up(g.b), 5000);
    ASSERT(bus_redis_up(g.b));
    redis_stop();
    WAIT_UNTIL(!bus_redis_up(g.b), 5000);
    EXPECT_INT(bus_redis_up(g.b), 0);
    for (int i = 0; i < 3; i++) EXPECT_INT(change(&g, "alpha", 5 + i), i + 1);
    bus_kick(g.b);
    sleep_ms(300);
    EXPECT_INT(pending(&g), 3);                                     /* none lost */
    ASSERT(redis_start() == 0);                                     /* back, and empty */
    WAIT_UNTIL(pending(&g) == 0 && desired_version(&g, "alpha") == 3 && desired_version(&g, "beta") == 0, 5000);
    EXPECT_INT(pending(&g), 0);
    EXPECT(desired(&g, "alpha", &c, &v) && c == 7 && v == 3);
    EXPECT_INT(desired_version(&g, "beta"), 0);
    EXPECT_STR(cmd("GET %s", key(&g, "owner")), g.owner);
    WAIT_UNTIL(bus_redis_up(g.b), 3000);
    EXPECT_INT(bus_redis_up(g.b), 1);
    rig_down(&g);
}

TEST(resync_writes_queues_declared_since) {
    struct rig g;
    int64_t c, v;
    ASSERT(rig_up(&g, 0) == 0);
    ASSERT(rig_bus(&g, 0) != NULL);
    bus_open(g.b);
    WAIT_UNTIL(desired_version(&g, "beta") == 0, 5000);
    EXPECT_INT(desired_version(&g, "gamma"), -1);
    put_file(&g, "more.lua", "queue \"gamma\" { default = 6, max = 100 }\n");
    ASSERT(policy_reload(g.pol, 1) == 1);
    bus_resync(g.b);
    WAIT_UNTIL(desired_version(&g, "gamma") == 0, 5000);
    EXPECT(desired(&g, "gamma", &c, &v) && c == 6 && v == 0);
    rig_down(&g);
}

/* ---- fencing and ownership ---------------------------------------------------------------- */

TEST(fenced_write_refuses_a_leader_below_the_fence) {
    struct rig g;
    char fence[32];
    ASSERT(rig_up(&g, 1) == 0);
    long long epoch = leader_epoch(g.ld);
    EXPECT(epoch >= 1);
    /* A newer leader (epoch + 10) has written: this one is deposed. */
    snprintf(fence, sizeof fence, "%lld", epoch + 10);
    cmd("SET %s %s", key(&g, "fence"), fence);
    ASSERT(change(&g, "alpha", 7) == 1);
    ASSERT(rig_bus(&g, 0) != NULL);
    bus_open(g.b);
    WAIT_UNTIL(bus_redis_up(g.b), 5000);
    sleep_ms(500);
    EXPECT_INT(desired_version(&g, "alpha"), -1);                  /* neither the row ... */
    EXPECT_INT(desired_version(&g, "beta"), -1);                   /* ... nor the rewrite */
    EXPECT_INT(pending(&g), 1);                                     /* left for the new leader */
    EXPECT_STR(cmd("GET %s", key(&g, "fence")), fence);
    rig_down(&g);
}

TEST(fence_rises_to_the_epoch_of_a_newer_leader) {
    struct rig g;
    char fence[32];
    ASSERT(rig_up(&g, 1) == 0);
    long long epoch = leader_epoch(g.ld);
    snprintf(fence, sizeof fence, "%lld", epoch - 1);
    cmd("SET %s %s", key(&g, "fence"), fence);
    ASSERT(change(&g, "alpha", 7) == 1);
    ASSERT(rig_bus(&g, 0) != NULL);
    bus_open(g.b);
    WAIT_UNTIL(pending(&g) == 0, 5000);
    EXPECT_INT(pending(&g), 0);
    EXPECT_INT(desired_version(&g, "alpha"), 1);
    snprintf(fence, sizeof fence, "%lld", epoch);
    EXPECT_STR(cmd("GET %s", key(&g, "fence")), fence);
    rig_down(&g);
}

TEST(owner_claim_refuses_another_stores_prefix_unless_taking_over) {
    struct rig g;
    ASSERT(rig_up(&g, 0) == 0);
    cmd("SET %s %s", key(&g, "owner"), "another-store");
    cmd("SET %s %s", key(&g, "fence"), "1000000");                 /* that store's epochs */
    ASSERT(change(&g, "alpha", 7) == 1);
    ASSERT(rig_bus(&g, 0) != NULL);
    bus_open(g.b);
    sleep_ms(1200);
    EXPECT_STR(cmd("EXISTS %s", key(&g, "desired")), "0");
    EXPECT_STR(cmd("GET %s", key(&g, "owner")), "another-store");
    EXPECT_INT(pending(&g), 1);
    EXPECT_INT(bus_redis_up(g.b), 0);                               /* reported down */
    bus_stop(g.b);
    g.b = NULL;
    /* Taking over: the prefix becomes ours and fencing starts anew. */
    ASSERT(rig_bus(&g, 1) != NULL);
    bus_open(g.b);
    WAIT_UNTIL(pending(&g) == 0, 5000);
    EXPECT_INT(pending(&g), 0);
    EXPECT_STR(cmd("GET %s", key(&g, "owner")), g.owner);
    EXPECT_INT(desired_version(&g, "alpha"), 1);
    EXPECT(strcmp(cmd("GET %s", key(&g, "fence")), "1000000") != 0);
    rig_down(&g);
}

/* ---- alerts out, reports in ------------------------------------------------------------------ */

TEST(alerts_go_out_on_the_alerts_channel_in_order) {
    struct rig g;
    ASSERT(rig_up(&g, 0) == 0);
    ASSERT(rig_bus(&g, 0) != NULL);
    bus_open(g.b);
    redisContext *sub = subscribe(key(&g, "alerts"));
    ASSERT(sub != NULL);
    bus_publish_alert(g.b, json_pack("{s:s, s:s}", "alert", "first", "state", "firing"));
    bus_publish_alert(g.b, json_pack("{s:s, s:s}", "alert", "second", "state", "resolved"));
    for (int i = 0; i < 2; i++) {
        char *m = next_message(sub);
        json_t *j = m ? json_loads(m, 0, NULL) : NULL;
        EXPECT(j != NULL);
        if (j) EXPECT_STR(field(j, "alert"), i == 0 ? "first" : "second");
        json_decref(j);
        free(m);
    }
    redisFree(sub);
    rig_down(&g);
}

static size_t workers_of(struct rig *g, const char *queue) {
    struct fleet_worker *ws = NULL;
    size_t n = fleet_workers(g->fl, queue, util_mono_ms(), &ws);
    free(ws);
    return n;
}

/* Publish a heartbeat of worker w1 on channel (again and again until the
 * subscriber is there); returns the workers of alpha the fleet knows. */
static size_t beat_and_count(struct rig *g, const char *channel) {
    cmd("PUBLISH %s %s", channel,
        "{\"event\":\"heartbeat\",\"worker\":\"w1\",\"queue\":\"alpha\",\"concurrency\":4,"
        "\"version\":0,\"completed\":0,\"failed\":0,\"interval_ms\":1000}");
    return workers_of(g, "alpha");
}

TEST(reports_reach_the_fleet_even_before_bus_open) {
    struct rig g;
    char other[64];
    ASSERT(rig_up(&g, 0) == 0);
    ASSERT(rig_bus(&g, 0) != NULL);
    snprintf(other, sizeof other, "%s-other:reports", g.prefix);
    for (int i = 0; i < 20; i++) beat_and_count(&g, other);        /* another prefix: not ours */
    EXPECT_INT(workers_of(&g, "alpha"), 0);
    char reports[64];
    snprintf(reports, sizeof reports, "%s", key(&g, "reports"));
    WAIT_UNTIL(beat_and_count(&g, reports) == 1, 5000);
    EXPECT_INT(workers_of(&g, "alpha"), 1);
    EXPECT_STR(cmd("EXISTS %s", key(&g, "owner")), "0");            /* still nothing written */
    rig_down(&g);
}

TEST(calls_on_no_bus_do_nothing) {
    bus_stop(NULL);
    bus_open(NULL);
    bus_kick(NULL);
    bus_resync(NULL);
    bus_publish_alert(NULL, json_pack("{s:s}", "alert", "dropped"));   /* freed, not leaked */
    EXPECT_INT(bus_redis_up(NULL), 0);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);                     /* as sluiced: a dead Redis is an error, not a signal */
    log_set_level(LOG_ERROR);
    redis_port = free_port();
    if (redis_port < 0 || redis_start() != 0) {
        printf("not ok 1 - a private redis-server starts on 127.0.0.1:%d\n", redis_port);
        redis_stop();
        unit_failed++;
        return UNIT_DONE();
    }
    RUN(preflight_accepts_a_free_or_own_prefix_and_refuses_another_stores);
    RUN(relay_writes_nothing_before_bus_open);
    RUN(relay_publishes_outbox_rows_in_order_with_their_version_and_marks_them);
    RUN(desired_hash_never_moves_a_queue_backwards);
    RUN(emptied_redis_is_refilled_from_the_database);
    RUN(rows_wait_while_redis_is_down_and_go_out_when_it_returns);
    RUN(resync_writes_queues_declared_since);
    RUN(fenced_write_refuses_a_leader_below_the_fence);
    RUN(fence_rises_to_the_epoch_of_a_newer_leader);
    RUN(owner_claim_refuses_another_stores_prefix_unless_taking_over);
    RUN(alerts_go_out_on_the_alerts_channel_in_order);
    RUN(reports_reach_the_fleet_even_before_bus_open);
    RUN(calls_on_no_bus_do_nothing);
    redis_stop();
    return UNIT_DONE();
}
