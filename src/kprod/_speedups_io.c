/* kprod._speedups, part two: the I/O thread's epoll calls, keeping the GIL
 * where waiting for it again would cost more than the call.
 *
 * The producer's I/O thread and the application's send() loop share the GIL.
 * A thread that gives it up while the other runs Python gets it back only
 * after the interpreter's switch interval (5 ms). CPython's select.epoll gives
 * it up around every call, even those that cannot block; on the I/O thread that
 * meant a wait of up to 5 ms whenever a socket's events changed (a request
 * larger than the socket buffer), so:
 *
 *   epoll_wait(epfd, timeout_ms, max_events) -> [(fd, events)]
 *       releases the GIL only when it may block (timeout other than 0);
 *   epoll_modify(epfd, fd, events)
 *       EPOLL_CTL_MOD, keeping the GIL.
 *
 * kprod.net.poller.EpollPoller uses them; without them (no compiler, not
 * Linux) kprod.net.poller.SelectorPoller does the same job with selectors.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <string.h>

#include "_speedups_io.h"

#ifdef __linux__
#include <sys/epoll.h>
#define KPROD_HAVE_EPOLL 1
#endif

#ifdef KPROD_HAVE_EPOLL

#define MAX_EVENTS 256

static int as_int(PyObject *obj)
{
    long value = PyLong_AsLong(obj);
    if (value == -1 && PyErr_Occurred())
        return -1;
    if (value < INT_MIN || value > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "value out of range for a C int");
        return -1;
    }
    return (int)value;
}

static PyObject *py_epoll_wait(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "epoll_wait(epfd, timeout_ms, max_events) takes 3 arguments");
        return NULL;
    }
    int epfd = as_int(args[0]);
    int timeout = as_int(args[1]);
    int max_events = as_int(args[2]);
    if (PyErr_Occurred())
        return NULL;
    if (max_events < 1 || max_events > MAX_EVENTS) {
        PyErr_Format(PyExc_ValueError, "epoll_wait(): max_events must be 1..%d, not %d", MAX_EVENTS, max_events);
        return NULL;
    }
    struct epoll_event events[MAX_EVENTS];
    int count, error = 0;
    if (timeout == 0) {
        count = epoll_wait(epfd, events, max_events, 0); /* cannot block: keep the GIL */
        if (count < 0)
            error = errno;
    } else {
        Py_BEGIN_ALLOW_THREADS
        count = epoll_wait(epfd, events, max_events, timeout < 0 ? -1 : timeout);
        if (count < 0)
            error = errno;
        Py_END_ALLOW_THREADS
    }
    if (count < 0) {
        if (error == EINTR)
            return PyList_New(0);
        errno = error;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *result = PyList_New(count);
    if (result == NULL)
        return NULL;
    for (int i = 0; i < count; i++) {
        PyObject *pair = Py_BuildValue("(iI)", events[i].data.fd, (unsigned int)events[i].events);
        if (pair == NULL) {
            Py_DECREF(result);
            return NULL;
        }
        PyList_SET_ITEM(result, i, pair);
    }
    return result;
}

static PyObject *py_epoll_modify(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "epoll_modify(epfd, fd, events) takes 3 arguments");
        return NULL;
    }
    int epfd = as_int(args[0]);
    int fd = as_int(args[1]);
    unsigned long mask = PyLong_AsUnsignedLong(args[2]);
    if (PyErr_Occurred())
        return NULL;
    struct epoll_event event;
    memset(&event, 0, sizeof(event));
    event.events = (uint32_t)mask;
    event.data.fd = fd;
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &event) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

#endif /* KPROD_HAVE_EPOLL */

static PyMethodDef io_methods[] = {
#ifdef KPROD_HAVE_EPOLL
    {"epoll_wait", (PyCFunction)(void (*)(void))py_epoll_wait, METH_FASTCALL,
     "epoll_wait(epfd, timeout_ms, max_events) -> [(fd, events)]; timeout 0 keeps the GIL"},
    {"epoll_modify", (PyCFunction)(void (*)(void))py_epoll_modify, METH_FASTCALL,
     "epoll_modify(epfd, fd, events): EPOLL_CTL_MOD keeping the GIL"},
#endif
    {NULL},
};

int kprod_io_add_functions(PyObject *module)
{
    return PyModule_AddFunctions(module, io_methods);
}
