/* fuzz_spec — JSON request bodies to job configurations.
 *
 * One input is one request body. It goes through api_parse_object (the
 * API's body parser), then every validator: spec_normalize_train (dataset
 * dim known and unknown), spec_normalize_circles,
 * spec_analysis_normalize_analyze and spec_analysis_normalize_pca (against a
 * dataset with labels and an endless one), spec_groupspace_normalize (an
 * analysed SAE, and one without an analysis).
 * Checked: a refusal carries a 400/422 and at least one error; an accepted
 * body's normalised spec reads back with the worker's parser and normalises
 * to itself. The worker's parsers also get the raw bytes as a stored spec. */
#include "../api/internal.h"
#include "circles.h"
#include "fuzzutil.h"
#include "spec.h"
#include "spec_analysis.h"
#include "spec_groupspace.h"
#include <stdlib.h>
#include <string.h>

#define FUZZ_SPEC_MAX_BYTES ((size_t)1 << 30)

/* A refusal is well-formed; returns whether the spec was accepted. */
static int fuzz_spec_verdict(const json_t *norm, const spec_errors *errs)
{
    char text[512];
    if (norm) {
        FUZZ_REQUIRE(errs->status == 0 && errs->n == 0);
        return 1;
    }
    FUZZ_REQUIRE((errs->status == 400 || errs->status == 422) && errs->n >= 1 && errs->n <= SPEC_MAX_ERRORS);
    spec_errors_text(errs, text, sizeof text);
    FUZZ_REQUIRE(text[0] != '\0');
    return 0;
}

static char *fuzz_spec_dump(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    FUZZ_REQUIRE(s != NULL);
    return s;
}

static void fuzz_spec_train(const json_t *body, int dim)
{
    spec_errors errs = {0}, again = {0};
    sae_config sc;
    train_config tc;
    spec_errors back = {0};
    json_t *n = spec_normalize_train(body, dim, FUZZ_SPEC_MAX_BYTES, &errs);
    if (!fuzz_spec_verdict(n, &errs))
        return;
    char *s = fuzz_spec_dump(n);
    int back_rc = spec_train_configs(s, dim > 0 ? dim : 16, &sc, &tc, NULL, &back);
    FUZZ_REQUIRE(back_rc == 0 || dim <= 0);
    if (back_rc == 0)
        spec_sae_release(&sc); /* a listed groups' table */
    json_t *n2 = spec_normalize_train(n, dim, FUZZ_SPEC_MAX_BYTES, &again);
    FUZZ_REQUIRE(n2 != NULL && json_equal(n, n2));
    json_decref(n2);
    free(s);
    json_decref(n);
}

static void fuzz_spec_circles(const json_t *body)
{
    spec_errors errs = {0}, again = {0};
    circles_params p;
    spec_errors back = {0};
    json_t *n = spec_normalize_circles(body, &errs);
    if (!fuzz_spec_verdict(n, &errs))
        return;
    char *s = fuzz_spec_dump(n);
    FUZZ_REQUIRE(spec_circles_params(s, &p, &back) == 0);
    json_t *n2 = spec_normalize_circles(n, &again);
    FUZZ_REQUIRE(n2 != NULL && json_equal(n, n2));
    if ((long long)p.n_circles * p.dim <= 4096) { /* the generator takes what the spec accepts */
        circles *c = circles_create(&p);
        FUZZ_REQUIRE(c != NULL);
        float row[4096]; /* (dim) */
        uint64_t idx = 7;
        circles_rows(c, &idx, 1, row);
        circles_free(c);
    }
    json_decref(n2);
    free(s);
    json_decref(n);
}

static void fuzz_spec_analyze(const json_t *body, const spec_analysis_refs *refs)
{
    spec_errors errs = {0}, again = {0};
    spec_analysis_analyze a;
    spec_errors back = {0};
    json_t *n = spec_analysis_normalize_analyze(body, refs, FUZZ_SPEC_MAX_BYTES, &errs);
    if (!fuzz_spec_verdict(n, &errs))
        return;
    char *s = fuzz_spec_dump(n);
    FUZZ_REQUIRE(spec_analysis_parse_analyze(s, &a, &back) == 0);
    json_t *n2 = spec_analysis_normalize_analyze(n, refs, FUZZ_SPEC_MAX_BYTES, &again);
    FUZZ_REQUIRE(n2 != NULL && json_equal(n, n2));
    json_decref(n2);
    free(s);
    json_decref(n);
}

