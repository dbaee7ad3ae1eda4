/* auth.c — tokens, sessions and scopes over store.h, hashing with OpenSSL,
 * and the cache of verified credentials. */
#include "auth.h"
#include "log.h"
#include "protocol.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_ID_BYTES 6
#define AUTH_SECRET_BYTES 32

/* The scopes: the only place their names are spelled. The order is the
 * order every list of names (API answers, messages, Lua tables) follows. */
static const struct {
    unsigned bit;
    const char *name;
} auth_scopes[] = {
    {AUTH_SCOPE_READ, "scaling:read"},
    {AUTH_SCOPE_WRITE, "scaling:write"},
    {AUTH_SCOPE_APPROVE, "scaling:approve"},
    {AUTH_SCOPE_ADMIN, "admin"},
};
#define AUTH_NSCOPES (sizeof auth_scopes / sizeof auth_scopes[0])

const char *auth_scope_name(unsigned bit) {
    for (size_t i = 0; i < AUTH_NSCOPES; i++)
        if (auth_scopes[i].bit == bit) return auth_scopes[i].name;
    return NULL;
}

const char *auth_scope_at(size_t i, unsigned *bit) {
    if (i >= AUTH_NSCOPES) return NULL;
    if (bit) *bit = auth_scopes[i].bit;
    return auth_scopes[i].name;
}

/* The bit of the scope named by name[0..len), or 0. */
static unsigned auth_scope_lookup(const char *name, size_t len) {
    for (size_t i = 0; i < AUTH_NSCOPES; i++)
        if (strlen(auth_scopes[i].name) == len && strncmp(auth_scopes[i].name, name, len) == 0)
            return auth_scopes[i].bit;
    return 0;
}

unsigned auth_scope_parse(const char *name) { return name ? auth_scope_lookup(name, strlen(name)) : 0; }

/* The names of mask's scopes in table order, joined by sep, the last two by
 * last_sep, into buf; stops at the first name that does not fit. */
static void auth_join(unsigned mask, const char *sep, const char *last_sep, char *buf, size_t size) {
    size_t used = 0, left = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < AUTH_NSCOPES; i++) left += (mask & auth_scopes[i].bit) != 0;
    for (size_t i = 0; i < AUTH_NSCOPES; i++) {
        if (!(mask & auth_scopes[i].bit)) continue;
        const char *before = used == 0 ? "" : left == 1 ? last_sep : sep;
        int n = snprintf(buf + used, size - used, "%s%s", before, auth_scopes[i].name);
        if (n < 0 || (size_t)n >= size - used) {
            buf[used] = '\0';          /* no half name */
            break;
        }
        used += (size_t)n;
        left--;
    }
}

void auth_scope_list(char *buf, size_t size, const char *sep, const char *last_sep) {
    auth_join(AUTH_SCOPE_ALL, sep, last_sep, buf, size);
}

unsigned auth_expand(unsigned mask) {
    if (mask & AUTH_SCOPE_ADMIN) mask |= AUTH_SCOPE_ALL;
    return mask;
}

int auth_parse_scopes(const char *csv, unsigned *out, char *err, size_t errlen) {
    unsigned mask = 0;
    const char *p = csv;
    while (p && *p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0) {
            snprintf(err, errlen, "empty scope in '%.64s'", csv);
            return -1;
        }
        unsigned bit = auth_scope_lookup(p, len);
        if (bit == 0) {
            char known[64];
            auth_scope_list(known, sizeof known, ", ", ", ");
            snprintf(err, errlen, "unknown scope '%.*s' (expected %s)", (int)(len > 64 ? 64 : len), p, known);
            return -1;
        }
        mask |= bit;
        p = comma ? comma + 1 : NULL;
    }
    if (mask == 0) {
        snprintf(err, errlen, "at least one scope is required");
        return -1;
    }
    *out = mask;
    return 0;
}

void auth_format_scopes(unsigned mask, char *buf, size_t size) { auth_join(mask, ",", ",", buf, size); }

/* SHA-256 of s as lowercase hex. Returns 0 or -1. */
static int auth_sha256_hex(const char *s, char out[STORE_HASH_MAX]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(s, strlen(s), md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) return -1;
    util_hex(md, mdlen, out);
    return 0;
}

static int auth_hex_equal(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    return la == lb && CRYPTO_memcmp(a, b, la) == 0;
}

