/* store — the handle: opening, pragmas, schema migrations, and the helpers
 * the per-table files (store_datasets.c, store_jobs.c, store_jobstate.c,
 * store_metrics.c, store_saes.c, store_analysis.c) share.
 *
 * Migrations are an ordered array of SQL scripts; migration i takes the
 * schema from user_version i to i + 1. Each runs in its own BEGIN IMMEDIATE
 * transaction that first reads user_version, so two processes or threads
 * opening a fresh file at once serialise on the write lock and the second
 * finds the work done. New schema changes are appended, never edited.
 *
 * Times are whole seconds ("2026-11-25T16:26:32Z"): ids, not times, order
 * the jobs, so finer precision would buy nothing. */
#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "store_int.h"

#define STORE_BUSY_MS 5000

static const char *const store_migrations[] = {
    /* 1: the initial schema. Ids are AUTOINCREMENT so they are never reused.
     * jobs.state is text; eta_s NULL means unknown; times NULL mean "not yet". */
    "CREATE TABLE datasets ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  dim INTEGER NOT NULL,"
    "  n_rows INTEGER NOT NULL,"                  /* -1: endless stream */
    "  params_json TEXT NOT NULL DEFAULT '{}',"
    "  path TEXT,"
    "  has_labels INTEGER NOT NULL DEFAULT 0,"
    "  created_at TEXT NOT NULL);"
    "CREATE TABLE saes ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  job_id INTEGER REFERENCES jobs(id) ON DELETE SET NULL,"
    "  dataset_id INTEGER REFERENCES datasets(id) ON DELETE SET NULL,"
    "  config_json TEXT NOT NULL DEFAULT '{}',"
    "  metrics_json TEXT NOT NULL DEFAULT '{}',"
    "  dir TEXT,"
    "  n_latents INTEGER NOT NULL,"
    "  dim INTEGER NOT NULL,"
    "  group_size INTEGER NOT NULL,"
    "  created_at TEXT NOT NULL);"
    "CREATE TABLE jobs ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  type TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN"
    "    ('queued','running','succeeded','failed','cancelled')),"
    "  created_at TEXT NOT NULL,"
    "  started_at TEXT,"
    "  finished_at TEXT,"
    "  spec_json TEXT NOT NULL DEFAULT '{}',"
    "  result_json TEXT,"
    "  latest_json TEXT,"
    "  error TEXT,"
    "  dataset_id INTEGER REFERENCES datasets(id) ON DELETE SET NULL,"
    "  sae_id INTEGER REFERENCES saes(id) ON DELETE SET NULL,"
    "  step INTEGER NOT NULL DEFAULT 0,"
    "  total_steps INTEGER NOT NULL DEFAULT 0,"
    "  samples_per_s REAL NOT NULL DEFAULT 0,"
    "  eta_s REAL,"
    "  cancel_requested INTEGER NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX jobs_state ON jobs(state, id);"
    "CREATE INDEX jobs_dataset ON jobs(dataset_id);"
    "CREATE INDEX jobs_sae ON jobs(sae_id);"
    "CREATE INDEX saes_job ON saes(job_id);"
    "CREATE INDEX saes_dataset ON saes(dataset_id);"
    "CREATE TABLE metrics ("
    "  job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  step INTEGER NOT NULL,"
    "  loss REAL, mse REAL, fve REAL, l0 REAL, l0_groups REAL,"
    "  dead_frac REAL, lr REAL, samples_per_s REAL,"
    "  PRIMARY KEY (job_id, step)) WITHOUT ROWID;",
    /* 2: analysis results (store_analysis.c). One sae_analysis row per SAE
     * (the latest analyze job) with its latents and groups; the (sae_id,
     * density/jaccard, grp) indexes make the sorted, paged group lists an
     * index walk. `analyses` holds pca results. */
    "CREATE TABLE sae_analysis ("
    "  sae_id INTEGER PRIMARY KEY REFERENCES saes(id) ON DELETE CASCADE,"
    "  job_id INTEGER REFERENCES jobs(id) ON DELETE SET NULL,"
    "  dataset_id INTEGER REFERENCES datasets(id) ON DELETE SET NULL,"
    "  n_samples INTEGER NOT NULL,"
    "  group_size INTEGER NOT NULL,"
    "  n_groups INTEGER NOT NULL,"
    "  cluster_json TEXT,"
    "  recovery_json TEXT,"
    "  summary_json TEXT NOT NULL DEFAULT '{}',"
    "  dir TEXT,"
    "  created_at TEXT NOT NULL);"
    "CREATE TABLE sae_latents ("
    "  sae_id INTEGER NOT NULL REFERENCES saes(id) ON DELETE CASCADE,"
    "  latent INTEGER NOT NULL,"
    "  grp INTEGER NOT NULL,"
    "  density REAL, mean_act REAL, max_act REAL,"
    "  hist_json TEXT NOT NULL DEFAULT '{}',"
    "  cos_json TEXT NOT NULL DEFAULT '[]',"
    "  jaccard_json TEXT NOT NULL DEFAULT '[]',"
    "  PRIMARY KEY (sae_id, latent)) WITHOUT ROWID;"
    "CREATE INDEX sae_latents_density ON sae_latents(sae_id, density DESC, latent);"
    "CREATE TABLE sae_groups ("
    "  sae_id INTEGER NOT NULL REFERENCES saes(id) ON DELETE CASCADE,"
    "  grp INTEGER NOT NULL,"
    "  members_json TEXT NOT NULL DEFAULT '[]',"
    "  density REAL, jaccard REAL, max_cos REAL,"
    "  circle INTEGER,"                           /* NULL: not a circles dataset */
    "  plane_fit REAL,"
    "  PRIMARY KEY (sae_id, grp)) WITHOUT ROWID;"
    "CREATE INDEX sae_groups_density ON sae_groups(sae_id, density DESC, grp);"
    "CREATE INDEX sae_groups_jaccard ON sae_groups(sae_id, jaccard DESC, grp);"
    "CREATE TABLE analyses ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  job_id INTEGER REFERENCES jobs(id) ON DELETE SET NULL,"
    "  sae_id INTEGER REFERENCES saes(id) ON DELETE SET NULL,"
    "  dataset_id INTEGER REFERENCES datasets(id) ON DELETE SET NULL,"
    "  n_rows INTEGER NOT NULL,"
    "  n_components INTEGER NOT NULL,"
    "  latents_json TEXT NOT NULL DEFAULT '[]',"
    "  variance_json TEXT NOT NULL DEFAULT '[]',"
    "  ratio_json TEXT NOT NULL DEFAULT '[]',"
    "  rows_json TEXT NOT NULL DEFAULT '[]',"
    "  labels_json TEXT,"                         /* NULL: the dataset has no labels */
    "  dir TEXT,"                                 /* components.npy, points.npy, mean.npy */
    "  created_at TEXT NOT NULL);"
    "CREATE INDEX analyses_sae ON analyses(sae_id);",
};
#define STORE_N_MIGRATIONS ((int)(sizeof store_migrations / sizeof store_migrations[0]))

