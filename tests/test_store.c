/* test_store — storage against real SQLite files and a real directory:
 * migrations and reopening, every table's CRUD and paging, the job state
 * machine (claim order, concurrent claims, cancel in every state, finish and
 * succeed only from running, crash requeue), metric series, delete rules,
 * and the atomic file writers (a .npy read back by NumPy). Everything lives
 * in a mkdtemp directory that is removed at the end. */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "check.h"
#include "files.h"
#include "store.h"

#define N_CLAIM_JOBS 200

static char tmpdir[256];

static void db_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", tmpdir, name);
}

static store *open_db(const char *name)
{
    char path[1024], err[512];
    db_path(path, sizeof path, name);
    store *st = store_open(path, err, sizeof err);
    CHECK(st != NULL, "store_open %s: %s", path, err);
    return st;
}

static int64_t add_dataset(store *st, const char *name)
{
    store_dataset d = { .dim = 8, .n_rows = -1, .params_json = "{\"seed\":1}" };
    snprintf(d.name, sizeof d.name, "%s", name);
    snprintf(d.kind, sizeof d.kind, "circles");
    int64_t id = 0;
    CHECK(store_dataset_insert(st, &d, &id) == STORE_OK, "dataset insert: %s", store_errmsg(st));
    return id;
}

static int64_t add_job(store *st, int64_t dataset_id)
{
    int64_t id = 0;
    int rc = store_job_insert(st, "train", "{\"type\":\"train\"}", dataset_id, 0, 100, &id);
    CHECK(rc == STORE_OK, "job insert: %s", store_errmsg(st));
    return id;
}

static store_job_state state_of(store *st, int64_t id)
{
    store_job j;
    int rc = store_job_get(st, id, &j);
    CHECK(rc == STORE_OK, "job get %lld: %s", (long long)id, store_errmsg(st));
    store_job_clear(&j);
    return rc == STORE_OK ? j.state : STORE_JOB_N_STATES;
}

/* Claims the next job and checks it is `want`. */
static void claim_expect(store *st, int64_t want)
{
    store_job j;
    int rc = store_job_claim(st, &j);
    CHECK(rc == STORE_OK && j.id == want && j.state == STORE_JOB_RUNNING, "claim: rc %d id %lld, want %lld",
          rc, (long long)j.id, (long long)want);
    store_job_clear(&j);
}

/* ---- migrations ---- */

static void *open_thread(void *arg)
{
    char err[512];
    store *st = store_open(arg, err, sizeof err);
    int v = st ? store_schema_version(st) : -1;
    store_close(st);
    return (void *)(intptr_t)v;
}

static void test_migrations(void)
{
    store *st = open_db("mig.db");
    int v = store_schema_version(st);
    CHECK(v >= 1, "schema version %d on a fresh file", v);
    int64_t id = add_dataset(st, "kept");
    store_close(st);
    st = open_db("mig.db");
    CHECK(store_schema_version(st) == v, "version after reopen %d, want %d", store_schema_version(st), v);
    store_dataset d;
    CHECK(store_dataset_get(st, id, &d) == STORE_OK && !strcmp(d.name, "kept"), "data survives a reopen");
    store_dataset_clear(&d);
    store_close(st);

    char path[1024];
    pthread_t th[4];
    db_path(path, sizeof path, "race.db");
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, open_thread, path);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        CHECK((int)(intptr_t)r == v, "concurrent open %d: version %d", i, (int)(intptr_t)r);
    }
    char err[256];
    CHECK(store_open("/nonexistent-dir/x.db", err, sizeof err) == NULL && strstr(err, "x.db"),
          "open in a missing directory fails with a message: %s", err);

    /* A file whose schema version saed never wrote is refused, not migrated. */
    const int bad[] = { 1000, -1 };
    for (int i = 0; i < 2; i++) {
        sqlite3 *db = NULL;
        char sql[64];
        db_path(path, sizeof path, i ? "negative.db" : "future.db");
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", bad[i]);
        CHECK(sqlite3_open(path, &db) == SQLITE_OK && sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK,
              "writing user_version %d", bad[i]);
        sqlite3_close(db);
        CHECK(store_open(path, err, sizeof err) == NULL && strstr(err, "schema version"),
              "schema version %d refused with a message: %s", bad[i], err);
    }
}

