/* events.c — SSE stream registry and buffering, over http.h's streamed
 * bodies: a stream's connection sleeps when its buffer is empty and is woken
 * by the next push. */
#include "events.h"
#include "auth.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct events_mark {
    size_t at, len;
    char queue[UTIL_NAME_MAX + 1];
};

struct stream {
    events *ev;
    pthread_mutex_t lock;
    char *buf;
    size_t len, cap;
    int closed;                  /* end the answer once the buffer is sent */
    char owner[40];
    char queues[AUTH_QUEUES_MAX];/* auth.h's patterns; "" = every queue */
    http_stream_conn *conn;      /* known from the first read; woken by pushes */
    struct stream *next;
};

struct events {
    pthread_mutex_t lock;
    struct stream *streams;
    char *posted;                /* events_post since the last flush, for every stream */
    size_t posted_len, posted_cap;
    /* Where each posted event starts and the queue it names ("" none),
     * for the streams limited to queues. marks_lost: out of memory since
     * the last flush, so limited streams get none of it. */
    struct events_mark *marks;
    size_t nmarks, marks_cap;
    int marks_lost;
    events_scope_fn scope;
    int count, max, max_per_owner;
    int closing;                 /* events_close_all ran: no new streams */
};

events *events_new(int max_streams, int max_per_owner) {
    events *ev = calloc(1, sizeof *ev);
    if (ev == NULL) return NULL;
    pthread_mutex_init(&ev->lock, NULL);
    ev->max = max_streams;
    ev->max_per_owner = max_per_owner > 0 ? max_per_owner : max_streams;
    return ev;
}

void events_free(events *ev) {
    if (ev == NULL) return;
    /* Streams still registered belong to a server that is gone. */
    while (ev->streams) {
        struct stream *s = ev->streams;
        ev->streams = s->next;
        pthread_mutex_destroy(&s->lock);
        free(s->buf);
        free(s);
    }
    free(ev->posted);
    free(ev->marks);
    pthread_mutex_destroy(&ev->lock);
    free(ev);
}

void events_set_scope(events *ev, events_scope_fn fn) {
    if (ev == NULL) return;
    pthread_mutex_lock(&ev->lock);
    ev->scope = fn;
    pthread_mutex_unlock(&ev->lock);
}

int events_count(events *ev) {
    pthread_mutex_lock(&ev->lock);
    int n = ev->count;
    pthread_mutex_unlock(&ev->lock);
    return n;
}

/* Mark s ended and wake its connection, so that it sends what is left and
 * finishes. Called with s->lock held. */
static void stream_end(struct stream *s) {
    s->closed = 1;
    if (s->conn) http_stream_wake(s->conn);
}

/* Append text to s and wake its connection. Called with s->lock held. */
static void stream_push(struct stream *s, const char *text, size_t n) {
    if (s->closed) return;
    /* An empty buffer takes any one event; beyond that, a reader still
     * holding more than the cap (or than the event) is too slow: cut off. */
    if (s->len > 0 && s->len + n > (n > EVENTS_BUFFER_MAX ? 2 * n : EVENTS_BUFFER_MAX)) {
        stream_end(s);
        return;
    }
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n) cap *= 2;
        char *grown = realloc(s->buf, cap);
        if (grown == NULL) {
            stream_end(s);
            return;
        }
        s->buf = grown;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, text, n);
    s->len += n;
    if (s->conn) http_stream_wake(s->conn);
}

/* http_stream.read: send what is buffered, or sleep until there is more. */
static long stream_read(void *cls, http_stream_conn *conn, char *buf, size_t max) {
    struct stream *s = cls;
    long n;
    pthread_mutex_lock(&s->lock);
    s->conn = conn;
    if (s->len > 0) {
        n = (long)(s->len < max ? s->len : max);
        memcpy(buf, s->buf, (size_t)n);
        memmove(s->buf, s->buf + n, s->len - (size_t)n);
        s->len -= (size_t)n;
    } else if (s->closed) {
        n = HTTP_STREAM_END;
    } else {
        n = HTTP_STREAM_IDLE;                  /* http.c suspends the connection */
    }
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* http_stream.done: the connection is gone; forget the stream. */
static void stream_done(void *cls) {
    struct stream *s = cls;
    events *ev = s->ev;
    pthread_mutex_lock(&ev->lock);
    for (struct stream **p = &ev->streams; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            ev->count--;
            break;
        }
    }
    pthread_mutex_unlock(&ev->lock);
    pthread_mutex_destroy(&s->lock);
    free(s->buf);
    free(s);
}

/* "event: type\ndata: json\n\n" for len bytes of compact JSON (no
 * newline in it), malloc'd. */
