/* store_analysis — analysis results: the latest analyze result of each SAE
 * (sae_analysis + sae_latents + sae_groups) and the pca results (analyses).
 *
 * A result is written only together with the success of the job that made
 * it: one BEGIN IMMEDIATE transaction deletes the SAE's previous result,
 * inserts the new rows and moves the job running -> succeeded (guarded by
 * its state, so a job cancelled meanwhile is reported as a conflict and
 * nothing is written). Lists are keyset-paged in SQL: "after" names the last
 * index of the previous page, and for the density/jaccard orders the
 * subquery reads that item's value, so a page is one index range scan. */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "store_int.h"

#define LAT_COLS "latent, grp, density, mean_act, max_act, hist_json, cos_json, jaccard_json"
#define GRP_COLS "grp, members_json, density, jaccard, max_cos, circle, plane_fit"
#define SAEAN_COLS "sae_id, job_id, dataset_id, n_samples, group_size, n_groups, cluster_json, recovery_json," \
    " summary_json, dir, created_at"
#define ANALYSIS_COLS "id, job_id, sae_id, dataset_id, n_rows, n_components, latents_json, variance_json," \
    " ratio_json, rows_json, labels_json, dir, created_at"

static const char SQL_JOB_SUCCEED[] =
    "UPDATE jobs SET state = 'succeeded', finished_at = ?2, result_json = ?3, error = NULL, eta_s = NULL,"
    " step = total_steps WHERE id = ?1 AND state = 'running'";
static const char SQL_SAEAN_OLD_DIR[] = "SELECT dir FROM sae_analysis WHERE sae_id = ?1";
static const char SQL_SAEAN_DEL[] = "DELETE FROM sae_analysis WHERE sae_id = ?1";
static const char SQL_LAT_DEL[] = "DELETE FROM sae_latents WHERE sae_id = ?1";
static const char SQL_GRP_DEL[] = "DELETE FROM sae_groups WHERE sae_id = ?1";
static const char SQL_SAEAN_INSERT[] =
    "INSERT INTO sae_analysis (" SAEAN_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, COALESCE(?9, '{}'), ?10, ?11)";
static const char SQL_LAT_INSERT[] =
    "INSERT INTO sae_latents (sae_id, " LAT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, COALESCE(?7, '{}'),"
    " COALESCE(?8, '[]'), COALESCE(?9, '[]'))";
static const char SQL_GRP_INSERT[] =
    "INSERT INTO sae_groups (sae_id, " GRP_COLS ") VALUES (?1, ?2, COALESCE(?3, '[]'), ?4, ?5, ?6, ?7, ?8)";
static const char SQL_SAEAN_GET[] = "SELECT " SAEAN_COLS " FROM sae_analysis WHERE sae_id = ?1";
static const char SQL_LAT_GET[] = "SELECT " LAT_COLS " FROM sae_latents WHERE sae_id = ?1 AND latent = ?2";
static const char SQL_GRP_GET[] = "SELECT " GRP_COLS " FROM sae_groups WHERE sae_id = ?1 AND grp = ?2";
/* ?1 sae, ?2 after (< 0: from the start), ?3 limit. */
static const char SQL_LAT_BY_ID[] =
    "SELECT " LAT_COLS " FROM sae_latents WHERE sae_id = ?1 AND latent > ?2 ORDER BY latent LIMIT ?3";
static const char SQL_LAT_BY_DENSITY[] =
    "SELECT " LAT_COLS " FROM sae_latents WHERE sae_id = ?1 AND (?2 < 0 OR density <"
    " (SELECT density FROM sae_latents WHERE sae_id = ?1 AND latent = ?2) OR (density ="
    " (SELECT density FROM sae_latents WHERE sae_id = ?1 AND latent = ?2) AND latent > ?2))"
    " ORDER BY density DESC, latent LIMIT ?3";
static const char SQL_GRP_BY_ID[] =
    "SELECT " GRP_COLS " FROM sae_groups WHERE sae_id = ?1 AND grp > ?2 ORDER BY grp LIMIT ?3";