/* ---- errors ---- */

int store_setf(store *st, int rc, const char *fmt, ...)
{
    assert(st);
    assert(fmt);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->err, sizeof st->err, fmt, ap);
    va_end(ap);
    st->sqlite_rc = 0;
    return rc;
}

/* Records "what: <sqlite message>" and returns STORE_ERROR. */
static int store_fail(store *st, const char *what)
{
    assert(st && st->db);
    assert(what);
    int code = sqlite3_extended_errcode(st->db);
    store_setf(st, STORE_ERROR, "%s: %s", what, sqlite3_errmsg(st->db));
    st->sqlite_rc = code;
    return STORE_ERROR;
}

const char *store_errmsg(store *st)
{
    assert(st);
    return st->err[0] ? st->err : "no error";
}

/* Grows a malloc'd array of elsize-byte items so that it holds n + 1. 0 or -1. */
static int store_grow(void **items, int *cap, int n, size_t elsize)
{
    assert(items && cap);
    assert(n >= 0 && n <= *cap);
    assert(elsize > 0);
    if (n < *cap)
        return 0;
    int ncap = *cap ? *cap * 2 : 16;
    void *p = realloc(*items, (size_t)ncap * elsize);
    if (!p)
        return -1;
    *items = p;
    *cap = ncap;
    return 0;
}

