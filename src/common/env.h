// Env: the seam between the stores and the operating system's files, in the
// style of LevelDB's include/leveldb/env.h and RocksDB's FileSystem. Code
// that must survive disk faults (the volume's data file and index log) opens
// its files through an Env* taken from its options, so tests can hand it an
// Env that fails chosen calls with EIO or ENOSPC, or tears a write (see
// tests/objstore/fault_env.h). Production uses Env::Default(): POSIX files
// (common/file.h) with no behaviour of its own.
//
// Only what those files need is here: positional read and write, size,
// truncate and sync. Directory operations (rename, unlink, fsync of a
// directory) still go straight to POSIX.
//
// Thread-safety: an Env is safe for concurrent use from many threads. A
// RandomRWFile is too: its calls take explicit offsets and never use a shared
// file position, so reads may run beside a write and a sync (the volume
// reads while it appends and while group commit syncs). Writes to
// overlapping ranges at the same time are the caller's to avoid.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"

namespace needlefs {

/// An open file read and written at explicit byte offsets (pread/pwrite).
/// Closed when destroyed (errors from close are ignored: a caller that needs
/// the data durable calls DataSync or Sync first). Owned by one holder.
///
/// Every failure is an IOError status (common/status.h): kResourceExhausted
/// for ENOSPC/EDQUOT, kInternal for the rest, with the errno as
/// posix_errno() and the file's path and strerror in the message.
class RandomRWFile {
 public:
  RandomRWFile() = default;
  virtual ~RandomRWFile() = default;
  RandomRWFile(const RandomRWFile&) = delete;
  RandomRWFile& operator=(const RandomRWFile&) = delete;

  /// The path the file was opened with.
  virtual const std::string& path() const = 0;

  /// Reads exactly `len` bytes at byte `offset` into `buf` (which the caller
  /// owns, at least `len` bytes). Errors: kOutOfRange when the file ends
  /// before offset + len (the contents of `buf` are then unspecified),
  /// IOError.
  virtual Status ReadAt(uint64_t offset, void* buf, size_t len) const = 0;

  /// Writes all `len` bytes of `buf` at byte `offset`, extending the file
  /// when needed. Returns once the bytes are in the OS (not durable: see
  /// DataSync). On failure an unknown prefix of the bytes may have reached
  /// the file (a torn write): the caller decides whether to cut it with
  /// Truncate. Errors: IOError (kResourceExhausted when the disk is full).
  virtual Status WriteAt(uint64_t offset, const void* buf, size_t len) = 0;

  /// Makes the file's data durable (fdatasync(2)): everything written before
  /// the call survives a machine crash once it returns OK. After a failure
  /// the state of the unsynced writes is unknown. Errors: IOError.
  virtual Status DataSync() = 0;

  /// As DataSync, plus all metadata (fsync(2)). Errors: IOError.
  virtual Status Sync() = 0;

  /// Sets the file's size to `size` bytes (ftruncate(2)): cut, or extended
  /// with zeros. Errors: IOError.
  virtual Status Truncate(uint64_t size) = 0;

  /// The file's current size in bytes. Errors: IOError.
  virtual StatusOr<uint64_t> Size() const = 0;
};

/// Opens files. The stores take an Env* in their options and never own it.
class Env {
 public:
  Env() = default;
  virtual ~Env() = default;
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;

  /// The POSIX Env of this process. It belongs to the library, lives until
  /// the process exits, and must not be deleted.
  static Env* Default();

  /// Opens `path` with open(2) `flags` (O_RDWR, O_CREAT, O_TRUNC, ...;
  /// O_CLOEXEC is added) and, when it is created, permission bits `mode`
  /// (e.g. 0644). The caller owns the result. Errors: kNotFound (no such
  /// file and no O_CREAT), IOError.
  virtual StatusOr<std::unique_ptr<RandomRWFile>> NewRandomRWFile(const std::string& path,
                                                                  int flags, int mode) = 0;
};

}  // namespace needlefs
