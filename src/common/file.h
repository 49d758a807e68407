// Thin POSIX file wrapper used by the stores: positional I/O with full-length
// loops and EINTR handling, each failure as a Status with the path and errno.
// A File is owned by one holder (move-only); pread/pwrite are safe from many
// threads at once (they do not use the file position).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace needlefs {

class File {
 public:
  File() = default;
  ~File();
  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  /// Opens `path` with open(2) `flags` (O_CLOEXEC added) and `mode`.
  /// Errors: kNotFound for ENOENT, else IOError.
  static StatusOr<File> Open(const std::string& path, int flags, int mode = 0644);

  bool is_open() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

  /// Reads exactly `len` bytes at `offset` into `buf`. A short file is
  /// kOutOfRange (bytes past EOF), other failures IOError.
  Status ReadAt(uint64_t offset, void* buf, size_t len) const;
  /// Reads up to `len` bytes; returns the count read (less only at EOF).
  StatusOr<size_t> ReadSomeAt(uint64_t offset, void* buf, size_t len) const;
  /// Writes all `len` bytes at `offset`.
  Status WriteAt(uint64_t offset, const void* buf, size_t len) const;
  /// fdatasync(2).
  Status DataSync() const;
  /// fsync(2).
  Status Sync() const;
  /// ftruncate(2) to `size` bytes.
  Status Truncate(uint64_t size) const;
  /// Current size in bytes (fstat).
  StatusOr<uint64_t> Size() const;
  /// Closes the descriptor (errors from close are returned).
  Status Close();

 private:
  File(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_;
};

/// fsyncs the directory `dir` so that renames and creates in it are durable.
Status SyncDir(const std::string& dir);
/// Reads a whole (small) file. Errors: kNotFound, IOError.
StatusOr<std::string> ReadFileToString(const std::string& path);
/// Writes `data` to `path` atomically: temp file, fsync, rename, fsync dir.
Status WriteFileAtomic(const std::string& path, std::string_view data);
/// True when `path` exists (stat succeeds).
bool PathExists(const std::string& path);

}  // namespace needlefs