/* ---- statements ---- */

sqlite3_stmt *store_stmt(store *st, const char *sql)
{
    assert(st && st->db);
    assert(sql);
    assert(st->n_cache >= 0 && st->n_cache <= st->cap_cache);
    for (int i = 0; i < st->n_cache; i++)
        if (st->cache[i].sql == sql) {
            assert(!sqlite3_stmt_busy(st->cache[i].stmt)); /* its last user ended it (store_stmt_end) */
            return st->cache[i].stmt;
        }
    if (store_grow((void **)&st->cache, &st->cap_cache, st->n_cache, sizeof *st->cache) != 0) {
        store_setf(st, STORE_ERROR, "out of memory preparing a statement");
        return NULL;
    }
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
        store_fail(st, "preparing a statement");
        return NULL;
    }
    st->cache[st->n_cache++] = (store_cached){ sql, s };
    return s;
}

void store_stmt_end(sqlite3_stmt *s)
{
    assert(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

int store_step(store *st, sqlite3_stmt *s)
{
    assert(st);
    assert(s);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    store_fail(st, "database");
    store_stmt_end(s);
    return STORE_ERROR;
}

int store_run(store *st, sqlite3_stmt *s)
{
    assert(st);
    assert(s);
    int rc;
    while ((rc = store_step(st, s)) == 1)
        ;
    if (rc == STORE_ERROR)
        return STORE_ERROR;
    store_stmt_end(s);
    return STORE_OK;
}

/* ---- transactions ---- */

static int store_exec(store *st, const char *sql, const char *what)
{
    assert(st && st->db);
    assert(sql && what);
    if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return store_fail(st, what);
    return STORE_OK;
}

int store_tx_begin(store *st)
{
    assert(st && st->db);
    assert(sqlite3_get_autocommit(st->db)); /* not already inside a transaction */
    return store_exec(st, "BEGIN IMMEDIATE", "starting a write transaction (is another saed using this database?)");
}

int store_tx_end(store *st, int rc)
{
    assert(st && st->db);
    assert(rc == STORE_OK || rc == STORE_NOTFOUND || rc == STORE_CONFLICT || rc == STORE_ERROR);
    assert(rc != STORE_OK || !sqlite3_get_autocommit(st->db)); /* success only inside store_tx_begin's transaction */
    if (rc == STORE_OK) {
        if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
            return STORE_OK;
        rc = store_fail(st, "committing");
    }
    if (!sqlite3_get_autocommit(st->db))
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* ---- binding and reading ---- */

void store_bind_text(sqlite3_stmt *s, int i, const char *v)
{
    assert(s && i >= 1 && i <= sqlite3_bind_parameter_count(s));
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s, i);
}

void store_bind_real(sqlite3_stmt *s, int i, double v)
{
    assert(s && i >= 1 && i <= sqlite3_bind_parameter_count(s));
    if (isfinite(v))
        sqlite3_bind_double(s, i, v);
    else
        sqlite3_bind_null(s, i);
}

void store_bind_id(sqlite3_stmt *s, int i, int64_t id)
{
    assert(s && i >= 1 && i <= sqlite3_bind_parameter_count(s));
    assert(id >= 0);
    if (id != 0)
        sqlite3_bind_int64(s, i, id);
    else
        sqlite3_bind_null(s, i);
}

void store_bind_limit(sqlite3_stmt *s, int i, int limit)
{
    assert(s && i >= 1 && i <= sqlite3_bind_parameter_count(s));
    sqlite3_bind_int(s, i, limit > 0 ? limit : -1);
}

void store_col_copy(sqlite3_stmt *s, int i, char *buf, size_t n)
{
    assert(s && i >= 0 && i < sqlite3_column_count(s));
    assert(buf && n > 0);
    const unsigned char *v = sqlite3_column_text(s, i);
    snprintf(buf, n, "%s", v ? (const char *)v : "");
}

int store_col_dup(sqlite3_stmt *s, int i, char **out)
{
    assert(s && i >= 0 && i < sqlite3_column_count(s));
    assert(out);
    const unsigned char *v = sqlite3_column_text(s, i);
    *out = NULL;
    if (!v)
        return 0;
    *out = strdup((const char *)v);
    return *out ? 0 : -1;
}

double store_col_real(sqlite3_stmt *s, int i, double null_value)
{
    assert(s && i >= 0 && i < sqlite3_column_count(s));
    if (sqlite3_column_type(s, i) == SQLITE_NULL)
        return null_value;
    return sqlite3_column_double(s, i);
}

int store_read_one(store *st, sqlite3_stmt *s, store_reader read, void *out, const char *what, int64_t id)
{
    assert(st && s);
    assert(read && out && what);
    int rc = store_step(st, s);
    if (rc == 1)
        rc = read(s, out) == 0 ? STORE_OK : store_setf(st, STORE_ERROR, "out of memory reading %s %lld", what,
                                                        (long long)id);
    else if (rc == 0)
        rc = store_setf(st, STORE_NOTFOUND, "%s %lld does not exist", what, (long long)id);
    store_stmt_end(s);
    return rc;
}

int store_read_all(store *st, sqlite3_stmt *s, store_reader read, store_clearer clear, size_t elsize,
                   void **out, int *n)
{
    assert(st && s);
    assert(read && clear && elsize > 0);
    assert(out && n);
    int rc, cap = 0;
    *out = NULL;
    *n = 0;
    while ((rc = store_step(st, s)) == 1) {
        if (store_grow(out, &cap, *n, elsize) != 0 || read(s, (char *)*out + (size_t)*n * elsize) != 0) {
            rc = store_setf(st, STORE_ERROR, "out of memory reading a list");
            break;
        }
        (*n)++;
    }
    store_stmt_end(s);
    if (rc == 0)
        return STORE_OK;
    for (int i = 0; i < *n; i++)
        clear((char *)*out + (size_t)i * elsize);
    free(*out);
    *out = NULL;
    *n = 0;
    return STORE_ERROR;
}

int store_get_id(store *st, const char *sql, int64_t id, store_reader read, void *out, size_t elsize,
                 const char *what)
{
    assert(st && sql);
    assert(read && out && elsize > 0 && what);
    memset(out, 0, elsize);
    sqlite3_stmt *s = store_stmt(st, sql);
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, id);
    return store_read_one(st, s, read, out, what, id);
}

int store_list_after(store *st, const char *sql, int64_t after, int limit, store_reader read, store_clearer clear,
                     size_t elsize, void **out, int *n)
{
    assert(st && sql);
    assert(read && clear && elsize > 0);
    assert(out && n);
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s = store_stmt(st, sql);
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, after);
    store_bind_limit(s, 2, limit);
    return store_read_all(st, s, read, clear, elsize, out, n);
}

