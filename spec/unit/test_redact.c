/* test_redact.c — connection strings shown with their credentials masked. */
#include "redact.h"
#include "unit.h"

#include <stdint.h>
#include <stdlib.h>

struct redact_case {
    const char *in, *shown;
    int rc;
};

/* Input, what is shown, and whether it could be read (0) or fell back (-1). */
static const struct redact_case cases[] = {
    /* PostgreSQL URIs: the password in the user info or in the query. */
    {"postgres://sluice:s3cret@db:5432/sluice", "postgres://sluice:***@db:5432/sluice", 0},
    {"postgresql://sluice:s3cret@db/sluice", "postgresql://sluice:***@db/sluice", 0},
    {"postgres://postgres@127.0.0.1:5432/x", "postgres://postgres@127.0.0.1:5432/x", 0},
    {"postgres://h/db?user=u&password=p", "postgres://h/db?user=u&password=***", 0},
    {"postgres://u@h/db?password=p", "postgres://u@h/db?password=***", 0},
    {"postgres://:p@h/db", "postgres://:***@h/db", 0},
    {"postgres://u:sec%40ret@h/db", "postgres://u:***@h/db", 0},
    {"postgres://u:a%2Fb%3Ac%3Fd%23e@h/db", "postgres://u:***@h/db", 0},
    {"postgres://u:p:q@h/db", "postgres://u:***@h/db", 0},
    {"postgres://u:p?q@h/db", "postgres://u:***@h/db", 0},
    {"postgres://u:p@h/db?password=q", "postgres://u:***@h/db", 0},
    {"postgres://u@h/db?sslmode=require&sslkey=/k.pem&sslpassword=x",
     "postgres://u@h/db?sslmode=require&sslkey=/k.pem&sslpassword=***", 0},
    {"postgres://u:p@h1:5432,h2:5433/db", "postgres://u:***@h1:5432,h2:5433/db", 0},
    {"postgres://u:p@[::1]:5432/db", "postgres://u:***@[::1]:5432/db", 0},
    {"postgres://%2Fvar%2Frun%2Fpostgresql/db", "postgres://%2Fvar%2Frun%2Fpostgresql/db", 0},
    {"postgres://h/db?host=a,b&port=5432", "postgres://a,b/db?port=5432", 0},
    {"postgres://:5433/db", "postgres://:5433/db", 0},
    {"postgres:///db", "postgres:///db", 0},
    {"postgres://u%40corp:p@h/db", "postgres://u%40corp:***@h/db", 0},
    {"postgres://h/db?options=-c%20a%3Db&password=p", "postgres://h/db?password=***&options=-c%20a%3Db", 0},
    /* ... that libpq rejects, or would read differently from its author. */
    {"postgres://u:se/cret@h/db", "postgres://***", -1},
    {"postgres://u:sec@ret@h/db", "postgres://***", -1},
    {"postgres://u:12/cret@h/db", "postgres://***", -1},
    {"postgres://u:secret/db", "postgres://***", -1},
    {"postgres://u:p%zz@h/db", "postgres://***", -1},
    {"postgres://h/db?password=a&b", "postgres://***", -1},
    {"postgres://h/db?nonsense=1", "postgres://***", -1},
    {"postgresql://h/db?user=a@b", "postgresql://***", -1},
    {"postgres://h/db?dbname=postgres%3A%2F%2Fu%3Ap%40h%2Fx", "postgres://***", -1},
    {"postgres://", "postgres://", 0},
    /* keyword/value strings */
    {"host=h user=u password=p", "host=h user=u password=***", 0},
    {"password='a b' host=h dbname='my db'", "host=h dbname='my db' password=***", 0},
    {"user='o\\'neil' password='it\\'s' host=h", "host=h user='o\\'neil' password=***", 0},
    {"host=h sslkey=/k.pem sslpassword=x sslmode=verify-full",
     "host=h sslmode=verify-full sslkey=/k.pem sslpassword=***", 0},
    {"host=h password=''", "host=h password=***", 0},
    {"host = h   port = 5432", "host=h port=5432", 0},
    {"host=h password=p password=q", "host=h password=***", 0},
    {"host=h password='unterminated", "***", -1},
    {"host=h password=a b", "***", -1},
    {"host=h nonsense=1", "***", -1},
    {"dbname='postgres://u:p@h/x'", "***", -1},
    {"sluice.db", "***", -1},
    /* Redis and other URLs (libcurl) */
    {"redis://user:pass@host:6379/0", "redis://user:***@host:6379/0", 0},
    {"rediss://:pass@host:6380", "rediss://:***@host:6380/", 0},
    {"redis://:p%40ss@h:6379", "redis://:***@h:6379/", 0},
    {"redis://:p%2Fs%3As@h:6379/1", "redis://:***@h:6379/1", 0},
    {"redis://:p:ss@h:6379", "redis://:***@h:6379/", 0},
    {"redis://h:6379", "redis://h:6379/", 0},
    {"redis://:p@ss@h:6379", "redis://***", -1},
    {"redis://:p/ss@h:6379", "redis://***", -1},
    {"redis://u:p@ss/x@h:6379", "redis://***", -1},
    {"redis://u:1?x@h", "redis://***", -1},
    {"rediss://u:p#x@h", "rediss://***", -1},
    {"https://u:p@x.example/api?a=b&token=t&c=d", "https://u:***@x.example/api?a=b&token=***", 0},
    {"https://x.example/?q&Client_Secret=s", "https://x.example/?q&Client_Secret=***", 0},
    {"https://x.example/?pass%77ord=p", "https://x.example/?pass%77ord=***", 0},
    {"https://x.example/p#access_token=t", "https://x.example/p#***", 0},
    {"mysql://u:p@h/db", "mysql://u:***@h/db", 0},
    {"ftp://[bad", "ftp://***", -1},
    {"1nvalid-scheme://u:p@h", "***", -1},
    /* no secrets by design */
    {"sqlite:/data/sluice.db", "sqlite:/data/sluice.db", 0},
    {"sqlite:sluice.db", "sqlite:sluice.db", 0},
    {"", "", 0},
};

