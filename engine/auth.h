/* auth.h — who is calling and what they may do.
 *
 * Tokens look like "slc_<id>_<secret>": 48 bits of public id used to find
 * the row, and 256 bits of secret from the kernel, kept only as a SHA-256
 * (OpenSSL) and compared in constant time. Tokens carry scopes, may expire,
 * and can be revoked. Browser sessions are made from a token: an opaque
 * cookie (stored hashed) plus a CSRF token the page must echo on unsafe
 * requests. Uses store.h for persistence.
 *
 * Verified credentials may be remembered in an auth_cache, which its owner
 * (script.c's host) passes in: a request with a known token or cookie then
 * costs one SHA-256 and a lookup instead of a store read. Entries are keyed
 * by the SHA-256 of the secret (never the secret), live at most
 * AUTH_CACHE_TTL_MS and never past the credential's own expiry. Revoking a
 * token, closing a session or opening one (which may end the oldest of its
 * token) through this process forgets what they concern before the caller
 * answers (auth_cache_forget_*), so they take effect at once here; a
 * verification that raced with a forget is not remembered. Done elsewhere
 * (another replica, `sluiced token revoke`), they take effect within
 * AUTH_CACHE_TTL_MS. A fixed table (AUTH_CACHE_SLOTS entries, one per slot
 * by hash) bounds its memory whatever is tried; refusals are never
 * remembered. Its one mutex is a leaf. */
#ifndef SLUICE_AUTH_H
#define SLUICE_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

enum auth_scope {
    AUTH_SCOPE_READ = 1,         /* scaling:read */
    AUTH_SCOPE_WRITE = 2,        /* scaling:write */
    AUTH_SCOPE_ADMIN = 4,        /* admin: implies the others */
    AUTH_SCOPE_APPROVE = 8,      /* scaling:approve: decide on pending approvals */
};
#define AUTH_SCOPE_ALL (AUTH_SCOPE_READ | AUTH_SCOPE_WRITE | AUTH_SCOPE_APPROVE | AUTH_SCOPE_ADMIN)

#define AUTH_TOKEN_MAX 112       /* "slc_" + 12 + "_" + 64 + NUL, with room */
#define AUTH_SESSION_TTL_MS (12LL * 3600 * 1000)
#define AUTH_CACHE_TTL_MS 1000   /* how late a revocation made elsewhere takes effect */
#define AUTH_CACHE_SLOTS 256
/* A token's queues: at most AUTH_QUEUE_PATTERNS names or trailing-'*'
 * prefixes, kept comma-separated ("build,ingest*"); "" means every queue. */
#define AUTH_QUEUE_PATTERNS 16
#define AUTH_QUEUES_MAX (AUTH_QUEUE_PATTERNS * (UTIL_NAME_MAX + 2) + 1)
_Static_assert(AUTH_QUEUES_MAX == STORE_QUEUES_MAX, "a token row holds every pattern list");

enum auth_result { AUTH_OK = 0, AUTH_DENIED = 1 };   /* or a negative store_rc */

struct auth_principal {
    char name[UTIL_NAME_MAX + 1];
    char token_id[STORE_ID_MAX];
    unsigned scopes;             /* effective: admin already expanded */
    char queues[AUTH_QUEUES_MAX];/* the token's queue patterns; "" = all */
    int via_session;             /* 1: cookie session, 0: bearer token */
    char csrf[STORE_HASH_MAX];   /* the session's CSRF token */
    char session_hash[STORE_HASH_MAX];
};

/* The scope names are spelled once, in auth.c's table; everything else
 * (route scopes, validate's change.scopes, messages) asks these. */

/* Scope name of one bit ("scaling:read"), or NULL. */
const char *auth_scope_name(unsigned bit);

/* The bit of one scope name ("admin"), or 0 for anything else (NULL too). */
unsigned auth_scope_parse(const char *name);

/* The i-th scope of the table, counting from 0, with its bit in *bit (when
 * bit is not NULL); NULL past the last. Lists of names follow this order:
 *   for (size_t i = 0; (name = auth_scope_at(i, &bit)); i++) ... */
const char *auth_scope_at(size_t i, unsigned *bit);

/* Every scope name, for messages: joined by sep, the last two by last_sep
 * ("scaling:read, scaling:write, scaling:approve or admin"). Cut at a whole name when buf is
 * too small. */
void auth_scope_list(char *buf, size_t size, const char *sep, const char *last_sep);

