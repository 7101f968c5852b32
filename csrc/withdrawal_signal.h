#ifndef THREADINJECT_WITHDRAWAL_SIGNAL_H
#define THREADINJECT_WITHDRAWAL_SIGNAL_H

#include "state.h"

/* CPython 3.11's stale eval-breaker signal after a withdrawal; see
 * withdrawal_signal.c.  TI_WITHDRAWAL_SIGNAL is 1 where the module clears it
 * (3.11, full API). */
#if !defined(Py_LIMITED_API) && PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
#  define TI_WITHDRAWAL_SIGNAL 1
#else
#  define TI_WITHDRAWAL_SIGNAL 0
#endif

/* Create what ti_clear_withdrawal_signal() needs (module exec); 0 or -1. */
int ti_withdrawal_signal_init(core_state *st);
/* After PyThreadState_SetAsyncExc(id, NULL) found the thread: clear the
 * signal it left, unless an exception of the calling thread's own keeps it
 * set.  0, or -1 with an exception (one a signal handler raised). */
int ti_clear_withdrawal_signal(core_state *st);

#endif /* THREADINJECT_WITHDRAWAL_SIGNAL_H */
