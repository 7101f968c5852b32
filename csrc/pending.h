/* The pending injections: for each thread ident, the exception injected and
 * not yet received.  Callers hold TI_PENDING_LOCK (a no-op with a GIL). */
#ifndef THREADINJECT_PENDING_H
#define THREADINJECT_PENDING_H

#include "state.h"

/* Make `exc` the pending exception of `key`, or, for exc == NULL, leave
 * `key` nothing at all.  Returns the exception the slot held, pending or
 * withdrawn, as a new reference, or NULL: with an exception set on error,
 * without one if it held none.  The caller drops the returned reference
 * only when it may run Python code again. */
PyObject *ti_pending_swap(core_state *st, PyObject *key, PyObject *exc);

/* Withdraw the pending exception of `key` (cancel()).  It stays in the slot,
 * marked withdrawn, for a delivery that had already begun: see carrier.c.
 * Returns 1 if an exception was pending, 0 if not, -1 on error. */
int ti_pending_withdraw(core_state *st, PyObject *key);

/* The pending exception of `key` (new reference), or NULL as above.  A
 * withdrawn one is not pending. */
PyObject *ti_pending_get(core_state *st, PyObject *key);

/* Drop the slots that hold no pending exception (see pending.c).  The
 * withdrawn exceptions they held are appended to the list `dropped`, which
 * the caller frees once it may run Python code again. */
int ti_pending_sweep(core_state *st, PyObject *dropped);

#endif /* THREADINJECT_PENDING_H */
