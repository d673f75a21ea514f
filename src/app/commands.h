/* app/commands.h: the subcommands of the coil command. Each takes the
 * arguments after its name and returns the process exit status. */
#ifndef COIL_APP_COMMANDS_H
#define COIL_APP_COMMANDS_H

/* coil bench WHAT: benchmarks (bench/). */
int coil_cmd_bench(int argc, char **argv);

#endif
