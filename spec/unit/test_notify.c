/* test_notify.c — notifications without a network: the signature against
 * OpenSSL's one-shot HMAC, the back-off, which audit entries make which
 * events (approval outcomes included, as the approvals work will write
 * them), the three body formats, and the audit cursor on a real SQLite
 * store: no history on first use, one row per matching sink, the cursor
 * moved only by the leader that read it. */
#include "unit.h"
#include "notify.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64], db_path[128], pol_dir[128];
static const struct sandbox_limits limits = {16 << 20, 200000};

static struct store_audit audit(const char *kind, const char *outcome, const char *code) {
    struct store_audit e;
    struct store_origin o = {"alice", "api", "because", "rid-1", 1764000000000LL};
    store_audit_init(&e, kind, "build", 4, 8, 3, outcome, code, &o);
    e.id = 42;
    return e;
}

TEST(signature_is_hmac_sha256_of_timestamp_dot_body) {
    char sig[NOTIFY_SIGNATURE_MAX], hex[65];
    unsigned char mac[32];
    unsigned int len = 0;
    const char *body = "{\"kind\":\"change\"}", *msg = "1764000000.{\"kind\":\"change\"}";
    ASSERT(notify_sign("s3cret", "1764000000", body, strlen(body), sig) == 0);
    HMAC(EVP_sha256(), "s3cret", 6, (const unsigned char *)msg, strlen(msg), mac, &len);
    util_hex(mac, len, hex);
    EXPECT_INT(strncmp(sig, "sha256=", 7), 0);
    EXPECT_STR(sig + 7, hex);
    char other[NOTIFY_SIGNATURE_MAX];
    notify_sign("s3cret", "1764000001", body, strlen(body), other);
    EXPECT(strcmp(sig, other) != 0);          /* the timestamp is signed */
    notify_sign("s3creT", "1764000000", body, strlen(body), other);
    EXPECT(strcmp(sig, other) != 0);
    notify_sign("s3cret", "1764000000", body, strlen(body) - 1, other);
    EXPECT(strcmp(sig, other) != 0);          /* every byte of the body */
}

TEST(back_off_doubles_from_one_second_to_a_five_minute_cap_with_jitter) {
    for (int i = 0; i < 50; i++) {
        int64_t a = notify_backoff_ms(1), b = notify_backoff_ms(2), c = notify_backoff_ms(5);
        int64_t capped = notify_backoff_ms(30), huge = notify_backoff_ms(1000);
        EXPECT(a >= 800 && a < 1200);
        EXPECT(b >= 1600 && b < 2400);
        EXPECT(c >= 12800 && c < 19200);
        EXPECT(capped >= 240000 && capped < 360000);
        EXPECT(huge >= 240000 && huge < 360000);
    }
}

TEST(audit_entries_make_the_events_of_the_contract) {
    struct store_audit e;
    e = audit("scaling", "applied", NULL);
    EXPECT_STR(notify_event_of_audit(&e), "change");
    e = audit("pause", "applied", NULL);
    EXPECT_STR(notify_event_of_audit(&e), "change");
    e = audit("scaling", "rejected", "step_too_large");
    EXPECT_STR(notify_event_of_audit(&e), "refusal");
    e = audit("pause", "rejected", "writes_disabled");
    EXPECT_STR(notify_event_of_audit(&e), "refusal");
    e = audit("scaling", "rejected", "approval_rejected");
    EXPECT_STR(notify_event_of_audit(&e), "approval");
    e = audit("scaling", "pending_approval", NULL);
    EXPECT_STR(notify_event_of_audit(&e), "approval");
    e = audit("scaling", "approved", NULL);
    EXPECT_STR(notify_event_of_audit(&e), "approval");
    e = audit("scaling", "expired", NULL);
    EXPECT_STR(notify_event_of_audit(&e), "approval");
    e = audit("flag", "applied", NULL);
    EXPECT(notify_event_of_audit(&e) == NULL);
    e = audit("policy", "rejected", "policy_invalid");
    EXPECT(notify_event_of_audit(&e) == NULL);
    e = audit("audit", "applied", NULL);
    EXPECT(notify_event_of_audit(&e) == NULL);
}

