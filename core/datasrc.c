/* datasrc — adapters from each dataset kind to the trainer's data_source.
 * Here: the endless circles stream. */
#include "datasrc.h"
#include "circles.h"
#include <assert.h>

static int datasrc_circles_rows(void *ctx, const uint64_t *idx, int n, float *out)
{
    assert(ctx);
    circles_rows((const circles *)ctx, idx, n, out);
    return 0;
}

void datasrc_from_circles(data_source *src, const struct circles *c)
{
    assert(src && c);
    src->dim = circles_get_params(c)->dim;
    src->n_rows = -1;
    src->ctx = (void *)c; /* only ever read back as const */
    src->get_rows = datasrc_circles_rows;
}