int auth_token_create(store *st, const char *name, unsigned scopes, int64_t expires_in_s,
                      int64_t now_ms, char token_out[AUTH_TOKEN_MAX], char id_out[STORE_ID_MAX]) {
    return auth_token_create_for(st, name, scopes, NULL, expires_in_s, now_ms, token_out, id_out);
}

int auth_token_create_for(store *st, const char *name, unsigned scopes, const char *queues,
                          int64_t expires_in_s, int64_t now_ms, char token_out[AUTH_TOKEN_MAX],
                          char id_out[STORE_ID_MAX]) {
    struct store_token t;
    char secret[2 * AUTH_SECRET_BYTES + 1];
    int rc;

    memset(&t, 0, sizeof t);
    if (util_random_hex(t.id, AUTH_ID_BYTES) != 0 || util_random_hex(secret, AUTH_SECRET_BYTES) != 0 ||
        auth_sha256_hex(secret, t.secret_hash) != 0) {
        log_msg(LOG_ERROR, "token: no randomness or hashing available");
        return STORE_FAILED;
    }
    util_copy(t.name, sizeof t.name, name);
    auth_format_scopes(scopes, t.scopes, sizeof t.scopes);
    util_copy(t.queues, sizeof t.queues, queues ? queues : "");
    t.created_ms = now_ms;
    t.expires_ms = expires_in_s > 0 ? now_ms + expires_in_s * 1000 : 0;
    if ((rc = store_put_token(st, &t)) != STORE_OK) goto done;
    snprintf(token_out, AUTH_TOKEN_MAX, "slc_%s_%s", t.id, secret);
    util_copy(id_out, STORE_ID_MAX, t.id);
done:
    OPENSSL_cleanse(secret, sizeof secret);
    return rc;
}

/* Load and check the token row `id`; fills p on success, and *expires_ms
 * with the token's expiry (0: never). */
static int auth_check_row(store *st, const char *id, const char *secret_hash, int64_t now_ms,
                          struct auth_principal *p, int64_t *expires_ms) {
    struct store_token t;
    char err[128];
    int rc = store_get_token(st, id, &t);
    if (rc == STORE_NOT_FOUND) return AUTH_DENIED;
    if (rc != STORE_OK) return rc;
    if (secret_hash && !auth_hex_equal(t.secret_hash, secret_hash)) return AUTH_DENIED;
    if (t.revoked_ms || (t.expires_ms && t.expires_ms <= now_ms)) return AUTH_DENIED;
    memset(p, 0, sizeof *p);
    util_copy(p->name, sizeof p->name, t.name);
    util_copy(p->token_id, sizeof p->token_id, t.id);
    if (auth_parse_scopes(t.scopes, &p->scopes, err, sizeof err) != 0) return AUTH_DENIED;
    p->scopes = auth_expand(p->scopes);
    /* A row whose patterns do not parse (edited by hand) is refused rather
     * than read as "every queue". */
    if (t.queues[0] && auth_parse_queues(t.queues, p->queues, sizeof p->queues, err, sizeof err) != 0)
        return AUTH_DENIED;
    *expires_ms = t.expires_ms;
    return AUTH_OK;
}

/* Split a bearer token into its row id and the SHA-256 of its secret.
 * Returns AUTH_OK, AUTH_DENIED (malformed) or STORE_FAILED (no hashing). */
static int auth_token_key(const char *token, char id[STORE_ID_MAX], char hash[STORE_HASH_MAX]) {
    const char *sep;
    size_t idlen;
    if (token == NULL || strncmp(token, "slc_", 4) != 0 || strlen(token) >= AUTH_TOKEN_MAX)
        return AUTH_DENIED;
    sep = strchr(token + 4, '_');
    if (sep == NULL) return AUTH_DENIED;
    idlen = (size_t)(sep - (token + 4));
    if (idlen != 2 * AUTH_ID_BYTES || strlen(sep + 1) != 2 * AUTH_SECRET_BYTES) return AUTH_DENIED;
    memcpy(id, token + 4, idlen);
    id[idlen] = '\0';
    return auth_sha256_hex(sep + 1, hash) == 0 ? AUTH_OK : STORE_FAILED;
}

int auth_verify_token(store *st, const char *token, int64_t now_ms, struct auth_principal *p) {
    return auth_cache_verify_token(NULL, st, token, now_ms, p);
}

