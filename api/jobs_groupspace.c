/* jobs_groupspace — what a groupspace job leaves (daemon/jobrun_groupspace.c
 * writes it into data_dir/jobs/{id}/):
 *   GET /v1/jobs/{id}/positions.npy          the final positions (N, dim) '<f4'
 *   GET /v1/jobs/{id}/positions.npy?step=S   the snapshot taken at step S
 *                                            (result.snapshots lists them; a
 *                                            running job's are served as they
 *                                            appear, for watching it train)
 *   GET /v1/jobs/{id}/groups                 {"groups":[[i,...],...]}
 * Another type of job has none of these: 404 saying so. The final files
 * exist once the job has succeeded: 409 before. */
#include "internal.h"
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The groupspace job r->ids[0] into j; replies and returns -1 if it is not one, or if final is set and
 * it has not succeeded. */
static int jobs_groupspace_load(api_req *r, store_job *j, int final)
{
    if (jobs_load(r, j)) return -1;
    if (strcmp(j->type, "groupspace")) {
        api_problem(r, MHD_HTTP_NOT_FOUND, "job %lld is a %s job; positions and groups belong to groupspace jobs",
                    (long long)j->id, j->type);
        store_job_clear(j);
        return -1;
    }
    if (final && j->state != STORE_JOB_SUCCEEDED) {
        api_problem(r, MHD_HTTP_CONFLICT, "job %lld is %s; its final positions and groups are written when it "
                    "succeeds (GET /v1/jobs/%lld shows its progress; ?step= serves the snapshots taken so far)",
                    (long long)j->id, store_job_state_name(j->state), (long long)j->id);
        store_job_clear(j);
        return -1;
    }
    return 0;
}

enum MHD_Result jobs_groupspace_positions(api_req *r)
{
    long long step = -1;
    if (api_query_int(r, "step", 1, INT_MAX, &step) < 0) return MHD_YES;
    store_job j = { 0 };
    if (jobs_groupspace_load(r, &j, step < 0)) return MHD_YES;
    store_job_clear(&j);
    char path[4096 + 64];
    if (step < 0)
        snprintf(path, sizeof path, "%s/jobs/%lld/positions.npy", r->srv->cfg.data_dir, (long long)r->ids[0]);
    else
        snprintf(path, sizeof path, "%s/jobs/%lld/positions-%lld.npy", r->srv->cfg.data_dir, (long long)r->ids[0],
                 step);
    if (step >= 0 && access(path, R_OK))
        return api_problem_field(r, MHD_HTTP_NOT_FOUND, "step", "job %lld has no snapshot at step %lld (yet); "
                                 "its result.snapshots lists the steps", (long long)r->ids[0], step);
    return api_send_file(r, path, "application/octet-stream", "no-cache");
}

enum MHD_Result jobs_groupspace_groups(api_req *r)
{
    store_job j = { 0 };
    if (jobs_groupspace_load(r, &j, 1)) return MHD_YES;
    store_job_clear(&j);
    char path[4096 + 64];
    snprintf(path, sizeof path, "%s/jobs/%lld/groups.json", r->srv->cfg.data_dir, (long long)r->ids[0]);
    return api_send_file(r, path, "application/json", "no-cache");
}
