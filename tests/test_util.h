// Helpers shared by every test binary.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

namespace needlefs {

/// A fresh directory "<tmp>/<prefix>XXXXXX" (mkdtemp) for one test, removed
/// with everything in it on destruction. A failure to create it fails the
/// test and leaves path() empty.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "needlefs-test-") {
    std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "XXXXXX")).string();
    if (mkdtemp(tmpl.data()) != nullptr) {
      path_ = tmpl;
    } else {
      ADD_FAILURE() << "mkdtemp " << tmpl << " failed";
    }
  }
  ~TempDir() {
    if (path_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace needlefs
