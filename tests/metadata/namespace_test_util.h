// Shared fixture of the namespace tests: a fresh KV store per test (memory,
// or RocksDB in a temp directory) with a Namespace over it, plus small helpers
// that fail the test on unexpected errors.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "common/file_id.h"
#include "common/status.h"
#include "metadata/kv_store.h"
#include "metadata/namespace.h"
#include "test_util.h"

namespace needlefs {

/// The errno sub-code of a status (0 when OK).
inline int Errno(const Status& st) { return st.posix_errno(); }
template <typename T>
int Errno(const StatusOr<T>& s) {
  return s.status().posix_errno();
}

/// A valid file id for chunks in tests: distinct (volume, key) pairs are
/// distinct ids. The cookie is fixed, so Fid(3, 1) is "3,01637037d6".
inline FileId Fid(uint32_t volume, uint64_t key) {
  return FileId{VolumeId(volume), NeedleKey(key), Cookie(0x637037d6)};
}

/// Prints file ids in gtest messages as "3,01637037d6".
inline void PrintTo(const FileId& id, std::ostream* os) { *os << id.ToString(); }

enum class KvEngine { kMemory, kRocksDb };

inline std::string KvEngineName(const ::testing::TestParamInfo<KvEngine>& info) {
  return info.param == KvEngine::kMemory ? "Memory" : "RocksDb";
}

/// A user context (uid, gid, supplementary groups) for permission tests.
inline RequestContext User(uint32_t uid, uint32_t gid, std::vector<uint32_t> groups = {}) {
  RequestContext ctx;
  ctx.uid = uid;
  ctx.gid = gid;
  ctx.groups = std::move(groups);
  return ctx;
}

/// Sleeps long enough for the server clock to move past every time read so far.
inline void TickClock() { std::this_thread::sleep_for(std::chrono::milliseconds(2)); }

/// Wall-clock nanoseconds since the epoch.
inline int64_t WallNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class NamespaceFixture : public ::testing::TestWithParam<KvEngine> {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(OpenAll()); }

  /// Opens (or reopens) the store and a Namespace over it.
  void OpenAll() {
    if (GetParam() == KvEngine::kMemory) {
      store_ = NewMemoryKvStore();
    } else {
      KvOptions options;
      options.sync = false;  // durability across crashes is not under test here
      auto s = OpenRocksDbKvStore(dir_.path(), options);
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      store_ = std::move(s).value();
    }
    auto ns = Namespace::Open(store_.get(), ns_options_);
    ASSERT_TRUE(ns.ok()) << ns.status().ToString();
    ns_ = std::move(ns).value();
  }

  /// What OpenAll opens the Namespace with.
  NamespaceOptions ns_options_;

  /// Destroys the Namespace and the store (after a flush).
  void CloseAll() {
    ns_.reset();
    if (store_ != nullptr) {
      Status st = store_->Flush();
      EXPECT_TRUE(st.ok()) << st.ToString();
    }
    store_.reset();
  }

  InodeAttr Attr(InodeId ino) {
    auto a = ns_->GetAttr(ino);
    EXPECT_TRUE(a.ok()) << "GetAttr " << ino.value << ": " << a.status().ToString();
    return a.ok() ? *a : InodeAttr{};
  }
  InodeAttr Look(InodeId parent, const std::string& name) {
    auto a = ns_->Lookup(root_, parent, name);
    EXPECT_TRUE(a.ok()) << "Lookup " << name << ": " << a.status().ToString();
    return a.ok() ? *a : InodeAttr{};
  }
  InodeAttr MakeFile(InodeId parent, const std::string& name, uint32_t mode = 0644,
                     const RequestContext& ctx = RequestContext::Root()) {
    auto a = ns_->Create(ctx, parent, name, mode, /*exclusive=*/true);
    EXPECT_TRUE(a.ok()) << "Create " << name << ": " << a.status().ToString();
    return a.ok() ? *a : InodeAttr{};
  }
  InodeAttr MakeDir(InodeId parent, const std::string& name, uint32_t mode = 0755,
                    const RequestContext& ctx = RequestContext::Root()) {
    auto a = ns_->Mkdir(ctx, parent, name, mode);
    EXPECT_TRUE(a.ok()) << "Mkdir " << name << ": " << a.status().ToString();
    return a.ok() ? *a : InodeAttr{};
  }
  /// Every entry of `dir`, read in pages of `page`.
  std::vector<DirEntry> ListAll(InodeId dir, size_t page = 1000, bool plus = false) {
    std::vector<DirEntry> out;
    uint64_t cookie = 0;
    for (int guard = 0; guard < 100000; ++guard) {
      auto r = ns_->ReadDir(root_, dir, cookie, page, plus);
      EXPECT_TRUE(r.ok()) << "ReadDir " << dir.value << ": " << r.status().ToString();
      if (!r.ok()) break;
      for (auto& e : r->entries) out.push_back(e);
      if (r->eof) break;
      if (r->entries.empty()) {
        ADD_FAILURE() << "ReadDir returned an empty page without eof";
        break;
      }
      cookie = r->entries.back().cookie;
    }
    return out;
  }

  const RequestContext root_ = RequestContext::Root();
  TempDir dir_{"needlefs-ns-"};
  std::unique_ptr<KvStore> store_;
  std::unique_ptr<Namespace> ns_;
};

}  // namespace needlefs