/* ---- datasets ---- */

static void test_datasets(void)
{
    store *st = open_db("ds.db");
    int64_t ids[5];
    for (int i = 0; i < 5; i++) {
        char name[32];
        snprintf(name, sizeof name, "d%d", i);
        ids[i] = add_dataset(st, name);
    }
    CHECK(ids[0] > 0 && ids[4] == ids[0] + 4, "ids are sequential: %lld..%lld", (long long)ids[0], (long long)ids[4]);

    store_dataset n = { .dim = 3, .n_rows = 10, .path = "/x/a.npy", .has_labels = 1 };
    snprintf(n.name, sizeof n.name, "npy");
    snprintf(n.kind, sizeof n.kind, "npy");
    int64_t nid;
    CHECK(store_dataset_insert(st, &n, &nid) == STORE_OK, "npy insert");
    store_dataset d;
    CHECK(store_dataset_get(st, nid, &d) == STORE_OK, "get npy");
    CHECK(!strcmp(d.kind, "npy") && d.dim == 3 && d.n_rows == 10 && d.has_labels == 1 &&
          d.path && !strcmp(d.path, "/x/a.npy") && d.params_json && !strcmp(d.params_json, "{}") &&
          strlen(d.created_at) == 20 && d.created_at[19] == 'Z', "npy fields round-trip (%s)", d.created_at);
    store_dataset_clear(&d);
    CHECK(store_dataset_get(st, ids[1], &d) == STORE_OK && d.path == NULL && d.n_rows == -1 &&
          !strcmp(d.params_json, "{\"seed\":1}"), "circles fields round-trip");
    store_dataset_clear(&d);
    CHECK(store_dataset_get(st, 999, &d) == STORE_NOTFOUND, "unknown dataset: NOTFOUND");

    store_dataset *items;
    int cnt;
    CHECK(store_dataset_list(st, 0, 2, &items, &cnt) == STORE_OK && cnt == 2 && items[0].id == ids[0] &&
          items[1].id == ids[1], "first page of 2");
    store_dataset_list_free(items, cnt);
    CHECK(store_dataset_list(st, ids[1], 2, &items, &cnt) == STORE_OK && cnt == 2 && items[0].id == ids[2],
          "page after id");
    store_dataset_list_free(items, cnt);
    CHECK(store_dataset_list(st, ids[4], 10, &items, &cnt) == STORE_OK && cnt == 1 && items[0].id == nid,
          "last page");
    store_dataset_list_free(items, cnt);
    CHECK(store_dataset_list(st, 0, 0, &items, &cnt) == STORE_OK && cnt == 6, "limit 0 lists all: %d", cnt);
    store_dataset_list_free(items, cnt);

    CHECK(store_dataset_set_labels(st, ids[0], 1) == STORE_OK, "set labels");
    CHECK(store_dataset_get(st, ids[0], &d) == STORE_OK && d.has_labels == 1, "labels flag set");
    store_dataset_clear(&d);
    CHECK(store_dataset_set_labels(st, 999, 1) == STORE_NOTFOUND, "labels on unknown: NOTFOUND");
    CHECK(store_dataset_delete(st, ids[2]) == STORE_OK, "delete unused dataset");
    CHECK(store_dataset_get(st, ids[2], &d) == STORE_NOTFOUND, "deleted dataset is gone");
    CHECK(store_dataset_delete(st, ids[2]) == STORE_NOTFOUND, "delete twice: NOTFOUND");
    int64_t again = add_dataset(st, "again");
    CHECK(again == nid + 1, "ids are never reused: %lld", (long long)again);
    store_close(st);
}

/* ---- jobs ---- */

