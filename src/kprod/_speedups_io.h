/* kprod._speedups: the part in _speedups_io.c (the I/O thread's epoll calls). */
#ifndef KPROD_SPEEDUPS_IO_H
#define KPROD_SPEEDUPS_IO_H

#include <Python.h>

/* Adds the module functions of _speedups_io.c; -1 with an exception set on failure. */
int kprod_io_add_functions(PyObject *module);

#endif
