/* test_rconn.c — Redis URLs and credentials as rconn reads them, and what it
 * says when a server is unreachable or not Redis. Connections to a real
 * Redis (plain, TLS, ACL users) are exercised by spec/api/secure_redis. */
#include "rconn.h"
#include "unit.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int parse(const char *url, const struct rconn_secrets *s, struct rconn_target *t, char *err) {
    return rconn_target_parse(url, s, t, err, 256);
}

TEST(parses_host_port_db_and_defaults) {
    struct rconn_target t;
    char err[256];
    ASSERT(parse("redis://10.0.0.5:6380/3", NULL, &t, err) == 0);
    EXPECT_STR(t.host, "10.0.0.5");
    EXPECT_INT(t.port, 6380);
    EXPECT_INT(t.db, 3);
    EXPECT_INT(t.tls, 0);
    EXPECT_STR(t.user, "");
    EXPECT_STR(t.password, "");
    ASSERT(parse("rediss://redis.internal", NULL, &t, err) == 0);
    EXPECT_INT(t.port, 6379);
    EXPECT_INT(t.db, 0);
    EXPECT_INT(t.tls, 1);
    ASSERT(parse("redis://[::1]:7000", NULL, &t, err) == 0);
    EXPECT_STR(t.host, "::1");
    EXPECT_INT(t.port, 7000);
}

TEST(decodes_user_and_password_with_reserved_characters) {
    struct rconn_target t;
    char err[256];
    ASSERT(parse("rediss://sluice-worker:p%40ss%2Fw%3Ard@h:6379/0", NULL, &t, err) == 0);
    EXPECT_STR(t.user, "sluice-worker");
    EXPECT_STR(t.password, "p@ss/w:rd");
    ASSERT(parse("redis://:only-a-password@h:1", NULL, &t, err) == 0);
    EXPECT_STR(t.user, "");
    EXPECT_STR(t.password, "only-a-password");
}

TEST(uses_the_given_password_only_when_the_url_has_none) {
    struct rconn_target t;
    char err[256];
    struct rconn_secrets s = {"from-env", NULL, NULL, NULL};
    ASSERT(parse("redis://sluiced@h:1", &s, &t, err) == 0);
    EXPECT_STR(t.user, "sluiced");
    EXPECT_STR(t.password, "from-env");
    ASSERT(parse("redis://sluiced:in-url@h:1", &s, &t, err) == 0);
    EXPECT_STR(t.password, "in-url");
}

TEST(refuses_bad_urls_without_repeating_the_password) {
    struct rconn_target t;
    char err[256];
    const char *bad[] = {"http://h:1", "h:6379", "redis://", "redis://h:0", "redis://h:70000",
                         "redis://h:1/x", "redis://h:1/1?x=y", "redis://u:secret@h:1/db#frag", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        EXPECT(parse(bad[i], NULL, &t, err) == -1);
        EXPECT(err[0] != '\0');
        EXPECT(strstr(err, "secret") == NULL);
        EXPECT_STR(t.password, "");             /* nothing left behind */
    }
}

TEST(tls_files_need_rediss_and_a_certificate_needs_its_key) {
    struct rconn_target t;
    char err[256];
    struct rconn_secrets ca = {NULL, "/etc/ca.pem", NULL, NULL};
    EXPECT(parse("redis://h:1", &ca, &t, err) == -1);
    EXPECT_CONTAINS(err, "rediss://");
    ASSERT(parse("rediss://h:1", &ca, &t, err) == 0);
    EXPECT_STR(t.ca, "/etc/ca.pem");
    struct rconn_secrets half = {NULL, NULL, "/c.pem", NULL};
    EXPECT(parse("rediss://h:1", &half, &t, err) == -1);
    EXPECT_CONTAINS(err, "key");
    struct rconn_secrets both = {NULL, NULL, "/c.pem", "/k.pem"};
    ASSERT(parse("rediss://h:1", &both, &t, err) == 0);
    EXPECT_STR(t.cert, "/c.pem");
    EXPECT_STR(t.key, "/k.pem");
}

TEST(reads_the_password_from_the_environment_or_a_file) {
    char pw[64], err[256];
    unsetenv("SLUICE_REDIS_PASSWORD");
    unsetenv("SLUICE_REDIS_PASSWORD_FILE");
    ASSERT(rconn_password_from_env(pw, sizeof pw, err, sizeof err) == 0);
    EXPECT_STR(pw, "");
    setenv("SLUICE_REDIS_PASSWORD", "direct", 1);
    ASSERT(rconn_password_from_env(pw, sizeof pw, err, sizeof err) == 0);
    EXPECT_STR(pw, "direct");
    unsetenv("SLUICE_REDIS_PASSWORD");
    char path[] = "/tmp/sluice-rconn-pw.XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    ASSERT(write(fd, "from-file\nsecond line\n", 22) == 22);
    close(fd);
    setenv("SLUICE_REDIS_PASSWORD_FILE", path, 1);
    ASSERT(rconn_password_from_env(pw, sizeof pw, err, sizeof err) == 0);
    EXPECT_STR(pw, "from-file");
    unlink(path);
    EXPECT(rconn_password_from_env(pw, sizeof pw, err, sizeof err) == -1);
    EXPECT_CONTAINS(err, "SLUICE_REDIS_PASSWORD_FILE");
    unsetenv("SLUICE_REDIS_PASSWORD_FILE");
}

TEST(an_unreachable_server_is_unreachable_and_a_non_redis_one_is_refused) {
    struct rconn_target t;
    char err[256];
    enum rconn_failure why;
    /* A port nobody listens on: unreachable, worth retrying. */
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    ASSERT(bind(probe, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(probe, (struct sockaddr *)&a, &al) == 0);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", ntohs(a.sin_port));
    close(probe);
    ASSERT(parse(url, NULL, &t, err) == 0);
    EXPECT(rconn_open(&t, 500, &why, err, sizeof err) == NULL);
    EXPECT_INT(why, RCONN_UNREACHABLE);
    /* A server that accepts and closes at once is not Redis: refused. */
    int srv = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_port = 0;
    ASSERT(bind(srv, (struct sockaddr *)&a, sizeof a) == 0 && listen(srv, 4) == 0);
    al = sizeof a;
    getsockname(srv, (struct sockaddr *)&a, &al);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", ntohs(a.sin_port));
    ASSERT(parse(url, NULL, &t, err) == 0);
    if (fork() == 0) {
        int c = accept(srv, NULL, NULL);
        close(c);
        _exit(0);
    }
    EXPECT(rconn_open(&t, 2000, &why, err, sizeof err) == NULL);
    EXPECT_INT(why, RCONN_REFUSED);
    EXPECT_CONTAINS(err, "PING");
    close(srv);
    wait(NULL);
}

int main(void) {
    RUN(parses_host_port_db_and_defaults);
    RUN(decodes_user_and_password_with_reserved_characters);
    RUN(uses_the_given_password_only_when_the_url_has_none);
    RUN(refuses_bad_urls_without_repeating_the_password);
    RUN(tls_files_need_rediss_and_a_certificate_needs_its_key);
    RUN(reads_the_password_from_the_environment_or_a_file);
    RUN(an_unreachable_server_is_unreachable_and_a_non_redis_one_is_refused);
    return UNIT_DONE();
}