static void test_jobs(void)
{
    store *st = open_db("jobs.db");
    int64_t ds = add_dataset(st, "d");
    int64_t ids[6];
    for (int i = 0; i < 6; i++)
        ids[i] = add_job(st, ds);
    store_job j;
    CHECK(store_job_get(st, ids[0], &j) == STORE_OK, "get job");
    CHECK(j.state == STORE_JOB_QUEUED && !strcmp(j.type, "train") && j.dataset_id == ds && j.sae_id == 0 &&
          j.total_steps == 100 && j.step == 0 && j.eta_s < 0 && j.samples_per_s == 0 && j.attempts == 0 &&
          j.started_at[0] == 0 && j.finished_at[0] == 0 && j.created_at[0] && j.result_json == NULL &&
          j.latest_json == NULL && j.error == NULL && !strcmp(j.spec_json, "{\"type\":\"train\"}"),
          "fresh job fields");
    store_job_clear(&j);
    CHECK(store_job_get(st, 999, &j) == STORE_NOTFOUND, "unknown job: NOTFOUND");
    int64_t bad;
    CHECK(store_job_insert(st, "train", "{}", 999, 0, 1, &bad) == STORE_NOTFOUND, "job on unknown dataset");
    CHECK(store_job_insert(st, "a-type-much-too-long", "{}", 0, 0, 1, &bad) == STORE_ERROR, "overlong type");

    claim_expect(st, ids[0]);
    claim_expect(st, ids[1]);
    CHECK(store_job_request_cancel(st, ids[2]) == STORE_OK, "cancel queued");

    store_job *items;
    int cnt;
    CHECK(store_job_list(st, STORE_JOB_QUEUED, 0, 0, &items, &cnt) == STORE_OK && cnt == 3 && items[0].id == ids[3],
          "queued filter: %d", cnt);
    store_job_list_free(items, cnt);
    CHECK(store_job_list(st, STORE_JOB_RUNNING, 0, 0, &items, &cnt) == STORE_OK && cnt == 2 &&
          items[1].id == ids[1] && items[1].state == STORE_JOB_RUNNING, "running filter");
    store_job_list_free(items, cnt);
    CHECK(store_job_list(st, -1, ids[1], 3, &items, &cnt) == STORE_OK && cnt == 3 && items[0].id == ids[2] &&
          items[2].id == ids[4], "all states, paged");
    store_job_list_free(items, cnt);
    CHECK(store_job_list(st, STORE_JOB_QUEUED, ids[3], 1, &items, &cnt) == STORE_OK && cnt == 1 &&
          items[0].id == ids[4], "filter and page together");
    store_job_list_free(items, cnt);

    int64_t nq = -1, nr = -1, nc = -1;
    store_job_count(st, STORE_JOB_QUEUED, &nq);
    store_job_count(st, STORE_JOB_RUNNING, &nr);
    store_job_count(st, STORE_JOB_CANCELLED, &nc);
    CHECK(nq == 3 && nr == 2 && nc == 1, "counts %lld %lld %lld", (long long)nq, (long long)nr, (long long)nc);
    store_close(st);
}

/* ---- concurrent claims ---- */

typedef struct {
    const char *path;
    int64_t ids[N_CLAIM_JOBS]; /* (n) claimed ids */
    int n;
    int errors;
} claimer;

static void *claim_thread(void *arg)
{
    claimer *c = arg;
    char err[512];
    store *st = store_open(c->path, err, sizeof err);
    if (!st) {
        c->errors++;
        return NULL;
    }
    for (;;) {
        store_job j;
        int rc = store_job_claim(st, &j);
        if (rc == STORE_NOTFOUND)
            break;
        if (rc != STORE_OK || c->n >= N_CLAIM_JOBS) {
            c->errors++;
            break;
        }
        c->ids[c->n++] = j.id;
        store_job_clear(&j);
    }
    store_close(st);
    return NULL;
}

