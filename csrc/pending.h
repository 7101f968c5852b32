/* The pending injections: for each thread ident, the exception injected and
 * not yet received.  Callers hold TI_PENDING_LOCK (a no-op with a GIL). */
#ifndef THREADINJECT_PENDING_H
#define THREADINJECT_PENDING_H

#include "state.h"

/* Make `exc` (or nothing, for NULL) the pending exception of `key`.  Returns
 * the one it replaces as a new reference, or NULL: with an exception set on
 * error, without one if nothing was pending.  The caller drops the returned
 * reference only when it may run Python code again. */
PyObject *ti_pending_swap(core_state *st, PyObject *key, PyObject *exc);

/* The pending exception of `key` (new reference), or NULL as above. */
PyObject *ti_pending_get(core_state *st, PyObject *key);

/* Drop the empty slots (see pending.c).  Freeing one runs no Python code:
 * it is a list holding None. */
int ti_pending_sweep(core_state *st);

#endif /* THREADINJECT_PENDING_H */
