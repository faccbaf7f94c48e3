/* Runs ggml's reference quantizers (quantize_row_*_ref from ggml-quants.c, compiled from
 * ggml's own source) on a file of little-endian f32 values: harness TYPE IN.f32 OUT.bin */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-quants.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: harness TYPE IN.f32 OUT.bin\n");
        return 2;
    }
    FILE *f = fopen(argv[2], "rb");
    if (!f) return 2;
    fseek(f, 0, SEEK_END);
    long n = ftell(f) / 4;
    fseek(f, 0, SEEK_SET);
    float *x = malloc(n * 4);
    if (fread(x, 4, n, f) != (size_t)n) return 2;
    fclose(f);
    void *y = calloc(n * 4 + 64, 1);
    size_t bytes;
    const char *t = argv[1];
    if (!strcmp(t, "Q6_K")) { quantize_row_q6_K_ref(x, y, n); bytes = n / 256 * 210; }
    else if (!strcmp(t, "Q8_0")) { quantize_row_q8_0_ref(x, y, n); bytes = n / 32 * 34; }
    else if (!strcmp(t, "Q4_0")) { quantize_row_q4_0_ref(x, y, n); bytes = n / 32 * 18; }
    else if (!strcmp(t, "Q4_1")) { quantize_row_q4_1_ref(x, y, n); bytes = n / 32 * 20; }
    else if (!strcmp(t, "Q5_0")) { quantize_row_q5_0_ref(x, y, n); bytes = n / 32 * 22; }
    else if (!strcmp(t, "Q5_1")) { quantize_row_q5_1_ref(x, y, n); bytes = n / 32 * 24; }
    else if (!strcmp(t, "TQ1_0")) { quantize_row_tq1_0_ref(x, y, n); bytes = n / 256 * 54; }
    else if (!strcmp(t, "TQ2_0")) { quantize_row_tq2_0_ref(x, y, n); bytes = n / 256 * 66; }
    else if (!strcmp(t, "Q2_0")) { quantize_row_q2_0_ref(x, y, n); bytes = n / 64 * 18; }
    else if (!strcmp(t, "Q1_0")) { quantize_row_q1_0_ref(x, y, n); bytes = n / 128 * 18; }
    else { fprintf(stderr, "unknown type %s\n", t); return 2; }
    FILE *o = fopen(argv[3], "wb");
    if (!o || fwrite(y, 1, bytes, o) != bytes) return 2;
    fclose(o);
    return 0;
}
