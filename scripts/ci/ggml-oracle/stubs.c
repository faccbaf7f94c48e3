/* ggml.c symbols that ggml-quants.c references but the reference quantizers never call. */
#include <stddef.h>
#include <stdlib.h>

void ggml_abort(const char *file, int line, const char *fmt, ...) { (void)file; (void)line; (void)fmt; abort(); }
size_t ggml_row_size(int type, long long n) { (void)type; (void)n; abort(); }
const char *ggml_type_name(int type) { (void)type; return "?"; }
size_t ggml_type_size(int type) { (void)type; abort(); }
