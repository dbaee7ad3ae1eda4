/* body.c — rendered bodies, their ETags, bodies written in place, and the
 * If-None-Match test. */
#include "body.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The flags of http_respond_json: a cached answer is byte-equal to the
 * answer it replaces. */
#define BODY_JSON_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)

/* Finish b (len bytes in place): NUL, content type, and the ETag from ctx,
 * a digest fed with every byte. Returns 0, or -1 when hashing failed. */
static int body_seal(struct body *b, EVP_MD_CTX *ctx, const char *content_type) {
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_DigestFinal_ex(ctx, md, &mdlen) || mdlen < 16) return -1;
    atomic_init(&b->refs, 1);
    b->etag[0] = '"';
    for (int i = 0; i < 16; i++) {
        b->etag[1 + 2 * i] = hex[md[i] >> 4];
        b->etag[2 + 2 * i] = hex[md[i] & 15];
    }
    b->etag[33] = '"';
    b->etag[34] = '\0';
    snprintf(b->content_type, sizeof b->content_type, "%s", content_type);
    b->bytes[b->len] = '\0';
    return 0;
}

/* Hash b's bytes and seal it; keep the state before finishing in
 * b->digest when keep. Frees b and returns NULL on failure. */
static struct body *body_hash(struct body *b, const char *content_type, int keep) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(ctx, b->bytes, b->len);
    b->digest = NULL;
    if (ok && keep) {
        if ((b->digest = EVP_MD_CTX_new()) == NULL || !EVP_MD_CTX_copy_ex(b->digest, ctx)) ok = 0;
    }
    if (ok) ok = body_seal(b, ctx, content_type) == 0;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        EVP_MD_CTX_free(b->digest);
        free(b);
        return NULL;
    }
    return b;
}

static struct body *body_make(const char *bytes, size_t len, const char *content_type, int keep) {
    struct body *b = malloc(sizeof *b + len + 1);
    if (b == NULL) return NULL;
    b->len = len;
    memcpy(b->bytes, bytes, len);
    return body_hash(b, content_type, keep);
}

struct body *body_new(const char *bytes, size_t len, const char *content_type) {
    return body_make(bytes, len, content_type, 0);
}

struct body *body_new_head(const char *bytes, size_t len, const char *content_type) {
    return body_make(bytes, len, content_type, 1);
}

struct body *body_concat(const struct body *head, const char *tail, size_t len) {
    struct body *b;
    EVP_MD_CTX *ctx;
    int ok;
    if (head->digest == NULL) {
        /* No state kept: hash it all, as body_new would. */
        struct body_writer w;
        body_writer_init(&w, head->len + len);
        body_write(&w, head->bytes, head->len);
        body_write(&w, tail, len);
        return body_writer_finish(&w, head->content_type);
    }
    if ((b = malloc(sizeof *b + head->len + len + 1)) == NULL) return NULL;
    b->len = head->len + len;
    b->digest = NULL;
    memcpy(b->bytes, head->bytes, head->len);
    memcpy(b->bytes + head->len, tail, len);
    ctx = EVP_MD_CTX_new();
    ok = ctx && EVP_MD_CTX_copy_ex(ctx, head->digest) && EVP_DigestUpdate(ctx, tail, len) &&
         body_seal(b, ctx, head->content_type) == 0;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        free(b);
        return NULL;
    }
    return b;
}

struct body *body_from_json(const json_t *v) {
    struct body_writer w;
    body_writer_init(&w, 0);
    body_write_json(&w, v);
    return body_writer_finish(&w, BODY_JSON);
}

struct body *body_ref(struct body *b) {
    if (b) atomic_fetch_add(&b->refs, 1);
    return b;
}

void body_release(struct body *b) {
    if (b && atomic_fetch_sub(&b->refs, 1) == 1) {
        EVP_MD_CTX_free(b->digest);
        free(b);
    }
}

/* ---- written in place ---------------------------------------------------------- */

void body_writer_init(struct body_writer *w, size_t hint) {
    w->cap = hint > 256 ? hint : 256;
    if ((w->b = malloc(sizeof *w->b + w->cap + 1)) != NULL) w->b->len = 0;
}

/* Room for n more bytes. Returns 0, or -1 (and w failed) when out of memory. */
static int body_writer_room(struct body_writer *w, size_t n) {
    if (w->b == NULL) return -1;
    if (n <= w->cap - w->b->len) return 0;
    size_t cap = w->cap * 2 > w->b->len + n ? w->cap * 2 : w->b->len + n;
    struct body *grown = realloc(w->b, sizeof *grown + cap + 1);
    if (grown == NULL) {
        body_writer_discard(w);
        return -1;
    }
    w->b = grown;
    w->cap = cap;
    return 0;
}

void body_write(struct body_writer *w, const char *bytes, size_t len) {
    if (body_writer_room(w, len) != 0) return;
    memcpy(w->b->bytes + w->b->len, bytes, len);
    w->b->len += len;
}

void body_write_str(struct body_writer *w, const char *s) { body_write(w, s, strlen(s)); }

/* json_dump_callback's sink: 0, or -1 to stop the dump. */
static int body_writer_sink(const char *buffer, size_t size, void *data) {
    struct body_writer *w = data;
    body_write(w, buffer, size);
    return w->b ? 0 : -1;
}

void body_write_json(struct body_writer *w, const json_t *v) {
    if (w->b == NULL) return;
    if (v == NULL || json_dump_callback(v, body_writer_sink, w, BODY_JSON_FLAGS) != 0)
        body_writer_discard(w);
}

char *body_writer_bytes(struct body_writer *w, size_t *len) {
    *len = w->b ? w->b->len : 0;
    return w->b ? w->b->bytes : NULL;
}

void body_writer_unwrite(struct body_writer *w, size_t n) {
    if (w->b) w->b->len -= n < w->b->len ? n : w->b->len;
}

struct body *body_writer_finish(struct body_writer *w, const char *content_type) {
    struct body *b = w->b;
    w->b = NULL;
    w->cap = 0;
    if (b == NULL) return NULL;
    /* Give back the room the hint left over. */
    struct body *fit = realloc(b, sizeof *b + b->len + 1);
    return body_hash(fit ? fit : b, content_type, 0);
}

void body_writer_discard(struct body_writer *w) {
    free(w->b);
    w->b = NULL;
    w->cap = 0;
}

/* ---- If-None-Match ------------------------------------------------------------- */

int body_not_modified(const struct body *b, const char *inm) {
    const char *p = inm;
    const char *tag = b ? b->etag : NULL;
    size_t taglen = tag ? strlen(tag) : 0;
    if (b == NULL || inm == NULL) return 0;
    /* A comma-separated list of entity tags, each maybe W/-prefixed. */
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        if (*p == '\0') break;
        if (*p == '*') return 1;
        if (p[0] == 'W' && p[1] == '/') p += 2;
        size_t n = strcspn(p, ", \t");
        if (n == taglen && memcmp(p, tag, taglen) == 0) return 1;
        p += n;
    }
    return 0;
}
