/* test_auth.c — scopes, tokens and sessions over a real SQLite store. */
#include "unit.h"
#include "auth.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[64];
static char db_path[128];

static store *open_store(void) {
    struct store_options opt = {1000, 2};
    char url[160], err[256];
    int applied = 0;
    strcpy(dir, "/tmp/sluice-auth-XXXXXX");
    if (mkdtemp(dir) == NULL) return NULL;
    snprintf(db_path, sizeof db_path, "%s/a.db", dir);
    snprintf(url, sizeof url, "sqlite:%s", db_path);
    store *st = store_open(url, &opt, err, sizeof err);
    if (st && store_migrate(st, &applied) != STORE_OK) {
        store_close(st);
        st = NULL;
    }
    return st;
}

static void close_store(store *st) {
    char path[160];
    store_close(st);
    static const char *const suffixes[] = {"", "-wal", "-shm", NULL};
    for (const char *const *s = suffixes; *s; s++) {
        snprintf(path, sizeof path, "%s%s", db_path, *s);
        unlink(path);
    }
    rmdir(dir);
}

static int is_hex(const char *s, size_t len) {
    if (strlen(s) != len) return 0;
    for (; *s; s++)
        if (!isxdigit((unsigned char)*s) || isupper((unsigned char)*s)) return 0;
    return 1;
}