TEST(shows_every_form_with_its_password_masked_or_falls_back) {
    char out[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = redact_url(cases[i].in, out, sizeof out);
        if (rc != cases[i].rc || strcmp(out, cases[i].shown) != 0)
            UNIT_FAIL("redact_url(\"%s\") == %d \"%s\", expected %d \"%s\"", cases[i].in, rc, out,
                      cases[i].rc, cases[i].shown);
    }
}

TEST(null_shows_as_empty) {
    char out[8] = "x";
    EXPECT_INT(redact_url(NULL, out, sizeof out), 0);
    EXPECT_STR(out, "");
}

/* A small deterministic generator, so a failure repeats. */
static uint32_t rng_state = 12345;
static uint32_t rng(void) {
    rng_state = rng_state * 1103515245u + 12345u;
    return rng_state >> 8;
}

/* Passwords made of the characters that trip parsers, between markers found
 * nowhere else: no marker may show, whatever the form. */
TEST(no_part_of_a_password_shows_in_any_form) {
    static const char tricky[] = "@/:?#%&=' \\+;,[]!$*()4aZ";
    static const char *const forms[] = {
        "postgres://u:%s@h:5432/db",       "postgresql://u:%s@h1:5432,h2:5433/db",
        "postgres://h/db?user=u&password=%s", "postgres://h/db?sslpassword=%s&user=u",
        "host=h user=u password=%s",       "host=h user=u password='%s'",
        "redis://:%s@h:6379/0",            "rediss://user:%s@h:6380",
        "https://x/?token=%s",
    };
    char secret[64], quoted[160], url[256], out[512];
    for (int round = 0; round < 4000; round++) {
        size_t n = 0;
        n += (size_t)sprintf(secret + n, "Zq7");
        for (uint32_t k = rng() % 6; k > 0; k--) secret[n++] = tricky[rng() % (sizeof tricky - 1)];
        n += (size_t)sprintf(secret + n, "M4w");
        for (uint32_t k = rng() % 6; k > 0; k--) secret[n++] = tricky[rng() % (sizeof tricky - 1)];
        sprintf(secret + n, "X9k");
        const char *form = forms[round % (sizeof forms / sizeof forms[0])];
        const char *value = secret;
        if (strstr(form, "'%s'")) {            /* escaped as libpq wants inside quotes */
            size_t q = 0;
            for (const char *c = secret; *c; c++) {
                if (*c == '\'' || *c == '\\') quoted[q++] = '\\';
                quoted[q++] = *c;
            }
            quoted[q] = '\0';
            value = quoted;
        }
        snprintf(url, sizeof url, form, value);
        redact_url(url, out, sizeof out);
        if (strstr(out, "Zq7") || strstr(out, "M4w") || strstr(out, "X9k")) {
            UNIT_FAIL("redact_url(\"%s\") == \"%s\" shows part of the password", url, out);
            return;
        }
    }
}

