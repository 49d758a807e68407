// Unlinked-but-open files: sessions with leases keep an unlinked file's data
// until the last holder releases it or its session expires.
#include <gtest/gtest.h>

#include "metadata/fsck.h"
#include "metadata/namespace.h"
#include "namespace_test_util.h"

namespace needlefs {
namespace {

class NamespaceSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = NewMemoryKvStore();
    ns_ = std::move(Namespace::Open(store_.get())).value();
    file_ = ns_->Create(root_, kRootInode, "f", 0644, true)->ino;
    ASSERT_TRUE(ns_->AddChunks(file_, {{Fid(7, 10), 0, 10, 0}}, 10).ok());
  }
  size_t Garbage() { return ns_->PeekGarbage(100)->size(); }
  RequestContext root_ = RequestContext::Root();
  std::unique_ptr<KvStore> store_;
  std::unique_ptr<Namespace> ns_;
  InodeId file_;
};

TEST_F(NamespaceSessionTest, UnlinkedOpenFileKeepsDataUntilLastRelease) {
  auto s1 = ns_->OpenSession("mount-a", 30'000);
  auto s2 = ns_->OpenSession("mount-b", 30'000);
  ASSERT_TRUE(s1.ok() && s2.ok());
  ASSERT_TRUE(ns_->OpenFile(*s1, file_).ok());
  ASSERT_TRUE(ns_->OpenFile(*s2, file_).ok());
  ASSERT_TRUE(ns_->Unlink(root_, kRootInode, "f").ok());
  EXPECT_EQ(ns_->Lookup(root_, kRootInode, "f").status().posix_errno(), ENOENT);
  auto a = ns_->GetAttr(file_);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->nlink, 0u);
  EXPECT_EQ(ns_->ReadChunks(file_, 0, 10)->size(), 1u);  // still readable
  EXPECT_EQ(Garbage(), 0u);
  EXPECT_TRUE(Fsck(*store_, false)->clean());

  ASSERT_TRUE(ns_->ReleaseFile(*s1, file_).ok());
  EXPECT_TRUE(ns_->GetAttr(file_).ok());  // s2 still holds it
  ASSERT_TRUE(ns_->ReleaseFile(*s2, file_).ok());
  EXPECT_EQ(ns_->GetAttr(file_).status().posix_errno(), ENOENT);
  EXPECT_EQ(Garbage(), 1u);
}

TEST_F(NamespaceSessionTest, LinkedFileIsUnaffectedByRelease) {
  auto s = ns_->OpenSession("m", 30'000);
  ASSERT_TRUE(ns_->OpenFile(*s, file_).ok());
  ASSERT_TRUE(ns_->ReleaseFile(*s, file_).ok());
  EXPECT_EQ(ns_->GetAttr(file_)->nlink, 1u);
  EXPECT_EQ(Garbage(), 0u);
}

TEST_F(NamespaceSessionTest, ExpiredSessionOfACrashedClientReleasesItsFiles) {
  auto s = ns_->OpenSession("crashed", 1);
  ASSERT_TRUE(ns_->OpenFile(*s, file_).ok());
  ASSERT_TRUE(ns_->Unlink(root_, kRootInode, "f").ok());
  EXPECT_EQ(*ns_->ExpireSessions(0), 0u);  // nothing expired at time 0
  EXPECT_TRUE(ns_->GetAttr(file_).ok());
  EXPECT_EQ(*ns_->ExpireSessions(INT64_MAX), 1u);
  EXPECT_EQ(ns_->GetAttr(file_).status().posix_errno(), ENOENT);
  EXPECT_EQ(Garbage(), 1u);
  EXPECT_TRUE(ns_->RenewSession(*s, 1000).IsNotFound());
  EXPECT_TRUE(ns_->OpenFile(*s, file_).IsNotFound() ||
              ns_->OpenFile(*s, file_).posix_errno() == ENOENT);
}

TEST_F(NamespaceSessionTest, CloseSessionReleasesAndRenameOverOpenFileKeepsIt) {
  auto s = ns_->OpenSession("m", 30'000);
  ASSERT_TRUE(ns_->OpenFile(*s, file_).ok());
  // Replacing the open file by rename drops its last link: it stays open.
  ASSERT_TRUE(ns_->Create(root_, kRootInode, "g", 0644, true).ok());
  ASSERT_TRUE(ns_->Rename(root_, kRootInode, "g", kRootInode, "f").ok());
  EXPECT_TRUE(ns_->GetAttr(file_).ok());
  ASSERT_TRUE(ns_->CloseSession(*s).ok());
  EXPECT_EQ(ns_->GetAttr(file_).status().posix_errno(), ENOENT);
  EXPECT_TRUE(Fsck(*store_, false)->clean());
}

}  // namespace
}  // namespace needlefs