static void test_claim_concurrent(void)
{
    char path[1024];
    db_path(path, sizeof path, "claim.db");
    store *st = open_db("claim.db");
    int64_t first = add_job(st, 0);
    for (int i = 1; i < N_CLAIM_JOBS; i++)
        add_job(st, 0);
    static claimer c[2];
    pthread_t th[2];
    for (int t = 0; t < 2; t++) {
        c[t] = (claimer){ .path = path };
        pthread_create(&th[t], NULL, claim_thread, &c[t]);
    }
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    int seen[N_CLAIM_JOBS] = { 0 };
    int bad = 0;
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < c[t].n; i++) {
            int64_t k = c[t].ids[i] - first;
            if (k < 0 || k >= N_CLAIM_JOBS)
                bad++;
            else
                seen[k]++;
        }
    int once = 0;
    for (int i = 0; i < N_CLAIM_JOBS; i++)
        once += seen[i] == 1;
    CHECK(c[0].errors == 0 && c[1].errors == 0 && bad == 0, "claim errors %d %d, bad ids %d",
          c[0].errors, c[1].errors, bad);
    CHECK(once == N_CLAIM_JOBS && c[0].n + c[1].n == N_CLAIM_JOBS, "every job claimed exactly once: %d (%d + %d)",
          once, c[0].n, c[1].n);
    for (int t = 0; t < 2; t++) {
        int ordered = 1;
        for (int i = 1; i < c[t].n; i++)
            ordered &= c[t].ids[i] > c[t].ids[i - 1];
        CHECK(ordered, "thread %d claimed in id order", t);
    }
    store_job j;
    CHECK(store_job_claim(st, &j) == STORE_NOTFOUND, "empty queue: NOTFOUND");
    store_close(st);
}

/* ---- the state machine ---- */

static void test_progress(store *st)
{
    int64_t id = add_job(st, 0);
    CHECK(store_job_progress(st, id, 5, 100.0, 3.0) == STORE_CONFLICT, "progress on a queued job");
    claim_expect(st, id);
    CHECK(store_job_progress(st, id, 7, 1234.5, 42.0) == STORE_OK, "progress: %s", store_errmsg(st));
    store_job j;
    store_job_get(st, id, &j);
    CHECK(j.step == 7 && j.samples_per_s == 1234.5 && j.eta_s == 42.0 && j.attempts == 1 && j.started_at[0],
          "progress stored: %d %g %g", j.step, j.samples_per_s, j.eta_s);
    store_job_clear(&j);
    CHECK(store_job_progress(st, id, 8, NAN, -1) == STORE_OK, "progress with unknowns");
    store_job_get(st, id, &j);
    CHECK(j.step == 8 && j.samples_per_s == 0 && j.eta_s < 0, "unknowns read back: %g %g", j.samples_per_s, j.eta_s);
    store_job_clear(&j);
    CHECK(store_job_progress(st, 999, 1, 1, 1) == STORE_NOTFOUND, "progress on unknown job");
    CHECK(store_job_finish(st, id, STORE_JOB_FAILED, "boom") == STORE_OK, "fail");
}

static void test_cancel(store *st)
{
    int64_t q = add_job(st, 0), r = add_job(st, 0);
    int flag = -1;
    CHECK(store_job_request_cancel(st, q) == STORE_OK && state_of(st, q) == STORE_JOB_CANCELLED, "queued -> cancelled");
    store_job j;
    store_job_get(st, q, &j);
    CHECK(j.finished_at[0] && j.started_at[0] == 0, "cancelled job has finished_at");
    store_job_clear(&j);
    CHECK(store_job_request_cancel(st, q) == STORE_CONFLICT, "cancel a cancelled job: CONFLICT");
    claim_expect(st, r);
    CHECK(store_job_cancel_requested(st, r, &flag) == STORE_OK && flag == 0, "no cancel yet");
    CHECK(store_job_request_cancel(st, r) == STORE_OK && state_of(st, r) == STORE_JOB_RUNNING, "running stays running");
    CHECK(store_job_cancel_requested(st, r, &flag) == STORE_OK && flag == 1, "cancel flag set");
    CHECK(store_job_request_cancel(st, r) == STORE_OK, "cancelling twice is fine");
    CHECK(store_job_finish(st, r, STORE_JOB_CANCELLED, NULL) == STORE_OK && state_of(st, r) == STORE_JOB_CANCELLED,
          "worker ends it cancelled");
    CHECK(store_job_request_cancel(st, r) == STORE_CONFLICT, "terminal: CONFLICT");
    CHECK(store_job_request_cancel(st, 999) == STORE_NOTFOUND, "unknown: NOTFOUND");
    CHECK(store_job_cancel_requested(st, 999, &flag) == STORE_NOTFOUND, "flag of unknown: NOTFOUND");

    int64_t s = add_job(st, 0);
    claim_expect(st, s);
    store_job_request_cancel(st, s);
    CHECK(store_job_requeue(st, s) == STORE_OK && state_of(st, s) == STORE_JOB_CANCELLED,
          "requeueing a job whose cancel was requested cancels it");
}

