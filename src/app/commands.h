/* app/commands.h: the subcommands of the coil command. Each takes the
 * arguments after its name and returns the process exit status. */
#ifndef COIL_APP_COMMANDS_H
#define COIL_APP_COMMANDS_H

/* coil serve [OPTIONS]: the HTTP server (serve.c). */
int coil_cmd_serve(int argc, char **argv);

/* coil worker --store URL [OPTIONS]: a node that only runs jobs (serve.c). */
int coil_cmd_worker(int argc, char **argv);

/* coil migrate --store URL: creates or upgrades a store's schema (migrate.c). */
int coil_cmd_migrate(int argc, char **argv);

/* coil import titles|ratings FILE [...]: IMDB's TSV into SQLite (import.c). */
int coil_cmd_import(int argc, char **argv);

/* coil gen titles|ratings ROWS OUT: IMDB-format test data (import.c). */
int coil_cmd_gen(int argc, char **argv);

/* coil bench WHAT: benchmarks (bench/). */
int coil_cmd_bench(int argc, char **argv);

/* coil ps [--data DIR | PID] [--tree] [--json] (ps.c). */
int coil_cmd_ps(int argc, char **argv);

#endif
