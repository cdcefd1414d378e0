/* store_jobstate — the job state machine:
 *
 *   queued --claim--> running --finish/succeed--> failed | cancelled | succeeded
 *   queued --cancel--> cancelled        running --requeue--> queued
 *
 * Each transition is one BEGIN IMMEDIATE transaction whose UPDATE is guarded
 * by the state it leaves, so a transition that lost a race changes nothing
 * and reports STORE_CONFLICT (or STORE_NOTFOUND) with a message.
 *
 * Choices the header leaves open:
 * - started_at is set by the first claim only; a requeued job keeps it
 *   (attempts counts the claims).
 * - Requeueing a running job whose cancel was requested cancels it instead,
 *   so a cancel is never lost to a shutdown or crash.
 * - Leaving running clears eta_s (NULL, read as -1); requeueing also zeroes
 *   samples_per_s. step is kept, so progress shows where a job resumes. */
#include <assert.h>
#include <math.h>
#include <string.h>
#include "store_int.h"

static const char SQL_JOB_CLAIM[] =
    "UPDATE jobs SET state = 'running', started_at = COALESCE(started_at, ?1), attempts = attempts + 1,"
    " cancel_requested = 0, samples_per_s = 0, eta_s = NULL"
    " WHERE id = (SELECT id FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 1)"
    " RETURNING " STORE_JOB_COLS;
static const char SQL_JOB_PROGRESS[] =
    "UPDATE jobs SET step = ?2, samples_per_s = ?3, eta_s = ?4 WHERE id = ?1 AND state = 'running'";
static const char SQL_JOB_CANCEL_QUEUED[] =
    "UPDATE jobs SET state = 'cancelled', finished_at = ?2 WHERE id = ?1 AND state = 'queued'";
static const char SQL_JOB_CANCEL_RUNNING[] =
    "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1 AND state = 'running'";
static const char SQL_JOB_FLAG[] = "SELECT cancel_requested FROM jobs WHERE id = ?1";
static const char SQL_JOB_END[] =
    "UPDATE jobs SET state = ?2, finished_at = ?3, result_json = ?4, error = ?5, eta_s = NULL"
    " WHERE id = ?1 AND state = 'running'";
static const char SQL_JOB_SAE_RESULT[] = "UPDATE jobs SET result_json = json_object('sae', ?2) WHERE id = ?1";
/* ?1: a job id, or NULL for every running job; ?2: now. */
static const char SQL_JOB_REQUEUE_CANCELLED[] =
    "UPDATE jobs SET state = 'cancelled', finished_at = ?2, samples_per_s = 0, eta_s = NULL"
    " WHERE state = 'running' AND cancel_requested != 0 AND (?1 IS NULL OR id = ?1)";
static const char SQL_JOB_REQUEUE[] =
    "UPDATE jobs SET state = 'queued', samples_per_s = 0, eta_s = NULL"
    " WHERE state = 'running' AND (?1 IS NULL OR id = ?1)";

/* After a guarded UPDATE changed nothing: why (NOTFOUND or CONFLICT). */
static int job_not_in(store *st, int64_t id, const char *wanted)
{
    assert(st && wanted);
    assert(id >= 1);
    store_job_state state;
    int rc = store_job_state_of(st, id, &state);
    if (rc != STORE_OK)
        return rc;
    return store_setf(st, STORE_CONFLICT, "job %lld is %s, not %s", (long long)id, store_job_state_name(state), wanted);
}

/* Runs a bound UPDATE of job id guarded by state `wanted`, in the caller's transaction. */
static int job_run_guarded(store *st, sqlite3_stmt *s, int64_t id, const char *wanted)
{
    assert(st && s && wanted);
    assert(id >= 1);
    int rc = store_run(st, s);
    if (rc == STORE_OK && sqlite3_changes(st->db) == 0)
        rc = job_not_in(st, id, wanted);
    return rc;
}

/* Binds now to ?2 when the statement has one. */
static void job_bind_now(sqlite3_stmt *s, const char *now)
{
    assert(s && now);
    if (sqlite3_bind_parameter_count(s) >= 2)
        store_bind_text(s, 2, now);
}

