/* Fuzz target for the resampler: arbitrary samples cut into arbitrary call sizes (0, 1, odd,
 * larger than the internal chunk), both directions, the mu-law forms, every kernel the CPU has.
 * Every output buffer is allocated to exactly the size the API promises, so ASan sees any
 * overrun; a cut stream must equal the whole-call output bit for bit, and kernels may differ
 * by at most 1 LSB. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dsp/resample.h"

#define MAX_SAMPLES 65536

static const uint8_t *cut_data;
static size_t cut_size, cut_pos, cut_zeros;

/* Next call size, taken from the input's bytes: mostly small, sometimes several chunks; empty
 * calls too, but never three in a row, so every run ends. */
static size_t next_len(size_t left)
{
    size_t len = 0;
    if (cut_size > 0) {
        uint8_t b = cut_data[cut_pos++ % cut_size];
        len = b & 0x80 ? (size_t)(b & 0x7f) * 17 : (size_t)(b % 9);
    }
    if (len == 0 && ++cut_zeros > 2)
        len = 1;
    if (len > 0)
        cut_zeros = 0;
    return len < left ? len : left;
}

static void up_run(const int16_t *x, size_t n, int cut, int16_t *y)
{
    struct resample_up st;
    resample_up_init(&st);
    cut_pos = cut_zeros = 0;
    for (size_t i = 0; i < n || !cut;) {
        size_t len = cut ? next_len(n - i) : n;
        int16_t *out = malloc(3 * len * sizeof *out + 1);
        if (out == NULL)
            abort();
        resample_up(&st, x + i, len, out);
        memcpy(y + 3 * i, out, 3 * len * sizeof *out);
        free(out);
        i += len;
        if (!cut)
            break;
    }
}

static size_t down_run(const int16_t *x, size_t n, int cut, int16_t *y)
{
    struct resample_down st;
    resample_down_init(&st);
    cut_pos = cut_zeros = 0;
    size_t got = 0, fed = 0;
    for (size_t i = 0; i < n || !cut;) {
        size_t len = cut ? next_len(n - i) : n;
        size_t cap = resample_down_max_out(len);
        int16_t *out = malloc(cap * sizeof *out);
        if (out == NULL)
            abort();
        size_t m = resample_down(&st, x + i, len, out);
        fed += len;
        if (m > cap || got + m != fed / 3)
            abort();
        memcpy(y + got, out, m * sizeof *out);
        free(out);
        got += m;
        i += len;
        if (!cut)
            break;
    }
    return got;
}

static void ulaw_run(const uint8_t *codes, const int16_t *x, size_t n)
{
    struct resample_up up;
    struct resample_down down;
    resample_up_init(&up);
    resample_down_init(&down);
    cut_pos = cut_zeros = 0;
    for (size_t i = 0; i < n;) {
        size_t len = next_len(n - i);
        int16_t *pcm = malloc(3 * len * sizeof *pcm + 1);
        uint8_t *enc = malloc(resample_down_max_out(len));
        if (pcm == NULL || enc == NULL)
            abort();
        resample_up_ulaw(&up, codes + i, len, pcm);
        if (resample_down_ulaw(&down, x + i, len, enc) > resample_down_max_out(len))
            abort();
        free(enc);
        free(pcm);
        i += len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* data[0]: how many times the samples repeat, so long streams are reachable too. */
    size_t rep = 1 + data[0] % 16;
    const uint8_t *body = data + 1;
    size_t body_size = size - 1;
    size_t n = body_size / 2 * rep;
    if (n > MAX_SAMPLES)
        n = MAX_SAMPLES;

    int16_t *x = malloc(n * sizeof *x + 1);
    uint8_t *codes = malloc(n + 1);
    int16_t *whole = malloc(3 * n * sizeof *whole + 1), *cut = malloc(3 * n * sizeof *cut + 1);
    int16_t *first_up = malloc(3 * n * sizeof *first_up + 1);
    int16_t *first_down = malloc((n / 3 + 1) * sizeof *first_down);
    if (!x || !codes || !whole || !cut || !first_up || !first_down)
        abort();
    for (size_t i = 0; i < n; i++) {
        size_t k = 2 * (i % (body_size / 2));
        x[i] = (int16_t)(body[k] | body[k + 1] << 8);
        codes[i] = body[k];
    }
    cut_data = body;
    cut_size = body_size;

    static const char *const kernels[] = {"generic", "avx2"};
    size_t m_first = 0;
    for (int k = 0; k < 2; k++) {
        if (resample_select_kernel(kernels[k]) != 0)
            continue;
        up_run(x, n, 0, whole);
        up_run(x, n, 1, cut);
        if (memcmp(whole, cut, 3 * n * sizeof *whole) != 0)
            abort();
        if (k == 0)
            memcpy(first_up, whole, 3 * n * sizeof *whole);
        for (size_t j = 0; j < 3 * n; j++)
            if (abs(first_up[j] - whole[j]) > 1)
                abort();

        size_t m = down_run(x, n, 0, whole);
        if (m != n / 3 || down_run(x, n, 1, cut) != m || memcmp(whole, cut, m * sizeof *whole) != 0)
            abort();
        if (k == 0) {
            memcpy(first_down, whole, m * sizeof *whole);
            m_first = m;
        }
        for (size_t j = 0; j < m && j < m_first; j++)
            if (abs(first_down[j] - whole[j]) > 1)
                abort();

        ulaw_run(codes, x, n);
    }
    free(first_down);
    free(first_up);
    free(cut);
    free(whole);
    free(codes);
    free(x);
    return 0;
}
