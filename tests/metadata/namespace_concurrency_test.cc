// The namespace under concurrent use, on every KV engine: random
// create/unlink/link/rename/mkdir/rmdir from several threads keep the tree's
// invariants (nlink, no cycles, no lost or leaked inodes), racing operations
// have one winner, and directory cookies stay stable while entries come and go.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "metadata/namespace.h"
#include "namespace_test_util.h"

namespace needlefs {
namespace {

class NamespaceConcurrencyTest : public NamespaceFixture {
 protected:
  /// What the walk from the root found.
  struct Walk {
    std::set<uint64_t> dirs;                  // including the root
    std::map<uint64_t, uint32_t> file_names;  // non-directory inode -> names found
  };

  /// Walks the tree from the root and checks, for every directory: each entry
  /// is found by Lookup with the same inode and type, names are unique, nlink
  /// is 2 + subdirectories, size is the entry count, and no directory is
  /// reachable twice. Then checks every file's nlink against its names.
  Walk WalkAndCheck() {
    Walk w;
    w.dirs.insert(kRootInode.value);
    std::vector<InodeId> todo = {kRootInode};
    while (!todo.empty()) {
      InodeId dir = todo.back();
      todo.pop_back();
      uint32_t subdirs = 0;
      std::set<std::string> names;
      std::vector<DirEntry> entries = ListAll(dir, 7);
      for (const DirEntry& e : entries) {
        EXPECT_TRUE(names.insert(e.name).second) << "name listed twice: " << e.name;
        auto look = ns_->Lookup(root_, dir, e.name);
        if (!look.ok()) {
          ADD_FAILURE() << "listed entry " << e.name << " in " << dir.value
                        << " not found: " << look.status().ToString();
          continue;
        }
        EXPECT_EQ(look->ino, e.ino) << e.name;
        EXPECT_EQ(look->type, e.type) << e.name;
        if (e.type == FileType::kDirectory) {
          ++subdirs;
          if (!w.dirs.insert(e.ino.value).second) {
            ADD_FAILURE() << "directory " << e.ino.value << " reachable twice (a cycle or a "
                          << "second link), again as " << e.name << " in " << dir.value;
            continue;
          }
          todo.push_back(e.ino);
        } else {
          ++w.file_names[e.ino.value];
        }
      }
      InodeAttr a = Attr(dir);
      EXPECT_EQ(a.nlink, 2 + subdirs) << "directory " << dir.value;
      EXPECT_EQ(a.size, entries.size()) << "directory " << dir.value;
    }
    for (const auto& [ino, n] : w.file_names) {
      EXPECT_EQ(Attr(InodeId(ino)).nlink, n) << "file " << ino;
    }
    return w;
  }