static json_t *render(const char *format, const struct notify_event *ev) {
    char *text = notify_render(format, ev);
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    return j;
}

TEST(json_format_carries_the_event_and_its_audit_entry) {
    struct store_audit e = audit("scaling", "rejected", "cooldown");
    struct notify_event ev = {"refusal", "audit-42", "build", e.at_ms, &e, NULL, NULL};
    json_t *j = render("json", &ev);
    ASSERT(j != NULL);
    EXPECT_STR(json_string_value(json_object_get(j, "id")), "audit-42");
    EXPECT_STR(json_string_value(json_object_get(j, "kind")), "refusal");
    EXPECT_STR(json_string_value(json_object_get(j, "queue")), "build");
    EXPECT_STR(json_string_value(json_object_get(j, "at")), "2025-11-24T16:00:00.000Z");
    json_t *a = json_object_get(j, "audit");
    EXPECT_INT(json_integer_value(json_object_get(a, "id")), 42);
    EXPECT_INT(json_integer_value(json_object_get(a, "to")), 8);
    EXPECT_STR(json_string_value(json_object_get(a, "error_code")), "cooldown");
    EXPECT_STR(json_string_value(json_object_get(a, "actor")), "alice");
    json_decref(j);
}

TEST(alertmanager_format_is_an_array_of_alerts_with_labels_and_times) {
    struct alerts_state a;
    memset(&a, 0, sizeof a);
    strcpy(a.hit.alert, "no_workers");
    strcpy(a.hit.queue, "build");
    strcpy(a.hit.worker, "w-1");
    strcpy(a.hit.severity, "critical");
    strcpy(a.hit.message, "build has no workers");
    a.firing = 1;
    a.since_ms = 1764000000000LL;
    struct notify_event ev = {"alert", "alert-x", "build", 1764000060000LL, NULL, &a, "firing"};
    json_t *j = render("alertmanager", &ev);
    ASSERT(json_is_array(j) && json_array_size(j) == 1);
    json_t *al = json_array_get(j, 0), *labels = json_object_get(al, "labels");
    EXPECT_STR(json_string_value(json_object_get(labels, "alertname")), "no_workers");
    EXPECT_STR(json_string_value(json_object_get(labels, "queue")), "build");
    EXPECT_STR(json_string_value(json_object_get(labels, "severity")), "critical");
    EXPECT_STR(json_string_value(json_object_get(labels, "worker")), "w-1");
    EXPECT_STR(json_string_value(json_object_get(json_object_get(al, "annotations"), "summary")),
               "build has no workers");
    EXPECT_STR(json_string_value(json_object_get(al, "startsAt")), "2025-11-24T16:00:00.000Z");
    EXPECT(json_object_get(al, "endsAt") == NULL);    /* firing: open-ended */
    json_decref(j);
    ev.alert_state = "resolved";
    j = render("alertmanager", &ev);
    EXPECT_STR(json_string_value(json_object_get(json_array_get(j, 0), "endsAt")), "2025-11-24T16:01:00.000Z");
    json_decref(j);
    /* an audit event: an instant named for its kind */
    struct store_audit e = audit("scaling", "applied", NULL);
    struct notify_event ch = {"change", "audit-42", "build", e.at_ms, &e, NULL, NULL};
    j = render("alertmanager", &ch);
    al = json_array_get(j, 0);
    EXPECT_STR(json_string_value(json_object_get(json_object_get(al, "labels"), "alertname")), "SluiceChange");
    EXPECT_STR(json_string_value(json_object_get(al, "startsAt")),
               json_string_value(json_object_get(al, "endsAt")));
    json_decref(j);
}

TEST(slack_format_is_one_line_of_text_and_every_body_stays_bounded) {
    struct store_audit e = audit("pause", "applied", NULL);
    e.to = 1;
    struct notify_event ev = {"change", "audit-42", "build", e.at_ms, &e, NULL, NULL};
    json_t *j = render("slack", &ev);
    EXPECT_STR(json_string_value(json_object_get(j, "text")),
               "[sluice] pause of build: 4 -> 1 (version 3) by alice via api: because");
    json_decref(j);
    /* the longest reason, all control characters: escaped six-fold */
    memset(e.reason, 0x01, sizeof e.reason - 1);
    e.reason[sizeof e.reason - 1] = '\0';
    static const char *const formats[] = {"json", "alertmanager", "slack"};
    for (int i = 0; i < 3; i++) {
        char *body = notify_render(formats[i], &ev);
        ASSERT(body != NULL);
        EXPECT(strlen(body) < STORE_NOTIFY_PAYLOAD_MAX);
        free(body);
    }
    EXPECT(notify_render("xml", &ev) == NULL);
}

