/* test_protocol.c — the wire names of protocol.md as sluiced and libsluice
 * spell them, the rule for names, and the Redis URLs both sides accept
 * (rconn_target_parse, the one parser; test_rconn.c covers secrets and TLS
 * files). */
#include "protocol.h"
#include "rconn.h"
#include "unit.h"

#include <jansson.h>
#include <stdlib.h>

/* ---- keys and channels -------------------------------------------------------- */

TEST(names_every_key_and_channel_of_a_prefix) {
    char k[PROTOCOL_KEY_MAX];
    EXPECT_STR(protocol_key(k, "sluice", PROTOCOL_DESIRED), "sluice:desired");
    EXPECT_STR(protocol_key(k, "sluice", PROTOCOL_SCALING), "sluice:scaling");
    EXPECT_STR(protocol_key(k, "sluice", PROTOCOL_REPORTS), "sluice:reports");
    EXPECT_STR(protocol_key(k, "sluice", PROTOCOL_ALERTS), "sluice:alerts");
    EXPECT_STR(protocol_key(k, "sluice", PROTOCOL_OWNER), "sluice:owner");
    EXPECT_STR(protocol_key(k, "prod:eu-1", PROTOCOL_FENCE), "prod:eu-1:fence");
    EXPECT(protocol_key(k, "p", PROTOCOL_DESIRED) == k);
}

TEST(names_the_lists_of_the_sluice_layout) {
    char k[PROTOCOL_KEY_MAX];
    EXPECT_STR(protocol_queue_key(k, "sluice", "ingestion", PROTOCOL_LIST_WAIT), "sluice:q:ingestion:wait");
    EXPECT_STR(protocol_queue_key(k, "sluice", "ingestion", PROTOCOL_LIST_ACTIVE), "sluice:q:ingestion:active");
    EXPECT_STR(protocol_queue_key(k, "sluice", "ingestion", PROTOCOL_LIST_FAILED), "sluice:q:ingestion:failed");
}

TEST(names_bullmq_keys_under_their_own_prefix) {
    char k[PROTOCOL_KEY_MAX];
    EXPECT_STR(protocol_bullmq_key(k, "bull", "q", "wait"), "bull:q:wait");
    EXPECT_STR(protocol_bullmq_key(k, "jobs.v2", "mail", "waiting-children"), "jobs.v2:mail:waiting-children");
}

TEST(longest_valid_names_fit_a_key_buffer) {
    char k[PROTOCOL_KEY_MAX], prefix[PROTOCOL_NAME_MAX + 1], queue[PROTOCOL_NAME_MAX + 1];
    memset(prefix, 'p', PROTOCOL_NAME_MAX);
    prefix[PROTOCOL_NAME_MAX] = '\0';
    memset(queue, 'q', PROTOCOL_NAME_MAX);
    queue[PROTOCOL_NAME_MAX] = '\0';
    ASSERT(protocol_valid_name(prefix) && protocol_valid_name(queue));
    EXPECT_INT(strlen(protocol_queue_key(k, prefix, queue, PROTOCOL_LIST_FAILED)),
               2 * PROTOCOL_NAME_MAX + strlen(":q::failed"));
    EXPECT_INT(strlen(protocol_key(k, prefix, PROTOCOL_REPORTS)), PROTOCOL_NAME_MAX + strlen(":reports"));
    /* BullMQ prefixes are at most 32 (policy.c); its longest state name. */
    EXPECT_INT(strlen(protocol_bullmq_key(k, "b2345678901234567890123456789012", queue, "waiting-children")),
               32 + PROTOCOL_NAME_MAX + strlen("::waiting-children"));
}

/* ---- names ----------------------------------------------------------------------- */

TEST(name_is_1_to_64_of_the_name_alphabet) {
    char s[PROTOCOL_NAME_MAX + 2];
    EXPECT(protocol_valid_name("ingestion"));
    EXPECT(protocol_valid_name("build.v2:eu-1_A9"));
    EXPECT(protocol_valid_name("a"));
    memset(s, 'x', PROTOCOL_NAME_MAX);
    s[PROTOCOL_NAME_MAX] = '\0';
    EXPECT(protocol_valid_name(s));                          /* 64 */
    s[PROTOCOL_NAME_MAX] = 'x';
    s[PROTOCOL_NAME_MAX + 1] = '\0';
    EXPECT(!protocol_valid_name(s));                         /* 65 */
}