int auth_session_open(store *st, const char *token, int64_t now_ms, struct auth_principal *p,
                      char cookie_out[STORE_HASH_MAX]) {
    struct store_session s;
    struct store_token t;
    int rc = auth_verify_token(st, token, now_ms, p);
    if (rc != AUTH_OK) return rc;
    memset(&s, 0, sizeof s);
    if (util_random_hex(cookie_out, 32) != 0 || util_random_hex(s.csrf, 32) != 0 ||
        auth_sha256_hex(cookie_out, s.id_hash) != 0)
        return STORE_FAILED;
    util_copy(s.token_id, sizeof s.token_id, p->token_id);
    s.created_ms = now_ms;
    s.expires_ms = now_ms + AUTH_SESSION_TTL_MS;
    /* A session never outlives its token. */
    if (store_get_token(st, p->token_id, &t) == STORE_OK && t.expires_ms && t.expires_ms < s.expires_ms)
        s.expires_ms = t.expires_ms;
    if ((rc = store_put_session(st, &s)) != STORE_OK) return rc;
    p->via_session = 1;
    util_copy(p->csrf, sizeof p->csrf, s.csrf);
    util_copy(p->session_hash, sizeof p->session_hash, s.id_hash);
    return AUTH_OK;
}

/* The session whose cookie hashes to hash, from the store; *expires_ms
 * gets when it ends (its own expiry or its token's, the earlier). */
static int auth_session_row(store *st, const char *hash, int64_t now_ms, struct auth_principal *p,
                            int64_t *expires_ms) {
    struct store_session s;
    int64_t token_expires = 0;
    int rc = store_get_session(st, hash, &s);
    if (rc == STORE_NOT_FOUND) return AUTH_DENIED;
    if (rc != STORE_OK) return rc;
    if (s.expires_ms <= now_ms) return AUTH_DENIED;
    /* The token must still be valid: revocation ends its sessions at once. */
    rc = auth_check_row(st, s.token_id, NULL, now_ms, p, &token_expires);
    if (rc != AUTH_OK) return rc;
    p->via_session = 1;
    util_copy(p->csrf, sizeof p->csrf, s.csrf);
    util_copy(p->session_hash, sizeof p->session_hash, hash);
    *expires_ms = token_expires && token_expires < s.expires_ms ? token_expires : s.expires_ms;
    return AUTH_OK;
}

int auth_verify_session(store *st, const char *cookie, int64_t now_ms, struct auth_principal *p) {
    return auth_cache_verify_session(NULL, st, cookie, now_ms, p);
}

int auth_session_close(store *st, const struct auth_principal *p) {
    if (!p->via_session) return STORE_OK;
    return store_delete_session(st, p->session_hash);
}

int auth_queue_pattern_valid(const char *s, size_t len) {
    char name[UTIL_NAME_MAX + 1];
    if (len > 0 && s[len - 1] == '*') len--;
    if (len == 0 || len > UTIL_NAME_MAX) return 0;
    memcpy(name, s, len);
    name[len] = '\0';
    return protocol_valid_name(name);
}

static int auth_cmp_pattern(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int auth_parse_queues(const char *csv, char *out, size_t size, char *err, size_t errlen) {
    char copy[AUTH_QUEUES_MAX + 64], *parts[AUTH_QUEUE_PATTERNS + 1], *save = NULL;
    size_t n = 0, used = 0;
    if (csv == NULL || csv[0] == '\0') {
        snprintf(err, errlen, "at least one queue pattern is required (none means every queue)");
        return -1;
    }
    if (strlen(csv) >= sizeof copy) {
        snprintf(err, errlen, "at most %d queue patterns", AUTH_QUEUE_PATTERNS);
        return -1;
    }
    util_copy(copy, sizeof copy, csv);
    size_t len = strlen(copy);
    if (copy[0] == ',' || copy[len - 1] == ',' || strstr(copy, ",,")) {
        snprintf(err, errlen, "empty queue pattern in '%.64s'", csv);
        return -1;
    }
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (!auth_queue_pattern_valid(tok, strlen(tok))) {
            snprintf(err, errlen,
                     "'%.70s' is not a queue pattern (a queue name of 1..64 of A-Z a-z 0-9 _ . : -,"
                     " optionally ending in '*')", tok);
            return -1;
        }
        int dup = 0;
        for (size_t i = 0; i < n; i++) dup |= strcmp(parts[i], tok) == 0;
        if (dup) continue;
        if (n == AUTH_QUEUE_PATTERNS) {
            snprintf(err, errlen, "at most %d queue patterns", AUTH_QUEUE_PATTERNS);
            return -1;
        }
        parts[n++] = tok;
    }
    qsort(parts, n, sizeof parts[0], auth_cmp_pattern);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(out + used, size - used, "%s%s", i ? "," : "", parts[i]);
        if (w < 0 || (size_t)w >= size - used) {
            snprintf(err, errlen, "the queue patterns are too long");
            return -1;
        }
        used += (size_t)w;
    }
    return 0;
}