static const char SQL_GRP_BY_DENSITY[] =
    "SELECT " GRP_COLS " FROM sae_groups WHERE sae_id = ?1 AND (?2 < 0 OR density <"
    " (SELECT density FROM sae_groups WHERE sae_id = ?1 AND grp = ?2) OR (density ="
    " (SELECT density FROM sae_groups WHERE sae_id = ?1 AND grp = ?2) AND grp > ?2))"
    " ORDER BY density DESC, grp LIMIT ?3";
static const char SQL_GRP_BY_JACCARD[] =
    "SELECT " GRP_COLS " FROM sae_groups WHERE sae_id = ?1 AND (?2 < 0 OR jaccard <"
    " (SELECT jaccard FROM sae_groups WHERE sae_id = ?1 AND grp = ?2) OR (jaccard ="
    " (SELECT jaccard FROM sae_groups WHERE sae_id = ?1 AND grp = ?2) AND grp > ?2))"
    " ORDER BY jaccard DESC, grp LIMIT ?3";
static const char SQL_ANALYSIS_INSERT[] =
    "INSERT INTO analyses (job_id, sae_id, dataset_id, n_rows, n_components, latents_json, variance_json,"
    " ratio_json, rows_json, labels_json, dir, created_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
static const char SQL_ANALYSIS_RESULT[] = "UPDATE jobs SET result_json = json_object('analysis', ?2) WHERE id = ?1";
static const char SQL_ANALYSIS_GET[] = "SELECT " ANALYSIS_COLS " FROM analyses WHERE id = ?1";

/* ---- shared ---- */

/* Job id running -> succeeded with result_json, in the caller's transaction. */
static int analysis_job_succeed(store *st, int64_t job_id, const char *result_json)
{
    assert(st);
    assert(job_id >= 1);
    char now[32];
    store_now(now, sizeof now);
    sqlite3_stmt *s = store_stmt(st, SQL_JOB_SUCCEED);
    if (!s) return STORE_ERROR;
    sqlite3_bind_int64(s, 1, job_id);
    store_bind_text(s, 2, now);
    store_bind_text(s, 3, result_json);
    int rc = store_run(st, s);
    if (rc == STORE_OK && sqlite3_changes(st->db) == 0)
        rc = store_setf(st, STORE_CONFLICT, "job %lld is no longer running (cancelled or deleted?)",
                        (long long)job_id);
    return rc;
}

/* Runs sql bound with one id. */
static int analysis_run_id(store *st, const char *sql, int64_t id)
{
    assert(st && sql);
    assert(id >= 1);
    sqlite3_stmt *s = store_stmt(st, sql);
    if (!s) return STORE_ERROR;
    sqlite3_bind_int64(s, 1, id);
    return store_run(st, s);
}

static double analysis_col_real(sqlite3_stmt *s, int i)
{
    return store_col_real(s, i, NAN);
}

/* ---- readers ---- */

static int latent_read(sqlite3_stmt *s, void *item)
{
    assert(s && item);
    store_latent *l = item;
    memset(l, 0, sizeof *l);
    l->latent = sqlite3_column_int(s, 0);
    l->group = sqlite3_column_int(s, 1);
    l->density = analysis_col_real(s, 2);
    l->mean_act = analysis_col_real(s, 3);
    l->max_act = analysis_col_real(s, 4);
    if (store_col_dup(s, 5, &l->hist_json) || store_col_dup(s, 6, &l->cos_json) ||
        store_col_dup(s, 7, &l->jaccard_json)) {
        store_latent_clear(l);
        return -1;
    }
    return 0;
}

