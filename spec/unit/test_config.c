/* test_config.c — defaults, environment, flags and validation of config_load. */
#include "unit.h"
#include "config.h"

#include <stdlib.h>

static const char *const env_names[] = {
    "SLUICE_LISTEN", "SLUICE_DB", "SLUICE_REDIS", "SLUICE_PREFIX", "SLUICE_ENV",
    "SLUICE_POLICIES", "SLUICE_SCRIPTS", "SLUICE_UI", "SLUICE_THREADS", "SLUICE_MAX_BODY",
    "SLUICE_MAX_CONNECTIONS", "SLUICE_MAX_PER_IP", "SLUICE_CONN_TIMEOUT", "SLUICE_LUA_MEM",
    "SLUICE_LUA_BUDGET", "SLUICE_BUSY_TIMEOUT", "SLUICE_RELOAD_MS", "SLUICE_LOG_LEVEL", NULL,
};

static void clear_env(void) {
    for (const char *const *n = env_names; *n; n++) unsetenv(*n);
}

/* config_load over a NULL-terminated list of arguments (copied, since argv
 * is not const). Returns config_load's result; err is always terminated. */
static int load(struct config *c, char *err, size_t errlen, const char *const *args) {
    char copies[16][1200];
    char *argv[16];
    int argc = 0;
    for (; args && args[argc] && argc < 16; argc++) {
        snprintf(copies[argc], sizeof copies[argc], "%s", args[argc]);
        argv[argc] = copies[argc];
    }
    err[0] = '\0';
    return config_load(c, argc, argv, err, errlen);
}

/* Expect args to fail with a non-empty message containing `needle`. */
static int fails_with(const char *const *args, const char *needle) {
    struct config c;
    char err[256];
    if (load(&c, err, sizeof err, args) != -1) {
        printf("#   config_load accepted %s %s\n", args[0] ? args[0] : "(environment)",
               args[0] && args[1] ? args[1] : "");
        return 0;
    }
    if (err[0] == '\0' || strstr(err, needle) == NULL) {
        printf("#   error \"%s\" does not mention \"%s\"\n", err, needle);
        return 0;
    }
    return 1;
}

TEST(defaults_without_flags_or_environment) {
    struct config c;
    char err[256];
    clear_env();
    ASSERT(load(&c, err, sizeof err, NULL) == 0);
    EXPECT_STR(c.listen_host, "127.0.0.1");
    EXPECT_INT(c.listen_port, 8080);
    EXPECT_STR(c.db_url, "sqlite:sluice.db");
    EXPECT_STR(c.env, "local");
    EXPECT_STR(c.prefix, "sluice");
    EXPECT_STR(c.log_level, "info");
    EXPECT_INT(c.max_body, 65536);
    EXPECT(c.threads >= 1 && c.threads <= 64);
}

TEST(environment_overrides_defaults) {
    struct config c;
    char err[256];
    clear_env();
    setenv("SLUICE_LISTEN", "0.0.0.0:9000", 1);
    setenv("SLUICE_ENV", "staging", 1);
    setenv("SLUICE_THREADS", "3", 1);
    int rc = load(&c, err, sizeof err, NULL);
    clear_env();
    ASSERT(rc == 0);
    EXPECT_STR(c.listen_host, "0.0.0.0");
    EXPECT_INT(c.listen_port, 9000);
    EXPECT_STR(c.env, "staging");
    EXPECT_INT(c.threads, 3);
}

TEST(flags_override_environment) {
    struct config c;
    char err[256];
    const char *const args[] = {"--listen", "127.0.0.1:7000", "--db", "sqlite:flag.db",
                                "--env", "prod", NULL};
    clear_env();
    setenv("SLUICE_LISTEN", "0.0.0.0:9000", 1);
    setenv("SLUICE_DB", "sqlite:env.db", 1);
    setenv("SLUICE_ENV", "staging", 1);
    int rc = load(&c, err, sizeof err, args);
    clear_env();
    ASSERT(rc == 0);
    EXPECT_STR(c.listen_host, "127.0.0.1");
    EXPECT_INT(c.listen_port, 7000);
    EXPECT_STR(c.db_url, "sqlite:flag.db");
    EXPECT_STR(c.env, "prod");
}

TEST(accepts_flag_equals_value_form) {
    struct config c;
    char err[256];
    const char *const args[] = {"--listen=10.0.0.1:81", "--threads=5", "--db=sqlite:a=b.db",
                                "--log-level=debug", NULL};
    clear_env();
    ASSERT(load(&c, err, sizeof err, args) == 0);
    EXPECT_STR(c.listen_host, "10.0.0.1");
    EXPECT_INT(c.listen_port, 81);
    EXPECT_INT(c.threads, 5);
    EXPECT_STR(c.db_url, "sqlite:a=b.db");   /* only the first '=' splits */
    EXPECT_STR(c.log_level, "debug");
}

TEST(port_zero_lets_the_kernel_pick) {
    struct config c;
    char err[256];
    const char *const args[] = {"--listen", "127.0.0.1:0", NULL};
    clear_env();
    ASSERT(load(&c, err, sizeof err, args) == 0);
    EXPECT_INT(c.listen_port, 0);
}

