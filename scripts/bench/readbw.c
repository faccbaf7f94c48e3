/* An outside read-bandwidth loop to check `bitnet-gguf bench`'s probe against: plain C,
 * built apart from the project's code.
 *
 *   cc -O3 -march=native -mprefer-vector-width=512 -fopenmp scripts/bench/readbw.c -o readbw
 *   OMP_NUM_THREADS=2 ./readbw [STREAMS] [PASSES]
 *
 * Every thread sums its share of a 2 GiB anonymous map (transparent huge pages advised,
 * written once before timing) as STREAMS equal parts read side by side, 64 bytes of each
 * part in turn (STREAMS = 1 is one sequential stream per thread; the decode kernels read
 * four). No software prefetch. Prints the median pass in GB/s (10^9 bytes per second).
 * GCC vectorises with 256-bit registers unless told otherwise; on an AVX-512 Xeon the
 * 512-bit build read 8-11 % faster, so the width flag keeps it the widest plain loop.
 */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define MAX_STREAMS 16
#define WORDS_PER_STEP 8 /* 64 bytes */

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  int streams = argc > 1 ? atoi(argv[1]) : 4;
  int passes = argc > 2 ? atoi(argv[2]) : 9;
  if (streams < 1 || streams > MAX_STREAMS || passes < 1 || passes > 1000) {
    fprintf(stderr, "usage: readbw [STREAMS 1-%d] [PASSES]\n", MAX_STREAMS);
    return 2;
  }
  size_t bytes = (size_t)2 << 30;
  uint64_t *buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED) {
    perror("mmap");
    return 1;
  }
  madvise(buf, bytes, MADV_HUGEPAGE);
  memset(buf, 1, bytes);
  double *rates = calloc((size_t)passes, sizeof *rates);
  uint64_t sink = 0;
  for (int pass = 0; pass < passes; pass++) {
    double t0 = omp_get_wtime();
#pragma omp parallel reduction(+ : sink)
    {
      size_t share = bytes / 8 / (size_t)omp_get_num_threads();
      size_t part = share / (size_t)streams / WORDS_PER_STEP * WORDS_PER_STEP;
      const uint64_t *base = buf + (size_t)omp_get_thread_num() * share;
      uint64_t acc[MAX_STREAMS][WORDS_PER_STEP] = {{0}};
      for (size_t i = 0; i < part; i += WORDS_PER_STEP)
        for (int s = 0; s < streams; s++)
          for (int w = 0; w < WORDS_PER_STEP; w++) acc[s][w] += base[(size_t)s * part + i + w];
      for (int s = 0; s < streams; s++)
        for (int w = 0; w < WORDS_PER_STEP; w++) sink += acc[s][w];
    }
    double t = omp_get_wtime() - t0;
    size_t read = bytes / 8 / (size_t)omp_get_max_threads() / (size_t)streams / WORDS_PER_STEP *
                  WORDS_PER_STEP * (size_t)streams * 8 * (size_t)omp_get_max_threads();
    rates[pass] = (double)read / t / 1e9;
  }
  if (sink == 42) puts("");
  qsort(rates, (size_t)passes, sizeof *rates, by_value);
  printf("%.2f\n", rates[passes / 2]);
  return 0;
}
