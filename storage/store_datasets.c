/* store_datasets — the datasets table: insert, get, list (id order, after /
 * limit paging), the labels flag, and delete, which is refused while a
 * queued or running job reads the dataset. Deleting one keeps finished jobs
 * and SAEs made from it; their dataset_id becomes NULL (0 when read). The
 * data files are the caller's to remove. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include "store_int.h"

#define DS_COLS "id, name, kind, dim, n_rows, params_json, path, has_labels, created_at"

static const char SQL_DS_INSERT[] =
    "INSERT INTO datasets (name, kind, dim, n_rows, params_json, path, has_labels, created_at)"
    " VALUES (?1, ?2, ?3, ?4, COALESCE(?5, '{}'), ?6, ?7, ?8)";
static const char SQL_DS_GET[] = "SELECT " DS_COLS " FROM datasets WHERE id = ?1";
static const char SQL_DS_LIST[] = "SELECT " DS_COLS " FROM datasets WHERE id > ?1 ORDER BY id LIMIT ?2";
static const char SQL_DS_LABELS[] = "UPDATE datasets SET has_labels = ?2 WHERE id = ?1";
static const char SQL_DS_USER[] =
    "SELECT id, state FROM jobs WHERE dataset_id = ?1 AND state IN ('queued', 'running') ORDER BY id LIMIT 1";
static const char SQL_DS_DELETE[] = "DELETE FROM datasets WHERE id = ?1";

static int ds_read(sqlite3_stmt *s, void *item)
{
    assert(s && item);
    store_dataset *d = item;
    memset(d, 0, sizeof *d);
    d->id = sqlite3_column_int64(s, 0);
    store_col_copy(s, 1, d->name, sizeof d->name);
    store_col_copy(s, 2, d->kind, sizeof d->kind);
    d->dim = sqlite3_column_int(s, 3);
    d->n_rows = sqlite3_column_int64(s, 4);
    d->has_labels = sqlite3_column_int(s, 7);
    store_col_copy(s, 8, d->created_at, sizeof d->created_at);
    if (store_col_dup(s, 5, &d->params_json) != 0 || store_col_dup(s, 6, &d->path) != 0) {
        store_dataset_clear(d);
        return -1;
    }
    return 0;
}

static void ds_clear(void *item)
{
    store_dataset_clear(item);
}

int store_dataset_insert(store *st, const store_dataset *d, int64_t *id_out)
{
    assert(st && d);
    assert(d->kind[0] != '\0');
    assert(d->n_rows >= -1); /* -1: an endless stream */
    char now[32];
    store_now(now, sizeof now);
    int rc = store_tx_begin(st);
    if (rc != STORE_OK)
        return rc;
    sqlite3_stmt *s = store_stmt(st, SQL_DS_INSERT);
    if (!s)
        return store_tx_end(st, STORE_ERROR);
    store_bind_text(s, 1, d->name);
    store_bind_text(s, 2, d->kind);
    sqlite3_bind_int(s, 3, d->dim);
    sqlite3_bind_int64(s, 4, d->n_rows);
    store_bind_text(s, 5, d->params_json);
    store_bind_text(s, 6, d->path);
    sqlite3_bind_int(s, 7, d->has_labels != 0);
    store_bind_text(s, 8, now);
    rc = store_run(st, s);
    if (rc == STORE_OK && id_out)
        *id_out = sqlite3_last_insert_rowid(st->db);
    return store_tx_end(st, rc);
}

int store_dataset_get(store *st, int64_t id, store_dataset *out)
{
    assert(st && out);
    return store_get_id(st, SQL_DS_GET, id, ds_read, out, sizeof *out, "dataset");
}

int store_dataset_list(store *st, int64_t after, int limit, store_dataset **out, int *n)
{
    assert(st && out && n);
    return store_list_after(st, SQL_DS_LIST, after, limit, ds_read, ds_clear, sizeof **out, (void **)out, n);
}

int store_dataset_set_labels(store *st, int64_t id, int has_labels)
{
    assert(st);
    assert(id >= 1);
    int rc = store_tx_begin(st);
    if (rc != STORE_OK)
        return rc;
    sqlite3_stmt *s = store_stmt(st, SQL_DS_LABELS);
    if (!s)
        return store_tx_end(st, STORE_ERROR);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int(s, 2, has_labels != 0);
    rc = store_run(st, s);
    if (rc == STORE_OK && sqlite3_changes(st->db) == 0)
        rc = store_setf(st, STORE_NOTFOUND, "dataset %lld does not exist", (long long)id);
    return store_tx_end(st, rc);
}

/* STORE_CONFLICT naming the first queued or running job that uses dataset id. */
static int ds_check_unused(store *st, int64_t id)
{
    assert(st);
    assert(id >= 1);
    sqlite3_stmt *s = store_stmt(st, SQL_DS_USER);
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, id);
    int rc = store_step(st, s);
    if (rc == 1)
        rc = store_setf(st, STORE_CONFLICT, "dataset %lld is used by job %lld (%s); cancel the job or wait for it",
                        (long long)id, (long long)sqlite3_column_int64(s, 0), sqlite3_column_text(s, 1));
    store_stmt_end(s);
    return rc;
}

static int ds_delete_row(store *st, int64_t id)
{
    assert(st);
    assert(id >= 1);
    sqlite3_stmt *s = store_stmt(st, SQL_DS_DELETE);
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, id);
    int rc = store_run(st, s);
    if (rc == STORE_OK && sqlite3_changes(st->db) == 0)
        rc = store_setf(st, STORE_NOTFOUND, "dataset %lld does not exist", (long long)id);
    return rc;
}

int store_dataset_delete(store *st, int64_t id)
{
    assert(st);
    assert(id >= 1);
    int rc = store_tx_begin(st);
    if (rc != STORE_OK)
        return rc;
    rc = ds_check_unused(st, id);
    if (rc == STORE_OK)
        rc = ds_delete_row(st, id);
    return store_tx_end(st, rc);
}

void store_dataset_clear(store_dataset *d)
{
    if (!d)
        return;
    free(d->params_json);
    free(d->path);
    d->params_json = NULL;
    d->path = NULL;
}

void store_dataset_list_free(store_dataset *items, int n)
{
    assert(n >= 0 && (items || n == 0));
    for (int i = 0; i < n; i++)
        store_dataset_clear(&items[i]);
    free(items);
}
