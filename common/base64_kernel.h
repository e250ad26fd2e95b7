/* The interface between base64.c and its vector kernels (base64_avx2.c, built with -mavx2 and
 * called only on a CPU that has AVX2). A kernel does whole blocks only and says how far it got;
 * base64.c does the rest, the padding and every check at the edges, so both paths give the
 * same answer for every input. */
#ifndef VB_COMMON_BASE64_KERNEL_H
#define VB_COMMON_BASE64_KERNEL_H

#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__)
#define BASE64_HAVE_AVX2 1

/* Encodes 24-byte blocks of in while at least 28 bytes are left (each block loads 16 bytes at
 * its start and 16 at its byte 12). Writes 32 characters per block; returns the bytes consumed,
 * a multiple of 24. */
size_t base64_avx2_encode(const uint8_t *in, size_t n, char *out);

/* Decodes 32-character blocks of in while at least 32 characters are left, and stops before
 * the first block holding a character outside the alphabet ('=' included). Writes 24 bytes per
 * block; returns the characters consumed, a multiple of 32. */
size_t base64_avx2_decode(const char *in, size_t n, uint8_t *out);
#endif

#endif
