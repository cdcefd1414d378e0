/* store_jobs — job rows: insert, get, list (by state, after / limit paging),
 * count, delete (terminal jobs only, with their metric points). The state
 * machine (claim, progress, cancel, finish, requeue) is in store_jobstate.c.
 *
 * NULL columns read back as the header's "unknown" values: empty time
 * strings, NULL json pointers, 0 ids, eta_s -1. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include "store_int.h"

static const char SQL_JOB_INSERT[] =
    "INSERT INTO jobs (type, state, created_at, spec_json, dataset_id, sae_id, total_steps)"
    " VALUES (?1, 'queued', ?2, COALESCE(?3, '{}'), ?4, ?5, ?6)";
static const char SQL_JOB_GET[] = "SELECT " STORE_JOB_COLS " FROM jobs WHERE id = ?1";
static const char SQL_JOB_LIST[] =
    "SELECT " STORE_JOB_COLS " FROM jobs WHERE id > ?1 AND (?2 IS NULL OR state = ?2) ORDER BY id LIMIT ?3";
static const char SQL_JOB_COUNT[] = "SELECT count(*) FROM jobs WHERE state = ?1";
static const char SQL_JOB_STATE[] = "SELECT state FROM jobs WHERE id = ?1";
static const char SQL_JOB_DEL_METRICS[] = "DELETE FROM metrics WHERE job_id = ?1";
static const char SQL_JOB_DELETE[] = "DELETE FROM jobs WHERE id = ?1";

int store_job_read(sqlite3_stmt *s, void *item)
{
    assert(s && item);
    store_job *j = item;
    memset(j, 0, sizeof *j);
    j->id = sqlite3_column_int64(s, 0);
    store_col_copy(s, 1, j->type, sizeof j->type);
    int bad_state = store_job_state_parse((const char *)sqlite3_column_text(s, 2), &j->state) != 0;
    store_col_copy(s, 3, j->created_at, sizeof j->created_at);
    store_col_copy(s, 4, j->started_at, sizeof j->started_at);
    store_col_copy(s, 5, j->finished_at, sizeof j->finished_at);
    j->dataset_id = sqlite3_column_int64(s, 10);
    j->sae_id = sqlite3_column_int64(s, 11);
    j->step = sqlite3_column_int(s, 12);
    j->total_steps = sqlite3_column_int(s, 13);
    j->samples_per_s = store_col_real(s, 14, 0.0);
    j->eta_s = store_col_real(s, 15, -1.0);
    j->cancel_requested = sqlite3_column_int(s, 16);
    j->attempts = sqlite3_column_int(s, 17);
    if (bad_state || store_col_dup(s, 6, &j->spec_json) || store_col_dup(s, 7, &j->result_json) ||
        store_col_dup(s, 8, &j->latest_json) || store_col_dup(s, 9, &j->error)) {
        store_job_clear(j);
        return -1;
    }
    return 0;
}

static void job_clear_item(void *item)
{
    store_job_clear(item);
}

int store_job_state_of(store *st, int64_t id, store_job_state *state)
{
    assert(st && state);
    assert(id >= 1);
    sqlite3_stmt *s = store_stmt(st, SQL_JOB_STATE);
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, id);
    int rc = store_step(st, s);
    if (rc == 1)
        rc = store_job_state_parse((const char *)sqlite3_column_text(s, 0), state) == 0 ? STORE_OK
             : store_setf(st, STORE_ERROR, "job %lld has an unknown state", (long long)id);
    else if (rc == 0)
        rc = store_setf(st, STORE_NOTFOUND, "job %lld does not exist", (long long)id);
    store_stmt_end(s);
    return rc;
}

static int job_bind_insert(store *st, sqlite3_stmt *s, const char *type, const char *spec_json,
                           int64_t dataset_id, int64_t sae_id, int total_steps)
{
    assert(st && s);
    assert(type);
    assert(dataset_id >= 0 && sae_id >= 0 && total_steps >= 0);
    char now[32];
    if (!type || !type[0] || strlen(type) >= sizeof ((store_job *)0)->type)
        return store_setf(st, STORE_ERROR, "job type \"%s\" is empty or longer than 15 bytes", type ? type : "");
    store_now(now, sizeof now);
    store_bind_text(s, 1, type);
    store_bind_text(s, 2, now);
    store_bind_text(s, 3, spec_json);
    store_bind_id(s, 4, dataset_id);
    store_bind_id(s, 5, sae_id);
    sqlite3_bind_int(s, 6, total_steps);
    return STORE_OK;
}

/* The insert broke a foreign key: name what is missing. */
static int job_missing_ref(store *st, int64_t dataset_id, int64_t sae_id)
{
    assert(st);
    assert(dataset_id > 0 || sae_id > 0); /* a foreign key broke, so one was named */
    if (dataset_id && sae_id)
        return store_setf(st, STORE_NOTFOUND, "dataset %lld or SAE %lld does not exist",
                          (long long)dataset_id, (long long)sae_id);
    return store_setf(st, STORE_NOTFOUND, "%s %lld does not exist", dataset_id ? "dataset" : "SAE",
                      (long long)(dataset_id ? dataset_id : sae_id));
}

