/* placeholder replaced below */
#include "bench/bench.h"
int coil_bench_runtime(int argc, char **argv) { (void)argc; (void)argv; return 1; }
