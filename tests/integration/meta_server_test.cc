// Integration tests of `needlefs meta` (src/metadata/meta_service.cc): a real
// server process on loopback driven through the real MetaClient.
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <thread>

#include "client/meta_client.h"
#include "common/http.h"
#include "integration/meta_fixture.h"
#include "integration/process.h"

namespace needlefs::integration {
namespace {

using namespace std::chrono_literals;

using MetaServerTest = MetaFixture;

TEST_F(MetaServerTest, OperationsAndErrnosCrossTheWire) {
  auto dir = client_->Mkdir(root_, kRootInode, "docs", 0755);
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  auto f = client_->Create(root_, dir->ino, "a.txt", 0644, true);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(client_->Create(root_, dir->ino, "a.txt", 0644, true).status().posix_errno(), EEXIST);
  EXPECT_EQ(client_->Lookup(root_, dir->ino, "nope").status().posix_errno(), ENOENT);
  EXPECT_EQ(client_->Rmdir(root_, kRootInode, "docs").posix_errno(), ENOTEMPTY);
  ASSERT_TRUE(client_->AddChunks(f->ino, {{"3,01637037d6", 0, 5, 0}}, 5, true).ok());
  auto chunks = client_->ReadChunks(f->ino, 0, 100);
  ASSERT_TRUE(chunks.ok());
  ASSERT_EQ(chunks->size(), 1u);
  EXPECT_EQ((*chunks)[0].file_id, "3,01637037d6");
  // GetAttr can bring the whole chunk list along (one round trip on open).
  std::optional<std::vector<Chunk>> with;
  auto wa = client_->GetAttrWithChunks(f->ino, 64, &with);
  ASSERT_TRUE(wa.ok()) << wa.status().ToString();
  EXPECT_EQ(wa->size, 5u);
  ASSERT_TRUE(with.has_value());
  ASSERT_EQ(with->size(), 1u);
  EXPECT_EQ((*with)[0].file_id, "3,01637037d6");
  // An unsynced commit is visible at once; Sync then makes it durable.
  ASSERT_TRUE(client_->AddChunks(f->ino, {{"3,02637037d6", 5, 5, 0}}, 10, false).ok());
  EXPECT_EQ(client_->GetAttr(f->ino)->size, 10u);
  EXPECT_TRUE(client_->Sync().ok());
  EXPECT_TRUE(client_->GetAttrWithChunks(f->ino, 1, &with).ok());
  EXPECT_FALSE(with.has_value()) << "more chunks than asked for: no list";
  EXPECT_TRUE(client_->GetAttrWithChunks(dir->ino, 64, &with).ok());
  EXPECT_FALSE(with.has_value()) << "a directory has no chunks";
  EXPECT_EQ(client_->GetAttrWithChunks(InodeId(987654), 64, &with).status().posix_errno(), ENOENT);
  ASSERT_TRUE(client_->SetXattr(root_, f->ino, "user.tag", std::string("a\0b", 3), 0).ok());
  EXPECT_EQ(*client_->GetXattr(root_, f->ino, "user.tag"), std::string("a\0b", 3));
  // A name with bytes that are not UTF-8 is a valid POSIX name.
  std::string odd = "caf\xe9";
  ASSERT_TRUE(client_->Rename(root_, dir->ino, "a.txt", kRootInode, odd, 0).ok());
  auto listing = client_->ReadDir(root_, kRootInode, 0, 100, true);
  ASSERT_TRUE(listing.ok());
  bool found = false;
  for (const auto& e : listing->entries) {
    if (e.name == odd) {
      found = true;
      ASSERT_TRUE(e.attr.has_value());
      EXPECT_EQ(e.attr->size, 10u);
    }
  }
  EXPECT_TRUE(found);
  auto user = RequestContext{1000, 1000, {}};
  EXPECT_EQ(client_->Create(user, kRootInode, "x", 0644, true).status().posix_errno(), EACCES);
}

TEST_F(MetaServerTest, SubscribersSeeChanges) {
  std::atomic<bool> saw{false};
  std::thread sub([&] {
    client_
        ->Subscribe(0,
                    [&](uint64_t, const ChangeEvent& e, bool reset) {
                      if (!reset && e.kind == ChangeEvent::Kind::kEntry && e.name == "watched")
                        saw = true;
                      return !saw.load();
                    })
        .IgnoreError();
  });
  std::this_thread::sleep_for(300ms);  // let the stream start
  ASSERT_TRUE(client_->Create(root_, kRootInode, "watched", 0644, true).ok());
  for (int i = 0; i < 100 && !saw; ++i) std::this_thread::sleep_for(50ms);
  client_->CancelSubscribe();
  sub.join();
  EXPECT_TRUE(saw.load());
}

TEST_F(MetaServerTest, UnlinkedFileLivesWhileASessionHoldsIt) {
  auto f = client_->Create(root_, kRootInode, "tmp", 0600, true);
  ASSERT_TRUE(f.ok());
  auto s = client_->OpenSession("test-mount", 60'000);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_TRUE(client_->OpenFile(*s, f->ino).ok());
  ASSERT_TRUE(client_->Unlink(root_, kRootInode, "tmp").ok());
  EXPECT_TRUE(client_->GetAttr(f->ino).ok());
  ASSERT_TRUE(client_->ReleaseFile(*s, f->ino).ok());
  EXPECT_EQ(client_->GetAttr(f->ino).status().posix_errno(), ENOENT);
}

TEST_F(MetaServerTest, KillDuringCreateStormLosesNoAcknowledgedOperation) {
  std::vector<InodeId> dirs;
  for (int d = 0; d < 4; ++d) {
    auto r = client_->Mkdir(root_, kRootInode, "d" + std::to_string(d), 0755);
    ASSERT_TRUE(r.ok());
    dirs.push_back(r->ino);
  }
  std::atomic<bool> stop{false};
  std::vector<std::vector<std::string>> acked(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      auto c = MetaClient::Create(addr_, 5'000);
      if (!c.ok()) return;
      // Half the clients commit unsynced (as a FUSE mount does): written to
      // the WAL, so they too must survive kill -9 of the process.
      RequestContext ctx = root_;
      ctx.sync = t % 2 == 0;
      for (int i = 0; i < 50'000 && !stop; ++i) {
        std::string name = "t" + std::to_string(t) + "-" + std::to_string(i);
        if ((*c)->Create(ctx, dirs[static_cast<size_t>(t % 4)], name, 0644, true).ok()) {
          acked[static_cast<size_t>(t)].push_back(name);
        }
      }
    });
  }
  std::this_thread::sleep_for(1500ms);
  ASSERT_TRUE(process_->Kill(SIGKILL));
  process_->Wait();
  stop = true;
  for (auto& th : threads) th.join();
  size_t total = 0;
  for (const auto& a : acked) total += a.size();
  ASSERT_GT(total, 100u) << "too few creates were acknowledged before the kill";

  ASSERT_NO_FATAL_FAILURE(Start());
  size_t lost = 0;
  for (int t = 0; t < 8; ++t) {
    for (const auto& name : acked[static_cast<size_t>(t)]) {
      if (!client_->Lookup(root_, dirs[static_cast<size_t>(t % 4)], name).ok()) ++lost;
    }
  }
  EXPECT_EQ(lost, 0u) << "of " << total << " acknowledged creates";
  // New creates after the restart never reuse a live inode number.
  auto fresh = client_->Create(root_, kRootInode, "after-restart", 0644, true);
  ASSERT_TRUE(fresh.ok());
  for (InodeId d : dirs) EXPECT_NE(fresh->ino, d);

  ASSERT_TRUE(process_->Kill(SIGTERM));
  ASSERT_EQ(process_->Wait(), 0) << process_->LogTail();
  std::string out;
  int rc = RunCommand(ShellQuote(NeedlefsBinary()) + " admin fsck -dir " +
                          ShellQuote(tmp_.path() + "/meta") + " 2>&1",
                      &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find(" 0 problems"), std::string::npos) << out;
}

TEST_F(MetaServerTest, DeletedFilesBlobsAreRemovedFromVolumeServers) {
  std::string error;
  auto volume = StartVolumeServer(tmp_.path() + "/vol", tmp_.path(), {}, &error);
  ASSERT_TRUE(volume.has_value()) << error;
  const std::string vaddr = "127.0.0.1:" + std::to_string(volume->http_port);
  ASSERT_TRUE(process_->Kill(SIGTERM));
  process_->Wait();
  extra_args_ = {"-volumeServers", vaddr};
  ASSERT_NO_FATAL_FAILURE(Start());

  HttpClient http("127.0.0.1", volume->http_port);
  const std::string fid = "1,0a1b2c3d4e";
  auto put = http.Request("PUT", "/" + fid, "file data");
  ASSERT_TRUE(put.ok() && put->status == 201);
  auto f = client_->Create(root_, kRootInode, "doomed", 0644, true);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(client_->AddChunks(f->ino, {{fid, 0, 9, 0}}, 9, true).ok());
  ASSERT_TRUE(client_->Unlink(root_, kRootInode, "doomed").ok());
  int status = 200;
  for (int i = 0; i < 100 && status == 200; ++i) {  // the collector runs every 2 s
    std::this_thread::sleep_for(100ms);
    auto get = http.Request("GET", "/" + fid);
    ASSERT_TRUE(get.ok());
    status = get->status;
  }
  EXPECT_EQ(status, 404) << "the blob of the deleted file is still there";
  auto queue = client_->PeekGarbage(10);
  ASSERT_TRUE(queue.ok());
  EXPECT_TRUE(queue->empty());
}

}  // namespace
}  // namespace needlefs::integration