/* ---- the audit cursor on a real SQLite store ----------------------------- */

static store *fresh(policy **pol) {
    struct store_options opt = {1000, 2};
    char url[160], err[256], path[200];
    strcpy(dir, "/tmp/sluice-notify-XXXXXX");
    if (mkdtemp(dir) == NULL) return NULL;
    snprintf(db_path, sizeof db_path, "%s/s.db", dir);
    snprintf(pol_dir, sizeof pol_dir, "%s/p", dir);
    mkdir(pol_dir, 0700);
    snprintf(path, sizeof path, "%s/p.lua", pol_dir);
    FILE *f = fopen(path, "w");
    if (f == NULL) return NULL;
    fputs("queue \"build\" { default = 4, min = 1, max = 32 }\n"
          "queue \"other\" { default = 4, min = 1, max = 32 }\n"
          "notify \"all\" { url = \"http://127.0.0.1:9/\", format = \"json\",\n"
          "  events = { \"change\", \"refusal\", \"approval\", \"alert\" } }\n"
          "notify \"approvals\" { url = \"https://example.com/h\", format = \"slack\",\n"
          "  events = { \"approval\" }, queues = { \"bu*\" } }\n", f);
    fclose(f);
    *pol = policy_new(pol_dir, &limits);
    if (*pol == NULL || policy_reload(*pol, 1) != 1) return NULL;
    snprintf(url, sizeof url, "sqlite:%s", db_path);
    store *st = store_open(url, &opt, err, sizeof err);
    if (st && store_migrate(st, NULL) != STORE_OK) {
        store_close(st);
        return NULL;
    }
    return st;
}

static void cleanup(store *st, policy *pol) {
    char cmd[200];
    store_close(st);
    policy_free(pol);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) printf("#   could not remove %s\n", dir);
}

static void append(store *st, const char *kind, const char *subject, const char *outcome,
                   const char *code, int64_t at_ms) {
    struct store_audit e;
    struct store_origin o = {"bob", "api", "r", "rid", at_ms};
    store_audit_init(&e, kind, subject, 1, 2, 1, outcome, code, &o);
    store_append_audit(st, &e);
}

static int count_rows(store *st, const char *sink, const char *event) {
    struct store_notification *rows = NULL;
    size_t n = 0;
    int c = 0;
    store_notify_list(st, sink, NULL, 500, &rows, &n);
    for (size_t i = 0; i < n; i++) c += event == NULL || strcmp(rows[i].event, event) == 0;
    free(rows);
    return c;
}

/* Run sql on the test's database file directly. */
static int raw_sql(const char *sql) {
    sqlite3 *db = NULL;
    int rc = sqlite3_open(db_path, &db) == SQLITE_OK ? sqlite3_exec(db, sql, NULL, NULL, NULL) : -1;
    sqlite3_close(db);
    return rc;
}

