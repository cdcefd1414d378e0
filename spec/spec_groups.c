/* spec_groups — explicit groups of a train spec (design: include/spec_groups.h). */
#include "spec_groups.h"
#include <assert.h>

sae_groups *spec_groups_parse(const json_t *v, int n, spec_errors *errs)
{
    char msg[200];
    sae_groups *t;
    assert(errs && n >= 0);
    if (json_is_object(v)) {
        spec_error_add(errs, 422, "sae.groups", "{\"from_job\": ID} is resolved when a job is submitted to the "
                       "daemon; give the groups as lists here");
        return NULL;
    }
    int rc = sae_groups_from_json(v, n, &t, msg, sizeof msg);
    if (rc == SAE_GROUPS_MALFORMED)
        spec_error_add(errs, 400, "sae.groups", "%s, or {\"from_job\": ID} naming a groupspace job", msg);
    else if (rc == SAE_GROUPS_IMPOSSIBLE)
        spec_error_add(errs, 422, "sae.groups", "%s", msg);
    else if (rc)
        spec_error_add(errs, 500, "sae.groups", "out of memory reading the groups");
    return t;
}