static void test_finish(store *st)
{
    int64_t id = add_job(st, 0);
    CHECK(store_job_finish(st, id, STORE_JOB_FAILED, "x") == STORE_CONFLICT, "finish a queued job: CONFLICT");
    CHECK(store_job_succeed(st, id, "{}") == STORE_CONFLICT, "succeed a queued job: CONFLICT");
    CHECK(strstr(store_errmsg(st), "queued") != NULL, "message names the state: %s", store_errmsg(st));
    claim_expect(st, id);
    CHECK(store_job_finish(st, id, STORE_JOB_SUCCEEDED, NULL) == STORE_ERROR, "finish only to failed/cancelled");
    CHECK(store_job_finish(st, id, STORE_JOB_FAILED, "out of memory: lower batch_size") == STORE_OK, "fail it");
    store_job j;
    store_job_get(st, id, &j);
    CHECK(j.state == STORE_JOB_FAILED && j.error && !strcmp(j.error, "out of memory: lower batch_size") &&
          j.finished_at[0] && j.result_json == NULL, "failed job fields");
    store_job_clear(&j);
    CHECK(store_job_succeed(st, id, "{}") == STORE_CONFLICT, "succeed after fail: CONFLICT");
    CHECK(store_job_finish(st, 999, STORE_JOB_FAILED, "x") == STORE_NOTFOUND, "finish unknown: NOTFOUND");

    int64_t ok = add_job(st, 0);
    claim_expect(st, ok);
    CHECK(store_job_succeed(st, ok, "{\"analysis\":4}") == STORE_OK, "succeed");
    store_job_get(st, ok, &j);
    CHECK(j.state == STORE_JOB_SUCCEEDED && j.result_json && !strcmp(j.result_json, "{\"analysis\":4}") && !j.error,
          "succeeded job fields");
    store_job_clear(&j);
}

static void test_succeed_with_sae(store *st)
{
    int64_t ds = add_dataset(st, "sae-data"), id = add_job(st, ds);
    store_sae in = { .dataset_id = ds, .config_json = "{\"arch\":\"relu\"}", .metrics_json = "{\"fve\":0.9}",
                     .dir = "/data/jobs/1/sae", .n_latents = 64, .dim = 8, .group_size = 2 };
    int64_t sae_id = 0;
    CHECK(store_job_succeed_with_sae(st, id, &in, &sae_id) == STORE_CONFLICT, "queued job: CONFLICT");
    store_sae *items;
    int cnt;
    CHECK(store_sae_list(st, 0, 0, &items, &cnt) == STORE_OK && cnt == 0, "no SAE row after the conflict");
    store_sae_list_free(items, cnt);
    claim_expect(st, id);
    store_sae bad = in;
    bad.dataset_id = 999;
    CHECK(store_job_succeed_with_sae(st, id, &bad, &sae_id) != STORE_OK && state_of(st, id) == STORE_JOB_RUNNING,
          "a failed SAE insert leaves the job running");
    CHECK(store_job_succeed_with_sae(st, id, &in, &sae_id) == STORE_OK && sae_id > 0, "succeed with SAE: %s",
          store_errmsg(st));
    store_job j;
    store_job_get(st, id, &j);
    json_t *res = j.result_json ? json_loads(j.result_json, 0, NULL) : NULL;
    CHECK(j.state == STORE_JOB_SUCCEEDED && res && json_integer_value(json_object_get(res, "sae")) == sae_id,
          "result names the SAE: %s", j.result_json ? j.result_json : "(null)");
    json_decref(res);
    store_job_clear(&j);
    CHECK(store_sae_list(st, 0, 10, &items, &cnt) == STORE_OK && cnt == 1 && items[0].id == sae_id &&
          items[0].job_id == id && items[0].dataset_id == ds && items[0].n_latents == 64 && items[0].dim == 8 &&
          items[0].group_size == 2 && !strcmp(items[0].dir, "/data/jobs/1/sae") &&
          !strcmp(items[0].config_json, "{\"arch\":\"relu\"}") && !strcmp(items[0].metrics_json, "{\"fve\":0.9}"),
          "the SAE is listable");
    store_sae_list_free(items, cnt);
    store_sae a;
    CHECK(store_sae_get(st, sae_id, &a) == STORE_OK && a.id == sae_id && a.created_at[0], "get SAE");
    store_sae_clear(&a);
    CHECK(store_sae_get(st, 999, &a) == STORE_NOTFOUND, "unknown SAE");
    CHECK(store_sae_list(st, sae_id, 10, &items, &cnt) == STORE_OK && cnt == 0, "SAE page after the last");
    store_sae_list_free(items, cnt);
    CHECK(store_job_succeed_with_sae(st, id, &in, &sae_id) == STORE_CONFLICT, "second success: CONFLICT");
}

