// A fault-injection shim for the end-to-end tests, in the manner of libfiu and CharybdeFS: loaded
// with LD_PRELOAD into the real graph-bridge, it makes write-type calls on files under one folder
// fail while a control file exists, as if that folder's file system had turned read-only (EROFS),
// filled up (ENOSPC) or started failing to write back (EIO). `mount -o remount,ro` cannot do this
// to a running bridge: it fails with EBUSY while the store is open.
//
//   GB_FAULT_DIR=/abs/state/folder     the folder whose files fail
//   GB_FAULT_CONTROL=/abs/faults-on    faults are on while this file exists
//   GB_FAULT_ERRNO=EROFS               EROFS (the default), ENOSPC or EIO
//   GB_FAULT_CALLS=fsync,fdatasync     only these calls fail (default: all of the list below)
//   GB_FAULT_LOG=1                     one line on stderr per refused call (for development)
//
// The calls: open, open64, openat, openat64 (with O_CREAT, O_WRONLY, O_RDWR or O_TRUNC); write,
// pwrite, pwrite64, writev, pwritev; fsync, fdatasync; ftruncate, ftruncate64; fallocate; unlink,
// unlinkat. These cover what SQLite's unix VFS uses (the system libsqlite3 imports open64,
// pwrite64, write, fdatasync and ftruncate64 from libc, so interposition reaches it). Writes
// through a shared mapping (the WAL index, `-shm`) cannot be intercepted and still succeed. Reads
// are never touched. With the control file absent, each call costs one access(2) more.
//
// This header declares nothing: the library's interface is the libc functions it interposes and
// the environment above. (SwiftPM wants a public header folder for a C target.)

#pragma once