/* Runs "?1 = id[, ?2 = now]" UPDATE sql guarded by `wanted`, in the caller's transaction. */
static int job_run_id_now(store *st, const char *sql, int64_t id, const char *wanted)
{
    assert(st && sql && wanted);
    assert(id >= 1);
    char now[32];
    store_now(now, sizeof now);
    sqlite3_stmt *s = store_stmt(st, sql);
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, id);
    job_bind_now(s, now);
    return job_run_guarded(st, s, id, wanted);
}

int store_job_claim(store *st, store_job *out)
{
    assert(st && out);
    char now[32];
    store_now(now, sizeof now);
    memset(out, 0, sizeof *out);
    int rc = store_tx_begin(st);
    if (rc != STORE_OK)
        return rc;
    sqlite3_stmt *s = store_stmt(st, SQL_JOB_CLAIM);
    if (!s)
        return store_tx_end(st, STORE_ERROR);
    store_bind_text(s, 1, now);
    rc = store_step(st, s);
    if (rc == 1 && store_job_read(s, out) != 0)
        rc = store_setf(st, STORE_ERROR, "out of memory claiming a job");
    else if (rc == 1)
        rc = store_run(st, s);
    else if (rc == 0)
        rc = store_setf(st, STORE_NOTFOUND, "no job is queued");
    store_stmt_end(s);
    rc = store_tx_end(st, rc);
    if (rc != STORE_OK)
        store_job_clear(out);
    assert(rc != STORE_OK || (out->id >= 1 && out->state == STORE_JOB_RUNNING && out->attempts >= 1));
    return rc;
}

int store_job_progress(store *st, int64_t id, int step, double samples_per_s, double eta_s)
{
    assert(st);
    assert(id >= 1);
    assert(step >= 0);
    int rc = store_tx_begin(st);
    if (rc != STORE_OK)
        return rc;
    sqlite3_stmt *s = store_stmt(st, SQL_JOB_PROGRESS);
    if (!s)
        return store_tx_end(st, STORE_ERROR);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int(s, 2, step);
    sqlite3_bind_double(s, 3, isfinite(samples_per_s) && samples_per_s > 0 ? samples_per_s : 0.0);
    store_bind_real(s, 4, eta_s >= 0 ? eta_s : NAN);
    return store_tx_end(st, job_run_guarded(st, s, id, "running"));
}

int store_job_request_cancel(store *st, int64_t id)
{
    assert(st);
    assert(id >= 1);
    store_job_state state;
    int rc = store_tx_begin(st);
    if (rc != STORE_OK)
        return rc;
    rc = store_job_state_of(st, id, &state);
    if (rc == STORE_OK && state == STORE_JOB_QUEUED)
        rc = job_run_id_now(st, SQL_JOB_CANCEL_QUEUED, id, "queued");
    else if (rc == STORE_OK && state == STORE_JOB_RUNNING)
        rc = job_run_id_now(st, SQL_JOB_CANCEL_RUNNING, id, "running");
    else if (rc == STORE_OK)
        rc = store_setf(st, STORE_CONFLICT, "job %lld is already %s", (long long)id, store_job_state_name(state));
    return store_tx_end(st, rc);
}

int store_job_cancel_requested(store *st, int64_t id, int *flag)
{
    assert(st && flag);
    assert(id >= 1);
    *flag = 0;
    sqlite3_stmt *s = store_stmt(st, SQL_JOB_FLAG);
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, id);
    int rc = store_step(st, s);
    if (rc == 1) {
        *flag = sqlite3_column_int(s, 0) != 0;
        rc = STORE_OK;
    } else if (rc == 0) {
        rc = store_setf(st, STORE_NOTFOUND, "job %lld does not exist", (long long)id);
    }
    store_stmt_end(s);
    return rc;
}

/* running -> final_state with result and error, in the caller's transaction. */
static int job_end(store *st, int64_t id, store_job_state final_state, const char *result_json, const char *error)
{
    assert(st);
    assert(id >= 1);
    assert(final_state == STORE_JOB_SUCCEEDED || final_state == STORE_JOB_FAILED || final_state == STORE_JOB_CANCELLED);
    char now[32];
    store_now(now, sizeof now);
    sqlite3_stmt *s = store_stmt(st, SQL_JOB_END);
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, id);
    store_bind_text(s, 2, store_job_state_name(final_state));
    store_bind_text(s, 3, now);
    store_bind_text(s, 4, result_json);
    store_bind_text(s, 5, error);
    return job_run_guarded(st, s, id, "running");
}