/* 1 when the pattern s[0..n) allows queue (of length qlen). */
static int auth_pattern_match(const char *s, size_t n, const char *queue, size_t qlen) {
    if (n > 0 && s[n - 1] == '*') return qlen >= n - 1 && memcmp(s, queue, n - 1) == 0;
    return n == qlen && memcmp(s, queue, n) == 0;
}

int auth_queues_match(const char *patterns, const char *queue) {
    const char *s = patterns;
    if (s == NULL || s[0] == '\0') return 1;
    if (queue == NULL) return 0;
    size_t qlen = strlen(queue);
    while (*s) {
        size_t n = strcspn(s, ",");
        if (n > 0 && auth_pattern_match(s, n, queue, qlen)) return 1;
        s += n;
        if (*s == ',') s++;
    }
    return 0;
}

int auth_queues_cover(const char *outer, const char *inner) {
    if (outer == NULL || outer[0] == '\0') return 1;
    if (inner == NULL || inner[0] == '\0') return 0;
    for (const char *s = inner; *s;) {
        size_t n = strcspn(s, ",");
        char pat[UTIL_NAME_MAX + 2];
        int ok = 0;
        util_copy(pat, n + 1 < sizeof pat ? n + 1 : sizeof pat, s);
        /* "abc*" is covered by a pattern allowing every name it allows: a
         * prefix pattern of "abc" or shorter; a name, by any that allows it. */
        if (n > 0 && pat[n - 1] == '*') {
            for (const char *o = outer; *o && !ok;) {
                size_t m = strcspn(o, ",");
                ok = m > 0 && o[m - 1] == '*' && m - 1 <= n - 1 && memcmp(o, pat, m - 1) == 0;
                o += m;
                if (*o == ',') o++;
            }
        } else {
            ok = auth_queues_match(outer, pat);
        }
        if (!ok) return 0;
        s += n;
        if (*s == ',') s++;
    }
    return 1;
}

int auth_queue_allowed(const struct auth_principal *p, const char *queue) {
    return auth_queues_match(p->queues, queue);
}

int auth_csrf_ok(const struct auth_principal *p, const char *header) {
    return header != NULL && p->csrf[0] != '\0' && auth_hex_equal(p->csrf, header);
}

/* ---- the cache of verified credentials ------------------------------------------ */

enum auth_cache_kind { AUTH_CACHE_EMPTY, AUTH_CACHE_TOKEN, AUTH_CACHE_SESSION };

struct auth_cache_entry {
    enum auth_cache_kind kind;
    char key[STORE_HASH_MAX];        /* SHA-256 of the token's secret, or of the cookie */
    struct auth_principal p;         /* p.token_id: what a revocation forgets */
    int64_t expires_ms;              /* the credential's own end; 0: never */
    int64_t until_ms;                /* remembered until (wall clock) */
};

struct auth_cache {
    pthread_mutex_t lock;            /* a leaf: nothing is taken inside */
    uint64_t epoch;                  /* forgets so far; see auth_cache_remember */
    struct auth_cache_entry slots[AUTH_CACHE_SLOTS];
};

auth_cache *auth_cache_new(void) {
    auth_cache *c = calloc(1, sizeof *c);
    if (c) pthread_mutex_init(&c->lock, NULL);
    return c;
}

void auth_cache_free(auth_cache *c) {
    if (c == NULL) return;
    pthread_mutex_destroy(&c->lock);
    OPENSSL_cleanse(c, sizeof *c);   /* CSRF tokens of live sessions */
    free(c);
}

/* The one slot key may live in, from the hash's first hex digits (a
 * uniform hash already). */
static struct auth_cache_entry *auth_cache_slot(auth_cache *c, const char *key) {
    size_t v = 0;
    for (int i = 0; i < 4 && key[i]; i++)
        v = v * 16 + (size_t)(key[i] <= '9' ? key[i] - '0' : (key[i] | 0x20) - 'a' + 10);
    return &c->slots[v % AUTH_CACHE_SLOTS];
}

