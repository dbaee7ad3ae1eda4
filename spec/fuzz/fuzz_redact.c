/* fuzz_redact.c — redact_url (engine/redact.c) on any string.
 *
 * The input, cut at its first NUL as a C string is, goes through redact_url
 * with output buffers of many sizes, each allocated to exactly that size so
 * AddressSanitizer sees one byte written past it. Properties, from redact.h:
 *   - it returns 0 or -1, always NUL-terminates within size, writes nothing
 *     when size is 0, and a smaller buffer holds a prefix of what a large
 *     one holds (truncation, never a different answer);
 *   - "sqlite:PATH" and "" come back as they are;
 *   - any other output never shows a password: no 6-byte piece of the password
 *     that libcurl reads from the user info (raw, and percent-decoded), nor
 *     of any setting libpq marks secret (password, sslpassword), appears in
 *     what is shown.
 * A piece of the password may show for an honest reason: the same bytes
 * stand elsewhere in the input ("redis://u:localhost@localhost"), or the
 * library writes them anyway (a scheme it lowercases, a host it
 * percent-decodes, the mask next to a scheme). So a piece counts as leaked
 * only when it is in the output, not across the mask, but neither in the
 * input with the password taken out (as is or percent-decoded), nor in the
 * output for the same input with the password replaced by filler of the
 * same length; and that filler must not show either. Comparisons ignore
 * case, which hides no leak a reader could use and spares false alarms. */
#include "fuzz.h"
#include "redact.h"

#include <curl/curl.h>
#include <libpq-fe.h>
#include <string.h>           /* strcasestr: built with -D_GNU_SOURCE */

#define FUZZ_PIECE 6                 /* shortest piece of a password that counts */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    return 0;
}

/* redact_url into a fresh buffer of exactly size bytes; the caller frees. */
static char *fuzz_redact(const char *in, size_t size, int *rc) {
    char *out = malloc(size ? size : 1);
    FUZZ_CHECK(out != NULL);
    if (size == 0) out[0] = 'Z';
    *rc = redact_url(in, out, size);
    FUZZ_CHECK(*rc == 0 || *rc == -1);
    if (size == 0) FUZZ_CHECK(out[0] == 'Z');
    else FUZZ_CHECK(memchr(out, '\0', size) != NULL);
    return out;
}

/* A size that holds any answer: percent-encoding triples a byte, and libpq
 * may add keywords. */
static size_t fuzz_big(const char *s) { return 8 * strlen(s) + 1024; }

/* A letter that is nowhere in s, for filler; 0 when all are. */
static char fuzz_filler(const char *s) {
    for (const char *c = "qzjxkvwybfghmpdlcuonrtsaie"; *c; c++)
        if (!strchr(s, *c) && !strchr(s, *c - 'a' + 'A')) return *c;
    return 0;
}

/* s with the secret taken out (with == NULL) or replaced by `with`, of the
 * same length; malloc'd. The secret is looked for where a connection string
 * holds one, from `from` on: between ':' and '@' (user info), after '='
 * (a query or keyword value), after a quote, and last anywhere. *found
 * tells whether it was (else the copy is unchanged). */
static char *fuzz_splice(const char *s, const char *secret, size_t from, const char *with,
                         int *found) {
    static const char *const around[][2] = {{":", "@"}, {"=", ""}, {"'", ""}, {"", ""}};
    size_t n = strlen(secret);
    char *copy = strdup(s), *at = NULL;
    FUZZ_CHECK(copy != NULL);
    for (size_t i = 0; at == NULL && from <= strlen(s) && i < sizeof around / sizeof around[0]; i++) {
        size_t pre = strlen(around[i][0]), post = strlen(around[i][1]);
        for (char *p = copy + from; (p = strstr(p, secret)) != NULL; p++) {
            if ((size_t)(p - copy) >= from + pre && strncmp(p - pre, around[i][0], pre) == 0 &&
                strncmp(p + n, around[i][1], post) == 0) {
                at = p;
                break;
            }
        }
    }
    *found = at != NULL;
    if (at == NULL) return copy;
    if (with) memcpy(at, with, n);
    else memmove(at, at + n, strlen(at + n) + 1);
    return copy;
}

/* Break the property when a FUZZ_PIECE-byte piece of secret is in shown
 * but neither in rest nor in ref (may be NULL). The mask in shown is a
 * wall: a piece made of part of the mask and what stands next to it (the
 * fallback "postgres://" + mask ends with one) shows nothing of the secret. */
static void fuzz_check_hidden(const char *what, const char *secret, const char *shown,
                              const char *rest, const char *ref) {
    size_t n = strlen(secret);
    char piece[FUZZ_PIECE + 1];
    char *walled = strdup(shown);
    FUZZ_CHECK(walled != NULL);
    for (char *m = walled; (m = strstr(m, REDACT_MASK)) != NULL;)
        for (size_t k = 0; k < strlen(REDACT_MASK); k++) *m++ = '\n';
    for (size_t i = 0; i + FUZZ_PIECE <= n; i++) {
        memcpy(piece, secret + i, FUZZ_PIECE);
        piece[FUZZ_PIECE] = '\0';
        if (!strcasestr(walled, piece) || strcasestr(rest, piece) || (ref && strcasestr(ref, piece)))
            continue;
        fprintf(stderr, "fuzz: %s \"%s\" shows as \"%s\" (piece \"%s\")\n", what, secret, shown, piece);
        FUZZ_CHECK(!"a password piece is shown");
    }
    free(walled);
}

/* The redacted form of in with its first `secret` (at or after from)
 * replaced by filler; NULL when the secret is not in the input as is, or
 * there is no filler letter. The filler itself must not show either. */
