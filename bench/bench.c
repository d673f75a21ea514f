/* bench/bench.c: `coil bench WHAT` dispatch. Every benchmark prints one
 * figure per line as "name value unit". */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "app/commands.h"
#include "bench/bench.h"

int coil_cmd_bench(int argc, char **argv) {
    bool help = argc >= 1 && strcmp(argv[0], "--help") == 0;
    if (argc < 1 || help) {
        fprintf(help ? stdout : stderr, "usage: coil bench runtime [--quick] [--no-anchors] [FIGURE...]\n"
                        "       coil bench watchdog [--quick]\n"
                        "       coil bench http [--quick] [--no-anchors]\n"
                        "       coil bench store [--quick] [--dir DIR]\n"
                        "       coil bench pool [--quick]\n"
                        "       coil bench jobs [--store sqlite|postgres] [--quick] [--no-anchors]\n"
                        "       coil bench import [--quick] [--no-anchors]\n");
        return help ? 0 : 2;
    }
    if (strcmp(argv[0], "runtime") == 0) return coil_bench_runtime(argc - 1, argv + 1);
    if (strcmp(argv[0], "watchdog") == 0) return coil_bench_watchdog(argc - 1, argv + 1);
    if (strcmp(argv[0], "http") == 0) return coil_bench_http(argc - 1, argv + 1);
    if (strcmp(argv[0], "store") == 0) return coil_bench_store(argc - 1, argv + 1);
    if (strcmp(argv[0], "pool") == 0) return coil_bench_pool(argc - 1, argv + 1);
    if (strcmp(argv[0], "jobs") == 0) return coil_bench_jobs(argc - 1, argv + 1);
    if (strcmp(argv[0], "import") == 0) return coil_bench_import(argc - 1, argv + 1);
    fprintf(stderr, "coil bench: unknown benchmark '%s'\n", argv[0]);
    return 2;
}