  uint64_t InodesInUse() {
    auto fs = ns_->GetStatFs();
    EXPECT_TRUE(fs.ok()) << fs.status().ToString();
    return fs.ok() ? fs->inodes : 0;
  }
};

INSTANTIATE_TEST_SUITE_P(Engines, NamespaceConcurrencyTest,
                         ::testing::Values(KvEngine::kMemory, KvEngine::kRocksDb), KvEngineName);

/// Errors that racing operations on a shared tree legitimately produce.
bool IsExpectedRaceErrno(int err) {
  return err == ENOENT || err == EEXIST || err == ENOTEMPTY || err == EINVAL || err == EISDIR ||
         err == ENOTDIR;
}

std::string Numbered(const std::string& prefix, int i) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%03d", i);
  return prefix + buf;
}

TEST_P(NamespaceConcurrencyTest, RandomOperationsFromFourThreadsKeepTreeConsistent) {
  std::vector<InodeId> tops;
  for (int i = 0; i < 3; ++i) tops.push_back(MakeDir(kRootInode, "d" + std::to_string(i)).ino);
  const uint64_t inodes_before = InodesInUse();
  const std::vector<std::string> names = {"a", "b", "c", "d", "e"};
  std::mutex mu;
  std::vector<std::string> unexpected;
  std::atomic<int> succeeded{0};

  auto worker = [&](int id) {
    std::mt19937 rng(7919 * (id + 1));
    auto pick = [&rng](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
    auto any_name = [&]() -> const std::string& { return names[pick(names.size())]; };
    // A top directory, or one of the directories below it (so directories
    // also move into and out of each other, and cycles become possible).
    auto any_dir = [&]() {
      InodeId dir = tops[pick(tops.size())];
      for (int depth = 0; depth < 2 && pick(2) == 0; ++depth) {
        auto sub = ns_->Lookup(root_, dir, any_name());
        if (!sub.ok() || sub->type != FileType::kDirectory) break;
        dir = sub->ino;
      }
      return dir;
    };
    for (int i = 0; i < 300; ++i) {
      const InodeId parent = any_dir();
      const std::string& name = any_name();
      const size_t op = pick(100);
      std::string what;
      Status st;
      if (op < 25) {
        what = "create";
        st = ns_->Create(root_, parent, name, 0644, /*exclusive=*/true).status();
      } else if (op < 37) {
        what = "mkdir";
        st = ns_->Mkdir(root_, parent, name, 0755).status();
      } else if (op < 50) {
        what = "unlink";
        st = ns_->Unlink(root_, parent, name);
      } else if (op < 58) {
        what = "rmdir";
        st = ns_->Rmdir(root_, parent, name);
      } else if (op < 66) {
        what = "link";
        auto src = ns_->Lookup(root_, parent, name);
        if (!src.ok()) {
          st = src.status();
        } else if (src->type == FileType::kDirectory) {
          continue;
        } else {
          st = ns_->Link(root_, src->ino, any_dir(), any_name()).status();
        }
      } else {
        what = "rename";
        uint32_t flags = 0;
        if (op < 72) {
          flags = kRenameNoReplace;
        } else if (op < 78) {
          flags = kRenameExchange;
        }
        st = ns_->Rename(root_, parent, name, any_dir(), any_name(), flags);
      }
      if (st.ok()) {
        succeeded.fetch_add(1);
      } else if (!IsExpectedRaceErrno(Errno(st))) {
        std::lock_guard<std::mutex> lock(mu);
        unexpected.push_back(what + " " + name + ": " + st.ToString());
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back(worker, t);
  for (auto& t : threads) t.join();

  for (const std::string& u : unexpected) ADD_FAILURE() << "unexpected error: " << u;
  EXPECT_GT(succeeded.load(), 100) << "the stress barely changed anything";
  Walk w = WalkAndCheck();
  for (InodeId top : tops) EXPECT_EQ(w.dirs.count(top.value), 1u);
  // Every inode in use is reachable: none leaked, none lost in a cycle.
  const uint64_t reachable = w.dirs.size() + w.file_names.size();
  EXPECT_EQ(InodesInUse() - inodes_before, reachable - 4);  // root and the tops
}

TEST_P(NamespaceConcurrencyTest, CrossRenamesOfTwoDirectoriesNeverMakeACycle) {
  for (int round = 0; round < 30; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    InodeAttr x = MakeDir(kRootInode, "x");
    InodeAttr y = MakeDir(kRootInode, "y");
    Status into_y, into_x;
    std::thread t1([&] { into_y = ns_->Rename(root_, kRootInode, "x", y.ino, "x"); });
    std::thread t2([&] { into_x = ns_->Rename(root_, kRootInode, "y", x.ino, "y"); });
    t1.join();
    t2.join();
    ASSERT_FALSE(into_y.ok() && into_x.ok()) << "both renames won: x and y contain each other";
    EXPECT_TRUE(into_y.ok() || into_x.ok()) << "in any serial order the first rename succeeds";
    for (const Status* st : {&into_y, &into_x}) {
      if (!st->ok()) {
        EXPECT_PRED1(IsExpectedRaceErrno, Errno(*st)) << st->ToString();
      }
    }
    Walk w = WalkAndCheck();
    EXPECT_EQ(w.dirs.size(), 3u);
    EXPECT_EQ(Attr(kRootInode).nlink, into_y.ok() || into_x.ok() ? 3u : 4u);
    // Clean up: remove the inner directory, then the outer one.
    if (into_y.ok()) {
      ASSERT_TRUE(ns_->Rmdir(root_, y.ino, "x").ok());
      ASSERT_TRUE(ns_->Rmdir(root_, kRootInode, "y").ok());
    } else if (into_x.ok()) {
      ASSERT_TRUE(ns_->Rmdir(root_, x.ino, "y").ok());
      ASSERT_TRUE(ns_->Rmdir(root_, kRootInode, "x").ok());
    } else {
      ASSERT_TRUE(ns_->Rmdir(root_, kRootInode, "x").ok());
      ASSERT_TRUE(ns_->Rmdir(root_, kRootInode, "y").ok());
    }
  }
}

TEST_P(NamespaceConcurrencyTest, ConcurrentExclusiveCreatesOfOneNameHaveOneWinner) {
  std::atomic<int> won{0};
  std::atomic<int> eexist{0};
  std::vector<uint64_t> got(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        auto r = ns_->Create(root_, kRootInode, Numbered("f", i), 0644, /*exclusive=*/true);
        if (r.ok()) {
          won.fetch_add(1);
        } else if (Errno(r) == EEXIST) {
          eexist.fetch_add(1);
        } else {
          ADD_FAILURE() << r.status().ToString();
        }
      }
      // Non-exclusive creates of one name all get the same inode.
      auto r = ns_->Create(root_, kRootInode, "shared", 0644, /*exclusive=*/false);
      EXPECT_TRUE(r.ok()) << r.status().ToString();
      if (r.ok()) got[t] = r->ino.value;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(won.load(), 25);
  EXPECT_EQ(eexist.load(), 75);
  for (uint64_t ino : got) EXPECT_EQ(ino, got[0]);
  EXPECT_EQ(ListAll(kRootInode).size(), 26u);
  EXPECT_EQ(Attr(InodeId(got[0])).nlink, 1u);
}

TEST_P(NamespaceConcurrencyTest, ConcurrentMkdirsAndRmdirsKeepParentNlinkExact) {
  InodeAttr p = MakeDir(kRootInode, "p");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        const std::string name = Numbered("t" + std::to_string(t) + "-", i);
        Status st = ns_->Mkdir(root_, p.ino, name, 0755).status();
        EXPECT_TRUE(st.ok()) << st.ToString();
        if (i % 2 == 0) {
          st = ns_->Rmdir(root_, p.ino, name);
          EXPECT_TRUE(st.ok()) << st.ToString();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(Attr(p.ino).nlink, 2u + 4 * 20);
  EXPECT_EQ(ListAll(p.ino).size(), 4u * 20);
  WalkAndCheck();
}

TEST_P(NamespaceConcurrencyTest, ReadDirContinuationSurvivesInsertsAndDeletes) {
  InodeAttr d = MakeDir(kRootInode, "d");
  std::set<std::string> original;
  for (int i = 0; i < 200; ++i) {
    original.insert(Numbered("n", i));
    MakeFile(d.ino, Numbered("n", i));
  }
  std::map<std::string, int> seen;
  auto first = ns_->ReadDir(root_, d.ino, 0, 50, false);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_EQ(first->entries.size(), 50u);
  ASSERT_FALSE(first->eof);
  std::vector<std::string> listed;
  for (const DirEntry& e : first->entries) {
    ++seen[e.name];
    listed.push_back(e.name);
  }
  std::vector<std::string> unlisted;
  for (const std::string& name : original) {
    if (seen.count(name) == 0) unlisted.push_back(name);
  }
  ASSERT_EQ(unlisted.size(), 150u);
  // Delete 30 listed names, among them the entry whose cookie we continue
  // from, and 30 names not listed yet, spread over the rest.
  std::set<std::string> deleted;
  for (int i = 0; i < 30; ++i) {
    deleted.insert(listed[20 + i]);
    deleted.insert(unlisted[i * 5]);
  }
  for (const std::string& name : deleted) {
    Status st = ns_->Unlink(root_, d.ino, name);
    ASSERT_TRUE(st.ok()) << name << ": " << st.ToString();
  }
  for (int i = 0; i < 50; ++i) MakeFile(d.ino, Numbered("new", i));

  uint64_t cookie = first->entries.back().cookie;
  bool eof = false;
  for (int pages = 0; !eof && pages < 100; ++pages) {
    auto r = ns_->ReadDir(root_, d.ino, cookie, 50, false);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    eof = r->eof;
    if (!eof) {
      ASSERT_FALSE(r->entries.empty()) << "empty page without eof";
    }
    for (const DirEntry& e : r->entries) {
      EXPECT_GT(e.cookie, cookie);
      cookie = e.cookie;
      ++seen[e.name];
    }
  }
  EXPECT_TRUE(eof);
  for (const std::string& name : original) {
    if (deleted.count(name) == 0) {
      EXPECT_EQ(seen[name], 1) << name << " skipped or repeated";
    }
  }
  for (const auto& [name, n] : seen) EXPECT_LE(n, 1) << name << " listed twice";
}

TEST_P(NamespaceConcurrencyTest, ReadDirWhileAnotherThreadChurnsListsStableEntriesOnce) {
  InodeAttr d = MakeDir(kRootInode, "d");
  std::set<std::string> stable;
  for (int i = 0; i < 150; ++i) {
    stable.insert(Numbered("s", i));
    MakeFile(d.ino, Numbered("s", i));
  }
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    std::mt19937 rng(42);
    while (!stop.load()) {
      const std::string name = Numbered("c", static_cast<int>(rng() % 100));
      if (rng() % 2 == 0) {
        Status st = ns_->Create(root_, d.ino, name, 0644, /*exclusive=*/true).status();
        if (!st.ok()) {
          EXPECT_EQ(Errno(st), EEXIST) << st.ToString();
        }
      } else {
        Status st = ns_->Unlink(root_, d.ino, name);
        if (!st.ok()) {
          EXPECT_EQ(Errno(st), ENOENT) << st.ToString();
        }
      }
    }
  });
  // Reads in a lambda so that a failed ASSERT still stops and joins `churn`.
  auto read_passes = [&] {
    for (int pass = 0; pass < 5; ++pass) {
      SCOPED_TRACE("pass " + std::to_string(pass));
      std::map<std::string, int> seen;
      uint64_t cookie = 0;
      bool eof = false;
      for (int pages = 0; !eof && pages < 1000; ++pages) {
        auto r = ns_->ReadDir(root_, d.ino, cookie, 9, /*plus=*/pass % 2 == 1);
        ASSERT_TRUE(r.ok()) << r.status().ToString();
        eof = r->eof;
        for (const DirEntry& e : r->entries) {
          EXPECT_GT(e.cookie, cookie);
          cookie = e.cookie;
          // A churned name removed and created again is a new entry (new
          // inode, new cookie) that POSIX lets a listing return again; one
          // entry must never come twice.
          ++seen[stable.count(e.name) ? e.name : e.name + "#" + std::to_string(e.ino.value)];
        }
        if (!eof && r->entries.empty()) {
          ADD_FAILURE() << "empty page without eof";
          break;
        }
      }
      EXPECT_TRUE(eof);
      for (const std::string& name : stable) EXPECT_EQ(seen[name], 1) << name;
      for (const auto& [name, n] : seen) EXPECT_LE(n, 1) << name << " listed twice";
    }
  };
  read_passes();
  stop.store(true);
  churn.join();
}

}  // namespace
}  // namespace needlefs