TEST(the_cursor_starts_at_the_newest_entry_and_turns_each_later_one_into_rows_per_sink) {
    policy *pol = NULL;
    store *st = fresh(&pol);
    ASSERT(st != NULL);
    int64_t now = util_now_ms(), cursor = -1;
    /* A database with history, upgraded to 010: the history is not sent. */
    EXPECT_INT(raw_sql("DROP TABLE notify_outbox; DROP TABLE notify_cursor;"
                       " DELETE FROM schema_migrations WHERE version = 10"), SQLITE_OK);
    append(st, "scaling", "build", "applied", NULL, now);
    EXPECT_INT(store_migrate(st, NULL), STORE_OK);
    EXPECT_INT(store_notify_cursor(st, &cursor), STORE_OK);
    EXPECT_INT(cursor, 1);
    EXPECT_INT(notify_enqueue_audit(st, pol, now), 0);
    EXPECT_INT(count_rows(st, NULL, NULL), 0);                /* no flood of history */

    append(st, "scaling", "build", "applied", NULL, now);
    append(st, "scaling", "build", "rejected", "cooldown", now);
    append(st, "scaling", "build", "pending_approval", NULL, now);
    append(st, "scaling", "build", "approved", NULL, now);
    append(st, "scaling", "build", "expired", NULL, now);
    append(st, "scaling", "build", "rejected", "approval_rejected", now);
    append(st, "pause", "other", "applied", NULL, now);
    append(st, "scaling", "other", "pending_approval", NULL, now);
    append(st, "flag", "writes", "applied", NULL, now);
    append(st, "policy", "reload", "applied", NULL, now);
    EXPECT_INT(notify_enqueue_audit(st, pol, now), 10);
    EXPECT_INT(count_rows(st, "all", "change"), 2);
    EXPECT_INT(count_rows(st, "all", "refusal"), 1);
    EXPECT_INT(count_rows(st, "all", "approval"), 5);
    EXPECT_INT(count_rows(st, "approvals", NULL), 4);         /* bu*: not "other" */
    EXPECT_INT(count_rows(st, "approvals", "approval"), 4);
    EXPECT_INT(notify_enqueue_audit(st, pol, now), 0);        /* nothing twice */
    EXPECT_INT(raw_sql("DELETE FROM notify_cursor"), SQLITE_OK);   /* lost: restarts at the newest */
    EXPECT_INT(notify_enqueue_audit(st, pol, now), 0);
    EXPECT_INT(count_rows(st, NULL, NULL), 12);
    store_notify_cursor(st, &cursor);
    EXPECT_INT(cursor, 11);

    struct store_notify_due *due = NULL;
    size_t n = 0;
    EXPECT_INT(store_notify_pending(st, NULL, 100, &due, &n), STORE_OK);
    ASSERT(n == 12);
    EXPECT_STR(due[0].n.event_id, "audit-2");                 /* oldest first */
    EXPECT_STR(due[0].n.status, "pending");
    json_t *body = json_loads(due[0].payload, 0, NULL);
    EXPECT_STR(json_string_value(json_object_get(body, "kind")), "change");
    json_decref(body);
    free(due);
    cleanup(st, pol);
}

TEST(only_the_leader_that_read_the_cursor_moves_it_and_duplicates_are_skipped) {
    policy *pol = NULL;
    store *st = fresh(&pol);
    ASSERT(st != NULL);
    int64_t cursor = 0, now = util_now_ms();
    store_notify_cursor(st, &cursor);
    struct store_notify_new row = {"all", "change", "audit-7", "build", "{}", now};
    EXPECT_INT(store_notify_enqueue(st, &row, 1, cursor + 5, cursor + 6), STORE_NOT_FOUND);
    EXPECT_INT(count_rows(st, NULL, NULL), 0);                 /* nothing written */
    EXPECT_INT(store_notify_enqueue(st, &row, 1, cursor, cursor + 6), STORE_OK);
    EXPECT_INT(store_notify_enqueue(st, &row, 1, 0, 0), STORE_OK);   /* a replay of it */
    EXPECT_INT(count_rows(st, NULL, NULL), 1);
    int64_t after = 0;
    store_notify_cursor(st, &after);
    EXPECT_INT(after, cursor + 6);
    cleanup(st, pol);
}