TEST(name_refuses_empty_leading_dot_or_dash_and_other_characters) {
    const char *bad[] = {"", ".hidden", "-flag", "a/b", "a b", "a\tb", "x' OR 1=1", "q*", "a,b", "caf\xc3\xa9",
                         "\xe2\x82\xac", "a\xff"};
    EXPECT(!protocol_valid_name(NULL));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (protocol_valid_name(bad[i])) UNIT_FAIL("accepted '%s'", bad[i]);
    EXPECT(protocol_valid_name("a.-"));                      /* only the first character is special */
}

TEST(id_takes_a_length_and_allows_a_leading_dot_or_dash) {
    char s[PROTOCOL_WORKER_ID_MAX + 2];
    memset(s, 'w', PROTOCOL_WORKER_ID_MAX);
    s[PROTOCOL_WORKER_ID_MAX] = '\0';
    EXPECT(protocol_valid_id(s, PROTOCOL_WORKER_ID_MAX));   /* 128 */
    EXPECT(!protocol_valid_id(s, PROTOCOL_NAME_MAX));
    s[PROTOCOL_WORKER_ID_MAX] = 'w';
    s[PROTOCOL_WORKER_ID_MAX + 1] = '\0';
    EXPECT(!protocol_valid_id(s, PROTOCOL_WORKER_ID_MAX));  /* 129 */
    EXPECT(protocol_valid_id("-w.1", PROTOCOL_WORKER_ID_MAX));
    EXPECT(protocol_valid_id(".w", 2));
    EXPECT(!protocol_valid_id("", PROTOCOL_WORKER_ID_MAX));
    EXPECT(!protocol_valid_id(NULL, PROTOCOL_WORKER_ID_MAX));
    EXPECT(!protocol_valid_id("w\xc3\xa9", PROTOCOL_WORKER_ID_MAX));
}

TEST(name_char_is_the_alphabet_and_nothing_else) {
    int n = 0;
    for (int c = -128; c < 128; c++) n += protocol_name_char((char)c);
    EXPECT_INT(n, 26 + 26 + 10 + 4);                         /* A-Z a-z 0-9 _ . : - */
    EXPECT(protocol_name_char('_') && protocol_name_char(':') && protocol_name_char('-'));
    EXPECT(!protocol_name_char('/') && !protocol_name_char('\0') && !protocol_name_char((char)0xc3));
}

/* ---- Redis URLs ------------------------------------------------------------------ */

static int parse(const char *url, struct rconn_target *t, char *err) {
    return rconn_target_parse(url, NULL, t, err, 256);
}

TEST(default_url_parses_to_local_plain_redis) {
    struct rconn_target t;
    char err[256];
    ASSERT(parse(PROTOCOL_DEFAULT_REDIS_URL, &t, err) == 0);
    EXPECT_STR(t.host, "127.0.0.1");
    EXPECT_INT(t.port, 6379);
    EXPECT_INT(t.db, 0);
    EXPECT_INT(t.tls, 0);
}

TEST(url_accepts_tls_credentials_and_a_database) {
    struct rconn_target t;
    char err[256];
    ASSERT(parse("rediss://worker:s3cr%3At@cache.internal:6380/5", &t, err) == 0);
    EXPECT_INT(t.tls, 1);
    EXPECT_STR(t.user, "worker");
    EXPECT_STR(t.password, "s3cr:t");
    EXPECT_STR(t.host, "cache.internal");
    EXPECT_INT(t.port, 6380);
    EXPECT_INT(t.db, 5);
    ASSERT(parse("redis://:only-password@h", &t, err) == 0);
    EXPECT_STR(t.user, "");
    EXPECT_STR(t.password, "only-password");
    EXPECT_INT(t.port, 6379);
    ASSERT(parse("redis://h:6379/", &t, err) == 0);
    EXPECT_INT(t.db, 0);
    ASSERT(parse("redis://h:1/15", &t, err) == 0);
    EXPECT_INT(t.db, 15);
}

TEST(url_refuses_bad_port_missing_host_and_other_schemes) {
    struct rconn_target t;
    char err[256];
    const char *bad[] = {"redis://h:0",   "redis://h:65536", "redis://h:port", "redis://h:-1",
                         "redis://",      "redis://:6379",   "rediss://u:secret@:1",
                         "http://h:6379", "h:6379",          "redis://h:1/db", "redis://h:1/-1",
                         "redis://h:1/2?timeout=1",          ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (parse(bad[i], &t, err) != -1) UNIT_FAIL("accepted '%s'", bad[i]);
        EXPECT(err[0] != '\0');
        EXPECT(strstr(err, "secret") == NULL);
    }
}

/* ---- the desired state and "paused" ------------------------------------------- */