/* ---- opening and migrating ---- */

static int store_user_version(store *st, int *v)
{
    assert(st && st->db);
    assert(v);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
        return store_fail(st, "reading the schema version");
    int rc = sqlite3_step(s);
    *v = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : 0;
    sqlite3_finalize(s);
    return rc == SQLITE_ROW ? STORE_OK : store_fail(st, "reading the schema version");
}

/* One migration step under the write lock; *done = 1 once the schema is current. */
static int store_migrate_step(store *st, int *done)
{
    assert(st);
    assert(done);
    int v = 0, rc = store_tx_begin(st);
    if (rc != STORE_OK)
        return rc;
    rc = store_user_version(st, &v);
    if (rc == STORE_OK && v > STORE_N_MIGRATIONS)
        rc = store_setf(st, STORE_ERROR, "the database has schema version %d but this saed knows only %d; "
                        "run a newer saed", v, STORE_N_MIGRATIONS);
    else if (rc == STORE_OK && v < 0) /* the file's own word: no saed writes a negative version */
        rc = store_setf(st, STORE_ERROR, "the database has schema version %d, which no saed writes; "
                        "it is not saed's database, or it is damaged: point --data-dir elsewhere", v);
    assert(rc != STORE_OK || (v >= 0 && v <= STORE_N_MIGRATIONS));
    *done = v >= STORE_N_MIGRATIONS;
    if (rc == STORE_OK && !*done) {
        char bump[64];
        snprintf(bump, sizeof bump, "PRAGMA user_version = %d", v + 1); /* our own constant, not a value */
        rc = store_exec(st, store_migrations[v], "migrating the schema");
        if (rc == STORE_OK)
            rc = store_exec(st, bump, "migrating the schema");
    }
    return store_tx_end(st, rc);
}