int store_job_insert(store *st, const char *type, const char *spec_json, int64_t dataset_id,
                     int64_t sae_id, int total_steps, int64_t *id_out)
{
    assert(st);
    assert(type);
    int rc = store_tx_begin(st);
    if (rc != STORE_OK)
        return rc;
    sqlite3_stmt *s = store_stmt(st, SQL_JOB_INSERT);
    rc = s ? job_bind_insert(st, s, type, spec_json, dataset_id, sae_id, total_steps) : STORE_ERROR;
    if (rc == STORE_OK)
        rc = store_run(st, s);
    if (rc == STORE_ERROR && st->sqlite_rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        rc = job_missing_ref(st, dataset_id, sae_id);
    if (rc == STORE_OK && id_out)
        *id_out = sqlite3_last_insert_rowid(st->db);
    if (s)
        store_stmt_end(s);
    return store_tx_end(st, rc);
}

int store_job_get(store *st, int64_t id, store_job *out)
{
    assert(st && out);
    return store_get_id(st, SQL_JOB_GET, id, store_job_read, out, sizeof *out, "job");
}

int store_job_list(store *st, int state_filter, int64_t after, int limit, store_job **out, int *n)
{
    assert(st && out && n);
    assert(state_filter < STORE_JOB_N_STATES);
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s = store_stmt(st, SQL_JOB_LIST);
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, after);
    store_bind_text(s, 2, state_filter >= 0 ? store_job_state_name((store_job_state)state_filter) : NULL);
    store_bind_limit(s, 3, limit);
    return store_read_all(st, s, store_job_read, job_clear_item, sizeof **out, (void **)out, n);
}

int store_job_count(store *st, store_job_state state, int64_t *n)
{
    assert(st && n);
    assert((unsigned)state < STORE_JOB_N_STATES);
    *n = 0;
    sqlite3_stmt *s = store_stmt(st, SQL_JOB_COUNT);
    if (!s)
        return STORE_ERROR;
    store_bind_text(s, 1, store_job_state_name(state));
    int rc = store_step(st, s);
    if (rc == 1)
        *n = sqlite3_column_int64(s, 0);
    store_stmt_end(s);
    return rc == 1 ? STORE_OK : STORE_ERROR;
}

/* Runs a one-parameter (?1 = id) statement inside the caller's transaction. */
static int job_exec_id(store *st, const char *sql, int64_t id)
{
    assert(st && sql);
    assert(id >= 1);
    sqlite3_stmt *s = store_stmt(st, sql);
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, id);
    return store_run(st, s);
}

int store_job_delete(store *st, int64_t id)
{
    assert(st);
    assert(id >= 1);
    store_job_state state;
    int rc = store_tx_begin(st);
    if (rc != STORE_OK)
        return rc;
    rc = store_job_state_of(st, id, &state);
    if (rc == STORE_OK && !store_job_state_terminal(state))
        rc = store_setf(st, STORE_CONFLICT, "job %lld is %s; cancel it and wait until it stops before deleting it",
                        (long long)id, store_job_state_name(state));
    if (rc == STORE_OK)
        rc = job_exec_id(st, SQL_JOB_DEL_METRICS, id);
    if (rc == STORE_OK)
        rc = job_exec_id(st, SQL_JOB_DELETE, id);
    return store_tx_end(st, rc);
}

void store_job_clear(store_job *j)
{
    if (!j)
        return;
    free(j->spec_json);
    free(j->result_json);
    free(j->latest_json);
    free(j->error);
    j->spec_json = j->result_json = j->latest_json = j->error = NULL;
}

void store_job_list_free(store_job *items, int n)
{
    assert(n >= 0 && (items || n == 0));
    for (int i = 0; i < n; i++)
        store_job_clear(&items[i]);
    free(items);
}