static char *events_format_text(const char *type, const char *json, size_t len, size_t *n) {
    size_t tlen = strlen(type), size = tlen + len + 32;   /* the frame and a NUL */
    char *out = malloc(size), *p = out;
    if (out == NULL) return NULL;
    memcpy(p, "event: ", 7), p += 7;
    memcpy(p, type, tlen), p += tlen;
    memcpy(p, "\ndata: ", 7), p += 7;
    memcpy(p, json, len), p += len;
    memcpy(p, "\n\n", 3), p += 2;
    *n = (size_t)(p - out);
    return out;
}

/* "event: type\ndata: json\n\n", malloc'd. */
static char *events_format(const char *type, json_t *data, size_t *n) {
    char *json = json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS);
    char *out = json ? events_format_text(type, json, strlen(json), n) : NULL;
    free(json);
    return out;
}

int events_open(events *ev, struct http_response *resp, json_t *first, const char *owner) {
    return events_open_scoped(ev, resp, first, owner, NULL);
}

int events_open_scoped(events *ev, struct http_response *resp, json_t *first, const char *owner,
                       const char *queues) {
    struct stream *s = calloc(1, sizeof *s);
    size_t n = 0;
    char *text = events_format("snapshot", first, &n);
    if (s == NULL || text == NULL) {
        free(s);
        free(text);
        return -1;
    }
    pthread_mutex_init(&s->lock, NULL);
    s->ev = ev;
    util_copy(s->owner, sizeof s->owner, owner ? owner : "");
    util_copy(s->queues, sizeof s->queues, queues ? queues : "");
    pthread_mutex_lock(&ev->lock);
    int mine = 0;
    for (struct stream *o = ev->streams; o; o = o->next) mine += strcmp(o->owner, s->owner) == 0;
    /* After shutdown began, a browser may still ask for a stream on a
     * keep-alive connection: it would be suspended with nobody left to
     * resume it. */
    if (ev->closing || ev->count >= ev->max || mine >= ev->max_per_owner) {
        int rc = ev->closing || ev->count >= ev->max ? -1 : -2;
        pthread_mutex_unlock(&ev->lock);
        pthread_mutex_destroy(&s->lock);
        free(s);
        free(text);
        return rc;
    }
    s->next = ev->streams;
    ev->streams = s;
    ev->count++;
    pthread_mutex_lock(&s->lock);
    stream_push(s, text, n);
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_unlock(&ev->lock);
    free(text);
    resp->status = 200;
    util_copy(resp->content_type, sizeof resp->content_type, "text/event-stream; charset=utf-8");
    http_add_header(resp, "X-Accel-Buffering", "no");
    resp->stream.read = stream_read;
    resp->stream.done = stream_done;
    resp->stream.cls = s;
    return 0;
}

/* The scope function's text for patterns, from the few already made for
 * this event (cache), made now when missing. Returns NULL when the stream
 * is to get nothing. Called with ev->lock held. */
#define EVENTS_SCOPE_CACHE 8
struct events_scoped {
    const char *patterns;        /* a stream's, alive while ev->lock is held */
    char *text;
    size_t n;
};

static const char *events_scoped_text(events *ev, const char *type, const char *json, size_t len,
                                      const char *patterns, struct events_scoped *cache,
                                      size_t *ncache, char **spare, size_t *n) {
    for (size_t i = 0; i < *ncache; i++)
        if (strcmp(cache[i].patterns, patterns) == 0) {
            *n = cache[i].n;
            return cache[i].text;
        }
    size_t jlen = 0;
    char *limited = ev->scope ? ev->scope(json, len, patterns, &jlen) : NULL;
    char *text = limited ? events_format_text(type, limited, jlen, n) : NULL;
    free(limited);
    if (text == NULL) return NULL;
    if (*ncache < EVENTS_SCOPE_CACHE) {
        cache[*ncache] = (struct events_scoped){patterns, text, *n};
        (*ncache)++;
    } else {
        free(*spare);            /* more distinct patterns than the cache: one at a time */
        *spare = text;
    }
    return text;
}

/* Send an event to every stream: as text to those of every queue; to those
 * limited to queues, when queue (the queue the event names, NULL: none)
 * is theirs, or else through the scope function when json is given. */
static void events_push_all(events *ev, const char *type, const char *text, size_t n,
                            const char *queue, const char *json, size_t jlen) {
    struct events_scoped cache[EVENTS_SCOPE_CACHE];
    size_t ncache = 0;
    char *spare = NULL;
    pthread_mutex_lock(&ev->lock);
    for (struct stream *s = ev->streams; s; s = s->next) {
        const char *out = text;
        size_t len = n;
        if (s->queues[0] && queue) {
            if (!auth_queues_match(s->queues, queue)) continue;
        } else if (s->queues[0]) {
            if (json == NULL) continue;
            out = events_scoped_text(ev, type, json, jlen, s->queues, cache, &ncache, &spare, &len);
            if (out == NULL) continue;
        }
        pthread_mutex_lock(&s->lock);
        stream_push(s, out, len);
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&ev->lock);
    for (size_t i = 0; i < ncache; i++) free(cache[i].text);
    free(spare);
}