TEST(tiny_buffers_get_a_terminated_prefix_and_nothing_beyond) {
    static const char *const inputs[] = {
        "postgres://sluice:s3cret@db:5432/sluice", "host=h user=u password='a b'",
        "redis://user:pass@host:6379/0", "postgres://u:se/cret@h/db", "sqlite:/data/sluice.db",
    };
    char full[512], buf[128];
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        redact_url(inputs[i], full, sizeof full);
        for (size_t size = 0; size <= strlen(full) + 2 && size < sizeof buf; size++) {
            memset(buf, '#', sizeof buf);
            redact_url(inputs[i], buf, size);
            for (size_t k = size; k < sizeof buf; k++)
                if (buf[k] != '#') {
                    UNIT_FAIL("\"%s\" into %zu bytes wrote byte %zu", inputs[i], size, k);
                    return;
                }
            if (size == 0) continue;
            size_t len = strnlen(buf, size);
            if (len == size || strncmp(buf, full, len) != 0 || len != (strlen(full) < size ? strlen(full) : size - 1))
                UNIT_FAIL("\"%s\" into %zu bytes gave \"%.*s\"", inputs[i], size, (int)len, buf);
        }
    }
}

/* Any bytes, any length: always a terminated string within the buffer (the
 * sanitizers and valgrind watch the reads). */
TEST(arbitrary_bytes_never_overrun) {
    static const char *const starts[] = {"postgres://", "postgresql://", "redis://", "host=", "sqlite:", ""};
    char in[600], out[64];
    for (int round = 0; round < 3000; round++) {
        const char *start = starts[round % (sizeof starts / sizeof starts[0])];
        size_t n = strlen(start), len = n + rng() % 500;
        memcpy(in, start, n);
        for (; n < len; n++) in[n] = (char)(1 + rng() % 255);
        in[n] = '\0';
        size_t size = rng() % sizeof out;
        memset(out, '#', sizeof out);
        redact_url(in, out, size);
        for (size_t k = size; k < sizeof out; k++)
            if (out[k] != '#') {
                UNIT_FAIL("wrote past %zu bytes", size);
                return;
            }
        if (size > 0 && strnlen(out, size) == size) {
            UNIT_FAIL("not terminated within %zu bytes", size);
            return;
        }
    }
}

int main(void) {
    RUN(shows_every_form_with_its_password_masked_or_falls_back);
    RUN(null_shows_as_empty);
    RUN(no_part_of_a_password_shows_in_any_form);
    RUN(tiny_buffers_get_a_terminated_prefix_and_nothing_beyond);
    RUN(arbitrary_bytes_never_overrun);
    return UNIT_DONE();
}