TEST(rejects_invalid_listen_addresses) {
    clear_env();
    EXPECT(fails_with((const char *const[]){"--listen", "127.0.0.1:65536", NULL}, "port"));
    EXPECT(fails_with((const char *const[]){"--listen", "127.0.0.1:-1", NULL}, "port"));
    EXPECT(fails_with((const char *const[]){"--listen", "127.0.0.1:", NULL}, "port"));
    EXPECT(fails_with((const char *const[]){"--listen", "127.0.0.1:80x", NULL}, "port"));
    EXPECT(fails_with((const char *const[]){"--listen", "8080", NULL}, "ADDR:PORT"));
    EXPECT(fails_with((const char *const[]){"--listen", ":8080", NULL}, "ADDR:PORT"));
}

TEST(rejects_invalid_environment_values_naming_the_variable) {
    clear_env();
    setenv("SLUICE_THREADS", "0", 1);
    EXPECT(fails_with((const char *const[]){NULL}, "SLUICE_THREADS"));
    clear_env();
    setenv("SLUICE_LISTEN", "nowhere", 1);
    EXPECT(fails_with((const char *const[]){NULL}, "--listen"));
    clear_env();
}

TEST(rejects_unknown_options_and_missing_values) {
    clear_env();
    EXPECT(fails_with((const char *const[]){"--nope", "1", NULL}, "--nope"));
    EXPECT(fails_with((const char *const[]){"--listenx=1.2.3.4:5", NULL}, "--listenx"));
    EXPECT(fails_with((const char *const[]){"serve", NULL}, "serve"));
    EXPECT(fails_with((const char *const[]){"--db", NULL}, "needs a value"));
}

TEST(rejects_invalid_prefix_and_environment_names) {
    clear_env();
    EXPECT(fails_with((const char *const[]){"--prefix", "a/b", NULL}, "--prefix"));
    EXPECT(fails_with((const char *const[]){"--prefix", "-x", NULL}, "--prefix"));
    EXPECT(fails_with((const char *const[]){"--env", "prod uction", NULL}, "--env"));
    EXPECT(fails_with((const char *const[]){"--env", ".hidden", NULL}, "--env"));
    EXPECT(fails_with((const char *const[]){"--env=", NULL}, "--env"));
    char long_name[80];
    memset(long_name, 'e', 65);
    long_name[65] = '\0';
    EXPECT(fails_with((const char *const[]){"--env", long_name, NULL}, "--env"));
}

TEST(enforces_integer_bounds) {
    struct config c;
    char err[256];
    clear_env();
    EXPECT(fails_with((const char *const[]){"--threads", "0", NULL}, "--threads"));
    EXPECT(fails_with((const char *const[]){"--threads", "257", NULL}, "1..256"));
    EXPECT(fails_with((const char *const[]){"--threads", "4x", NULL}, "--threads"));
    EXPECT(fails_with((const char *const[]){"--threads", "", NULL}, "--threads"));
    EXPECT(fails_with((const char *const[]){"--max-body", "1023", NULL}, "--max-body"));
    EXPECT(fails_with((const char *const[]){"--max-body", "99999999999999999999", NULL},
                      "--max-body"));
    EXPECT(fails_with((const char *const[]){"--lua-budget", "9999", NULL}, "--lua-budget"));
    EXPECT(fails_with((const char *const[]){"--busy-timeout", "-1", NULL}, "--busy-timeout"));
    EXPECT(load(&c, err, sizeof err, (const char *const[]){"--threads", "256", "--max-body",
                                                            "1024", NULL}) == 0);
    EXPECT_INT(c.threads, 256);
    EXPECT_INT(c.max_body, 1024);
}

TEST(rejects_unsupported_database_urls) {
    struct config c;
    char err[256];
    clear_env();
    EXPECT(fails_with((const char *const[]){"--db", "mysql://localhost/x", NULL}, "--db"));
    EXPECT(fails_with((const char *const[]){"--db", "sluice.db", NULL}, "--db"));
    EXPECT(fails_with((const char *const[]){"--db", "", NULL}, "--db"));
    EXPECT(load(&c, err, sizeof err, (const char *const[]){"--db", "postgres://h/db", NULL}) == 0);
    EXPECT(load(&c, err, sizeof err, (const char *const[]){"--db", "postgresql://h/db", NULL}) == 0);
}

TEST(rejects_bad_redis_url_and_log_level) {
    clear_env();
    EXPECT(fails_with((const char *const[]){"--redis", "http://x:6379", NULL}, "--redis"));
    EXPECT(fails_with((const char *const[]){"--log-level", "verbose", NULL}, "--log-level"));
}

TEST(rejects_values_longer_than_the_field) {
    char long_url[CONFIG_STR_MAX + 10];
    clear_env();
    memcpy(long_url, "sqlite:", 7);
    memset(long_url + 7, 'x', sizeof long_url - 8);
    long_url[sizeof long_url - 1] = '\0';
    EXPECT(fails_with((const char *const[]){"--db", long_url, NULL}, "--db"));
}

int main(void) {
    RUN(defaults_without_flags_or_environment);
    RUN(environment_overrides_defaults);
    RUN(flags_override_environment);
    RUN(accepts_flag_equals_value_form);
    RUN(port_zero_lets_the_kernel_pick);
    RUN(rejects_invalid_listen_addresses);
    RUN(rejects_invalid_environment_values_naming_the_variable);
    RUN(rejects_unknown_options_and_missing_values);
    RUN(rejects_invalid_prefix_and_environment_names);
    RUN(enforces_integer_bounds);
    RUN(rejects_unsupported_database_urls);
    RUN(rejects_bad_redis_url_and_log_level);
    RUN(rejects_values_longer_than_the_field);
    return UNIT_DONE();
}
