/* utf8 — well-formed UTF-8 (include/utf8.h): a lead byte gives the length
 * (C2-DF: 2, E0-EF: 3, F0-F4: 4), every further byte is 10xxxxxx, and the
 * second byte's range is narrowed after E0 (overlong), ED (surrogates), F0
 * (overlong) and F4 (above U+10FFFF). */
#include "utf8.h"
#include <assert.h>
#include <string.h>

size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    assert(s && n >= 1);
    unsigned c = s[0];
    if (c >= 0x01 && c < 0x80)
        return 1;
    size_t len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (len == 0 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) || /* overlong, surrogate */
        (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))   /* overlong, > U+10FFFF */
        return 0;
    return len;
}

int utf8_valid(const char *s)
{
    assert(s);
    size_t n = strlen(s);
    for (size_t i = 0, k; i < n; i += k)
        if (!(k = utf8_seq_len((const unsigned char *)s + i, n - i)))
            return 0;
    return 1;
}

void utf8_scrub(char *s)
{
    assert(s);
    size_t n = strlen(s);
    for (size_t i = 0, k; i < n; i += k ? k : 1)
        if (!(k = utf8_seq_len((const unsigned char *)s + i, n - i)))
            s[i] = '?';
}