static void test_states(void)
{
    store *st = open_db("states.db");
    test_progress(st);
    test_cancel(st);
    test_finish(st);
    test_succeed_with_sae(st);
    store_close(st);
}

/* ---- crash requeue ---- */

static void test_requeue(void)
{
    store *st = open_db("crash.db");
    int64_t id = add_job(st, 0), other = add_job(st, 0);
    claim_expect(st, id);
    store_job_progress(st, id, 40, 10.0, 6.0);
    store_job first;
    store_job_get(st, id, &first);
    store_close(st); /* "crash": never finished */

    st = open_db("crash.db");
    int n = -1;
    CHECK(store_requeue_running(st, &n) == STORE_OK && n == 1, "requeued %d", n);
    store_job j;
    store_job_get(st, id, &j);
    CHECK(j.state == STORE_JOB_QUEUED && j.step == 40 && j.eta_s < 0, "back in the queue at step %d", j.step);
    store_job_clear(&j);
    claim_expect(st, id);
    store_job_get(st, id, &j);
    CHECK(j.attempts == 2 && !strcmp(j.started_at, first.started_at), "attempts %d, first started_at kept",
          j.attempts);
    store_job_clear(&j);
    store_job_clear(&first);
    CHECK(store_job_requeue(st, id) == STORE_OK && state_of(st, id) == STORE_JOB_QUEUED, "requeue one job");
    CHECK(store_job_requeue(st, id) == STORE_CONFLICT, "requeue a queued job: CONFLICT");
    CHECK(store_job_requeue(st, 999) == STORE_NOTFOUND, "requeue unknown: NOTFOUND");
    CHECK(store_requeue_running(st, &n) == STORE_OK && n == 0, "nothing running: %d", n);
    claim_expect(st, id);
    claim_expect(st, other);
    store_close(st);
}

/* ---- metrics ---- */

static store_metric point(int step, double loss)
{
    return (store_metric){ .step = step, .loss = loss, .mse = loss / 2, .fve = 0.5, .l0 = 3, .l0_groups = 2,
                           .dead_frac = 0.1, .lr = 1e-3, .samples_per_s = 1000 };
}

