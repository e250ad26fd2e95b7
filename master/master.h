/* The master process: owns the listening sockets, the scoreboard and the pid file; spawns and
 * supervises the workers; passes every accepted connection to the least-loaded ready worker;
 * turns signals into actions (SIGHUP reload, SIGTERM/SIGINT drain and stop, SIGQUIT stop now,
 * SIGUSR1 reopen logs). */
#ifndef VB_MASTER_MASTER_H
#define VB_MASTER_MASTER_H

/* Runs in the foreground until stopped. path is the configuration file; exe the binary to
 * re-execute for workers. Returns the process exit status: 0 after a stop or quit, 1 when it
 * could not start (the reason is logged). */
int master_run(const char *path, const char *exe);

#endif
