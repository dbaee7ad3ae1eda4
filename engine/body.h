/* body.h — a rendered answer body: immutable bytes with their content type
 * and a strong ETag, shared by reference count between the queue-health
 * model that caches it (health.h) and the requests that send it.
 *
 * The ETag is the first 128 bits of the bytes' SHA-256 (OpenSSL EVP), in
 * hex and quotes: equal bytes give equal ETags whatever model or process
 * rendered them, so an unchanged answer keeps its ETag across models and
 * restarts, and different bytes give a different one. body_not_modified is
 * RFC 9110's If-None-Match test. Uses nothing but OpenSSL and jansson. */
#ifndef SLUICE_BODY_H
#define SLUICE_BODY_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>

#define BODY_ETAG_MAX 35             /* '"' + 32 hex + '"' + NUL */
#define BODY_JSON "application/json; charset=utf-8"

struct body {
    atomic_int refs;                 /* body_ref / body_release only */
    size_t len;
    char etag[BODY_ETAG_MAX];
    char content_type[64];
    char bytes[];                    /* len bytes, then a NUL */
};

/* A body holding a copy of bytes[0..len) with content_type. One reference
 * (the caller's), or NULL when out of memory or hashing failed. */
struct body *body_new(const char *bytes, size_t len, const char *content_type);

/* v dumped exactly as http_respond_json dumps an answer (compact, sorted
 * keys), as BODY_JSON. v is borrowed. NULL when out of memory. */
struct body *body_from_json(const json_t *v);

/* Take one more reference / drop one (the last frees it). NULL is a no-op
 * for both; body_ref returns b. */
struct body *body_ref(struct body *b);
void body_release(struct body *b);

/* 1 when an If-None-Match header value names b's ETag (or is "*"): the
 * client's copy is current and the answer is 304. Weak comparison, as
 * RFC 9110 wants for If-None-Match: W/"x" matches "x". NULL: 0. */
int body_not_modified(const struct body *b, const char *if_none_match);

#endif
