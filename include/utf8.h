/* utf8 — well-formed UTF-8 (RFC 3629), one definition for every reader of
 * outside text: labels files (npyfile), and user text quoted in replies (api). */
#ifndef SAED_UTF8_H
#define SAED_UTF8_H
#include <stddef.h>

/* Length of the well-formed UTF-8 sequence at s[0..n) (n >= 1), or 0 if none starts there (overlong
 * forms, surrogates, above U+10FFFF, a truncated sequence, NUL). */
size_t utf8_seq_len(const unsigned char *s, size_t n);
/* 1 when the string s is well-formed UTF-8, else 0. */
int utf8_valid(const char *s);
/* Every byte of s not part of a well-formed sequence replaced by '?' in place (user text cut at a
 * byte count, or not UTF-8 at all, can then go into a JSON reply). */
void utf8_scrub(char *s);

#endif
