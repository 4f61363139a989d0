// See include/fault_injection.h for what this does and how it is switched on.

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static char fault_dir[PATH_MAX];
static size_t fault_dir_length;
static const char *control_file;
static const char *fault_calls;
static int fault_errno = EROFS;
static int log_faults;

__attribute__((constructor)) static void fault_injection_init(void) {
    const char *dir = getenv("GB_FAULT_DIR");
    const char *name = getenv("GB_FAULT_ERRNO");
    control_file = getenv("GB_FAULT_CONTROL");
    fault_calls = getenv("GB_FAULT_CALLS");
    log_faults = getenv("GB_FAULT_LOG") != NULL;
    if (name != NULL && strcmp(name, "ENOSPC") == 0) fault_errno = ENOSPC;
    if (name != NULL && strcmp(name, "EIO") == 0) fault_errno = EIO;
    if (dir == NULL || control_file == NULL) return;
    // Compare against the resolved folder: /proc/self/fd links are resolved paths.
    if (realpath(dir, fault_dir) == NULL) snprintf(fault_dir, sizeof fault_dir, "%s", dir);
    fault_dir_length = strlen(fault_dir);
}

#define REAL(name) \
    static __typeof__(name) *real_##name; \
    if (real_##name == NULL) real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

/// Whether `call` fails now: faults are on, and GB_FAULT_CALLS (if set) names it.
static int faults_on(const char *call) {
    if (fault_dir_length == 0 || access(control_file, F_OK) != 0) return 0;
    if (fault_calls == NULL) return 1;
    size_t length = strlen(call);
    for (const char *at = strstr(fault_calls, call); at != NULL; at = strstr(at + 1, call)) {
        int starts = at == fault_calls || at[-1] == ',';
        int ends = at[length] == ',' || at[length] == '\0';
        if (starts && ends) return 1;
    }
    return 0;
}

static int under_fault_dir(const char *path) {
    return strncmp(path, fault_dir, fault_dir_length) == 0
        && (path[fault_dir_length] == '/' || path[fault_dir_length] == '\0');
}

static void refuse(const char *call, const char *path) {
    if (log_faults) dprintf(STDERR_FILENO, "fault-injection: %s %s -> %s\n", call, path, strerror(fault_errno));
    errno = fault_errno;
}

/// Whether a call on descriptor `fd` must fail now; only resolves the path while faults are on.
static int fd_faulted(const char *call, int fd, char path[PATH_MAX]) {
    if (!faults_on(call)) return 0;
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t length = readlink(link, path, PATH_MAX - 1);
    if (length < 0) return 0;
    path[length] = '\0';
    return under_fault_dir(path);
}

/// Whether a call on `path` (relative to `dirfd`) must fail now; `full` gets the absolute path.
static int path_faulted(const char *call, int dirfd, const char *path, char full[2 * PATH_MAX]) {
    if (!faults_on(call) || path == NULL) return 0;
    if (path[0] == '/') {
        snprintf(full, 2 * PATH_MAX, "%s", path);
    } else {
        char base[PATH_MAX];
        if (dirfd == AT_FDCWD) {
            if (getcwd(base, sizeof base) == NULL) return 0;
        } else {
            char link[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
            ssize_t length = readlink(link, base, sizeof base - 1);
            if (length < 0) return 0;
            base[length] = '\0';
        }
        snprintf(full, 2 * PATH_MAX, "%s/%s", base, path);
    }
    return under_fault_dir(full);
}

/// 1 (errno set) when the call must fail; else 0, errno as it was (the checks make syscalls too).
static int refuse_fd(const char *call, int fd) {
    int saved = errno;
    char path[PATH_MAX];
    if (fd_faulted(call, fd, path)) {
        refuse(call, path);
        return 1;
    }
    errno = saved;
    return 0;
}

static int refuse_path(const char *call, int dirfd, const char *path) {
    int saved = errno;
    char full[2 * PATH_MAX];
    if (path_faulted(call, dirfd, path, full)) {
        refuse(call, full);
        return 1;
    }
    errno = saved;
    return 0;
}

static int writes(int flags) {
    return (flags & (O_CREAT | O_WRONLY | O_RDWR | O_TRUNC)) != 0;
}

#define MODE_ARGUMENT(flags) \
    mode_t mode = 0; \
    if ((flags) & (O_CREAT | __O_TMPFILE)) { \
        va_list arguments; \
        va_start(arguments, flags); \
        mode = va_arg(arguments, mode_t); \
        va_end(arguments); \
    }

int open(const char *path, int flags, ...) {
    REAL(open);
    MODE_ARGUMENT(flags);
    if (writes(flags) && refuse_path("open", AT_FDCWD, path)) return -1;
    return real_open(path, flags, mode);
}

int open64(const char *path, int flags, ...) {
    REAL(open64);
    MODE_ARGUMENT(flags);
    if (writes(flags) && refuse_path("open64", AT_FDCWD, path)) return -1;
    return real_open64(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...) {
    REAL(openat);
    MODE_ARGUMENT(flags);
    if (writes(flags) && refuse_path("openat", dirfd, path)) return -1;
    return real_openat(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...) {
    REAL(openat64);
    MODE_ARGUMENT(flags);
    if (writes(flags) && refuse_path("openat64", dirfd, path)) return -1;
    return real_openat64(dirfd, path, flags, mode);
}

ssize_t write(int fd, const void *buffer, size_t count) {
    REAL(write);
    if (refuse_fd("write", fd)) return -1;
    return real_write(fd, buffer, count);
}

ssize_t pwrite(int fd, const void *buffer, size_t count, off_t offset) {
    REAL(pwrite);
    if (refuse_fd("pwrite", fd)) return -1;
    return real_pwrite(fd, buffer, count, offset);
}

ssize_t pwrite64(int fd, const void *buffer, size_t count, off64_t offset) {
    REAL(pwrite64);
    if (refuse_fd("pwrite64", fd)) return -1;
    return real_pwrite64(fd, buffer, count, offset);
}

ssize_t writev(int fd, const struct iovec *vector, int count) {
    REAL(writev);
    if (refuse_fd("writev", fd)) return -1;
    return real_writev(fd, vector, count);
}

ssize_t pwritev(int fd, const struct iovec *vector, int count, off_t offset) {
    REAL(pwritev);
    if (refuse_fd("pwritev", fd)) return -1;
    return real_pwritev(fd, vector, count, offset);
}

int fsync(int fd) {
    REAL(fsync);
    if (refuse_fd("fsync", fd)) return -1;
    return real_fsync(fd);
}

int fdatasync(int fd) {
    REAL(fdatasync);
    if (refuse_fd("fdatasync", fd)) return -1;
    return real_fdatasync(fd);
}

int ftruncate(int fd, off_t length) {
    REAL(ftruncate);
    if (refuse_fd("ftruncate", fd)) return -1;
    return real_ftruncate(fd, length);
}

int ftruncate64(int fd, off64_t length) {
    REAL(ftruncate64);
    if (refuse_fd("ftruncate64", fd)) return -1;
    return real_ftruncate64(fd, length);
}

int fallocate(int fd, int mode, off_t offset, off_t length) {
    REAL(fallocate);
    if (refuse_fd("fallocate", fd)) return -1;
    return real_fallocate(fd, mode, offset, length);
}

int unlink(const char *path) {
    REAL(unlink);
    if (refuse_path("unlink", AT_FDCWD, path)) return -1;
    return real_unlink(path);
}

int unlinkat(int dirfd, const char *path, int flags) {
    REAL(unlinkat);
    if (refuse_path("unlinkat", dirfd, path)) return -1;
    return real_unlinkat(dirfd, path, flags);
}