static void test_metrics(void)
{
    store *st = open_db("metrics.db");
    int64_t id = add_job(st, 0);
    for (int s = 1; s <= 3; s++) {
        store_metric m = point(s * 100, 1.0 / s);
        CHECK(store_metric_append(st, id, &m) == STORE_OK, "append %d: %s", s, store_errmsg(st));
    }
    store_metric *pts;
    int n;
    CHECK(store_metric_since(st, id, 100, &pts, &n) == STORE_OK && n == 2 && pts[0].step == 200 &&
          pts[1].step == 300 && fabs(pts[1].loss - 1.0 / 3) < 1e-12 && pts[0].lr == 1e-3, "since 100: %d", n);
    free(pts);
    CHECK(store_metric_since(st, id, -1, &pts, &n) == STORE_OK && n == 3, "since -1: all");
    free(pts);

    store_metric m = point(200, 9.0);
    m.fve = NAN;
    m.l0 = INFINITY;
    CHECK(store_metric_append(st, id, &m) == STORE_OK, "replace step 200");
    CHECK(store_metric_since(st, id, 0, &pts, &n) == STORE_OK && n == 3 && pts[1].loss == 9.0 &&
          isnan(pts[1].fve) && isnan(pts[1].l0) && pts[1].mse == 4.5, "step 200 replaced, non-finite read as NAN");
    free(pts);

    store_job j;
    store_job_get(st, id, &j);
    json_t *latest = j.latest_json ? json_loads(j.latest_json, 0, NULL) : NULL;
    CHECK(latest && json_integer_value(json_object_get(latest, "step")) == 200 &&
          json_real_value(json_object_get(latest, "loss")) == 9.0 && json_is_null(json_object_get(latest, "fve")) &&
          json_is_null(json_object_get(latest, "l0")) && json_object_size(latest) == 9,
          "latest_json: %s", j.latest_json ? j.latest_json : "(null)");
    json_decref(latest);
    store_job_clear(&j);
    CHECK(store_metric_append(st, 999, &m) == STORE_NOTFOUND, "append to unknown job");
    CHECK(store_metric_since(st, 999, 0, &pts, &n) == STORE_NOTFOUND, "since of unknown job");
    store_close(st);
}

/* ---- delete rules ---- */

static void test_deletes(void)
{
    store *st = open_db("delete.db");
    int64_t ds = add_dataset(st, "in-use");
    int64_t q = add_job(st, ds);
    CHECK(store_dataset_delete(st, ds) == STORE_CONFLICT, "dataset with a queued job: CONFLICT");
    CHECK(store_job_delete(st, q) == STORE_CONFLICT, "queued job: CONFLICT");
    claim_expect(st, q);
    CHECK(store_dataset_delete(st, ds) == STORE_CONFLICT, "dataset with a running job: CONFLICT (%s)",
          store_errmsg(st));
    CHECK(store_job_delete(st, q) == STORE_CONFLICT, "running job: CONFLICT");
    store_metric m = point(1, 1.0);
    store_metric_append(st, q, &m);
    store_job_finish(st, q, STORE_JOB_FAILED, "x");
    CHECK(store_dataset_delete(st, ds) == STORE_OK, "dataset of finished jobs only: deleted");
    store_job j;
    CHECK(store_job_get(st, q, &j) == STORE_OK && j.dataset_id == 0, "the finished job keeps, dataset_id 0");
    store_job_clear(&j);
    CHECK(store_job_delete(st, q) == STORE_OK, "terminal job deleted");
    store_metric *pts;
    int n;
    CHECK(store_job_get(st, q, &j) == STORE_NOTFOUND && store_metric_since(st, q, -1, &pts, &n) == STORE_NOTFOUND,
          "job and metrics gone");
    CHECK(store_job_delete(st, q) == STORE_NOTFOUND, "delete twice: NOTFOUND");
    CHECK(add_job(st, 0) == q + 1, "job ids are never reused");
    store_close(st);
}

/* ---- files ---- */

static int count_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += strstr(e->d_name, ".tmp.") != NULL;
    if (d)
        closedir(d);
    return n;
}

