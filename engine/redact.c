/* redact.c — connection strings with their credentials masked, as libpq and
 * libcurl read them. */
#include "redact.h"
#include "util.h"

#include <curl/curl.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REDACT_SCHEME_MAX 32

/* In URLs other than PostgreSQL's, a query parameter whose name contains one
 * of these holds a secret. Hiding a harmless one (sslkey=PATH) costs less
 * than showing a token. */
static const char *const redact_secret_words[] = {
    "pass", "pwd", "secret", "token", "auth", "key", "sig", "credential", NULL};

/* A keyword/value string shows these first, in this order, then the rest in
 * libpq's order: "host=h user=u password=***". */
static const char *const redact_pg_lead[] = {"host", "hostaddr", "port", "dbname", "user",
                                             "password", NULL};

/* ---- shared ------------------------------------------------------------------ */

/* Length of the scheme when s starts with "SCHEME://" (RFC 3986), else 0. */
static size_t redact_scheme_len(const char *s) {
    static const char rest[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.";
    int letter = (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z');
    size_t n = strspn(s, rest);
    return letter && n <= REDACT_SCHEME_MAX && strncmp(s + n, "://", 3) == 0 ? n : 0;
}

/* A raw '@' is unambiguous only as the one separator between user info and
 * host, before the first of `ends` (what ends the authority). Any other '@'
 * means a password with '@', '/', ... that the parser splits where its author
 * did not, and shows part of it as a host, port or path. rest: after "://". */
static int redact_at_ambiguous(const char *rest, const char *ends) {
    const char *at = strchr(rest, '@');
    return at && (strchr(at + 1, '@') || strcspn(rest, ends) < (size_t)(at - rest));
}

/* n bytes of s, percent-encoded but for RFC 3986 unreserved characters and
 * those in keep. */
static void redact_put_encoded(FILE *f, const char *s, size_t n, const char *keep) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    (c && strchr("-._~", c)) || (c && strchr(keep, c));
        if (plain) fputc(c, f);
        else fprintf(f, "%%%02X", c);
    }
}

static size_t redact_count(const char *s, char c) {
    size_t n = 1;
    for (; *s; s++) n += *s == c;
    return n;
}

/* ---- PostgreSQL (libpq) ---------------------------------------------------------- */

static const char *redact_pg_value(const PQconninfoOption *opts, const char *keyword) {
    for (; opts->keyword; opts++)
        if (strcmp(opts->keyword, keyword) == 0) return opts->val;
    return NULL;
}

/* libpq's own mark for a setting never to display: password, sslpassword. */
static int redact_pg_secret(const PQconninfoOption *o) {
    return o->dispchar && o->dispchar[0] == '*';
}

static int redact_pg_listed(const char *const *list, const char *s) {
    for (; *list; list++)
        if (strcmp(*list, s) == 0) return 1;
    return 0;
}

/* Settings libpq accepts that show a misread: a port that is not a number
 * ("u:pass/word@h" read as host u, port pass), a database name that is
 * itself a connection string. */
static int redact_pg_suspicious(const PQconninfoOption *opts) {
    const char *port = redact_pg_value(opts, "port"), *db = redact_pg_value(opts, "dbname");
    if (port && port[strspn(port, "0123456789,")] != '\0') return 1;
    return db && (strchr(db, '=') || strstr(db, "://"));
}

/* The hosts of a URI, each with its port when there is one port per host (as
 * libpq reads "h1:5432,h2:5433"). Returns 1 when the ports were written, 0
 * when they belong in the query (one port for several hosts). */
static int redact_pg_write_hosts(FILE *f, const char *hosts, const char *ports) {
    const char *h = hosts ? hosts : "", *p = ports;
    int paired = p == NULL || redact_count(h, ',') == redact_count(p, ',');
    for (;;) {
        size_t hn = strcspn(h, ",");
        if (memchr(h, ':', hn)) {                         /* IPv6 */
            fputc('[', f);
            redact_put_encoded(f, h, hn, ":");
            fputc(']', f);
        } else {
            redact_put_encoded(f, h, hn, "");
        }
        if (paired && p) {
            size_t pn = strcspn(p, ",");
            if (pn) fprintf(f, ":%.*s", (int)pn, p);
            p += pn + (p[pn] == ',');
        }
        h += hn;
        if (*h != ',') break;
        fputc(',', f);
        h++;
    }
    return paired;
}

