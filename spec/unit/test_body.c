/* test_body.c — rendered bodies: their strong ETag and the If-None-Match
 * test that answers 304. */
#include "unit.h"
#include "body.h"

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

int main(void) {
    RUN(equal_bytes_give_equal_etags_and_different_bytes_different_ones);
    RUN(json_is_dumped_as_an_answer_is);
    RUN(if_none_match_names_the_etag_weakly_in_a_list_or_as_a_star);
    return UNIT_DONE();
}