static int group_read(sqlite3_stmt *s, void *item)
{
    assert(s && item);
    store_group *g = item;
    memset(g, 0, sizeof *g);
    g->group = sqlite3_column_int(s, 0);
    g->density = analysis_col_real(s, 2);
    g->jaccard = analysis_col_real(s, 3);
    g->max_cos = analysis_col_real(s, 4);
    g->circle = sqlite3_column_type(s, 5) == SQLITE_NULL ? -1 : sqlite3_column_int(s, 5);
    g->plane_fit = analysis_col_real(s, 6);
    return store_col_dup(s, 1, &g->members_json);
}

static int saean_read(sqlite3_stmt *s, void *item)
{
    assert(s && item);
    store_sae_analysis *a = item;
    memset(a, 0, sizeof *a);
    a->sae_id = sqlite3_column_int64(s, 0);
    a->job_id = sqlite3_column_int64(s, 1);
    a->dataset_id = sqlite3_column_int64(s, 2);
    a->n_samples = sqlite3_column_int64(s, 3);
    a->group_size = sqlite3_column_int(s, 4);
    a->n_groups = sqlite3_column_int(s, 5);
    store_col_copy(s, 10, a->created_at, sizeof a->created_at);
    if (store_col_dup(s, 6, &a->cluster_json) || store_col_dup(s, 7, &a->recovery_json) ||
        store_col_dup(s, 8, &a->summary_json) || store_col_dup(s, 9, &a->dir)) {
        store_sae_analysis_clear(a);
        return -1;
    }
    return 0;
}

static void latent_clear_item(void *item) { store_latent_clear(item); }
static void group_clear_item(void *item) { store_group_clear(item); }

/* ---- saving an analyze result ---- */