static void fuzz_spec_pca(const json_t *body, const spec_analysis_refs *refs)
{
    spec_errors errs = {0}, again = {0};
    spec_analysis_pca p;
    spec_errors back = {0};
    json_t *n = spec_analysis_normalize_pca(body, refs, &errs);
    if (!fuzz_spec_verdict(n, &errs))
        return;
    char *s = fuzz_spec_dump(n);
    FUZZ_REQUIRE(spec_analysis_parse_pca(s, &p, &back) == 0);
    FUZZ_REQUIRE((p.indices != NULL) + (p.labels != NULL) <= 1);
    spec_analysis_pca_free(&p);
    json_t *n2 = spec_analysis_normalize_pca(n, refs, &again);
    FUZZ_REQUIRE(n2 != NULL && json_equal(n, n2));
    json_decref(n2);
    free(s);
    json_decref(n);
}

static void fuzz_spec_groupspace(const json_t *body, const spec_groupspace_refs *refs)
{
    spec_errors errs = {0}, again = {0};
    spec_groupspace g;
    spec_errors back = {0};
    json_t *n = spec_groupspace_normalize(body, refs, &errs);
    if (!fuzz_spec_verdict(n, &errs))
        return;
    char *s = fuzz_spec_dump(n);
    FUZZ_REQUIRE(spec_groupspace_parse(s, &g, &back) == 0);
    FUZZ_REQUIRE(g.n_items >= 2 && g.cfg.near < g.cfg.far && g.snapshots >= 1 && g.snapshots <= g.steps);
    for (int64_t e = 0; g.items && e < g.ptr[g.n_sets]; e++) FUZZ_REQUIRE(g.items[e] >= 0 && g.items[e] < g.n_items);
    spec_groupspace_free(&g);
    json_t *n2 = spec_groupspace_normalize(n, refs, &again);
    FUZZ_REQUIRE(n2 != NULL && json_equal(n, n2));
    json_decref(n2);
    free(s);
    json_decref(n);
}

/* The worker's parsers on bytes that did not come from a normaliser. */
static void fuzz_spec_stored(const uint8_t *data, size_t len)
{
    char *s = malloc(len + 1); /* (len + 1) NUL-terminated copy */
    spec_errors e1 = {0}, e2 = {0}, e3 = {0}, e4 = {0}, e5 = {0};
    spec_groupspace g;
    sae_config sc;
    train_config tc;
    circles_params cp;
    spec_analysis_analyze a;
    spec_analysis_pca p;
    FUZZ_REQUIRE(s != NULL);
    memcpy(s, data, len);
    s[len] = '\0';
    if (spec_train_configs(s, 8, &sc, &tc, NULL, &e1) == 0)
        spec_sae_release(&sc);
    spec_circles_params(s, &cp, &e2);
    spec_analysis_parse_analyze(s, &a, &e3);
    if (spec_analysis_parse_pca(s, &p, &e4) == 0)
        spec_analysis_pca_free(&p);
    if (spec_groupspace_parse(s, &g, &e5) == 0)
        spec_groupspace_free(&g);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    char detail[512];
    fuzz_spec_stored(data, len);
    json_t *body = api_parse_object((const char *)data, len, detail, sizeof detail);
    if (!body) {
        FUZZ_REQUIRE(detail[0] != '\0');
        return 0;
    }
    int64_t sae, dataset;
    spec_analysis_ids(body, &sae, &dataset);
    FUZZ_REQUIRE(sae >= 0 && dataset >= 0);
    const spec_analysis_refs refs[2] = {
        {1, 8, 16, 2, 1, 1, 1, 8, 100, 1},
        {1, 8, 16, 4, 0, 1, 2, 8, -1, 0},
    };
    fuzz_spec_train(body, 8);
    fuzz_spec_train(body, 0);
    fuzz_spec_circles(body);
    const spec_groupspace_refs gs_refs[2] = { {1, 1, 32}, {1, 0, 32} };
    fuzz_spec_groupspace(body, &gs_refs[0]);
    fuzz_spec_groupspace(body, &gs_refs[1]);
    for (int i = 0; i < 2; i++) {
        fuzz_spec_analyze(body, &refs[i]);
        fuzz_spec_pca(body, &refs[i]);
    }
    json_decref(body);
    return 0;
}
