/* tartest — crafted tar headers (tests/tartest.h). */
#include "tartest.h"
#include <stdio.h>
#include <string.h>

void tartest_checksum(unsigned char *h)
{
    unsigned s = 0;
    memset(h + 148, ' ', 8);
    for (int i = 0; i < 512; i++) s += h[i];
    snprintf((char *)h + 148, 8, "%06o", s);
}

void tartest_header(unsigned char *h, const char *name, char type, unsigned size)
{
    memset(h, 0, 512);
    strncpy((char *)h, name, 100);
    memcpy(h + 100, "0000644", 8);
    snprintf((char *)h + 124, 12, "%011o", size);
    h[156] = (unsigned char)type;
    memcpy(h + 257, "ustar\0" "00", 8);
    tartest_checksum(h);
}
