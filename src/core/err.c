/*
 * Names and messages for error codes, generated from one X-macro list so the
 * two tables cannot drift apart. common.h promises a name for any code, so
 * the list holds every code the public headers document and those the system
 * calls behind blitzio pass through (a rename across file systems, a read-only
 * file system, a spawn of a busy executable), not only the ones blitzio makes.
 */
#include "blitzio/common.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>

#define BLZ_ERRNO_MAP(X)                            \
 X(EPERM, "operation not permitted")                \
 X(ENOENT, "no such file or directory")             \
 X(ESRCH, "no such runtime or process")             \
 X(EINTR, "interrupted system call")                \
 X(EIO, "i/o error")                                \
 X(ENXIO, "no such device or address")              \
 X(E2BIG, "argument list too long")                 \
 X(ENOEXEC, "not an executable")                    \
 X(EBADF, "bad file descriptor")                    \
 X(ECHILD, "no child process")                      \
 X(EAGAIN, "resource temporarily unavailable")      \
 X(ENOMEM, "not enough memory")                     \
 X(EACCES, "permission denied")                     \
 X(EFAULT, "bad address")                           \
 X(EBUSY, "resource busy")                          \
 X(EEXIST, "already exists")                        \
 X(EXDEV, "cross-device link")                      \
 X(ENODEV, "no such device")                        \
 X(ENOTDIR, "not a directory")                      \
 X(EISDIR, "is a directory")                        \
 X(EINVAL, "invalid argument")                      \
 X(ENFILE, "file table overflow")                   \
 X(EMFILE, "too many open files")                   \
 X(ENOTTY, "inappropriate ioctl for device")        \
 X(ETXTBSY, "text file busy")                       \
 X(EFBIG, "file too large")                         \
 X(ENOSPC, "no space left on device")               \
 X(ESPIPE, "invalid seek")                          \
 X(EROFS, "read-only file system")                  \
 X(EMLINK, "too many links")                        \
 X(EPIPE, "broken pipe or closed channel")          \
 X(ERANGE, "result out of range")                   \
 X(EDEADLK, "would block a worker thread")          \
 X(ENAMETOOLONG, "name too long")                   \
 X(ENOSYS, "function not implemented")              \
 X(ENOTEMPTY, "directory not empty")                \
 X(ELOOP, "too many symbolic links")                \
 X(EOVERFLOW, "value too large or receiver lagged") \
 X(EPROTO, "protocol error")                        \
 X(ENOTSOCK, "not a socket")                        \
 X(EDESTADDRREQ, "destination address required")    \
 X(EMSGSIZE, "message too long")                    \
 X(ENOPROTOOPT, "protocol not available")           \
 X(EPROTONOSUPPORT, "protocol not supported")       \
 X(EOPNOTSUPP, "operation not supported")           \
 X(EAFNOSUPPORT, "address family not supported")    \
 X(EADDRINUSE, "address already in use")            \
 X(EADDRNOTAVAIL, "address not available")          \
 X(ENETDOWN, "network is down")                     \
 X(ENETUNREACH, "network is unreachable")           \
 X(ECONNABORTED, "connection aborted")              \
 X(ECONNRESET, "connection reset by peer")          \
 X(ENOBUFS, "no buffer space available")            \
 X(EISCONN, "socket is already connected")          \
 X(ENOTCONN, "socket is not connected")             \
 X(ESHUTDOWN, "runtime or socket is shutting down") \
 X(ETIMEDOUT, "timed out")                          \
 X(ECONNREFUSED, "connection refused")              \
 X(EHOSTDOWN, "host is down")                       \
 X(EHOSTUNREACH, "host is unreachable")             \
 X(EALREADY, "operation already in progress")       \
 X(EINPROGRESS, "operation in progress")            \
 X(EDQUOT, "disk quota exceeded")                   \
 X(ECANCELED, "operation canceled")

const char *
blz_errname(int err)
{
    if (err < 0) {
        err = err == INT_MIN ? INT_MAX : -err; /* -INT_MIN overflows; no code is either */
    }
    switch (err) {
#define BLZ_ERR_NAME_CASE(code, msg) \
 case code:                          \
  return #code;
        BLZ_ERRNO_MAP(BLZ_ERR_NAME_CASE)
#undef BLZ_ERR_NAME_CASE
    case 0:
        return "OK";
    default:
        return "UNKNOWN";
    }
}

const char *
blz_strerror(int err)
{
    if (err < 0) {
        err = err == INT_MIN ? INT_MAX : -err; /* -INT_MIN overflows; no code is either */
    }
    switch (err) {
#define BLZ_ERR_MSG_CASE(code, msg) \
 case code:                         \
  return msg;
        BLZ_ERRNO_MAP(BLZ_ERR_MSG_CASE)
#undef BLZ_ERR_MSG_CASE
    case 0:
        return "success";
    default:
        return "unknown error";
    }
}
