// Experiment only: opens asking for O_SYNC get O_DSYNC instead (data and the metadata needed to
// read it back are synced; timestamps are not). Counts rewrites so the run can show it took effect.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static atomic_long rewritten;

static int fix(int flags) {
    if ((flags & (O_SYNC & ~O_DSYNC)) == (O_SYNC & ~O_DSYNC)) { atomic_fetch_add(&rewritten, 1); return (flags & ~(O_SYNC & ~O_DSYNC)) | O_DSYNC; }
    return flags;
}

__attribute__((destructor)) static void report(void) {
    char b[96]; int n = snprintf(b, sizeof b, "dsync-shim: %ld O_SYNC opens rewritten\n", (long)rewritten);
    if (rewritten && getenv("DSYNC_SHIM_REPORT")) { int fd = open(getenv("DSYNC_SHIM_REPORT"), O_WRONLY|O_CREAT|O_APPEND, 0644); if (fd >= 0) { write(fd, b, n); close(fd); } }
}

#define WRAP(name) \
int name(const char *path, int flags, ...) { \
    static int (*real)(const char *, int, ...); if (!real) real = dlsym(RTLD_NEXT, #name); \
    mode_t mode = 0; if (flags & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); } \
    return real(path, fix(flags), mode); }
WRAP(open)
WRAP(open64)

#define WRAPAT(name) \
int name(int dirfd, const char *path, int flags, ...) { \
    static int (*real)(int, const char *, int, ...); if (!real) real = dlsym(RTLD_NEXT, #name); \
    mode_t mode = 0; if (flags & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); } \
    return real(dirfd, path, fix(flags), mode); }
WRAPAT(openat)
WRAPAT(openat64)
