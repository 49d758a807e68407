// Env::Default(): the POSIX Env, a thin layer over common/file.h.
#include "common/env.h"

#include <utility>

#include "common/file.h"

namespace needlefs {
namespace {

class PosixRandomRWFile final : public RandomRWFile {
 public:
  explicit PosixRandomRWFile(File file) : file_(std::move(file)) {}

  const std::string& path() const override { return file_.path(); }
  Status ReadAt(uint64_t offset, void* buf, size_t len) const override {
    return file_.ReadAt(offset, buf, len);
  }
  Status WriteAt(uint64_t offset, const void* buf, size_t len) override {
    return file_.WriteAt(offset, buf, len);
  }
  Status DataSync() override { return file_.DataSync(); }
  Status Sync() override { return file_.Sync(); }
  Status Truncate(uint64_t size) override { return file_.Truncate(size); }
  StatusOr<uint64_t> Size() const override { return file_.Size(); }

 private:
  File file_;
};

class PosixEnv final : public Env {
 public:
  StatusOr<std::unique_ptr<RandomRWFile>> NewRandomRWFile(const std::string& path, int flags,
                                                          int mode) override {
    NEEDLEFS_ASSIGN_OR_RETURN(File f, File::Open(path, flags, mode));
    return std::unique_ptr<RandomRWFile>(std::make_unique<PosixRandomRWFile>(std::move(f)));
  }
};

}  // namespace

Env* Env::Default() {
  // Never destroyed, so volumes closed by static destructors can still use it.
  static Env* const env = new PosixEnv;
  return env;
}

}  // namespace needlefs
