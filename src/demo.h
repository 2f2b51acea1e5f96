/* `dmpflow demo`: the whole pipeline on librdkafka's embedded mock cluster
 * with synthetic events, printing each closed window's top keys, and
 * serving the live page (admin.h) on 127.0.0.1 while it runs. */
#ifndef DMP_DEMO_H
#define DMP_DEMO_H

/* The port the live page is served on unless one is given; if it is
 * taken, the next free one (up to 20 further). */
#define DMP_DEMO_HTTP_PORT 8464

/* Runs the demo with config_path for `seconds` (0: until SIGINT/SIGTERM),
 * the live page on http_port or the first free port after it (-1: no
 * page). Returns an exit code. */
int dmp_demo_run(const char *config_path, int seconds, int http_port);

#endif
