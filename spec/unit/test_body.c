/* test_body.c — rendered bodies: their strong ETag, bodies written in
 * pieces, heads followed per request by other bytes, and the If-None-Match
 * test that answers 304. */
#include "unit.h"
#include "body.h"

#include <stdlib.h>

TEST(equal_bytes_give_equal_etags_and_different_bytes_different_ones) {
    struct body *a = body_new("{\"a\":1}", 7, BODY_JSON);
    struct body *b = body_new("{\"a\":1}", 7, "text/plain");
    struct body *c = body_new("{\"a\":2}", 7, BODY_JSON);
    ASSERT(a && b && c);
    EXPECT_STR(a->etag, b->etag);             /* the bytes decide, nothing else */
    EXPECT(strcmp(a->etag, c->etag) != 0);
    EXPECT_INT(strlen(a->etag), 34);
    EXPECT(a->etag[0] == '"' && a->etag[33] == '"');
    EXPECT_STR(a->bytes, "{\"a\":1}");
    EXPECT_STR(b->content_type, "text/plain");
    body_release(a);
    body_release(b);
    body_release(c);
}

TEST(json_is_dumped_as_an_answer_is) {
    json_t *v = json_pack("{s:i, s:[], s:n}", "z", 1, "a", "m");
    struct body *b = body_from_json(v);
    ASSERT(b != NULL);
    EXPECT_STR(b->bytes, "{\"a\":[],\"m\":null,\"z\":1}");   /* compact, sorted keys */
    EXPECT_STR(b->content_type, BODY_JSON);
    EXPECT(body_ref(b) == b);
    body_release(b);
    body_release(b);
    body_release(NULL);
    json_decref(v);
}

TEST(if_none_match_names_the_etag_weakly_in_a_list_or_as_a_star) {
    struct body *b = body_new("x", 1, BODY_JSON);
    char exact[64], weak[64], list[128];
    ASSERT(b != NULL);
    snprintf(exact, sizeof exact, "%s", b->etag);
    snprintf(weak, sizeof weak, "W/%s", b->etag);
    snprintf(list, sizeof list, "\"old\", W/\"older\",%s", b->etag);
    EXPECT(body_not_modified(b, exact));
    EXPECT(body_not_modified(b, weak));
    EXPECT(body_not_modified(b, list));
    EXPECT(body_not_modified(b, "*"));
    EXPECT(!body_not_modified(b, "\"old\""));
    EXPECT(!body_not_modified(b, ""));
    EXPECT(!body_not_modified(b, NULL));
    EXPECT(!body_not_modified(NULL, "*"));
    exact[10] = exact[10] == 'a' ? 'b' : 'a';
    EXPECT(!body_not_modified(b, exact));
    body_release(b);
}

TEST(a_body_written_in_pieces_is_the_body_of_its_bytes) {
    static const char text[] = "{\"a\":[1,2],\"b\":\"\\u00e9\"}";
    struct body_writer w;
    size_t len = 0;
    json_t *v = json_pack("{s:s}", "b", "\xc3\xa9\"/");
    body_writer_init(&w, 0);                  /* grows from the smallest room */
    for (size_t i = 0; i < 200; i++) body_write(&w, text, sizeof text - 1);
    body_writer_unwrite(&w, sizeof text - 1);
    ASSERT(body_writer_bytes(&w, &len) != NULL);
    EXPECT_INT(len, 199 * (sizeof text - 1));
    body_write_str(&w, "|");
    body_write_json(&w, v);
    struct body *b = body_writer_finish(&w, BODY_JSON);
    EXPECT(w.b == NULL);
    char *expect = malloc(200 * sizeof text + 64), *dumped = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    ASSERT(b && expect && dumped);
    expect[0] = '\0';
    for (size_t i = 0; i < 199; i++) strcat(expect, text);
    strcat(expect, "|");
    strcat(expect, dumped);
    struct body *same = body_new(expect, strlen(expect), BODY_JSON);
    ASSERT(same != NULL);
    EXPECT_INT(b->len, strlen(expect));
    EXPECT_STR(b->bytes, expect);             /* NUL-terminated, as body_new's */
    EXPECT_STR(b->etag, same->etag);
    EXPECT_STR(b->content_type, BODY_JSON);
    body_release(same);
    body_release(b);
    free(expect);
    free(dumped);
    json_decref(v);
}

TEST(a_failed_write_gives_no_body) {
    struct body_writer w;
    body_writer_init(&w, 16);
    body_write_str(&w, "[");
    body_write_json(&w, NULL);                /* a value that could not be built */
    body_write_str(&w, "]");
    EXPECT(body_writer_finish(&w, BODY_JSON) == NULL);
    body_writer_init(&w, 16);
    body_write_str(&w, "abandoned");
    body_writer_discard(&w);
    body_writer_discard(&w);                  /* empty: a no-op */
    EXPECT(body_writer_finish(&w, BODY_JSON) == NULL);
}

TEST(a_head_and_its_tail_hash_as_one_body) {
    static const char head[] = "# HELP a b\n# TYPE a gauge\na 1\n";
    static const char tail[] = "c_total 42\n";
    char all[128];
    struct body *h = body_new_head(head, strlen(head), "text/plain");
    struct body *plain = body_new(head, strlen(head), "text/plain");
    snprintf(all, sizeof all, "%s%s", head, tail);
    struct body *whole = body_new(all, strlen(all), BODY_JSON);
    ASSERT(h && plain && whole);
    EXPECT_STR(h->etag, plain->etag);         /* keeping the state changes nothing */
    for (int i = 0; i < 2; i++) {             /* the kept state is not used up */
        struct body *c = body_concat(h, tail, strlen(tail));
        ASSERT(c != NULL);
        EXPECT_STR(c->bytes, all);
        EXPECT_STR(c->etag, whole->etag);
        EXPECT_STR(c->content_type, "text/plain");
        body_release(c);
    }
    /* A head without kept state hashes everything. */
    struct body *c = body_concat(plain, tail, strlen(tail));
    ASSERT(c != NULL);
    EXPECT_STR(c->bytes, all);
    EXPECT_STR(c->etag, whole->etag);
    body_release(c);
    body_release(whole);
    body_release(plain);
    body_release(h);
}

int main(void) {
    RUN(equal_bytes_give_equal_etags_and_different_bytes_different_ones);
    RUN(json_is_dumped_as_an_answer_is);
    RUN(if_none_match_names_the_etag_weakly_in_a_list_or_as_a_star);
    RUN(a_body_written_in_pieces_is_the_body_of_its_bytes);
    RUN(a_failed_write_gives_no_body);
    RUN(a_head_and_its_tail_hash_as_one_body);
    return UNIT_DONE();
}