static void sha256_hex(const char *s, char out[65]) {
    static const char digits[] = "0123456789abcdef";
    unsigned char md[32];
    unsigned len = 0;
    EVP_Digest(s, strlen(s), md, &len, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[64] = '\0';
}

/* 1 when `needle` occurs anywhere in the file at path (absent file: 0). */
static int file_contains(const char *path, const char *needle) {
    size_t len = 0;
    char *data = util_read_file(path, 64 << 20, &len);
    int found = data && memmem(data, len, needle, strlen(needle)) != NULL;
    free(data);
    return found;
}

TEST(parses_scope_lists) {
    unsigned m = 0;
    char err[160] = "";
    EXPECT_INT(auth_parse_scopes("scaling:read", &m, err, sizeof err), 0);
    EXPECT_INT(m, AUTH_SCOPE_READ);
    EXPECT_INT(auth_parse_scopes("scaling:read,admin", &m, err, sizeof err), 0);
    EXPECT_INT(m, AUTH_SCOPE_READ | AUTH_SCOPE_ADMIN);
    EXPECT_INT(auth_parse_scopes("scaling:write,scaling:write", &m, err, sizeof err), 0);
    EXPECT_INT(m, AUTH_SCOPE_WRITE);
    EXPECT_INT(auth_parse_scopes("scaling:delete", &m, err, sizeof err), -1);
    EXPECT_CONTAINS(err, "scaling:delete");
    err[0] = '\0';
    EXPECT_INT(auth_parse_scopes("", &m, err, sizeof err), -1);
    EXPECT(err[0] != '\0');
    EXPECT_INT(auth_parse_scopes(NULL, &m, err, sizeof err), -1);
    EXPECT_INT(auth_parse_scopes("admin,,scaling:read", &m, err, sizeof err), -1);
    EXPECT_INT(auth_parse_scopes("Admin", &m, err, sizeof err), -1);
}

TEST(admin_implies_every_other_scope) {
    EXPECT_INT(auth_expand(AUTH_SCOPE_ADMIN), AUTH_SCOPE_ALL);
    EXPECT_INT(auth_expand(AUTH_SCOPE_READ), AUTH_SCOPE_READ);
    EXPECT_INT(auth_expand(AUTH_SCOPE_WRITE), AUTH_SCOPE_WRITE);
    EXPECT_INT(auth_expand(AUTH_SCOPE_APPROVE), AUTH_SCOPE_APPROVE);
}

TEST(queue_patterns_match_names_and_trailing_star_prefixes) {
    struct auth_principal p = {0};
    EXPECT_INT(auth_queue_allowed(&p, "anything"), 1);        /* no patterns: all */
    snprintf(p.queues, sizeof p.queues, "build,ingest*");
    EXPECT_INT(auth_queue_allowed(&p, "build"), 1);
    EXPECT_INT(auth_queue_allowed(&p, "builds"), 0);          /* a name is exact */
    EXPECT_INT(auth_queue_allowed(&p, "buil"), 0);
    EXPECT_INT(auth_queue_allowed(&p, "ingest"), 1);          /* the prefix itself */
    EXPECT_INT(auth_queue_allowed(&p, "ingest-eu"), 1);
    EXPECT_INT(auth_queue_allowed(&p, "ingres"), 0);
    EXPECT_INT(auth_queue_allowed(&p, ""), 0);
    snprintf(p.queues, sizeof p.queues, "*");
    EXPECT_INT(auth_queue_allowed(&p, "x"), 1);
}

TEST(queue_patterns_parse_into_one_canonical_form) {
    char out[AUTH_QUEUES_MAX], err[200], many[2048] = "";
    EXPECT_INT(auth_parse_queues("ingest*,build,ingest*,a.b:c-d_e", out, sizeof out, err, sizeof err), 0);
    EXPECT_STR(out, "a.b:c-d_e,build,ingest*");               /* sorted, once each */
    EXPECT_INT(auth_parse_queues("x", out, sizeof out, err, sizeof err), 0);
    EXPECT_STR(out, "x");
    /* Refused, each with a message naming what is wrong. */
    static const char *const bad[] = {"", ",", "a,", ",a", "a,,b", "*", "a**", "*a", "a*b", ".a",
                                      "-a", "a b", "é", NULL};
    for (const char *const *b = bad; *b; b++) {
        err[0] = '\0';
        EXPECT_INT(auth_parse_queues(*b, out, sizeof out, err, sizeof err), -1);
        EXPECT(err[0] != '\0');
    }
    EXPECT_INT(auth_parse_queues("a*b", out, sizeof out, err, sizeof err), -1);
    EXPECT(strstr(err, "'a*b'") != NULL);
    char longname[80];
    memset(longname, 'q', 65);
    longname[65] = '\0';
    EXPECT_INT(auth_parse_queues(longname, out, sizeof out, err, sizeof err), -1);
    longname[64] = '*';                                          /* 64 and a star: fine */
    EXPECT_INT(auth_parse_queues(longname, out, sizeof out, err, sizeof err), 0);
    /* At most AUTH_QUEUE_PATTERNS distinct ones; repeats do not count. */
    for (int i = 0; i < AUTH_QUEUE_PATTERNS; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%sq%02d", i ? "," : "", i);
    EXPECT_INT(auth_parse_queues(many, out, sizeof out, err, sizeof err), 0);
    strcat(many, ",q00");
    EXPECT_INT(auth_parse_queues(many, out, sizeof out, err, sizeof err), 0);
    strcat(many, ",q99");
    EXPECT_INT(auth_parse_queues(many, out, sizeof out, err, sizeof err), -1);
    EXPECT(strstr(err, "at most 16") != NULL);
    /* The longest list that parses fits a principal and a token row. */
    char big[AUTH_QUEUES_MAX + 64] = "";
    for (int i = 0; i < AUTH_QUEUE_PATTERNS; i++) {
        char name[UTIL_NAME_MAX + 2];
        memset(name, 'a' + i, UTIL_NAME_MAX);
        name[UTIL_NAME_MAX] = '*';
        name[UTIL_NAME_MAX + 1] = '\0';
        snprintf(big + strlen(big), sizeof big - strlen(big), "%s%s", i ? "," : "", name);
    }
    EXPECT_INT(auth_parse_queues(big, out, sizeof out, err, sizeof err), 0);
    EXPECT_STR(out, big);
}

TEST(queue_pattern_lists_match_and_cover) {
    EXPECT_INT(auth_queues_match("", "any"), 1);
    EXPECT_INT(auth_queues_match(NULL, "any"), 1);
    EXPECT_INT(auth_queues_match("build", NULL), 0);
    EXPECT_INT(auth_queues_match("a,build*", "build-eu"), 1);
    EXPECT_INT(auth_queues_match("a,build*", "b"), 0);
    EXPECT(auth_queue_pattern_valid("build*", 6));
    EXPECT(auth_queue_pattern_valid("build*x", 5));              /* only the first len bytes */
    EXPECT(!auth_queue_pattern_valid("*", 1));
    EXPECT(!auth_queue_pattern_valid("", 0));
    /* What a limited caller may hand on: within its own patterns. */
    EXPECT_INT(auth_queues_cover("", ""), 1);                    /* every queue covers all */
    EXPECT_INT(auth_queues_cover("", "x"), 1);
    EXPECT_INT(auth_queues_cover("build*", ""), 0);              /* all is not within build* */
    EXPECT_INT(auth_queues_cover("build*", "build-a,build-b*"), 1);
    EXPECT_INT(auth_queues_cover("build*", "build*"), 1);
    EXPECT_INT(auth_queues_cover("build-a*", "build*"), 0);      /* wider than the caller */
    EXPECT_INT(auth_queues_cover("build-a", "build-a*"), 0);     /* a name covers no prefix */
    EXPECT_INT(auth_queues_cover("build*,ingest", "ingest,build-x"), 1);
    EXPECT_INT(auth_queues_cover("build*,ingest", "ingest-eu"), 0);
}

TEST(a_token_limited_to_queues_gives_them_to_its_principal_and_sessions) {
    char token[AUTH_TOKEN_MAX], id[STORE_ID_MAX], cookie[STORE_HASH_MAX], all[AUTH_TOKEN_MAX];
    struct auth_principal p, sp;
    struct store_token row;
    int64_t now = util_now_ms();
    store *st = open_store();
    auth_cache *c = auth_cache_new();
    ASSERT(st != NULL && c != NULL);
    EXPECT_INT(auth_token_create_for(st, "team-build", AUTH_SCOPE_WRITE, "build*,deploy", 0, now, token, id),
               STORE_OK);
    EXPECT_INT(store_get_token(st, id, &row), STORE_OK);
    EXPECT_STR(row.queues, "build*,deploy");
    EXPECT_INT(auth_verify_token(st, token, now, &p), AUTH_OK);
    EXPECT_STR(p.queues, "build*,deploy");
    EXPECT_INT(auth_queue_allowed(&p, "build-7"), 1);
    EXPECT_INT(auth_queue_allowed(&p, "ingest"), 0);
    /* Through the cache, from the store and then from memory: the same. */
    EXPECT_INT(auth_cache_verify_token(c, st, token, now, &p), AUTH_OK);
    EXPECT_STR(p.queues, "build*,deploy");
    memset(&p, 0, sizeof p);
    EXPECT_INT(auth_cache_verify_token(c, st, token, now + 1, &p), AUTH_OK);
    EXPECT_STR(p.queues, "build*,deploy");
    /* A cookie session inherits them, at login and on every request. */
    EXPECT_INT(auth_session_open(st, token, now, &sp, cookie), AUTH_OK);
    EXPECT_STR(sp.queues, "build*,deploy");
    memset(&sp, 0, sizeof sp);
    EXPECT_INT(auth_cache_verify_session(c, st, cookie, now, &sp), AUTH_OK);
    EXPECT_STR(sp.queues, "build*,deploy");
    EXPECT_INT(auth_cache_verify_session(c, st, cookie, now + 1, &sp), AUTH_OK);
    EXPECT_STR(sp.queues, "build*,deploy");
    EXPECT(sp.via_session);
    /* A token of every queue keeps "" (NULL in the row). */
    EXPECT_INT(auth_token_create(st, "everything", AUTH_SCOPE_READ, 0, now, all, id), STORE_OK);
    EXPECT_INT(store_get_token(st, id, &row), STORE_OK);
    EXPECT_STR(row.queues, "");
    EXPECT_INT(auth_verify_token(st, all, now, &p), AUTH_OK);
    EXPECT_STR(p.queues, "");
    EXPECT_INT(auth_queue_allowed(&p, "ingest"), 1);
    auth_cache_free(c);
    close_store(st);
}

TEST(formats_scope_names) {
    char buf[64], small[16];
    auth_format_scopes(AUTH_SCOPE_READ | AUTH_SCOPE_WRITE | AUTH_SCOPE_ADMIN, buf, sizeof buf);
    EXPECT_STR(buf, "scaling:read,scaling:write,admin");
    auth_format_scopes(AUTH_SCOPE_READ | AUTH_SCOPE_ADMIN, buf, sizeof buf);
    EXPECT_STR(buf, "scaling:read,admin");
    auth_format_scopes(0, buf, sizeof buf);
    EXPECT_STR(buf, "");
    auth_format_scopes(AUTH_SCOPE_READ | AUTH_SCOPE_WRITE, small, sizeof small);
    EXPECT(strlen(small) < sizeof small && strncmp(small, "scaling:read", 12) == 0);
    EXPECT_STR(auth_scope_name(AUTH_SCOPE_WRITE), "scaling:write");
    EXPECT_STR(auth_scope_name(AUTH_SCOPE_APPROVE), "scaling:approve");
    EXPECT(auth_scope_name(16) == NULL);
}

TEST(scope_table_parses_lists_and_iterates_in_one_order) {
    char buf[64];
    const char *name;
    unsigned bit, seen = 0;
    EXPECT_INT(auth_scope_parse("scaling:read"), AUTH_SCOPE_READ);
    EXPECT_INT(auth_scope_parse("admin"), AUTH_SCOPE_ADMIN);
    EXPECT_INT(auth_scope_parse("none"), 0);
    EXPECT_INT(auth_scope_parse("Admin"), 0);
    EXPECT_INT(auth_scope_parse(""), 0);
    EXPECT_INT(auth_scope_parse(NULL), 0);
    size_t i = 0;
    for (; (name = auth_scope_at(i, &bit)) != NULL; i++) {
        EXPECT_STR(auth_scope_name(bit), name);
        seen |= bit;
    }
    EXPECT_INT(i, 4);
    EXPECT_INT(seen, AUTH_SCOPE_ALL);
    EXPECT_STR(auth_scope_at(0, NULL), "scaling:read");
    auth_scope_list(buf, sizeof buf, ", ", " or ");
    EXPECT_STR(buf, "scaling:read, scaling:write, scaling:approve or admin");
    auth_scope_list(buf, 20, ", ", " or ");
    EXPECT_STR(buf, "scaling:read");                 /* cut at a whole name */
}

TEST(created_token_verifies_with_name_and_scopes) {
    char token[AUTH_TOKEN_MAX], id[STORE_ID_MAX];
    struct auth_principal p;
    int64_t now = util_now_ms();
    store *st = open_store();
    ASSERT(st != NULL);
    EXPECT_INT(auth_token_create(st, "ci-nightly", AUTH_SCOPE_ADMIN, 0, now, token, id), STORE_OK);
    EXPECT(is_hex(id, 12));
    EXPECT_INT(strlen(token), 4 + 12 + 1 + 64);
    EXPECT(strncmp(token, "slc_", 4) == 0 && strncmp(token + 4, id, 12) == 0 && token[16] == '_');
    EXPECT(is_hex(token + 17, 64));
    EXPECT_INT(auth_verify_token(st, token, now + 1000, &p), AUTH_OK);
    EXPECT_STR(p.name, "ci-nightly");
    EXPECT_STR(p.token_id, id);
    EXPECT_INT(p.scopes, AUTH_SCOPE_ALL);
    EXPECT_INT(p.via_session, 0);
    close_store(st);
}

TEST(wrong_secret_or_id_is_denied) {
    char token[AUTH_TOKEN_MAX], id[STORE_ID_MAX], bad[AUTH_TOKEN_MAX];
    struct auth_principal p;
    int64_t now = util_now_ms();
    store *st = open_store();
    ASSERT(st != NULL);
    ASSERT(auth_token_create(st, "t", AUTH_SCOPE_READ, 0, now, token, id) == STORE_OK);
    strcpy(bad, token);
    bad[40] = bad[40] == 'a' ? 'b' : 'a';    /* one hex char of the secret */
    EXPECT_INT(auth_verify_token(st, bad, now, &p), AUTH_DENIED);
    strcpy(bad, token);
    bad[5] = bad[5] == 'a' ? 'b' : 'a';      /* one hex char of the id */
    EXPECT_INT(auth_verify_token(st, bad, now, &p), AUTH_DENIED);
    EXPECT_INT(auth_verify_token(st, token, now, &p), AUTH_OK);
    close_store(st);
}

TEST(malformed_tokens_are_denied) {
    char token[AUTH_TOKEN_MAX], id[STORE_ID_MAX], bad[AUTH_TOKEN_MAX + 64];
    struct auth_principal p;
    int64_t now = util_now_ms();
    store *st = open_store();
    ASSERT(st != NULL);
    ASSERT(auth_token_create(st, "t", AUTH_SCOPE_READ, 0, now, token, id) == STORE_OK);
    EXPECT_INT(auth_verify_token(st, NULL, now, &p), AUTH_DENIED);
    EXPECT_INT(auth_verify_token(st, "", now, &p), AUTH_DENIED);
    EXPECT_INT(auth_verify_token(st, "slc_", now, &p), AUTH_DENIED);
    EXPECT_INT(auth_verify_token(st, "slc__", now, &p), AUTH_DENIED);
    EXPECT_INT(auth_verify_token(st, token + 4, now, &p), AUTH_DENIED);     /* no prefix */
    snprintf(bad, sizeof bad, "SLC_%s", token + 4);
    EXPECT_INT(auth_verify_token(st, bad, now, &p), AUTH_DENIED);
    snprintf(bad, sizeof bad, "%s0", token);                                /* one too long */
    EXPECT_INT(auth_verify_token(st, bad, now, &p), AUTH_DENIED);
    snprintf(bad, sizeof bad, "%.*s", (int)strlen(token) - 1, token);      /* one too short */
    EXPECT_INT(auth_verify_token(st, bad, now, &p), AUTH_DENIED);
    snprintf(bad, sizeof bad, "slc_%.11s_%s", id, token + 17);              /* short id */
    EXPECT_INT(auth_verify_token(st, bad, now, &p), AUTH_DENIED);
    memset(bad, 'a', sizeof bad - 1);
    bad[sizeof bad - 1] = '\0';
    memcpy(bad, "slc_", 4);
    EXPECT_INT(auth_verify_token(st, bad, now, &p), AUTH_DENIED);
    close_store(st);
}

TEST(expired_token_is_denied) {
    char token[AUTH_TOKEN_MAX], id[STORE_ID_MAX];
    struct auth_principal p;
    int64_t now = util_now_ms();
    store *st = open_store();
    ASSERT(st != NULL);
    ASSERT(auth_token_create(st, "short", AUTH_SCOPE_READ, 1, now, token, id) == STORE_OK);
    EXPECT_INT(auth_verify_token(st, token, now + 500, &p), AUTH_OK);
    EXPECT_INT(auth_verify_token(st, token, now + 1000, &p), AUTH_DENIED);
    EXPECT_INT(auth_verify_token(st, token, now + 2000, &p), AUTH_DENIED);
    close_store(st);
}

TEST(revoked_token_is_denied_and_keeps_first_revocation_time) {
    char token[AUTH_TOKEN_MAX], id[STORE_ID_MAX];
    struct auth_principal p;
    struct store_token t;
    int64_t now = util_now_ms();
    store *st = open_store();
    ASSERT(st != NULL);
    ASSERT(auth_token_create(st, "gone", AUTH_SCOPE_WRITE, 0, now, token, id) == STORE_OK);
    EXPECT_INT(store_revoke_token(st, id, now + 10), STORE_OK);
    EXPECT_INT(auth_verify_token(st, token, now + 20, &p), AUTH_DENIED);
    EXPECT_INT(store_revoke_token(st, id, now + 99), STORE_OK);
    ASSERT(store_get_token(st, id, &t) == STORE_OK);
    EXPECT_INT(t.revoked_ms, now + 10);
    EXPECT_INT(store_revoke_token(st, "000000000000", now), STORE_NOT_FOUND);
    close_store(st);
}

TEST(only_a_sha256_of_the_secret_is_stored) {
    char token[AUTH_TOKEN_MAX], id[STORE_ID_MAX], hash[65], path[160];
    struct store_token t;
    int64_t now = util_now_ms();
    store *st = open_store();
    ASSERT(st != NULL);
    ASSERT(auth_token_create(st, "hashed", AUTH_SCOPE_READ | AUTH_SCOPE_ADMIN, 60, now, token,
                             id) == STORE_OK);
    const char *secret = token + 17;
    ASSERT(store_get_token(st, id, &t) == STORE_OK);
    EXPECT(is_hex(t.secret_hash, 64));
    EXPECT(strcmp(t.secret_hash, secret) != 0);
    sha256_hex(secret, hash);
    EXPECT_STR(t.secret_hash, hash);
    EXPECT_STR(t.name, "hashed");
    EXPECT_STR(t.scopes, "scaling:read,admin");
    EXPECT_INT(t.expires_ms, now + 60000);
    /* The plain secret is nowhere in the database files. */
    snprintf(path, sizeof path, "%s-wal", db_path);
    EXPECT(file_contains(db_path, t.secret_hash) || file_contains(path, t.secret_hash));
    EXPECT(!file_contains(db_path, secret) && !file_contains(path, secret));
    close_store(st);
}

TEST(session_verifies_and_checks_csrf) {
    char token[AUTH_TOKEN_MAX], id[STORE_ID_MAX], cookie[STORE_HASH_MAX], hash[65];
    char wrong[STORE_HASH_MAX];
    struct auth_principal p, s;
    struct store_session row;
    int64_t now = util_now_ms();
    store *st = open_store();
    ASSERT(st != NULL);
    ASSERT(auth_token_create(st, "browser", AUTH_SCOPE_WRITE, 0, now, token, id) == STORE_OK);
    ASSERT(auth_session_open(st, token, now, &p, cookie) == AUTH_OK);
    EXPECT(is_hex(cookie, 64));
    EXPECT(is_hex(p.csrf, 64));
    EXPECT_INT(p.via_session, 1);
    EXPECT_INT(auth_verify_session(st, cookie, now + 1000, &s), AUTH_OK);
    EXPECT_STR(s.name, "browser");
    EXPECT_INT(s.scopes, AUTH_SCOPE_WRITE);
    EXPECT_INT(s.via_session, 1);
    EXPECT_STR(s.csrf, p.csrf);
    /* The cookie itself is not stored, only its hash. */
    sha256_hex(cookie, hash);
    EXPECT_INT(store_get_session(st, hash, &row), STORE_OK);
    EXPECT_INT(store_get_session(st, cookie, &row), STORE_NOT_FOUND);
    EXPECT_INT(auth_csrf_ok(&s, p.csrf), 1);
    strcpy(wrong, p.csrf);
    wrong[63] = wrong[63] == 'a' ? 'b' : 'a';
    EXPECT_INT(auth_csrf_ok(&s, wrong), 0);
    EXPECT_INT(auth_csrf_ok(&s, NULL), 0);
    EXPECT_INT(auth_csrf_ok(&s, ""), 0);
    struct auth_principal bearer;
    ASSERT(auth_verify_token(st, token, now, &bearer) == AUTH_OK);
    EXPECT_INT(auth_csrf_ok(&bearer, ""), 0);   /* a bearer principal has no CSRF token */
    close_store(st);
}

TEST(session_ends_with_revocation_close_or_expiry) {
    char token[AUTH_TOKEN_MAX], id[STORE_ID_MAX], c1[STORE_HASH_MAX], c2[STORE_HASH_MAX];
    char t2[AUTH_TOKEN_MAX], id2[STORE_ID_MAX], c3[STORE_HASH_MAX];
    struct auth_principal p, s;
    int64_t now = util_now_ms();
    store *st = open_store();
    ASSERT(st != NULL);
    ASSERT(auth_token_create(st, "u", AUTH_SCOPE_READ, 0, now, token, id) == STORE_OK);
    ASSERT(auth_session_open(st, token, now, &p, c1) == AUTH_OK);
    EXPECT_INT(auth_session_close(st, &p), STORE_OK);
    EXPECT_INT(auth_verify_session(st, c1, now, &s), AUTH_DENIED);

    ASSERT(auth_session_open(st, token, now, &p, c2) == AUTH_OK);
    EXPECT_INT(auth_verify_session(st, c2, now + AUTH_SESSION_TTL_MS - 1, &s), AUTH_OK);
    EXPECT_INT(auth_verify_session(st, c2, now + AUTH_SESSION_TTL_MS, &s), AUTH_DENIED);
    EXPECT_INT(store_revoke_token(st, id, now + 5), STORE_OK);
    EXPECT_INT(auth_verify_session(st, c2, now + 10, &s), AUTH_DENIED);

    /* A session never outlives its token. */
    ASSERT(auth_token_create(st, "v", AUTH_SCOPE_READ, 60, now, t2, id2) == STORE_OK);
    ASSERT(auth_session_open(st, t2, now, &p, c3) == AUTH_OK);
    EXPECT_INT(auth_verify_session(st, c3, now + 59000, &s), AUTH_OK);
    EXPECT_INT(auth_verify_session(st, c3, now + 61000, &s), AUTH_DENIED);
    close_store(st);
}

TEST(session_refuses_bad_tokens_and_cookies) {
    char cookie[STORE_HASH_MAX], fake[65];
    struct auth_principal p;
    int64_t now = util_now_ms();
    store *st = open_store();
    ASSERT(st != NULL);
    EXPECT_INT(auth_session_open(st, "slc_nope", now, &p, cookie), AUTH_DENIED);
    EXPECT_INT(auth_verify_session(st, NULL, now, &p), AUTH_DENIED);
    EXPECT_INT(auth_verify_session(st, "", now, &p), AUTH_DENIED);
    memset(fake, 'a', 64);
    fake[64] = '\0';
    EXPECT_INT(auth_verify_session(st, fake, now, &p), AUTH_DENIED);
    fake[63] = '\0';
    EXPECT_INT(auth_verify_session(st, fake, now, &p), AUTH_DENIED);
    memset(&p, 0, sizeof p);
    EXPECT_INT(auth_session_close(st, &p), STORE_OK);   /* bearer: nothing to close */
    close_store(st);
}

TEST(one_session_too_many_ends_the_oldest_of_its_token) {
    char token[AUTH_TOKEN_MAX], id[STORE_ID_MAX], other[AUTH_TOKEN_MAX], oid[STORE_ID_MAX];
    char cookies[4][STORE_HASH_MAX], ocookie[STORE_HASH_MAX];
    struct store_limits lim = {.sessions_per_token = 3};
    struct auth_principal p;
    int64_t now = util_now_ms();
    store *st = open_store();
    ASSERT(st != NULL);
    store_set_limits(st, &lim);
    ASSERT(auth_token_create(st, "browser", AUTH_SCOPE_READ, 0, now, token, id) == STORE_OK);
    ASSERT(auth_token_create(st, "other", AUTH_SCOPE_READ, 0, now, other, oid) == STORE_OK);
    ASSERT(auth_session_open(st, other, now, &p, ocookie) == AUTH_OK);
    for (int i = 0; i < 4; i++) ASSERT(auth_session_open(st, token, now, &p, cookies[i]) == AUTH_OK);
    EXPECT_INT(auth_verify_session(st, cookies[0], now, &p), AUTH_DENIED);
    for (int i = 1; i < 4; i++) EXPECT_INT(auth_verify_session(st, cookies[i], now, &p), AUTH_OK);
    EXPECT_INT(auth_verify_session(st, ocookie, now, &p), AUTH_OK);
    close_store(st);
}

TEST(cached_credentials_skip_the_store_until_forgotten_or_stale) {
    char token[AUTH_TOKEN_MAX], id[STORE_ID_MAX], cookie[STORE_HASH_MAX];
    struct auth_principal p, sp;
    int64_t now = util_now_ms();
    store *st = open_store();
    auth_cache *c = auth_cache_new();
    ASSERT(st != NULL && c != NULL);
    EXPECT_INT(auth_token_create(st, "cached", AUTH_SCOPE_READ, 0, now, token, id), STORE_OK);
    EXPECT_INT(auth_session_open(st, token, now, &sp, cookie), AUTH_OK);
    EXPECT_INT(auth_cache_verify_token(c, st, token, now, &p), AUTH_OK);
    EXPECT_INT(auth_cache_verify_session(c, st, cookie, now, &sp), AUTH_OK);
    /* Revoked behind the cache's back (another process): still remembered
     * within the TTL, which is the documented bound... */
    EXPECT_INT(store_revoke_token(st, id, now), STORE_OK);
    EXPECT_INT(auth_cache_verify_token(c, st, token, now + 10, &p), AUTH_OK);
    EXPECT_STR(p.name, "cached");
    EXPECT_INT(auth_cache_verify_session(c, st, cookie, now + 10, &sp), AUTH_OK);
    EXPECT(sp.via_session);
    /* ...and refused after it. */
    EXPECT_INT(auth_cache_verify_token(c, st, token, now + AUTH_CACHE_TTL_MS + 1, &p), AUTH_DENIED);
    /* A wrong secret with a cached id is never taken for the cached one. */
    char forged[AUTH_TOKEN_MAX];
    snprintf(forged, sizeof forged, "%s", token);
    forged[strlen(forged) - 1] = forged[strlen(forged) - 1] == 'a' ? 'b' : 'a';
    EXPECT_INT(auth_cache_verify_token(c, st, forged, now, &p), AUTH_DENIED);
    /* Revoked through this process: forgotten at once, sessions included. */
    EXPECT_INT(auth_token_create(st, "second", AUTH_SCOPE_READ, 0, now, token, id), STORE_OK);
    EXPECT_INT(auth_session_open(st, token, now, &sp, cookie), AUTH_OK);
    EXPECT_INT(auth_cache_verify_token(c, st, token, now, &p), AUTH_OK);
    EXPECT_INT(auth_cache_verify_session(c, st, cookie, now, &sp), AUTH_OK);
    EXPECT_INT(store_revoke_token(st, id, now), STORE_OK);
    auth_cache_forget_token(c, id);
    EXPECT_INT(auth_cache_verify_token(c, st, token, now, &p), AUTH_DENIED);
    EXPECT_INT(auth_cache_verify_session(c, st, cookie, now, &sp), AUTH_DENIED);
    auth_cache_free(c);
    auth_cache_free(NULL);
    close_store(st);
}

TEST(a_closed_or_expired_session_is_not_served_from_the_cache) {
    char token[AUTH_TOKEN_MAX], id[STORE_ID_MAX], cookie[STORE_HASH_MAX];
    struct auth_principal p;
    int64_t now = util_now_ms();
    store *st = open_store();
    auth_cache *c = auth_cache_new();
    ASSERT(st != NULL && c != NULL);
    EXPECT_INT(auth_token_create(st, "brief", AUTH_SCOPE_READ, 60, now, token, id), STORE_OK);
    EXPECT_INT(auth_session_open(st, token, now, &p, cookie), AUTH_OK);
    EXPECT_INT(auth_cache_verify_session(c, st, cookie, now, &p), AUTH_OK);
    /* The token's expiry ends what the cache remembers, TTL or not. */
    EXPECT_INT(auth_cache_verify_session(c, st, cookie, now + 60000, &p), AUTH_DENIED);
    EXPECT_INT(auth_cache_verify_session(c, st, cookie, now, &p), AUTH_OK);
    EXPECT_INT(auth_session_close(st, &p), STORE_OK);
    auth_cache_forget_session(c, p.session_hash);
    EXPECT_INT(auth_cache_verify_session(c, st, cookie, now, &p), AUTH_DENIED);
    auth_cache_free(c);
    close_store(st);
}

int main(void) {
    RUN(parses_scope_lists);
    RUN(admin_implies_every_other_scope);
    RUN(queue_patterns_match_names_and_trailing_star_prefixes);
    RUN(queue_patterns_parse_into_one_canonical_form);
    RUN(queue_pattern_lists_match_and_cover);
    RUN(a_token_limited_to_queues_gives_them_to_its_principal_and_sessions);
    RUN(formats_scope_names);
    RUN(scope_table_parses_lists_and_iterates_in_one_order);
    RUN(created_token_verifies_with_name_and_scopes);
    RUN(wrong_secret_or_id_is_denied);
    RUN(malformed_tokens_are_denied);
    RUN(expired_token_is_denied);
    RUN(revoked_token_is_denied_and_keeps_first_revocation_time);
    RUN(only_a_sha256_of_the_secret_is_stored);
    RUN(session_verifies_and_checks_csrf);
    RUN(session_ends_with_revocation_close_or_expiry);
    RUN(session_refuses_bad_tokens_and_cookies);
    RUN(one_session_too_many_ends_the_oldest_of_its_token);
    RUN(cached_credentials_skip_the_store_until_forgotten_or_stale);
    RUN(a_closed_or_expired_session_is_not_served_from_the_cache);
    return UNIT_DONE();
}