static int store_migrate(store *st)
{
    assert(st);
    int done = 0, rc = STORE_OK;
    while (rc == STORE_OK && !done)
        rc = store_migrate_step(st, &done);
    return rc;
}

/* Switches to WAL. Changing the journal mode needs an exclusive lock, which a
 * concurrent opener may hold for a moment, so SQLITE_BUSY is retried. */
static int store_enable_wal(store *st)
{
    assert(st && st->db);
    for (int tries = 0;; tries++) {
        sqlite3_stmt *s = NULL;
        int rc = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode=WAL", -1, &s, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(s);
        const unsigned char *mode = rc == SQLITE_ROW ? sqlite3_column_text(s, 0) : NULL;
        int ok = mode && (!strcmp((const char *)mode, "wal") || !strcmp((const char *)mode, "memory"));
        sqlite3_finalize(s);
        if (ok)
            return STORE_OK;
        if (rc == SQLITE_ROW)
            return store_setf(st, STORE_ERROR, "cannot switch the database to WAL mode; "
                              "put it on a local filesystem");
        if ((rc & 0xff) != SQLITE_BUSY || tries >= STORE_BUSY_MS / 10)
            return store_fail(st, "switching to WAL mode");
        sqlite3_sleep(10);
    }
}

static int store_configure(store *st)
{
    assert(st && st->db);
    int rc = sqlite3_busy_timeout(st->db, STORE_BUSY_MS) == SQLITE_OK ? STORE_OK
             : store_fail(st, "setting the busy timeout");
    if (rc == STORE_OK)
        rc = store_enable_wal(st);
    if (rc == STORE_OK)
        rc = store_exec(st, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON", "setting pragmas");
    return rc;
}

store *store_open(const char *path, char *err, size_t errlen)
{
    assert(path);
    assert(err && errlen > 0);
    store *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory opening %s", path);
        return NULL;
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path, &st->db, flags, NULL) == SQLITE_OK ? STORE_OK
             : store_fail(st, "opening the database");
    if (rc == STORE_OK)
        rc = store_configure(st);
    if (rc == STORE_OK)
        rc = store_migrate(st);
    if (rc != STORE_OK) {
        snprintf(err, errlen, "%s: %s (check that the data directory exists and is writable)", path, st->err);
        store_close(st);
        return NULL;
    }
    return st;
}

void store_close(store *st)
{
    if (!st)
        return;
    for (int i = 0; i < st->n_cache; i++)
        sqlite3_finalize(st->cache[i].stmt);
    free(st->cache);
    sqlite3_close_v2(st->db);
    free(st);
}

int store_schema_version(store *st)
{
    assert(st);
    int v = -1;
    return store_user_version(st, &v) == STORE_OK ? v : -1;
}

/* ---- job states and time ---- */

static const char *const store_state_names[STORE_JOB_N_STATES] = {
    "queued", "running", "succeeded", "failed", "cancelled",
};

const char *store_job_state_name(store_job_state s)
{
    assert((unsigned)s < STORE_JOB_N_STATES);
    return (unsigned)s < STORE_JOB_N_STATES ? store_state_names[s] : "invalid";
}

int store_job_state_parse(const char *name, store_job_state *out)
{
    assert(out);
    for (int i = 0; name && i < STORE_JOB_N_STATES; i++)
        if (!strcmp(name, store_state_names[i])) {
            *out = (store_job_state)i;
            return 0;
        }
    return -1;
}

int store_job_state_terminal(store_job_state s)
{
    assert((unsigned)s < STORE_JOB_N_STATES);
    return s == STORE_JOB_SUCCEEDED || s == STORE_JOB_FAILED || s == STORE_JOB_CANCELLED;
}

void store_now(char *buf, size_t n)
{
    assert(buf && n >= sizeof "2026-11-25T16:26:32Z");
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    if (!strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) && n)
        buf[0] = '\0';
}
