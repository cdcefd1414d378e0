/* analysis_offsets — how the group-level analyses are told where groups
 * are: decoder rows laid out group by group (in group order), group g being
 * rows goff[g] .. goff[g+1]-1. Equal groups of s are goff[g] = g*s; groups
 * of any size (include/sae_groups.h) or a clustering give their own. */
#include "analysis.h"
#include <assert.h>
#include <stdlib.h>

int32_t *analysis_offsets_equal(int n, int s)
{
    assert(n >= 1 && s >= 1 && n % s == 0);
    int G = n / s;
    int32_t *goff = malloc(((size_t)G + 1) * sizeof *goff);
    for (int g = 0; goff && g <= G; g++)
        goff[g] = g * s;
    return goff;
}

int analysis_offsets_ok(const int32_t *goff, int G, int n)
{
    if (!goff || G < 1 || goff[0] != 0 || goff[G] != n)
        return 0;
    for (int g = 0; g < G; g++)
        if (goff[g + 1] <= goff[g])
            return 0;
    return 1;
}

int analysis_offsets_max(const int32_t *goff, int G)
{
    int m = 0;
    assert(goff && G >= 1);
    for (int g = 0; g < G; g++)
        m = goff[g + 1] - goff[g] > m ? goff[g + 1] - goff[g] : m;
    return m;
}
