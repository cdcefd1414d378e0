/* sae_arch — the table of architectures (design: include/sae_arch.h).
 *
 * SAE_ARCH_LIST (include/sae.h) expands here twice: into a declaration of
 * each row, which its own file defines, and into the table indexed by the
 * enum, so a row cannot be listed without being defined (a link error) nor
 * sit at another index than its enum value. */
#include "sae_arch.h"
#include <assert.h>
#include <string.h>

#define SAE_ARCH_DECLARE(ID, name) extern const sae_arch_def sae_arch_##name;
SAE_ARCH_LIST(SAE_ARCH_DECLARE)
#undef SAE_ARCH_DECLARE

#define SAE_ARCH_ROW(ID, name) [SAE_##ID] = &sae_arch_##name,
static const sae_arch_def *const sae_arch_table[SAE_N_ARCHS] = {SAE_ARCH_LIST(SAE_ARCH_ROW)};
#undef SAE_ARCH_ROW

#ifndef NDEBUG
/* The API's names in list order, to check each row sits where its name says. */
#define SAE_ARCH_NAME(ID, name) #name,
static const char *const sae_arch_name_list[SAE_N_ARCHS] = {SAE_ARCH_LIST(SAE_ARCH_NAME)};
#undef SAE_ARCH_NAME
#endif

const sae_arch_def *sae_arch_get(sae_arch a)
{
    return (int)a >= 0 && (int)a < SAE_N_ARCHS ? sae_arch_table[a] : NULL;
}

const sae_arch_def *sae_arch_of(const sae_config *c)
{
    assert(c && (int)c->arch >= 0 && (int)c->arch < SAE_N_ARCHS);
    const sae_arch_def *a = sae_arch_table[c->arch];
    assert(a && a->forward && a->backward && a->encode && !strcmp(a->name, sae_arch_name_list[c->arch]));
    return a;
}

const char *sae_arch_name(sae_arch a)
{
    const sae_arch_def *d = sae_arch_get(a);
    return d ? d->name : "unknown";
}

int sae_arch_parse(const char *name, sae_arch *out)
{
    assert(name && out);
    for (int i = 0; i < SAE_N_ARCHS; i++)
        if (strcmp(name, sae_arch_table[i]->name) == 0) {
            *out = (sae_arch)i;
            return 0;
        }
    return -1;
}

const char *sae_arch_names(void)
{
#define SAE_ARCH_TEXT(ID, name) ", " #name
    return &(SAE_ARCH_LIST(SAE_ARCH_TEXT))[2]; /* ", relu, gated, ..." without its first ", " */
#undef SAE_ARCH_TEXT
}