TEST(desired_state_is_formatted_with_paused_and_parsed_back) {
    struct protocol_desired d = {.queue = "ingest", .concurrency = 24, .version = 9, .paused = 1}, back;
    const char *why = "unset";
    char *text = protocol_desired_format(&d, "2026-11-29T13:00:00.000Z");
    EXPECT(text != NULL);
    EXPECT_STR(text, "{\"queue\":\"ingest\",\"concurrency\":24,\"version\":9,\"paused\":true,"
                     "\"at\":\"2026-11-29T13:00:00.000Z\"}");
    EXPECT(protocol_desired_parse(text, strlen(text), &back, &why) == 0);
    EXPECT(why == NULL);
    EXPECT_STR(back.queue, "ingest");
    EXPECT(back.concurrency == 24 && back.version == 9 && back.paused == 1);
    free(text);
    d.paused = 0;
    text = protocol_desired_format(&d, "x");
    EXPECT(strstr(text, "\"paused\":false") != NULL);
    free(text);
}

TEST(desired_state_without_paused_is_running) {
    struct protocol_desired d;
    const char *why;
    const char *old = "{\"queue\":\"q\",\"concurrency\":3,\"version\":2,\"at\":\"x\"}";
    EXPECT(protocol_desired_parse(old, strlen(old), &d, &why) == 0);
    EXPECT(d.paused == 0 && d.concurrency == 3 && d.version == 2);
}

TEST(desired_state_refuses_what_no_sluiced_sends) {
    struct protocol_desired d;
    const char *why;
    static const char *const bad[] = {
        "not json", "[1]", "{\"concurrency\":1,\"version\":1}",
        "{\"queue\":\"q q\",\"concurrency\":1,\"version\":1}",
        "{\"queue\":\"q\",\"concurrency\":\"1\",\"version\":1}",
        "{\"queue\":\"q\",\"concurrency\":1,\"version\":1.5}",
        "{\"queue\":\"q\",\"concurrency\":1,\"version\":1,\"paused\":1}",
        "{\"queue\":\"q\",\"concurrency\":1,\"version\":1,\"paused\":\"true\"}",
        "{\"queue\":\"q\",\"concurrency\":1,\"version\":1,\"paused\":null}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        EXPECT(protocol_desired_parse(bad[i], strlen(bad[i]), &d, &why) == -1);
        EXPECT(why != NULL);
    }
    /* The queue is known once read, so an agent can tell its own from others'. */
    EXPECT(protocol_desired_parse(bad[6], strlen(bad[6]), &d, &why) == -1);
    EXPECT_STR(d.queue, "q");
    char big[PROTOCOL_DESIRED_MAX + 2];
    memset(big, ' ', sizeof big);
    EXPECT(protocol_desired_parse(big, sizeof big, &d, &why) == -1);
    EXPECT(protocol_desired_parse(NULL, 0, &d, &why) == -1);
}

TEST(report_paused_is_a_boolean_or_absent) {
    json_t *r = json_pack("{s:s}", "event", "ack");
    EXPECT(protocol_report_paused(r) == 0);
    json_object_set_new(r, "paused", json_true());
    EXPECT(protocol_report_paused(r) == 1);
    json_object_set_new(r, "paused", json_false());
    EXPECT(protocol_report_paused(r) == 0);
    json_object_set_new(r, "paused", json_null());
    EXPECT(protocol_report_paused(r) == 0);
    json_object_set_new(r, "paused", json_integer(1));
    EXPECT(protocol_report_paused(r) == -1);
    json_object_set_new(r, "paused", json_string("yes"));
    EXPECT(protocol_report_paused(r) == -1);
    json_decref(r);
}

int main(void) {
    RUN(names_every_key_and_channel_of_a_prefix);
    RUN(names_the_lists_of_the_sluice_layout);
    RUN(names_bullmq_keys_under_their_own_prefix);
    RUN(longest_valid_names_fit_a_key_buffer);
    RUN(name_is_1_to_64_of_the_name_alphabet);
    RUN(name_refuses_empty_leading_dot_or_dash_and_other_characters);
    RUN(id_takes_a_length_and_allows_a_leading_dot_or_dash);
    RUN(name_char_is_the_alphabet_and_nothing_else);
    RUN(default_url_parses_to_local_plain_redis);
    RUN(url_accepts_tls_credentials_and_a_database);
    RUN(url_refuses_bad_port_missing_host_and_other_schemes);
    RUN(desired_state_is_formatted_with_paused_and_parsed_back);
    RUN(desired_state_without_paused_is_running);
    RUN(desired_state_refuses_what_no_sluiced_sends);
    RUN(report_paused_is_a_boolean_or_absent);
    return UNIT_DONE();
}