/* Parse "scaling:read,admin" into a scope mask. Returns 0, or -1 naming the
 * unknown scope in err. An empty list is an error. */
int auth_parse_scopes(const char *csv, unsigned *out, char *err, size_t errlen);

/* Write the scope names of mask, comma-separated, into buf. */
void auth_format_scopes(unsigned mask, char *buf, size_t size);

/* admin implies read, write and approve. */
unsigned auth_expand(unsigned mask);

/* 1 when s[0..len) is one queue pattern: a queue name (protocol.h's
 * protocol_valid_name), optionally followed by one '*' (every queue whose
 * name begins with it). A lone "*" is not one: no patterns means all. */
int auth_queue_pattern_valid(const char *s, size_t len);

/* Parse "ingest*,build" into the canonical form a token keeps: sorted,
 * without duplicates, comma-separated, into out (AUTH_QUEUES_MAX). Returns
 * 0, or -1 with a message naming the bad pattern in err: an empty list or
 * pattern, a pattern that is not one, more than AUTH_QUEUE_PATTERNS. */
int auth_parse_queues(const char *csv, char *out, size_t size, char *err, size_t errlen);

/* 1 when queue is among patterns (canonical, comma-separated; "" = every
 * queue): equal to one of them, or beginning with one's part before '*'. */
int auth_queues_match(const char *patterns, const char *queue);

/* 1 when every queue that inner's patterns allow is allowed by outer's
 * ("" = every queue): what a queue-limited caller may hand on. */
int auth_queues_cover(const char *outer, const char *inner);

/* Create a token. The plain token is written into token_out (shown once,
 * never stored) and its id into id_out. expires_in_s 0: no expiry.
 * Returns a store_rc (STORE_FAILED also when the kernel gives no randomness). */
int auth_token_create(store *st, const char *name, unsigned scopes, int64_t expires_in_s,
                      int64_t now_ms, char token_out[AUTH_TOKEN_MAX], char id_out[STORE_ID_MAX]);

/* auth_token_create of a token limited to queues (canonical patterns, as
 * auth_parse_queues writes them; "" or NULL: every queue). */
int auth_token_create_for(store *st, const char *name, unsigned scopes, const char *queues,
                          int64_t expires_in_s, int64_t now_ms, char token_out[AUTH_TOKEN_MAX],
                          char id_out[STORE_ID_MAX]);

/* Check a bearer token. AUTH_OK fills p; AUTH_DENIED for malformed, unknown,
 * wrong, expired or revoked tokens (one answer for all, on purpose); a
 * negative store_rc when the store failed. */
int auth_verify_token(store *st, const char *token, int64_t now_ms, struct auth_principal *p);

/* Log in with a token: verify it and create a session. cookie_out receives
 * the cookie value, p the principal (with its CSRF token). */
int auth_session_open(store *st, const char *token, int64_t now_ms, struct auth_principal *p,
                      char cookie_out[STORE_HASH_MAX]);

/* Check a session cookie; as auth_verify_token. */
int auth_verify_session(store *st, const char *cookie, int64_t now_ms, struct auth_principal *p);

/* Forget the session p was made from. */
int auth_session_close(store *st, const struct auth_principal *p);

/* 1 when p may see and act on queue: auth_queues_match of its patterns
 * (a cookie session has its token's). */
int auth_queue_allowed(const struct auth_principal *p, const char *queue);
/* 1 when header equals the session's CSRF token (constant time). */
int auth_csrf_ok(const struct auth_principal *p, const char *header);

typedef struct auth_cache auth_cache;

/* An empty cache, or NULL when out of memory. auth_cache_free(NULL) is a
 * no-op. */
auth_cache *auth_cache_new(void);
void auth_cache_free(auth_cache *c);

/* auth_verify_token and auth_verify_session through c (NULL: no cache):
 * the same answers, the store read only when c does not hold a valid
 * entry; an AUTH_OK from the store is remembered. */
int auth_cache_verify_token(auth_cache *c, store *st, const char *token, int64_t now_ms,
                            struct auth_principal *p);
int auth_cache_verify_session(auth_cache *c, store *st, const char *cookie, int64_t now_ms,
                              struct auth_principal *p);

/* Forget the token token_id and every session made from it (after a
 * revocation, or a login that may have ended the oldest session). */
void auth_cache_forget_token(auth_cache *c, const char *token_id);

/* Forget one session, by the hash its principal carries (logout). */
void auth_cache_forget_session(auth_cache *c, const char *session_hash);

#endif