static int saean_insert_row(store *st, const store_sae_analysis *a)
{
    assert(st && a);
    assert(a->sae_id >= 1 && a->job_id >= 1 && a->dataset_id >= 0);
    assert(a->n_samples >= 0 && a->group_size >= 0 && a->n_groups >= 0); /* group_size 0: groups of any size */
    char now[32];
    store_now(now, sizeof now);
    sqlite3_stmt *s = store_stmt(st, SQL_SAEAN_INSERT);
    if (!s) return STORE_ERROR;
    sqlite3_bind_int64(s, 1, a->sae_id);
    store_bind_id(s, 2, a->job_id);
    store_bind_id(s, 3, a->dataset_id);
    sqlite3_bind_int64(s, 4, a->n_samples);
    sqlite3_bind_int(s, 5, a->group_size);
    sqlite3_bind_int(s, 6, a->n_groups);
    store_bind_text(s, 7, a->cluster_json);
    store_bind_text(s, 8, a->recovery_json);
    store_bind_text(s, 9, a->summary_json);
    store_bind_text(s, 10, a->dir);
    store_bind_text(s, 11, now);
    int rc = store_run(st, s);
    if (rc == STORE_ERROR && st->sqlite_rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        rc = store_setf(st, STORE_NOTFOUND, "SAE %lld or dataset %lld no longer exists", (long long)a->sae_id,
                        (long long)a->dataset_id);
    return rc;
}

static int saean_insert_latents(store *st, int64_t sae_id, const store_latent *lat, int n)
{
    assert(st);
    assert(sae_id >= 1);
    assert(n >= 0 && (lat || n == 0));
    int rc = STORE_OK;
    for (int i = 0; i < n && rc == STORE_OK; i++) {
        sqlite3_stmt *s = store_stmt(st, SQL_LAT_INSERT);
        if (!s) return STORE_ERROR;
        sqlite3_bind_int64(s, 1, sae_id);
        assert(lat[i].latent >= 0);
        sqlite3_bind_int(s, 2, lat[i].latent);
        sqlite3_bind_int(s, 3, lat[i].group);
        store_bind_real(s, 4, lat[i].density);
        store_bind_real(s, 5, lat[i].mean_act);
        store_bind_real(s, 6, lat[i].max_act);
        store_bind_text(s, 7, lat[i].hist_json);
        store_bind_text(s, 8, lat[i].cos_json);
        store_bind_text(s, 9, lat[i].jaccard_json);
        rc = store_run(st, s);
    }
    return rc;
}

static int saean_insert_groups(store *st, int64_t sae_id, const store_group *grp, int n)
{
    assert(st);
    assert(sae_id >= 1);
    assert(n >= 0 && (grp || n == 0));
    int rc = STORE_OK;
    for (int i = 0; i < n && rc == STORE_OK; i++) {
        sqlite3_stmt *s = store_stmt(st, SQL_GRP_INSERT);
        if (!s) return STORE_ERROR;
        sqlite3_bind_int64(s, 1, sae_id);
        assert(grp[i].group >= 0 && grp[i].circle >= -1);
        sqlite3_bind_int(s, 2, grp[i].group);
        store_bind_text(s, 3, grp[i].members_json);
        store_bind_real(s, 4, grp[i].density);
        store_bind_real(s, 5, grp[i].jaccard);
        store_bind_real(s, 6, grp[i].max_cos);
        if (grp[i].circle >= 0) sqlite3_bind_int(s, 7, grp[i].circle);
        else sqlite3_bind_null(s, 7);
        store_bind_real(s, 8, grp[i].circle >= 0 ? grp[i].plane_fit : NAN);
        rc = store_run(st, s);
    }
    return rc;
}

/* The dir of the SAE's current analysis into *old (NULL if none). */
static int saean_old_dir(store *st, int64_t sae_id, char **old)
{
    assert(st && old);
    assert(sae_id >= 1);
    *old = NULL;
    sqlite3_stmt *s = store_stmt(st, SQL_SAEAN_OLD_DIR);
    if (!s) return STORE_ERROR;
    sqlite3_bind_int64(s, 1, sae_id);
    int rc = store_step(st, s);
    if (rc == STORE_ERROR) return rc;
    if (rc == 1 && store_col_dup(s, 0, old)) rc = STORE_ERROR;
    store_stmt_end(s);
    return rc == STORE_ERROR ? store_setf(st, STORE_ERROR, "out of memory") : STORE_OK;
}

int store_sae_analysis_save(store *st, const store_sae_analysis *a, const store_latent *lat, int n_lat,
                            const store_group *grp, int n_grp, const char *result_json, char **old_dir)
{
    assert(st && a);
    assert(a->sae_id >= 1 && a->job_id >= 1);
    assert(n_lat >= 0 && (lat || n_lat == 0));
    assert(n_grp >= 0 && (grp || n_grp == 0));
    char *old = NULL;
    int rc = store_tx_begin(st);
    if (rc != STORE_OK) return rc;
    rc = saean_old_dir(st, a->sae_id, &old);
    if (rc == STORE_OK) rc = analysis_run_id(st, SQL_SAEAN_DEL, a->sae_id);
    if (rc == STORE_OK) rc = analysis_run_id(st, SQL_LAT_DEL, a->sae_id);
    if (rc == STORE_OK) rc = analysis_run_id(st, SQL_GRP_DEL, a->sae_id);
    if (rc == STORE_OK) rc = saean_insert_row(st, a);
    if (rc == STORE_OK) rc = saean_insert_latents(st, a->sae_id, lat, n_lat);
    if (rc == STORE_OK) rc = saean_insert_groups(st, a->sae_id, grp, n_grp);
    if (rc == STORE_OK) rc = analysis_job_succeed(st, a->job_id, result_json);
    rc = store_tx_end(st, rc);
    if (rc == STORE_OK && old_dir) *old_dir = old;
    else free(old);
    return rc;
}

/* ---- reading analyze results ---- */

int store_sae_analysis_get(store *st, int64_t sae_id, store_sae_analysis *out)
{
    assert(st && out);
    return store_get_id(st, SQL_SAEAN_GET, sae_id, saean_read, out, sizeof *out, "analysis of SAE");
}

void store_sae_analysis_clear(store_sae_analysis *a)
{
    if (!a) return;
    free(a->cluster_json), free(a->recovery_json), free(a->summary_json), free(a->dir);
    a->cluster_json = a->recovery_json = a->summary_json = a->dir = NULL;
}

/* Binds (sae, after, limit) and reads the whole list. */
static int analysis_list(store *st, const char *sql, int64_t sae_id, int64_t after, int limit, store_reader read,
                         store_clearer clear, size_t elsize, void **out, int *n)
{
    assert(st && sql);
    assert(read && clear && elsize > 0 && out && n);
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s = store_stmt(st, sql);
    if (!s) return STORE_ERROR;
    sqlite3_bind_int64(s, 1, sae_id);
    sqlite3_bind_int64(s, 2, after < 0 ? -1 : after);
    store_bind_limit(s, 3, limit);
    return store_read_all(st, s, read, clear, elsize, out, n);
}

/* Binds (sae, index) and reads the one latent or group row. */
static int analysis_get(store *st, const char *sql, int64_t sae_id, int index, store_reader read, void *out,
                        size_t elsize, const char *what)
{
    assert(st && sql);
    assert(read && out && elsize > 0 && what);
    memset(out, 0, elsize);
    sqlite3_stmt *s = store_stmt(st, sql);
    if (!s) return STORE_ERROR;
    sqlite3_bind_int64(s, 1, sae_id);
    sqlite3_bind_int(s, 2, index);
    return store_read_one(st, s, read, out, what, index);
}

int store_sae_latents_list(store *st, int64_t sae_id, int sort, int64_t after, int limit, store_latent **out, int *n)
{
    assert(st && out && n);
    assert(sort == STORE_SORT_ID || sort == STORE_SORT_DENSITY); /* latents have no jaccard */
    const char *sql = sort == STORE_SORT_DENSITY ? SQL_LAT_BY_DENSITY : SQL_LAT_BY_ID;
    return analysis_list(st, sql, sae_id, after, limit, latent_read, latent_clear_item, sizeof **out, (void **)out, n);
}

int store_sae_latent_get(store *st, int64_t sae_id, int latent, store_latent *out)
{
    assert(st && out);
    return analysis_get(st, SQL_LAT_GET, sae_id, latent, latent_read, out, sizeof *out, "latent");
}

void store_latent_clear(store_latent *l)
{
    if (!l) return;
    free(l->hist_json), free(l->cos_json), free(l->jaccard_json);
    l->hist_json = l->cos_json = l->jaccard_json = NULL;
}

void store_latent_list_free(store_latent *items, int n)
{
    assert(n >= 0 && (items || n == 0));
    for (int i = 0; i < n; i++) store_latent_clear(&items[i]);
    free(items);
}

int store_sae_groups_list(store *st, int64_t sae_id, int sort, int64_t after, int limit, store_group **out, int *n)
{
    assert(st && out && n);
    assert(sort == STORE_SORT_ID || sort == STORE_SORT_DENSITY || sort == STORE_SORT_JACCARD);
    const char *sql = sort == STORE_SORT_DENSITY ? SQL_GRP_BY_DENSITY
                      : sort == STORE_SORT_JACCARD ? SQL_GRP_BY_JACCARD : SQL_GRP_BY_ID;
    return analysis_list(st, sql, sae_id, after, limit, group_read, group_clear_item, sizeof **out, (void **)out, n);
}

int store_sae_group_get(store *st, int64_t sae_id, int group, store_group *out)
{
    assert(st && out);
    return analysis_get(st, SQL_GRP_GET, sae_id, group, group_read, out, sizeof *out, "group");
}

void store_group_clear(store_group *g)
{
    if (!g) return;
    free(g->members_json);
    g->members_json = NULL;
}

void store_group_list_free(store_group *items, int n)
{
    assert(n >= 0 && (items || n == 0));
    for (int i = 0; i < n; i++) store_group_clear(&items[i]);
    free(items);
}

/* ---- pca analyses ---- */

static int analysis_read(sqlite3_stmt *s, void *item)
{
    assert(s && item);
    store_analysis *a = item;
    memset(a, 0, sizeof *a);
    a->id = sqlite3_column_int64(s, 0);
    a->job_id = sqlite3_column_int64(s, 1);
    a->sae_id = sqlite3_column_int64(s, 2);
    a->dataset_id = sqlite3_column_int64(s, 3);
    a->n_rows = sqlite3_column_int(s, 4);
    a->n_components = sqlite3_column_int(s, 5);
    store_col_copy(s, 12, a->created_at, sizeof a->created_at);
    if (store_col_dup(s, 6, &a->latents_json) || store_col_dup(s, 7, &a->variance_json) ||
        store_col_dup(s, 8, &a->ratio_json) || store_col_dup(s, 9, &a->rows_json) ||
        store_col_dup(s, 10, &a->labels_json) || store_col_dup(s, 11, &a->dir)) {
        store_analysis_clear(a);
        return -1;
    }
    return 0;
}

static int analysis_insert_row(store *st, const store_analysis *a, int64_t *id_out)
{
    assert(st && a && id_out);
    assert(a->job_id >= 1 && a->sae_id >= 0 && a->dataset_id >= 0);
    assert(a->n_rows >= 0 && a->n_components >= 0);
    char now[32];
    store_now(now, sizeof now);
    sqlite3_stmt *s = store_stmt(st, SQL_ANALYSIS_INSERT);
    if (!s) return STORE_ERROR;
    store_bind_id(s, 1, a->job_id);
    store_bind_id(s, 2, a->sae_id);
    store_bind_id(s, 3, a->dataset_id);
    sqlite3_bind_int(s, 4, a->n_rows);
    sqlite3_bind_int(s, 5, a->n_components);
    store_bind_text(s, 6, a->latents_json ? a->latents_json : "[]");
    store_bind_text(s, 7, a->variance_json ? a->variance_json : "[]");
    store_bind_text(s, 8, a->ratio_json ? a->ratio_json : "[]");
    store_bind_text(s, 9, a->rows_json ? a->rows_json : "[]");
    store_bind_text(s, 10, a->labels_json);
    store_bind_text(s, 11, a->dir);
    store_bind_text(s, 12, now);
    int rc = store_run(st, s);
    if (rc == STORE_ERROR && st->sqlite_rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        rc = store_setf(st, STORE_NOTFOUND, "SAE %lld or dataset %lld no longer exists", (long long)a->sae_id,
                        (long long)a->dataset_id);
    if (rc == STORE_OK) *id_out = sqlite3_last_insert_rowid(st->db);
    return rc;
}

int store_analysis_insert(store *st, const store_analysis *a, int64_t *id_out)
{
    assert(st && a && id_out);
    assert(a->job_id >= 1);
    int64_t id = 0;
    int rc = store_tx_begin(st);
    if (rc != STORE_OK) return rc;
    rc = analysis_insert_row(st, a, &id);
    if (rc == STORE_OK) rc = analysis_job_succeed(st, a->job_id, NULL);
    if (rc == STORE_OK) {
        sqlite3_stmt *s = store_stmt(st, SQL_ANALYSIS_RESULT);
        if (!s) rc = STORE_ERROR;
        else {
            sqlite3_bind_int64(s, 1, a->job_id);
            sqlite3_bind_int64(s, 2, id);
            rc = store_run(st, s);
        }
    }
    rc = store_tx_end(st, rc);
    if (rc == STORE_OK) *id_out = id;
    return rc;
}

int store_analysis_get(store *st, int64_t id, store_analysis *out)
{
    assert(st && out);
    return store_get_id(st, SQL_ANALYSIS_GET, id, analysis_read, out, sizeof *out, "analysis");
}

void store_analysis_clear(store_analysis *a)
{
    if (!a) return;
    free(a->latents_json), free(a->variance_json), free(a->ratio_json), free(a->rows_json);
    free(a->labels_json), free(a->dir);
    a->latents_json = a->variance_json = a->ratio_json = a->rows_json = a->labels_json = a->dir = NULL;
}