int store_job_finish(store *st, int64_t id, store_job_state final_state, const char *error)
{
    assert(st);
    assert(id >= 1);
    assert((unsigned)final_state < STORE_JOB_N_STATES);
    if (final_state != STORE_JOB_FAILED && final_state != STORE_JOB_CANCELLED)
        return store_setf(st, STORE_ERROR, "store_job_finish: the final state must be failed or cancelled, not %s",
                          store_job_state_name(final_state));
    int rc = store_tx_begin(st);
    if (rc != STORE_OK)
        return rc;
    return store_tx_end(st, job_end(st, id, final_state, NULL, error));
}

int store_job_succeed(store *st, int64_t id, const char *result_json)
{
    assert(st);
    assert(id >= 1);
    int rc = store_tx_begin(st);
    if (rc != STORE_OK)
        return rc;
    return store_tx_end(st, job_end(st, id, STORE_JOB_SUCCEEDED, result_json, NULL));
}

static int job_set_sae_result(store *st, int64_t job_id, int64_t sae_id)
{
    assert(st);
    assert(job_id >= 1 && sae_id >= 1);
    sqlite3_stmt *s = store_stmt(st, SQL_JOB_SAE_RESULT);
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, job_id);
    sqlite3_bind_int64(s, 2, sae_id);
    return store_run(st, s);
}

int store_job_succeed_with_sae(store *st, int64_t job_id, const store_sae *sae, int64_t *sae_id_out)
{
    assert(st && sae);
    assert(job_id >= 1);
    int64_t sae_id = 0;
    int rc = store_tx_begin(st);
    if (rc != STORE_OK)
        return rc;
    rc = job_end(st, job_id, STORE_JOB_SUCCEEDED, NULL, NULL);
    if (rc == STORE_OK)
        rc = store_sae_insert(st, job_id, sae, &sae_id);
    if (rc == STORE_OK)
        rc = job_set_sae_result(st, job_id, sae_id);
    rc = store_tx_end(st, rc);
    if (rc == STORE_OK && sae_id_out)
        *sae_id_out = sae_id;
    return rc;
}

/* Running job id (0: every running job) back to queued, or to cancelled if a
 * cancel was requested; *requeued = jobs put back in the queue. */
static int job_requeue(store *st, int64_t id, int *requeued, int *cancelled)
{
    assert(st && requeued && cancelled);
    assert(id >= 0); /* 0: every running job */
    char now[32];
    store_now(now, sizeof now);
    const char *sqls[2] = { SQL_JOB_REQUEUE_CANCELLED, SQL_JOB_REQUEUE };
    int counts[2] = { 0, 0 };
    for (int i = 0; i < 2; i++) {
        sqlite3_stmt *s = store_stmt(st, sqls[i]);
        if (!s)
            return STORE_ERROR;
        store_bind_id(s, 1, id);
        job_bind_now(s, now);
        if (store_run(st, s) != STORE_OK)
            return STORE_ERROR;
        counts[i] = sqlite3_changes(st->db);
    }
    *cancelled = counts[0];
    *requeued = counts[1];
    return STORE_OK;
}

int store_job_requeue(store *st, int64_t id)
{
    assert(st);
    assert(id >= 1);
    int requeued = 0, cancelled = 0;
    int rc = store_tx_begin(st);
    if (rc != STORE_OK)
        return rc;
    rc = id > 0 ? job_requeue(st, id, &requeued, &cancelled) : STORE_OK;
    if (rc == STORE_OK && requeued + cancelled == 0)
        rc = job_not_in(st, id, "running");
    return store_tx_end(st, rc);
}

int store_requeue_running(store *st, int *n)
{
    assert(st && n);
    int requeued = 0, cancelled = 0;
    *n = 0;
    int rc = store_tx_begin(st);
    if (rc != STORE_OK)
        return rc;
    rc = store_tx_end(st, job_requeue(st, 0, &requeued, &cancelled));
    if (rc == STORE_OK)
        *n = requeued;
    return rc;
}
