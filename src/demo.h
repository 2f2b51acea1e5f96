/* `dmpflow demo`: the whole pipeline on librdkafka's embedded mock cluster
 * with synthetic events, printing each closed window's top keys. */
#ifndef DMP_DEMO_H
#define DMP_DEMO_H

/* Runs the demo with config_path for `seconds`. Returns an exit code. */
int dmp_demo_run(const char *config_path, int seconds);

#endif