/* The queue an event's data names, or NULL. */
static const char *events_queue_of(json_t *data) {
    return json_string_value(json_object_get(data, "queue"));
}

void events_broadcast(events *ev, const char *type, json_t *data) {
    size_t n = 0;
    char *text;
    if (ev == NULL || events_count(ev) == 0) return;
    if ((text = events_format(type, data, &n)) == NULL) return;
    const char *queue = events_queue_of(data);
    /* An event naming no queue goes to limited streams through the scope
     * function, as JSON. */
    char *json = queue == NULL ? json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    events_push_all(ev, type, text, n, queue, json, json ? strlen(json) : 0);
    free(json);
    free(text);
}

void events_broadcast_text(events *ev, const char *type, const char *json, size_t len) {
    size_t n = 0;
    char *text;
    if (ev == NULL || events_count(ev) == 0) return;
    if ((text = events_format_text(type, json, len, &n)) == NULL) return;
    events_push_all(ev, type, text, n, NULL, json, len);
    free(text);
}

/* Remember where the posted event of n bytes at ev->posted_len starts and
 * the queue it names, for limited streams. Called with ev->lock held; on
 * no memory the marks are dropped, and limited streams get nothing of
 * this flush (absence over leaking). */
static void events_mark(events *ev, size_t n, const char *queue) {
    if (ev->marks_lost) return;
    if (ev->nmarks == ev->marks_cap) {
        size_t cap = ev->marks_cap ? ev->marks_cap * 2 : 16;
        struct events_mark *grown = realloc(ev->marks, cap * sizeof *grown);
        if (grown == NULL) {
            ev->marks_lost = 1;
            return;
        }
        ev->marks = grown;
        ev->marks_cap = cap;
    }
    struct events_mark *m = &ev->marks[ev->nmarks++];
    m->at = ev->posted_len;
    m->len = n;
    util_copy(m->queue, sizeof m->queue, queue ? queue : "");
}

void events_post(events *ev, const char *type, json_t *data) {
    size_t n = 0;
    char *text;
    if (ev == NULL || events_count(ev) == 0) return;
    if ((text = events_format(type, data, &n)) == NULL) return;
    /* One append, whatever the number of streams: the ticker hands it to
     * each of them (events_flush). Bounded like a stream's buffer. */
    pthread_mutex_lock(&ev->lock);
    if (ev->posted_len + n <= EVENTS_BUFFER_MAX) {
        if (ev->posted_len + n > ev->posted_cap) {
            size_t cap = ev->posted_cap ? ev->posted_cap : 4096;
            while (cap < ev->posted_len + n) cap *= 2;
            char *grown = realloc(ev->posted, cap);
            if (grown) {
                ev->posted = grown;
                ev->posted_cap = cap;
            }
        }
        if (ev->posted_len + n <= ev->posted_cap) {
            events_mark(ev, n, events_queue_of(data));
            memcpy(ev->posted + ev->posted_len, text, n);
            ev->posted_len += n;
        }
    }
    pthread_mutex_unlock(&ev->lock);
    free(text);
}

void events_flush(events *ev) {
    if (ev == NULL) return;
    pthread_mutex_lock(&ev->lock);
    if (ev->posted_len > 0) {
        for (struct stream *s = ev->streams; s; s = s->next) {
            pthread_mutex_lock(&s->lock);
            if (s->queues[0] == '\0') stream_push(s, ev->posted, ev->posted_len);
            else
                /* Only the events naming one of its queues, each whole. */
                for (size_t i = 0; !ev->marks_lost && i < ev->nmarks; i++)
                    if (ev->marks[i].queue[0] && auth_queues_match(s->queues, ev->marks[i].queue))
                        stream_push(s, ev->posted + ev->marks[i].at, ev->marks[i].len);
            pthread_mutex_unlock(&s->lock);
        }
        ev->posted_len = 0;
        ev->nmarks = 0;
        ev->marks_lost = 0;
    }
    pthread_mutex_unlock(&ev->lock);
}

void events_ping(events *ev) {
    if (ev == NULL) return;
    pthread_mutex_lock(&ev->lock);
    for (struct stream *s = ev->streams; s; s = s->next) {
        pthread_mutex_lock(&s->lock);
        stream_push(s, ": ping\n\n", 8);
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&ev->lock);
}

void events_close_all(events *ev) {
    if (ev == NULL) return;
    pthread_mutex_lock(&ev->lock);
    ev->closing = 1;
    for (struct stream *s = ev->streams; s; s = s->next) {
        pthread_mutex_lock(&s->lock);
        stream_end(s);
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&ev->lock);
}
