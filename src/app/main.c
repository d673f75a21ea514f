/* app/main.c: the coil command. */
#include <coil/coil.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "app/commands.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: coil COMMAND [ARGS]\n"
            "\n"
            "commands:\n"
            "  serve            run the HTTP server (coil serve --help)\n"
            "  worker           run jobs from a shared store (coil worker --help)\n"
            "  migrate          create or upgrade a job store's schema (coil migrate --help)\n"
            "  import           IMDB's titles (or ratings) into SQLite (coil import --help)\n"
            "  gen              IMDB-format test data: coil gen titles ROWS OUT.tsv.gz\n"
            "  ps               the tasks of a running coil serve (coil ps --help)\n"
#ifdef COIL_HAVE_BENCH
            "  bench runtime    the runtime: tasks, channels, locks (and asyncio, uvloop)\n"
            "  bench watchdog   the stall watchdog's cost and its reports\n"
            "  bench http       coil serve's HTTP against nginx and FastAPI\n"
            "  bench store      the job store's writes and reads\n"
            "  bench pool       the worker processes: spawn, no-op jobs, crash detection\n"
            "  bench jobs       durable jobs end to end (--store postgres; beanstalkd)\n"
            "  bench import     coil import and the titles routes against the anchors\n"
            "                   (each bench takes --quick; coil bench --help lists options)\n"
#endif
            "  version          print the version\n");
}

int main(int argc, char **argv) {
    /* SQLite's memory statistics take a global mutex on every allocation,
     * which every connection thread then contends for; coil reads none of
     * them. Set before SQLite initialises, so first of all. */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    /* A worker of the job pool (a re-exec of this program) runs its jobs
     * here and exits; the handlers it needs are registered by then. */
    coil_worker_main_if_requested(argc, argv);
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("coil %s\n", COIL_VERSION_STRING);
        return 0;
    }
    if (strcmp(argv[1], "serve") == 0) return coil_cmd_serve(argc - 2, argv + 2);
    if (strcmp(argv[1], "worker") == 0) return coil_cmd_worker(argc - 2, argv + 2);
    if (strcmp(argv[1], "migrate") == 0) return coil_cmd_migrate(argc - 2, argv + 2);
    if (strcmp(argv[1], "import") == 0) return coil_cmd_import(argc - 2, argv + 2);
    if (strcmp(argv[1], "gen") == 0) return coil_cmd_gen(argc - 2, argv + 2);
    if (strcmp(argv[1], "ps") == 0) return coil_cmd_ps(argc - 2, argv + 2);
#ifdef COIL_HAVE_BENCH
    if (strcmp(argv[1], "bench") == 0) return coil_cmd_bench(argc - 2, argv + 2);
#endif
    fprintf(stderr, "coil: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
