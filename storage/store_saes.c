/* store_saes — SAEs. A trained SAE's row is only ever inserted together
 * with the success of the job that made it (store_job_succeed_with_sae), an
 * imported one's (store_sae_import, job NULL) after its files are complete,
 * so an SAE row always names complete weight files in its dir. Deleting its job or
 * dataset later keeps the SAE (job_id / dataset_id become NULL, read as 0). */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include "store_int.h"

#define SAE_COLS "id, job_id, dataset_id, config_json, metrics_json, dir, n_latents, dim, group_size, created_at"

static const char SQL_SAE_INSERT[] =
    "INSERT INTO saes (job_id, dataset_id, config_json, metrics_json, dir, n_latents, dim, group_size, created_at)"
    " VALUES (?1, ?2, COALESCE(?3, '{}'), COALESCE(?4, '{}'), ?5, ?6, ?7, ?8, ?9)";
static const char SQL_SAE_GET[] = "SELECT " SAE_COLS " FROM saes WHERE id = ?1";
static const char SQL_SAE_LIST[] = "SELECT " SAE_COLS " FROM saes WHERE id > ?1 ORDER BY id LIMIT ?2";

static int sae_read(sqlite3_stmt *s, void *item)
{
    assert(s && item);
    store_sae *a = item;
    memset(a, 0, sizeof *a);
    a->id = sqlite3_column_int64(s, 0);
    a->job_id = sqlite3_column_int64(s, 1);
    a->dataset_id = sqlite3_column_int64(s, 2);
    a->n_latents = sqlite3_column_int(s, 6);
    a->dim = sqlite3_column_int(s, 7);
    a->group_size = sqlite3_column_int(s, 8);
    store_col_copy(s, 9, a->created_at, sizeof a->created_at);
    if (store_col_dup(s, 3, &a->config_json) || store_col_dup(s, 4, &a->metrics_json) ||
        store_col_dup(s, 5, &a->dir)) {
        store_sae_clear(a);
        return -1;
    }
    return 0;
}

static void sae_clear_item(void *item)
{
    store_sae_clear(item);
}

int store_sae_insert(store *st, int64_t job_id, const store_sae *sae, int64_t *id_out)
{
    assert(st && sae && id_out);
    assert(job_id >= 0 && sae->dataset_id >= 0); /* 0: NULL (an imported SAE has no job) */
    assert(sae->n_latents >= 1 && sae->dim >= 1 && sae->group_size >= 0); /* 0: groups listed in config_json */
    assert(sae->group_size == 0 || sae->n_latents % sae->group_size == 0);
    char now[32];
    store_now(now, sizeof now);
    sqlite3_stmt *s = store_stmt(st, SQL_SAE_INSERT);
    if (!s)
        return STORE_ERROR;
    store_bind_id(s, 1, job_id);
    store_bind_id(s, 2, sae->dataset_id);
    store_bind_text(s, 3, sae->config_json);
    store_bind_text(s, 4, sae->metrics_json);
    store_bind_text(s, 5, sae->dir);
    sqlite3_bind_int(s, 6, sae->n_latents);
    sqlite3_bind_int(s, 7, sae->dim);
    sqlite3_bind_int(s, 8, sae->group_size);
    store_bind_text(s, 9, now);
    int rc = store_run(st, s);
    if (rc == STORE_ERROR && st->sqlite_rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        rc = store_setf(st, STORE_NOTFOUND, "dataset %lld of the SAE does not exist", (long long)sae->dataset_id);
    if (rc == STORE_OK)
        *id_out = sqlite3_last_insert_rowid(st->db);
    return rc;
}

int store_sae_import(store *st, const store_sae *sae, int64_t *id_out)
{
    assert(st && sae && id_out);
    assert(sae->job_id == 0 && sae->dir && *sae->dir);
    return store_sae_insert(st, 0, sae, id_out);
}

int store_sae_get(store *st, int64_t id, store_sae *out)
{
    assert(st && out);
    return store_get_id(st, SQL_SAE_GET, id, sae_read, out, sizeof *out, "SAE");
}

int store_sae_list(store *st, int64_t after, int limit, store_sae **out, int *n)
{
    assert(st && out && n);
    return store_list_after(st, SQL_SAE_LIST, after, limit, sae_read, sae_clear_item, sizeof **out, (void **)out, n);
}

void store_sae_clear(store_sae *a)
{
    if (!a)
        return;
    free(a->config_json);
    free(a->metrics_json);
    free(a->dir);
    a->config_json = a->metrics_json = a->dir = NULL;
}

void store_sae_list_free(store_sae *items, int n)
{
    assert(n >= 0 && (items || n == 0));
    for (int i = 0; i < n; i++)
        store_sae_clear(&items[i]);
    free(items);
}