static void test_files_atomic(const char *dir)
{
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/a.txt", dir);
    files_part p1[2] = { { "hello ", 6 }, { "world", 5 } };
    CHECK(files_write_atomic(path, p1, 2, err, sizeof err) == 0, "write: %s", err);
    void *data;
    size_t len;
    CHECK(files_read_all(path, &data, &len, err, sizeof err) == 0 && len == 11 && !memcmp(data, "hello world", 11) &&
          ((char *)data)[11] == 0, "read back");
    free(data);
    files_part p2[1] = { { "new", 3 } };
    CHECK(files_write_atomic(path, p2, 1, err, sizeof err) == 0, "replace: %s", err);
    CHECK(files_read_all(path, &data, &len, err, sizeof err) == 0 && len == 3 && !memcmp(data, "new", 3),
          "content replaced");
    free(data);
    CHECK(count_temp_files(dir) == 0, "no temp file left");
    snprintf(path, sizeof path, "%s/missing-dir/x", dir);
    CHECK(files_write_atomic(path, p2, 1, err, sizeof err) == -1 && strstr(err, "missing-dir"),
          "write into a missing directory: %s", err);
    CHECK(files_read_all(path, &data, &len, err, sizeof err) == 1, "missing file: 1");
    snprintf(path, sizeof path, "%s/empty", dir);
    CHECK(files_write_atomic(path, NULL, 0, err, sizeof err) == 0 &&
          files_read_all(path, &data, &len, err, sizeof err) == 0 && len == 0, "empty file");
    free(data);
}

static void test_files_dirs(const char *dir)
{
    char path[1024], err[512];
    struct stat sb;
    snprintf(path, sizeof path, "%s/x//y/z/", dir);
    CHECK(files_mkdirs(path, err, sizeof err) == 0 && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode),
          "mkdirs: %s", err);
    CHECK(files_mkdirs(path, err, sizeof err) == 0, "mkdirs again: %s", err);
    snprintf(path, sizeof path, "%s/x/y/z/f", dir);
    files_part p[1] = { { "f", 1 } };
    files_write_atomic(path, p, 1, err, sizeof err);
    snprintf(path, sizeof path, "%s/x/y/z/f/g", dir);
    CHECK(files_mkdirs(path, err, sizeof err) == -1, "mkdirs through a file fails: %s", err);
    snprintf(path, sizeof path, "%s/x", dir);
    files_remove_tree(path);
    CHECK(stat(path, &sb) != 0, "tree removed");
    files_remove_tree(path); /* absent: no-op */
}

static void test_files_npy(const char *dir)
{
    char path[1024], err[512], cmd[2048];
    float a[12]; /* (3, 4) */
    for (int i = 0; i < 12; i++)
        a[i] = (float)i * 0.5f - 1.0f;
    long long shape[2] = { 3, 4 };
    snprintf(path, sizeof path, "%s/a.npy", dir);
    CHECK(files_write_npy_f32(path, a, shape, 2, err, sizeof err) == 0, "npy write: %s", err);
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import numpy as np, sys; a = np.load(sys.argv[1]); "
             "sys.exit(0 if a.dtype == np.float32 and a.shape == (3, 4) and "
             "(a == np.arange(12, dtype=np.float32).reshape(3, 4) * 0.5 - 1).all() else 1)\" '%s'", path);
    CHECK(system(cmd) == 0, "numpy reads the (3, 4) array back");
    long long shape1[1] = { 0 };
    snprintf(path, sizeof path, "%s/empty.npy", dir);
    CHECK(files_write_npy_f32(path, NULL, shape1, 1, err, sizeof err) == 0, "empty npy: %s", err);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 -c \"import numpy as np, sys; "
             "sys.exit(0 if np.load(sys.argv[1]).shape == (0,) else 1)\" '%s'", path);
    CHECK(system(cmd) == 0, "numpy reads the empty array back");
    CHECK(files_write_npy_f32(path, a, shape, 9, err, sizeof err) == -1, "too many dimensions refused");
    CHECK(count_temp_files(dir) == 0, "no temp file left");
}

static void test_files(void)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s/files", tmpdir);
    char err[512];
    CHECK(files_mkdirs(dir, err, sizeof err) == 0, "mkdirs: %s", err);
    test_files_atomic(dir);
    test_files_dirs(dir);
    test_files_npy(dir);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_store.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    char now[32];
    store_now(now, sizeof now);
    CHECK(strlen(now) == 20 && now[10] == 'T' && now[19] == 'Z', "store_now: %s", now);
    test_migrations();
    test_datasets();
    test_jobs();
    test_claim_concurrent();
    test_states();
    test_requeue();
    test_metrics();
    test_deletes();
    test_files();
    files_remove_tree(tmpdir);
    return check_report();
}
