/* store_metrics — the metric series of a job: one row per (job, step).
 * Appending a step that exists replaces it (a resumed job recomputes the
 * steps after its checkpoint), and sets the job's latest_json to the point
 * as a JSON object built by SQLite's json_object(). Non-finite values are
 * stored as NULL, so they appear as null in JSON and read back as NAN. */
#include <assert.h>
#include <math.h>
#include "store_int.h"

static const char SQL_METRIC_PUT[] =
    "INSERT OR REPLACE INTO metrics (job_id, step, loss, mse, fve, l0, l0_groups, dead_frac, lr, samples_per_s)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
static const char SQL_METRIC_LATEST[] =
    "UPDATE jobs SET latest_json = (SELECT json_object('step', step, 'loss', loss, 'mse', mse, 'fve', fve,"
    " 'l0', l0, 'l0_groups', l0_groups, 'dead_frac', dead_frac, 'lr', lr, 'samples_per_s', samples_per_s)"
    " FROM metrics WHERE job_id = ?1 AND step = ?2) WHERE id = ?1";
static const char SQL_METRIC_SINCE[] =
    "SELECT step, loss, mse, fve, l0, l0_groups, dead_frac, lr, samples_per_s FROM metrics"
    " WHERE job_id = ?1 AND step > ?2 ORDER BY step";

static int metric_put(store *st, int64_t job_id, const store_metric *m)
{
    assert(st && m);
    assert(job_id >= 1);
    sqlite3_stmt *s = store_stmt(st, SQL_METRIC_PUT);
    if (!s)
        return STORE_ERROR;
    const double v[8] = { m->loss, m->mse, m->fve, m->l0, m->l0_groups, m->dead_frac, m->lr, m->samples_per_s };
    sqlite3_bind_int64(s, 1, job_id);
    sqlite3_bind_int(s, 2, m->step);
    for (int i = 0; i < 8; i++)
        store_bind_real(s, 3 + i, v[i]);
    int rc = store_run(st, s);
    if (rc == STORE_ERROR && st->sqlite_rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        rc = store_setf(st, STORE_NOTFOUND, "job %lld does not exist", (long long)job_id);
    return rc;
}

static int metric_set_latest(store *st, int64_t job_id, int step)
{
    assert(st);
    assert(job_id >= 1 && step >= 0);
    sqlite3_stmt *s = store_stmt(st, SQL_METRIC_LATEST);
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, job_id);
    sqlite3_bind_int(s, 2, step);
    return store_run(st, s);
}

int store_metric_append(store *st, int64_t job_id, const store_metric *m)
{
    assert(st && m);
    assert(job_id >= 1);
    assert(m->step >= 0);
    int rc = store_tx_begin(st);
    if (rc != STORE_OK)
        return rc;
    rc = metric_put(st, job_id, m);
    if (rc == STORE_OK)
        rc = metric_set_latest(st, job_id, m->step);
    return store_tx_end(st, rc);
}

static int metric_read(sqlite3_stmt *s, void *item)
{
    assert(s && item);
    store_metric *m = item;
    double *v[8] = { &m->loss, &m->mse, &m->fve, &m->l0, &m->l0_groups, &m->dead_frac, &m->lr, &m->samples_per_s };
    m->step = sqlite3_column_int(s, 0);
    for (int i = 0; i < 8; i++)
        *v[i] = store_col_real(s, 1 + i, NAN);
    return 0;
}

static void metric_clear(void *item)
{
    (void)item;
}

int store_metric_since(store *st, int64_t job_id, int since_step, store_metric **out, int *n)
{
    assert(st && out && n);
    assert(job_id >= 1);
    *out = NULL;
    *n = 0;
    store_job_state state;
    int rc = store_job_state_of(st, job_id, &state); /* NOTFOUND for an unknown job */
    if (rc != STORE_OK)
        return rc;
    sqlite3_stmt *s = store_stmt(st, SQL_METRIC_SINCE);
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, job_id);
    sqlite3_bind_int(s, 2, since_step);
    return store_read_all(st, s, metric_read, metric_clear, sizeof **out, (void **)out, n);
}