/* opts as a URI after prefix ("postgres://"). User and password stay in the
 * user info when the input had them there, else they go to the query. */
static void redact_pg_write_uri(FILE *f, const char *prefix, size_t prefix_len,
                         const PQconninfoOption *opts, int had_userinfo, int had_password) {
    const char *user = redact_pg_value(opts, "user"), *db = redact_pg_value(opts, "dbname");
    int user_there = had_userinfo && user, password_there = had_password && redact_pg_value(opts, "password");
    fwrite(prefix, 1, prefix_len, f);
    if (user_there || password_there) {
        if (user_there) redact_put_encoded(f, user, strlen(user), "");
        if (password_there) fputs(":" REDACT_MASK, f);
        fputc('@', f);
    }
    int port_there = redact_pg_write_hosts(f, redact_pg_value(opts, "host"), redact_pg_value(opts, "port"));
    if (db) {
        fputc('/', f);
        redact_put_encoded(f, db, strlen(db), "");
    }
    char sep = '?';
    for (const PQconninfoOption *o = opts; o->keyword; o++) {
        const char *k = o->keyword;
        if (o->val == NULL || !strcmp(k, "host") || !strcmp(k, "dbname") ||
            (port_there && !strcmp(k, "port")) || (user_there && !strcmp(k, "user")) ||
            (password_there && !strcmp(k, "password")))
            continue;
        fprintf(f, "%c%s=", sep, k);
        sep = '&';
        if (redact_pg_secret(o)) fputs(REDACT_MASK, f);
        else redact_put_encoded(f, o->val, strlen(o->val), "/:,");
    }
}

/* One keyword=value, the value quoted as libpq reads it back. */
static void redact_pg_put_keyword(FILE *f, const PQconninfoOption *o, int *first) {
    const char *v = o->val;
    if (!*first) fputc(' ', f);
    *first = 0;
    fprintf(f, "%s=", o->keyword);
    if (redact_pg_secret(o)) {
        fputs(REDACT_MASK, f);
    } else if (*v && v[strcspn(v, " \t\n\r\f\v'\\")] == '\0') {
        fputs(v, f);
    } else {
        fputc('\'', f);
        for (; *v; v++) {
            if (*v == '\'' || *v == '\\') fputc('\\', f);
            fputc(*v, f);
        }
        fputc('\'', f);
    }
}

static void redact_pg_write_keywords(FILE *f, const PQconninfoOption *opts) {
    int first = 1;
    for (const char *const *k = redact_pg_lead; *k; k++)
        for (const PQconninfoOption *o = opts; o->keyword; o++)
            if (o->val && strcmp(o->keyword, *k) == 0) redact_pg_put_keyword(f, o, &first);
    for (const PQconninfoOption *o = opts; o->keyword; o++)
        if (o->val && !redact_pg_listed(redact_pg_lead, o->keyword)) redact_pg_put_keyword(f, o, &first);
}

/* 1 when libpq reads shown as exactly the settings of opts, each secret one
 * as REDACT_MASK: nothing lost, nothing shown that should not be. */
static int redact_pg_same_settings(const PQconninfoOption *opts, const char *shown) {
    PQconninfoOption *again = PQconninfoParse(shown, NULL);
    int same = again != NULL;
    for (const PQconninfoOption *o = opts; same && o->keyword; o++) {
        const char *v = redact_pg_value(again, o->keyword);
        if (redact_pg_secret(o)) same = o->val ? v && strcmp(v, REDACT_MASK) == 0 : v == NULL;
        else same = strcmp(o->val ? o->val : "", v ? v : "") == 0;
    }
    PQconninfoFree(again);
    return same;
}

/* A PostgreSQL URI (prefix_len: its "postgres://" or "postgresql://") or,
 * when prefix_len is 0, a keyword/value string, masked. Returns a malloc'd
 * string the caller frees, or NULL when it cannot be shown safely. */
static char *redact_pg(const char *url, size_t prefix_len) {
    PQconninfoOption *opts = PQconninfoParse(url, NULL);
    const char *rest = url + prefix_len, *at = strchr(rest, '@');
    char *shown = NULL;
    size_t len = 0;
    FILE *f;

    if (opts == NULL || redact_pg_suspicious(opts)) goto fail;
    if (prefix_len && redact_at_ambiguous(rest, "/")) goto fail;
    if ((f = open_memstream(&shown, &len)) == NULL) goto fail;
    if (prefix_len) {   /* libpq: user info ends at the first '@', the user at a ':' */
        int had_password = at && memchr(rest, ':', (size_t)(at - rest));
        redact_pg_write_uri(f, url, prefix_len, opts, at != NULL, had_password);
    } else {
        redact_pg_write_keywords(f, opts);
    }
    if (fclose(f) != 0 || shown == NULL || !redact_pg_same_settings(opts, shown)) goto fail;
    PQconninfoFree(opts);
    return shown;
fail:
    free(shown);
    PQconninfoFree(opts);
    return NULL;
}

