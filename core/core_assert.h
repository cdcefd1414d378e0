/* core_assert — helpers for the preconditions core/ asserts (SQLite's habit: a run of asserts at
 * the top of each function stating what the caller promised). Private to core/; used only inside
 * assert(), so release builds (-DNDEBUG) compile them away. */
#ifndef SAED_CORE_ASSERT_H
#define SAED_CORE_ASSERT_H
#include <assert.h>
#include <stddef.h>
#include <stdint.h>

/* 1 when the byte ranges [a, a + na) and [b, b + nb) do not overlap; an empty or NULL range
 * overlaps nothing. Compares addresses as integers: ordering pointers into different objects
 * with < is undefined in C. */
static inline int core_disjoint(const void *a, size_t na, const void *b, size_t nb)
{
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return !a || !b || na == 0 || nb == 0 || x + na <= y || y + nb <= x;
}

#endif