/* A remembered principal for key (and, for a token, its row id) into p.
 * Returns 1 on a hit, else 0 with *epoch set for auth_cache_remember. */
static int auth_cache_lookup(auth_cache *c, enum auth_cache_kind kind, const char *key,
                             const char *id, int64_t now_ms, struct auth_principal *p,
                             uint64_t *epoch) {
    int hit;
    pthread_mutex_lock(&c->lock);
    struct auth_cache_entry *e = auth_cache_slot(c, key);
    hit = e->kind == kind && auth_hex_equal(e->key, key) && (id == NULL || strcmp(e->p.token_id, id) == 0) &&
          now_ms < e->until_ms && (e->expires_ms == 0 || now_ms < e->expires_ms);
    if (hit) *p = e->p;
    *epoch = c->epoch;
    pthread_mutex_unlock(&c->lock);
    return hit;
}

/* Remember a principal verified from the store, unless something was
 * forgotten since the lookup that preceded the store read (epoch): that
 * read may predate the revocation, and must not outlive it. */
static void auth_cache_remember(auth_cache *c, enum auth_cache_kind kind, const char *key,
                                const struct auth_principal *p, int64_t expires_ms,
                                int64_t now_ms, uint64_t epoch) {
    pthread_mutex_lock(&c->lock);
    if (c->epoch == epoch) {
        struct auth_cache_entry *e = auth_cache_slot(c, key);
        e->kind = kind;
        util_copy(e->key, sizeof e->key, key);
        e->p = *p;
        e->expires_ms = expires_ms;
        e->until_ms = now_ms + AUTH_CACHE_TTL_MS;
    }
    pthread_mutex_unlock(&c->lock);
}

int auth_cache_verify_token(auth_cache *c, store *st, const char *token, int64_t now_ms,
                            struct auth_principal *p) {
    char id[STORE_ID_MAX], hash[STORE_HASH_MAX];
    int64_t expires = 0;
    uint64_t epoch = 0;
    int rc = auth_token_key(token, id, hash);
    if (rc != AUTH_OK) return rc;
    if (c && auth_cache_lookup(c, AUTH_CACHE_TOKEN, hash, id, now_ms, p, &epoch)) return AUTH_OK;
    rc = auth_check_row(st, id, hash, now_ms, p, &expires);
    if (rc == AUTH_OK && c) auth_cache_remember(c, AUTH_CACHE_TOKEN, hash, p, expires, now_ms, epoch);
    return rc;
}

int auth_cache_verify_session(auth_cache *c, store *st, const char *cookie, int64_t now_ms,
                              struct auth_principal *p) {
    char hash[STORE_HASH_MAX];
    int64_t expires = 0;
    uint64_t epoch = 0;
    int rc;
    if (cookie == NULL || strlen(cookie) != 64) return AUTH_DENIED;
    if (auth_sha256_hex(cookie, hash) != 0) return STORE_FAILED;
    if (c && auth_cache_lookup(c, AUTH_CACHE_SESSION, hash, NULL, now_ms, p, &epoch)) return AUTH_OK;
    rc = auth_session_row(st, hash, now_ms, p, &expires);
    if (rc == AUTH_OK && c) auth_cache_remember(c, AUTH_CACHE_SESSION, hash, p, expires, now_ms, epoch);
    return rc;
}

void auth_cache_forget_token(auth_cache *c, const char *token_id) {
    if (c == NULL || token_id == NULL) return;
    pthread_mutex_lock(&c->lock);
    c->epoch++;
    for (size_t i = 0; i < AUTH_CACHE_SLOTS; i++)
        if (c->slots[i].kind != AUTH_CACHE_EMPTY && strcmp(c->slots[i].p.token_id, token_id) == 0)
            memset(&c->slots[i], 0, sizeof c->slots[i]);
    pthread_mutex_unlock(&c->lock);
}

void auth_cache_forget_session(auth_cache *c, const char *session_hash) {
    if (c == NULL || session_hash == NULL) return;
    pthread_mutex_lock(&c->lock);
    c->epoch++;
    struct auth_cache_entry *e = auth_cache_slot(c, session_hash);
    if (e->kind == AUTH_CACHE_SESSION && strcmp(e->key, session_hash) == 0) memset(e, 0, sizeof *e);
    pthread_mutex_unlock(&c->lock);
}