static char *fuzz_reference(const char *in, const char *secret, size_t from) {
    char fill = fuzz_filler(in);
    int found, rc;
    if (fill == 0) return NULL;
    char *filler = strdup(secret);
    FUZZ_CHECK(filler != NULL);
    memset(filler, fill, strlen(filler));
    char *alt = fuzz_splice(in, secret, from, filler, &found);
    char *ref = found ? fuzz_redact(alt, fuzz_big(alt), &rc) : NULL;
    /* Only when the secret is written once can the filler stand for it
     * alone: the same bytes may also be a user name. */
    const char *first = strstr(in, secret);
    if (ref && first && !strstr(first + 1, secret))
        fuzz_check_hidden("the filler password", filler, ref, "", NULL);
    free(alt);
    free(filler);
    return ref;
}

static int fuzz_hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return (c | 0x20) - 'a' + 10;
    return -1;
}

/* Percent-decode n bytes of s into out (n + 1 bytes); %00 stays as is. */
static void fuzz_percent_decode(char *out, const char *s, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = 0;
        if (s[i] == '%' && i + 2 < n && fuzz_hex_value(s[i + 1]) >= 0 && fuzz_hex_value(s[i + 2]) >= 0)
            c = fuzz_hex_value(s[i + 1]) * 16 + fuzz_hex_value(s[i + 2]);
        if (c != 0) {
            out[o++] = (char)c;
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
}

/* n bytes of s with each backslash escape replaced by the byte it escapes,
 * as libpq reads keyword values, into out (n + 1 bytes). */
static void fuzz_unescape(char *out, const char *s, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n) i++;
        out[o++] = s[i];
    }
    out[o] = '\0';
}

/* Check secret, and its other form `also` (may be NULL: the decoded
 * password), against shown; raw is how the secret is written in the input. */
static void fuzz_check_secret(const char *what, const char *in, const char *shown,
                              const char *raw, const char *also, size_t from) {
    int found;
    if (strlen(raw) < FUZZ_PIECE && (also == NULL || strlen(also) < FUZZ_PIECE)) return;
    char *rest = fuzz_splice(in, raw, from, NULL, &found);
    char *ref = fuzz_reference(in, raw, from);
    /* The libraries decode what they read: "%41" in a host shows as "A",
     * and "w\1" in a libpq value as "w1". */
    size_t n = strlen(rest);
    char *forms = realloc(rest, 3 * n + 3);
    FUZZ_CHECK(forms != NULL);
    forms[n] = '\n';
    fuzz_percent_decode(forms + n + 1, forms, n);
    size_t m = n + 1 + strlen(forms + n + 1);
    forms[m] = '\n';
    fuzz_unescape(forms + m + 1, forms, n);
    fuzz_check_hidden(what, raw, shown, forms, ref);
    if (also) fuzz_check_hidden(what, also, shown, forms, ref);
    free(ref);
    free(forms);
}

/* The password libcurl reads from the user info, raw and decoded. */
static void fuzz_check_curl_password(const char *in, const char *shown) {
    CURLU *u = curl_url();
    char *raw = NULL, *decoded = NULL;
    const char *scheme_end = strstr(in, "://");
    size_t from = scheme_end ? (size_t)(scheme_end - in) + 3 : 0;
    FUZZ_CHECK(u != NULL);
    if (curl_url_set(u, CURLUPART_URL, in, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PASSWORD, &raw, 0) == CURLUE_OK && raw) {
        if (curl_url_get(u, CURLUPART_PASSWORD, &decoded, CURLU_URLDECODE) != CURLUE_OK) decoded = NULL;
        fuzz_check_secret("libcurl's password", in, shown, raw, decoded, from);
    }
    curl_free(decoded);
    curl_free(raw);
    curl_url_cleanup(u);
}

/* Every setting libpq would never display (dispchar "*"). */
static void fuzz_check_libpq_secrets(const char *in, const char *shown) {
    PQconninfoOption *opts = PQconninfoParse(in, NULL);
    for (const PQconninfoOption *o = opts; o && o->keyword; o++)
        if (o->val && o->dispchar && o->dispchar[0] == '*')
            fuzz_check_secret(o->keyword, in, shown, o->val, NULL, 0);
    PQconninfoFree(opts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const size_t sizes[] = {0, 1, 2, 3, 4, 8, 13, 16, 32, 64, 100, 256};
    char *in = malloc(size + 1);
    FUZZ_CHECK(in != NULL);
    memcpy(in, data, size);
    in[size] = '\0';

    int rc, rc_again;
    char *full = fuzz_redact(in, fuzz_big(in), &rc);
    char *again = fuzz_redact(in, fuzz_big(in), &rc_again);
    FUZZ_CHECK(rc == rc_again && strcmp(full, again) == 0);   /* no hidden state */
    free(again);

    size_t full_len = strlen(full);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        int rc_small;
        char *small = fuzz_redact(in, sizes[i], &rc_small);
        FUZZ_CHECK(rc_small == rc);
        if (sizes[i] > 0) {
            size_t want = full_len < sizes[i] - 1 ? full_len : sizes[i] - 1;
            FUZZ_CHECK(strlen(small) == want && memcmp(small, full, want) == 0);
        }
        free(small);
    }

    if (in[0] == '\0' || strncmp(in, "sqlite:", 7) == 0) {
        /* A path, shown as it is (redact.h): nothing there is a secret. */
        FUZZ_CHECK(rc == 0 && strcmp(full, in) == 0);
    } else {
        fuzz_check_curl_password(in, full);
        fuzz_check_libpq_secrets(in, full);
    }
    free(full);
    free(in);
    return 0;
}
