/* tartest — crafted tar headers for the suites that test the reader's refusals
 * (tests/test_tar.c, tests/test_api_saelens.c): what tar_write never writes. */
#ifndef SAED_TARTEST_H
#define SAED_TARTEST_H

/* One ustar header block h (512 bytes): name (truncated to 100 bytes), entry type
 * ('0' file, '2' symlink, ...), octal size, mode 0644, a valid checksum. */
void tartest_header(unsigned char *h, const char *name, char type, unsigned size);
/* Recomputes h's checksum after a field was changed. */
void tartest_checksum(unsigned char *h);

#endif
