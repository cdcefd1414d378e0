/* store_int — what the storage/store_*.c files share and nothing outside
 * storage sees: the handle's layout, the statement cache, the transaction
 * helper and the binding/column helpers.
 *
 * Statements are prepared once per handle and cached by the address of their
 * SQL text (each file keeps its SQL in static arrays, so the address is
 * stable). Every user of store_stmt() must end with store_stmt_end() (or
 * store_run(), which ends it), so that no statement holds a read snapshot
 * open between calls. */
#ifndef SAED_STORE_INT_H
#define SAED_STORE_INT_H
#include <sqlite3.h>
#include "store.h"

typedef struct {
    const char *sql;     /* key: the address of a static SQL string */
    sqlite3_stmt *stmt;
} store_cached;

struct store {
    sqlite3 *db;
    char err[512];        /* the last error message on this handle */
    int sqlite_rc;        /* its extended SQLite code, 0 if it was not SQLite's */
    store_cached *cache;  /* (cap_cache) prepared statements, n_cache used */
    int n_cache, cap_cache;
};

/* Records a message and returns rc (printf-style). */
int store_setf(store *st, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The cached statement for sql, reset and unbound (its last user ended it: asserted);
 * NULL with err set on failure. */
sqlite3_stmt *store_stmt(store *st, const char *sql);
void store_stmt_end(sqlite3_stmt *s);
/* Steps s once: 1 = a row, 0 = done, STORE_ERROR (message recorded, s ended). */
int store_step(store *st, sqlite3_stmt *s);
/* Steps s to completion and ends it: STORE_OK or STORE_ERROR. */
int store_run(store *st, sqlite3_stmt *s);

/* BEGIN IMMEDIATE, never inside a transaction (asserted); store_tx_end commits
 * when rc is STORE_OK (returning STORE_ERROR if the commit fails), else rolls
 * back and returns rc. */
int store_tx_begin(store *st);
int store_tx_end(store *st, int rc);

void store_bind_text(sqlite3_stmt *s, int i, const char *v); /* NULL -> NULL */
void store_bind_real(sqlite3_stmt *s, int i, double v);      /* non-finite -> NULL */
void store_bind_id(sqlite3_stmt *s, int i, int64_t id);      /* 0 -> NULL */
void store_bind_limit(sqlite3_stmt *s, int i, int limit);    /* <= 0 -> no limit */

/* Copies a text column into buf ("" for NULL, truncated to fit). */
void store_col_copy(sqlite3_stmt *s, int i, char *buf, size_t n);
/* A malloc'd copy of a text column into *out (NULL for NULL); -1 if out of memory. */
int store_col_dup(sqlite3_stmt *s, int i, char **out);
/* A real column, or null_value when it is NULL. */
double store_col_real(sqlite3_stmt *s, int i, double null_value);

/* Reads the current row of s into an item (a store_dataset, ...): 0 or -1 (out of memory). */
typedef int (*store_reader)(sqlite3_stmt *s, void *item);
typedef void (*store_clearer)(void *item);
/* Steps s (bound by the caller) and reads its row into out, then ends s:
 * STORE_OK, STORE_NOTFOUND ("<what> <id> does not exist") or STORE_ERROR. */
int store_read_one(store *st, sqlite3_stmt *s, store_reader read, void *out, const char *what, int64_t id);
/* Steps s to the end, reading every row into a malloc'd array of elsize-byte
 * items (*out, *n); on failure frees what it read and leaves *out NULL. */
int store_read_all(store *st, sqlite3_stmt *s, store_reader read, store_clearer clear, size_t elsize,
                   void **out, int *n);

/* The by-id and paged-list queries every table has: store_get_id zeroes
 * out (elsize bytes), binds ?1 = id to sql and reads its one row
 * (store_read_one); store_list_after binds ?1 = after, ?2 = limit
 * (store_bind_limit) and reads every row (store_read_all). */
int store_get_id(store *st, const char *sql, int64_t id, store_reader read, void *out, size_t elsize,
                 const char *what);
int store_list_after(store *st, const char *sql, int64_t after, int limit, store_reader read, store_clearer clear,
                     size_t elsize, void **out, int *n);

/* Jobs: the column list every job query selects (or returns), its reader,
 * and a job's current state (STORE_NOTFOUND with a message if there is none). */
#define STORE_JOB_COLS "id, type, state, created_at, started_at, finished_at, spec_json, result_json," \
    " latest_json, error, dataset_id, sae_id, step, total_steps, samples_per_s, eta_s, cancel_requested, attempts"
int store_job_read(sqlite3_stmt *s, void *item);
int store_job_state_of(store *st, int64_t id, store_job_state *state);

/* Inserts an SAE row made by job_id (0: none, an imported SAE), in the caller's transaction, if any. */
int store_sae_insert(store *st, int64_t job_id, const store_sae *sae, int64_t *id_out);

#endif