/* ---- other URLs (libcurl) ---------------------------------------------------------- */

static int redact_secret_param(const char *name, size_t n) {
    if (memchr(name, '%', n)) return 1;        /* encoded: cannot tell, so hide */
    for (const char *const *w = redact_secret_words; *w; w++) {
        size_t wn = strlen(*w);
        for (size_t i = 0; i + wn <= n; i++)
            if (strncasecmp(name + i, *w, wn) == 0) return 1;
    }
    return 0;
}

/* Set u's query to query with the value of the first secret parameter, and
 * all that follows it, masked: a raw '&' may be part of that value, and no
 * parser can tell. */
static int redact_set_query(CURLU *u, const char *query) {
    char *masked = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&masked, &len);
    if (f == NULL) return -1;
    for (const char *p = query; *p;) {
        size_t n = strcspn(p, "&"), name = strcspn(p, "=&");
        if (name < n && redact_secret_param(p, name)) {
            fwrite(p, 1, name, f);
            fputs("=" REDACT_MASK, f);
            break;
        }
        fwrite(p, 1, n, f);
        p += n;
        if (*p) fputc(*p++, f);
    }
    int rc = fclose(f) == 0 && masked && curl_url_set(u, CURLUPART_QUERY, masked, 0) == CURLUE_OK
                 ? 0 : -1;
    free(masked);
    return rc;
}

/* SCHEME://... other than PostgreSQL's, masked. Returns a malloc'd string
 * the caller frees, or NULL when it cannot be shown safely. */
static char *redact_other(const char *url, size_t scheme_len) {
    CURLU *u = curl_url();
    char *part = NULL, *shown = NULL;

    if (u == NULL || redact_at_ambiguous(url + scheme_len + 3, "/?#") ||
        curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK)
        goto done;
    if (curl_url_get(u, CURLUPART_PASSWORD, &part, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_PASSWORD, REDACT_MASK, 0) != CURLUE_OK)
        goto done;
    curl_free(part);
    part = NULL;
    if (curl_url_get(u, CURLUPART_QUERY, &part, 0) == CURLUE_OK && redact_set_query(u, part) != 0)
        goto done;
    curl_free(part);
    part = NULL;
    /* Never sent to a server, so never needed in a log; may end a token. */
    if (curl_url_get(u, CURLUPART_FRAGMENT, &part, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_FRAGMENT, REDACT_MASK, 0) != CURLUE_OK)
        goto done;
    curl_free(part);
    part = NULL;
    if (curl_url_get(u, CURLUPART_URL, &part, 0) == CURLUE_OK) shown = strdup(part);
done:
    curl_free(part);
    curl_url_cleanup(u);
    return shown;
}

/* ---- the entry point ------------------------------------------------------------- */

int redact_url(const char *url, char *out, size_t size) {
    static const char *const pg_prefixes[] = {"postgresql://", "postgres://", NULL};
    size_t prefix_len = 0, scheme_len;
    char *shown;

    if (url == NULL) url = "";
    if (url[0] == '\0' || strncmp(url, "sqlite:", 7) == 0) {   /* a path: nothing to hide */
        util_copy(out, size, url);
        return 0;
    }
    for (const char *const *p = pg_prefixes; *p && prefix_len == 0; p++)
        if (strncmp(url, *p, strlen(*p)) == 0) prefix_len = strlen(*p);
    scheme_len = redact_scheme_len(url);
    if (prefix_len) shown = redact_pg(url, prefix_len);
    else if (scheme_len) shown = redact_other(url, scheme_len);
    else shown = redact_pg(url, 0);                /* keyword/value, or nothing known */
    if (shown) {
        util_copy(out, size, shown);
        free(shown);
        return 0;
    }
    if (scheme_len) snprintf(out, size, "%.*s://" REDACT_MASK, (int)scheme_len, url);
    else snprintf(out, size, "%s", REDACT_MASK);
    return -1;
}
