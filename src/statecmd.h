/* `dmpflow state`: inspect and verify a state store (docs/STATE.md).
 * The store is opened read-only (no lock), so a running daemon is not
 * disturbed; what is shown is its last commit. */
#ifndef DMP_STATECMD_H
#define DMP_STATECMD_H

#include <stdio.h>

#include "config.h"

typedef enum { DMP_STATE_LIST, DMP_STATE_DUMP, DMP_STATE_VERIFY } dmp_state_action_t;

/* Runs action on the store of conf's [state] dir, with conf's pipeline for
 * decoding. partition < 0: all (list, verify); dump needs a partition and
 * key. Prints to out, errors to err. Returns an exit code: 0 ok, 1 a
 * missing / foreign / corrupt store, 2 a bad configuration. */
int dmp_state_run(dmp_conf_t *conf, dmp_state_action_t action, int partition, const char *key,
                  FILE *out, FILE *err);

#endif
