#ifndef THREADINJECT_CARRIER_H
#define THREADINJECT_CARRIER_H

#include "state.h"

/* Create the carrier type for `module`; its instances are made from the
 * exceptions pending in the module's state (pending.c).  Returns a new
 * reference or NULL with an exception set. */
PyObject *ti_carrier_type_new(PyObject *module);

#endif /* THREADINJECT_CARRIER_H */