TEST(attempts_are_recorded_and_summed_per_sink_and_old_rows_pruned) {
    policy *pol = NULL;
    store *st = fresh(&pol);
    ASSERT(st != NULL);
    int64_t now = util_now_ms();
    struct store_notify_new rows[3] = {{"all", "change", "a-1", "build", "{}", now - 10000},
                                       {"all", "change", "a-2", "build", "{}", now},
                                       {"approvals", "approval", "a-3", "build", "{}", now}};
    EXPECT_INT(store_notify_enqueue(st, rows, 3, 0, 0), STORE_OK);
    struct store_notify_due *due = NULL;
    size_t n = 0;
    store_notify_pending(st, NULL, 10, &due, &n);
    ASSERT(n == 3);
    struct store_notify_attempt ok = {due[0].n.id, "delivered", now, now, 204, ""};
    struct store_notify_attempt retry = {due[1].n.id, "pending", now, now + 2000, 500, "HTTP 500"};
    struct store_notify_attempt gave_up = {due[2].n.id, "failed", now, now, 0, "refused"};
    EXPECT_INT(store_notify_mark(st, &ok), STORE_OK);
    EXPECT_INT(store_notify_mark(st, &retry), STORE_OK);
    EXPECT_INT(store_notify_mark(st, &gave_up), STORE_OK);
    free(due);
    struct store_notification *list = NULL;
    store_notify_list(st, "all", "pending", 10, &list, &n);
    ASSERT(n == 1);
    EXPECT_INT(list[0].attempts, 1);
    EXPECT_INT(list[0].last_status, 500);
    EXPECT_STR(list[0].last_error, "HTTP 500");
    EXPECT_INT(list[0].next_attempt_ms, now + 2000);
    free(list);
    struct store_notify_summary *sum = NULL;
    EXPECT_INT(store_notify_summarize(st, &sum, &n), STORE_OK);
    ASSERT(n == 2);
    EXPECT_STR(sum[0].sink, "all");
    EXPECT_INT(sum[0].pending, 1);
    EXPECT_INT(sum[0].delivered, 1);
    EXPECT_INT(sum[0].failing, 1);
    EXPECT_INT(sum[0].last_delivered_ms, now);
    EXPECT_INT(sum[1].failed, 1);
    free(sum);
    int64_t deleted = 0;
    EXPECT_INT(store_notify_prune(st, now - 5000, 100, &deleted), STORE_OK);
    EXPECT_INT(deleted, 1);                                   /* the old delivered row */
    EXPECT_INT(store_notify_prune(st, 0, 0, &deleted), STORE_OK);
    EXPECT_INT(deleted, 1);                                   /* keep 0: the failed one too */
    EXPECT_INT(count_rows(st, NULL, NULL), 1);                /* pending rows are never pruned */
    cleanup(st, pol);
}

TEST(a_hole_in_audit_ids_is_waited_for_until_it_is_old) {
    policy *pol = NULL;
    store *st = fresh(&pol);
    ASSERT(st != NULL);
    int64_t now = util_now_ms(), cursor = 0;
    store_notify_cursor(st, &cursor);                         /* 0: the log is empty */
    /* id 2 committed while id 1 is not (yet): another replica's transaction */
    char sql[400];
    snprintf(sql, sizeof sql, "INSERT INTO scaling_audit (id, kind, subject, from_value, to_value,"
             " version, actor, source, reason, outcome, at, request_id) VALUES (2, 'scaling',"
             " 'build', 1, 2, 1, 'bob', 'api', 'r', 'applied', %lld, 'rid')", (long long)now);
    EXPECT_INT(raw_sql(sql), SQLITE_OK);
    EXPECT_INT(notify_enqueue_audit(st, pol, now + 1000), 0);
    EXPECT_INT(count_rows(st, NULL, NULL), 0);
    /* Older than NOTIFY_GAP_WAIT_MS: a rollback made it, go past it. */
    EXPECT_INT(notify_enqueue_audit(st, pol, now + NOTIFY_GAP_WAIT_MS), 2);
    EXPECT_INT(count_rows(st, "all", "change"), 1);
    cleanup(st, pol);
}

int main(void) {
    RUN(signature_is_hmac_sha256_of_timestamp_dot_body);
    RUN(back_off_doubles_from_one_second_to_a_five_minute_cap_with_jitter);
    RUN(audit_entries_make_the_events_of_the_contract);
    RUN(json_format_carries_the_event_and_its_audit_entry);
    RUN(alertmanager_format_is_an_array_of_alerts_with_labels_and_times);
    RUN(slack_format_is_one_line_of_text_and_every_body_stays_bounded);
    RUN(the_cursor_starts_at_the_newest_entry_and_turns_each_later_one_into_rows_per_sink);
    RUN(only_the_leader_that_read_the_cursor_moves_it_and_duplicates_are_skipped);
    RUN(attempts_are_recorded_and_summed_per_sink_and_old_rows_pruned);
    RUN(a_hole_in_audit_ids_is_waited_for_until_it_is_old);
    return UNIT_DONE();
}
