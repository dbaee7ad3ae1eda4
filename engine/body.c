/* body.c — rendered bodies, their ETags and the If-None-Match test. */
#include "body.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct body *body_new(const char *bytes, size_t len, const char *content_type) {
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    struct body *b = malloc(sizeof *b + len + 1);
    if (b == NULL) return NULL;
    if (!EVP_Digest(bytes, len, md, &mdlen, EVP_sha256(), NULL) || mdlen < 16) {
        free(b);
        return NULL;
    }
    atomic_init(&b->refs, 1);
    b->len = len;
    b->etag[0] = '"';
    for (int i = 0; i < 16; i++) {
        b->etag[1 + 2 * i] = hex[md[i] >> 4];
        b->etag[2 + 2 * i] = hex[md[i] & 15];
    }
    b->etag[33] = '"';
    b->etag[34] = '\0';
    snprintf(b->content_type, sizeof b->content_type, "%s", content_type);
    memcpy(b->bytes, bytes, len);
    b->bytes[len] = '\0';
    return b;
}

struct body *body_from_json(const json_t *v) {
    /* The flags of http_respond_json: a cached answer is byte-equal to the
     * answer it replaces. */
    char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    struct body *b = text ? body_new(text, strlen(text), BODY_JSON) : NULL;
    free(text);
    return b;
}

struct body *body_ref(struct body *b) {
    if (b) atomic_fetch_add(&b->refs, 1);
    return b;
}

void body_release(struct body *b) {
    if (b && atomic_fetch_sub(&b->refs, 1) == 1) free(b);
}

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
