// FaultEnv: an Env for tests that fails chosen file calls the way a bad or
// full disk does (STYLE.md "Testable faults"; after RocksDB's
// utilities/fault_injection_fs.h). It wraps a real Env (POSIX by default), so
// every call it lets through, and the prefix of a torn write, reaches the
// real file, and a test can reopen the files afterwards with Env::Default()
// to play a restart.
//
// A fault names an operation (write, sync, truncate), the files it applies
// to (by path suffix, e.g. ".dat"), how many matching calls pass first, how
// many fail after that, and the errno. A failed write can first write a
// prefix of its bytes (a torn write). An injected failure is the same Status
// a real one is: Status::IOError (kResourceExhausted for ENOSPC, kInternal
// for EIO) with the errno as posix_errno() and strerror in the message.
//
// Thread-safe: faults may be injected while other threads use the files.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "common/env.h"
#include "common/status.h"

namespace needlefs {

class FaultEnv final : public Env {
 public:
  enum class Op {
    kWrite,     ///< RandomRWFile::WriteAt
    kSync,      ///< DataSync and Sync
    kTruncate,  ///< Truncate
  };

  struct Fault {
    Op op = Op::kWrite;
    /// Applies to files whose path ends with this; "" = every file.
    std::string path_suffix;
    /// Matching calls that succeed before the first failure (0 = the next
    /// matching call fails).
    int skip = 0;
    /// Matching calls that fail once the skipped ones have passed; -1 =
    /// every one from then on.
    int times = 1;
    /// The errno of the failure (EIO, ENOSPC, ...).
    int error = EIO;
    /// kWrite only: bytes from the start of the write that reach the file
    /// before the call fails (a torn write; clipped to the write's length).
    /// 0 = nothing is written.
    size_t written_bytes = 0;
  };

  /// `base` performs the calls; not owned.
  explicit FaultEnv(Env* base = Env::Default()) : base_(base) {}

  /// Adds a fault. Faults are checked in the order added; the first that
  /// fires decides the call.
  void Inject(Fault fault) {
    std::lock_guard<std::mutex> l(mu_);
    faults_.push_back(std::move(fault));
  }
  /// Removes every fault not yet spent.
  void Clear() {
    std::lock_guard<std::mutex> l(mu_);
    faults_.clear();
  }
  /// Calls failed by injection so far.
  int failures() const {
    std::lock_guard<std::mutex> l(mu_);
    return failures_;
  }

  StatusOr<std::unique_ptr<RandomRWFile>> NewRandomRWFile(const std::string& path, int flags,
                                                          int mode) override {
    NEEDLEFS_ASSIGN_OR_RETURN(auto file, base_->NewRandomRWFile(path, flags, mode));
    return std::unique_ptr<RandomRWFile>(std::make_unique<FaultFile>(this, std::move(file)));
  }

 private:
  class FaultFile final : public RandomRWFile {
   public:
    FaultFile(FaultEnv* env, std::unique_ptr<RandomRWFile> base)
        : env_(env), base_(std::move(base)) {}

    const std::string& path() const override { return base_->path(); }
    Status ReadAt(uint64_t offset, void* buf, size_t len) const override {
      return base_->ReadAt(offset, buf, len);
    }
    Status WriteAt(uint64_t offset, const void* buf, size_t len) override {
      size_t prefix = 0;
      Status fault = env_->Check(Op::kWrite, path(), "pwrite", &prefix);
      if (fault.ok()) return base_->WriteAt(offset, buf, len);
      if (prefix > 0) NEEDLEFS_RETURN_IF_ERROR(base_->WriteAt(offset, buf, std::min(prefix, len)));
      return fault;
    }
    Status DataSync() override {
      NEEDLEFS_RETURN_IF_ERROR(env_->Check(Op::kSync, path(), "fdatasync", nullptr));
      return base_->DataSync();
    }
    Status Sync() override {
      NEEDLEFS_RETURN_IF_ERROR(env_->Check(Op::kSync, path(), "fsync", nullptr));
      return base_->Sync();
    }
    Status Truncate(uint64_t size) override {
      NEEDLEFS_RETURN_IF_ERROR(env_->Check(Op::kTruncate, path(), "ftruncate", nullptr));
      return base_->Truncate(size);
    }
    StatusOr<uint64_t> Size() const override { return base_->Size(); }

   private:
    FaultEnv* const env_;
    const std::unique_ptr<RandomRWFile> base_;
  };

  /// The injected failure for a call of `op` on `path` (`call` names the
  /// system call in the message), or OK. For a failed write, *written_bytes
  /// gets the bytes to write before failing.
  Status Check(Op op, const std::string& path, const char* call, size_t* written_bytes) {
    std::lock_guard<std::mutex> l(mu_);
    for (auto it = faults_.begin(); it != faults_.end(); ++it) {
      const std::string& sfx = it->path_suffix;
      if (it->op != op || path.size() < sfx.size() ||
          path.compare(path.size() - sfx.size(), sfx.size(), sfx) != 0) {
        continue;
      }
      if (it->times == 0) continue;
      if (it->skip > 0) {
        --it->skip;
        continue;
      }
      const int error = it->error;
      if (written_bytes != nullptr) *written_bytes = it->written_bytes;
      if (it->times > 0 && --it->times == 0) faults_.erase(it);
      ++failures_;
      return Status::IOError(std::string(call) + " " + path + " (injected)", error);
    }
    return Status::OK();
  }

  Env* const base_;
  mutable std::mutex mu_;
  std::vector<Fault> faults_;  // GUARDED_BY(mu_)
  int failures_ = 0;           // GUARDED_BY(mu_)
};

}  // namespace needlefs
