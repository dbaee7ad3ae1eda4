/* body.h — a rendered answer body: immutable bytes with their content type
 * and a strong ETag, shared by reference count between the queue-health
 * model that caches it (health.h) and the requests that send it.
 *
 * The ETag is the first 128 bits of the bytes' SHA-256 (OpenSSL EVP), in
 * hex and quotes: equal bytes give equal ETags whatever model or process
 * rendered them, so an unchanged answer keeps its ETag across models and
 * restarts, and different bytes give a different one. body_not_modified is
 * RFC 9110's If-None-Match test. Uses nothing but OpenSSL and jansson.
 *
 * Large bodies (a snapshot of 10,000 workers is megabytes) are written in
 * place (struct body_writer): a renderer appends pieces, JSON values
 * included, to the body's own allocation, so no second copy of the bytes
 * and no tree of the whole answer ever exist. A body meant to be followed
 * by bytes that change per request (/metrics: the model's families, then
 * the process counters) keeps the digest state of its bytes
 * (body_new_head), so body_concat hashes only what follows it. */
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
    void *digest;                    /* body_new_head: SHA-256 state after bytes, else NULL */
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

/* As body_new, keeping the digest state of the bytes for body_concat. */
struct body *body_new_head(const char *bytes, size_t len, const char *content_type);

/* A new body of head's bytes followed by tail[0..len), with head's content
 * type and the ETag body_new would give those bytes; only tail is hashed
 * when head came from body_new_head. head is borrowed. NULL when out of
 * memory. */
struct body *body_concat(const struct body *head, const char *tail, size_t len);

/* A body written in pieces into its own allocation, which grows as needed.
 * Any failure (out of memory, a JSON value that cannot be dumped) is
 * remembered: later writes do nothing and body_writer_finish returns NULL. */
struct body_writer {
    struct body *b;                  /* NULL once failed or finished */
    size_t cap;                      /* room for bytes in b */
};

/* Start a body with room for about hint bytes (0 is fine). */
void body_writer_init(struct body_writer *w, size_t hint);

/* Append bytes[0..len), or a NUL-terminated string. */
void body_write(struct body_writer *w, const char *bytes, size_t len);
void body_write_str(struct body_writer *w, const char *s);

/* Append v dumped as body_from_json dumps it (v borrowed). */
void body_write_json(struct body_writer *w, const json_t *v);

/* The bytes written so far (not NUL-terminated), and their count; NULL and
 * 0 once failed. For a renderer that must look back at what it wrote. */
char *body_writer_bytes(struct body_writer *w, size_t *len);

/* Drop the last n bytes written (at most all of them). */
void body_writer_unwrite(struct body_writer *w, size_t n);

/* The finished body with content_type (one reference, the caller's), or
 * NULL when anything failed; w is empty afterwards either way. */
struct body *body_writer_finish(struct body_writer *w, const char *content_type);

/* Forget what w holds (an abandoned render); an empty w is a no-op. */
void body_writer_discard(struct body_writer *w);

/* Take one more reference / drop one (the last frees it). NULL is a no-op
 * for both; body_ref returns b. */
struct body *body_ref(struct body *b);
void body_release(struct body *b);

/* 1 when an If-None-Match header value names b's ETag (or is "*"): the
 * client's copy is current and the answer is 304. Weak comparison, as
 * RFC 9110 wants for If-None-Match: W/"x" matches "x". NULL: 0. */
int body_not_modified(const struct body *b, const char *if_none_match);

#endif
