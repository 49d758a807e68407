// Integration tests of `needlefs meta` (src/metadata/meta_service.cc): a real
// server process on loopback driven through the real MetaClient.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <functional>
#include <sstream>
#include <thread>

#include "client/meta_client.h"
#include "common/file_id.h"
#include "common/frame_rpc.h"
#include "common/http.h"
#include "integration/meta_fixture.h"
#include "integration/process.h"
#include "meta.grpc.pb.h"

namespace needlefs::integration {
namespace {

using namespace std::chrono_literals;

/// The file id `s` names (the test's own constants: they parse).
FileId ParseFid(std::string_view s) { return FileId::Parse(s).value(); }

class MetaServerTest : public MetaFixture {
 protected:
  /// kill -9 of meta while 8 threads create files (half synced, half not);
  /// with `shared`, the threads share one client whose calls go out in
  /// Batch calls. Every acknowledged create must be there after the
  /// restart, and fsck must be clean.
  void CreateStormThenKill(bool shared);
};

TEST_F(MetaServerTest, OperationsAndErrnosCrossTheWire) {
  auto dir = client_->Mkdir(root_, kRootInode, "docs", 0755);
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  auto f = client_->Create(root_, dir->ino, "a.txt", 0644, true);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(client_->Create(root_, dir->ino, "a.txt", 0644, true).status().posix_errno(), EEXIST);
  EXPECT_EQ(client_->Lookup(root_, dir->ino, "nope").status().posix_errno(), ENOENT);
  EXPECT_EQ(client_->Rmdir(root_, kRootInode, "docs").posix_errno(), ENOTEMPTY);
  ASSERT_TRUE(client_->AddChunks(f->ino, {{ParseFid("3,01637037d6"), 0, 5, 0}}, 5, true).ok());
  auto chunks = client_->ReadChunks(f->ino, 0, 100);
  ASSERT_TRUE(chunks.ok());
  ASSERT_EQ(chunks->size(), 1u);
  EXPECT_EQ((*chunks)[0].file_id.ToString(), "3,01637037d6");
  // GetAttr can bring the whole chunk list along (one round trip on open).
  std::optional<std::vector<Chunk>> with;
  auto wa = client_->GetAttrWithChunks(f->ino, 64, &with);
  ASSERT_TRUE(wa.ok()) << wa.status().ToString();
  EXPECT_EQ(wa->size, 5u);
  ASSERT_TRUE(with.has_value());
  ASSERT_EQ(with->size(), 1u);
  EXPECT_EQ((*with)[0].file_id.ToString(), "3,01637037d6");
  // An unsynced commit is visible at once; Sync then makes it durable.
  ASSERT_TRUE(client_->AddChunks(f->ino, {{ParseFid("3,02637037d6"), 5, 5, 0}}, 10, false).ok());
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

/// Reads `want` changes (after the first message, a reset) from a Subscribe
/// stream of `stub`, `batched` or not. Returns the seqs in arrival order
/// and sets *messages (stream messages that carried them) and *names.
std::vector<uint64_t> ReadChanges(meta::MetaService::Stub* stub, bool batched, size_t want,
                                  int* messages, std::vector<std::string>* names,
                                  const std::function<void()>& after_reset) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 20s);
  meta::SubscribeRequest req;
  req.set_batched(batched);
  auto reader = stub->Subscribe(&ctx, req);
  std::vector<uint64_t> seqs;
  meta::ChangeEventMessage msg;
  if (!reader->Read(&msg) || !msg.reset()) return seqs;  // a new subscriber starts with a reset
  after_reset();
  *messages = 0;
  while (seqs.size() < want && reader->Read(&msg)) {
    ++*messages;
    if (msg.changes_size() == 0) {
      seqs.push_back(msg.seq());
      names->push_back(msg.name());
      continue;
    }
    EXPECT_TRUE(batched) << "a subscriber that did not ask got a batch";
    EXPECT_EQ(msg.seq(), msg.changes(msg.changes_size() - 1).seq());
    for (const auto& c : msg.changes()) {
      seqs.push_back(c.seq());
      names->push_back(c.name());
    }
  }
  ctx.TryCancel();
  return seqs;
}

TEST_F(MetaServerTest, ABatchedSubscriberGetsEveryChangeInOrderInFewerMessages) {
  auto stub =
      meta::MetaService::NewStub(grpc::CreateChannel(addr_, grpc::InsecureChannelCredentials()));
  // 40 creates, each two changes (the entry and the directory's attributes),
  // made back to back: the server gathers them into batches.
  auto make = [&](const std::string& prefix) {
    return [this, prefix] {
      for (int i = 0; i < 40; ++i) {
        ASSERT_TRUE(
            client_->Create(root_, kRootInode, prefix + std::to_string(i), 0644, false).ok());
      }
    };
  };
  for (bool batched : {true, false}) {
    SCOPED_TRACE(batched ? "batched" : "one change per message");
    int messages = 0;
    std::vector<std::string> names;
    const std::string prefix = batched ? "b" : "u";
    auto seqs = ReadChanges(stub.get(), batched, 80, &messages, &names, make(prefix));
    ASSERT_GE(seqs.size(), 80u);
    for (size_t i = 1; i < seqs.size(); ++i) {
      ASSERT_EQ(seqs[i], seqs[i - 1] + 1) << "a change missing or out of order at " << i;
    }
    // Every created name arrives, in creation order.
    std::vector<std::string> created;
    for (const auto& n : names) {
      if (!n.empty() && n[0] == prefix[0]) created.push_back(n);
    }
    ASSERT_EQ(created.size(), 40u);
    for (int i = 0; i < 40; ++i) EXPECT_EQ(created[i], prefix + std::to_string(i));
    if (batched) {
      EXPECT_LT(messages, 80) << "no change shared a message";
    } else {
      EXPECT_EQ(static_cast<size_t>(messages), seqs.size());
    }
  }
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

/// The value of the counter `name` on the meta server's /metrics (-1 if absent).
double MetricValue(uint16_t http_port, const std::string& name) {
  auto r = HttpClient("127.0.0.1", http_port).Request("GET", "/metrics");
  if (!r.ok()) return -1;
  std::istringstream in(r->body);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

TEST_F(MetaServerTest, ConcurrentCallsShareBatchCallsEachWithItsOwnResult) {
  MetaClientOptions options;
  options.max_in_flight = 1;  // every call beyond one waits and is batched
  auto shared = MetaClient::Create(addr_, options);
  ASSERT_TRUE(shared.ok());
  MetaClient& c = **shared;
  // More threads than one Batch call takes (64): the queue also overflows.
  constexpr int kThreads = 80, kFiles = 20;
  std::atomic<int> wrong{0};
  auto expect = [&](bool good, const char* what, int t, int i) {
    if (!good) {
      ++wrong;
      ADD_FAILURE() << what << " (thread " << t << ", file " << i << ")";
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      RequestContext ctx = root_;
      ctx.sync = t % 2 == 0;  // batches mix synced and unsynced changes
      auto d = c.Mkdir(ctx, kRootInode, "d" + std::to_string(t), 0755);
      if (!d.ok()) return expect(false, "mkdir", t, -1);
      for (int i = 0; i < kFiles; ++i) {
        const std::string f = "f" + std::to_string(i), g = "g" + std::to_string(i);
        auto made = c.Create(ctx, d->ino, f, 0600 + t, true);
        expect(made.ok() && made->mode == static_cast<uint32_t>(0600 + t), "create", t, i);
        if (!made.ok()) continue;
        expect(c.Create(ctx, d->ino, f, 0644, true).status().posix_errno() == EEXIST,
               "exclusive create of an existing name is EEXIST", t, i);
        bool created = true;
        auto again = c.Create(ctx, d->ino, f, 0644, false, &created);
        expect(again.ok() && again->ino == made->ino && !created,
               "non-exclusive create returns the existing file, created false", t, i);
        std::optional<std::vector<Chunk>> chunks;
        auto with = c.GetAttrWithChunks(made->ino, 64, &chunks);
        expect(with.ok() && with->ino == made->ino && chunks.has_value() && chunks->empty(),
               "getattr with the (empty) chunk list", t, i);
        SetAttrRequest sa;
        sa.mode = 0640;
        auto set = c.SetAttr(ctx, made->ino, sa);
        expect(set.ok() && set->mode == 0640, "setattr", t, i);
        auto linked = c.Link(ctx, made->ino, d->ino, "h" + std::to_string(i));
        expect(linked.ok() && linked->nlink == 2, "link", t, i);
        expect(c.Unlink(ctx, d->ino, "h" + std::to_string(i)).ok(), "unlink of the link", t, i);
        auto found = c.Lookup(ctx, d->ino, f);
        expect(found.ok() && found->ino == made->ino, "lookup finds this thread's file", t, i);
        expect(c.GetAttr(InodeId(made->ino.value + (uint64_t{1} << 40))).status().posix_errno() ==
                   ENOENT,
               "getattr of no inode is ENOENT", t, i);
        expect(c.Rename(ctx, d->ino, f, d->ino, g, 0).ok(), "rename", t, i);
        expect(c.Unlink(ctx, d->ino, g).ok(), "unlink", t, i);
        expect(c.Unlink(ctx, d->ino, g).posix_errno() == ENOENT, "second unlink is ENOENT", t, i);
      }
      auto sym = c.Symlink(ctx, d->ino, "s", "target-" + std::to_string(t));
      expect(sym.ok() && sym->type == FileType::kSymlink, "symlink", t, -1);
      auto fifo = c.Mknod(ctx, d->ino, "p", FileType::kFifo, 0600, 0);
      expect(fifo.ok() && fifo->type == FileType::kFifo, "mknod", t, -1);
      expect(c.Unlink(ctx, d->ino, "s").ok() && c.Unlink(ctx, d->ino, "p").ok(), "unlinks", t, -1);
      expect(c.Rmdir(ctx, kRootInode, "d" + std::to_string(t)).ok(), "rmdir", t, -1);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  // The calls did go out together: more ops than Batch calls.
  const double calls = MetricValue(http_port_, "needlefs_meta_batch_calls_total");
  const double ops = MetricValue(http_port_, "needlefs_meta_batch_ops_total");
  EXPECT_GT(calls, 0);
  EXPECT_GT(ops, 1.5 * calls) << calls << " Batch calls carried " << ops << " ops";
}

TEST(MetaClientTest, AServerWithoutBatchGetsEveryCallAlone) {
  // A meta of an older version: GetAttr only, Batch is UNIMPLEMENTED.
  class OldMeta final : public meta::MetaService::Service {
   public:
    std::atomic<int> calls{0};
    grpc::Status GetAttr(grpc::ServerContext*, const meta::GetAttrRequest* req,
                         meta::GetAttrResponse* resp) override {
      ++calls;
      std::this_thread::sleep_for(2ms);  // keep calls in flight, so others queue
      resp->mutable_attr()->set_ino(req->ino());
      return grpc::Status::OK;
    }
  } old;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&old);
  auto server = builder.BuildAndStart();
  ASSERT_TRUE(server != nullptr);
  ASSERT_NE(port, 0);
  MetaClientOptions options;
  options.max_in_flight = 1;
  auto c = MetaClient::Create("127.0.0.1:" + std::to_string(port), options);
  ASSERT_TRUE(c.ok());
  constexpr int kThreads = 8, kCalls = 20;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        const uint64_t ino = 1000 + t * 100 + i;
        auto a = (*c)->GetAttr(InodeId(ino));
        if (!a.ok() || a->ino.value != ino) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(old.calls.load(), kThreads * kCalls);
  server->Shutdown();
}

TEST(MetaClientTest, AFramePortThatCannotBeReachedCostsOneTryNotEveryCall) {
  // A meta (or a port mapping) whose announced frame port is closed.
  int closed_port = 0;
  {
    auto probe = FrameRpcServer::Start(
        "127.0.0.1", 0,
        [](std::string_view, std::string_view, std::string*) { return FrameRpcResult{}; });
    ASSERT_TRUE(probe.ok());
    closed_port = (*probe)->port();
  }
  class DeadPortMeta final : public meta::MetaService::Service {
   public:
    explicit DeadPortMeta(int port) : port_(port) {}
    std::atomic<int> asked{0}, calls{0};
    grpc::Status ServerInfo(grpc::ServerContext*, const meta::ServerInfoRequest*,
                            meta::ServerInfoResponse* resp) override {
      ++asked;
      resp->set_frame_port(port_);
      return grpc::Status::OK;
    }
    grpc::Status GetAttr(grpc::ServerContext*, const meta::GetAttrRequest* req,
                         meta::GetAttrResponse* resp) override {
      ++calls;
      resp->mutable_attr()->set_ino(req->ino());
      return grpc::Status::OK;
    }

   private:
    int port_;
  } meta_svc(closed_port);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&meta_svc);
  auto server = builder.BuildAndStart();
  ASSERT_TRUE(server != nullptr);
  auto c = MetaClient::Create("127.0.0.1:" + std::to_string(port), 10'000);
  ASSERT_TRUE(c.ok());
  const auto t0 = std::chrono::steady_clock::now();
  for (uint64_t ino = 1; ino <= 50; ++ino) {
    auto a = (*c)->GetAttr(InodeId(ino));
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_EQ(a->ino.value, ino);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_EQ(meta_svc.asked.load(), 1) << "the port is asked for again only after a while";
  EXPECT_EQ(meta_svc.calls.load(), 50);
  server->Shutdown();
}

TEST_F(MetaServerTest, ListensOnAHostName) {
  process_.reset();
  extra_args_ = {"-ip", "localhost"};
  ASSERT_NO_FATAL_FAILURE(Start());
  auto d = client_->Mkdir(root_, kRootInode, "by-name", 0755);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
}

TEST_F(MetaServerTest, FrameRpcServesTheSameCallsAndRefusesBadOnes) {
  auto stub =
      meta::MetaService::NewStub(grpc::CreateChannel(addr_, grpc::InsecureChannelCredentials()));
  meta::ServerInfoResponse info;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub->ServerInfo(&ctx, meta::ServerInfoRequest(), &info).ok());
  }
  ASSERT_NE(info.frame_port(), 0u);
  FrameRpcClient frame("127.0.0.1", static_cast<uint16_t>(info.frame_port()));
  std::string reply;
  // A real call: GetAttr of the root.
  meta::GetAttrRequest ga;
  ga.set_ino(kRootInode.value);
  auto r = frame.Call("GetAttr", ga.SerializeAsString(), &reply, 5000);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->code, 0) << r->message;
  meta::GetAttrResponse gar;
  ASSERT_TRUE(gar.ParseFromString(reply));
  EXPECT_EQ(gar.attr().ino(), kRootInode.value);
  // Bytes that are no request, and a method that does not exist.
  r = frame.Call("Mkdir", std::string("\xff\xff\xff", 3), &reply, 5000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->code, grpc::StatusCode::INVALID_ARGUMENT);
  r = frame.Call("Subscribe", "", &reply, 5000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->code, grpc::StatusCode::UNIMPLEMENTED);
  // A client over gRPC only and the default one (frame RPC) see each
  // other's changes at once, errnos included.
  MetaClientOptions grpc_only;
  grpc_only.frame_rpc = false;
  auto g = MetaClient::Create(addr_, grpc_only);
  ASSERT_TRUE(g.ok());
  auto d = client_->Mkdir(root_, kRootInode, "by-frame", 0755);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  auto seen = (*g)->Lookup(root_, kRootInode, "by-frame");
  ASSERT_TRUE(seen.ok());
  EXPECT_EQ(seen->ino, d->ino);
  EXPECT_EQ((*g)->Mkdir(root_, kRootInode, "by-frame", 0755).status().posix_errno(), EEXIST);
  ASSERT_TRUE((*g)->Rmdir(root_, kRootInode, "by-frame").ok());
  EXPECT_EQ(client_->Lookup(root_, kRootInode, "by-frame").status().posix_errno(), ENOENT);
}

TEST_F(MetaServerTest, WithoutAFramePortClientsUseGrpc) {
  process_.reset();
  extra_args_ = {"-framePort", "-1"};
  ASSERT_NO_FATAL_FAILURE(Start());
  auto stub =
      meta::MetaService::NewStub(grpc::CreateChannel(addr_, grpc::InsecureChannelCredentials()));
  meta::ServerInfoResponse info;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub->ServerInfo(&ctx, meta::ServerInfoRequest(), &info).ok());
  EXPECT_EQ(info.frame_port(), 0u);
  auto d = client_->Mkdir(root_, kRootInode, "by-grpc", 0755);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(client_->Lookup(root_, kRootInode, "by-grpc")->ino, d->ino);
}

TEST_F(MetaServerTest, MalformedBatchGetsAClearError) {
  auto stub =
      meta::MetaService::NewStub(grpc::CreateChannel(addr_, grpc::InsecureChannelCredentials()));
  meta::BatchRequest req;
  req.add_ops();  // no request in it
  req.add_ops()->mutable_get_attr()->set_ino(kRootInode.value);
  meta::BatchResponse resp;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub->Batch(&ctx, req, &resp).ok());
  }
  ASSERT_EQ(resp.results_size(), 2);
  EXPECT_EQ(resp.results(0).code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(resp.results(1).code(), 0);
  EXPECT_EQ(resp.results(1).get_attr().attr().ino(), kRootInode.value);
  // BatchRead takes lookups and stats only: a change in it is refused, alone.
  meta::BatchRequest reads;
  auto* lookup = reads.add_ops()->mutable_lookup();
  lookup->set_parent(kRootInode.value);
  lookup->set_name("nope");
  auto* mk = reads.add_ops()->mutable_mkdir();
  mk->set_parent(kRootInode.value);
  mk->set_name("sneaky");
  mk->set_mode(0755);
  reads.add_ops()->mutable_get_attr()->set_ino(kRootInode.value);
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub->BatchRead(&ctx, reads, &resp).ok());
  }
  ASSERT_EQ(resp.results_size(), 3);
  EXPECT_EQ(resp.results(0).code(), 0);
  EXPECT_EQ(resp.results(0).lookup().errno_value(), ENOENT);
  EXPECT_EQ(resp.results(1).code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(resp.results(2).get_attr().attr().ino(), kRootInode.value);
  EXPECT_EQ(client_->Lookup(root_, kRootInode, "sneaky").status().posix_errno(), ENOENT);
  // Too many ops: the whole call is refused, nothing runs.
  meta::BatchRequest big;
  for (int i = 0; i < 1025; ++i) {
    auto* m = big.add_ops()->mutable_mkdir();
    m->set_parent(kRootInode.value);
    m->set_name("m" + std::to_string(i));
    m->set_mode(0755);
  }
  grpc::ClientContext ctx;
  EXPECT_EQ(stub->Batch(&ctx, big, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(client_->Lookup(root_, kRootInode, "m0").status().posix_errno(), ENOENT);
}

TEST_F(MetaServerTest, AChunkWithAMalformedFileIdIsEinval) {
  auto f = client_->Create(root_, kRootInode, "f", 0644, true);
  ASSERT_TRUE(f.ok());
  auto stub =
      meta::MetaService::NewStub(grpc::CreateChannel(addr_, grpc::InsecureChannelCredentials()));
  for (const char* bad : {"", "b1", "3,xyz", "3,01637037d6,"}) {
    SCOPED_TRACE(bad);
    meta::AddChunksRequest req;
    req.set_ino(f->ino.value);
    auto* c = req.add_chunks();
    c->set_file_id(bad);
    c->set_size(5);
    req.set_min_size(5);
    meta::AddChunksResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub->AddChunks(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.errno_value(), EINVAL);
    EXPECT_NE(resp.error().find("file id"), std::string::npos) << resp.error();
  }
  EXPECT_EQ(client_->GetAttr(f->ino)->size, 0u) << "a refused chunk changed the file";
}

TEST_F(MetaServerTest, KillDuringCreateStormLosesNoAcknowledgedOperation) {
  CreateStormThenKill(/*shared=*/false);
}

TEST_F(MetaServerTest, KillDuringBatchedCreateStormLosesNoAcknowledgedOperation) {
  CreateStormThenKill(/*shared=*/true);
}

void MetaServerTest::CreateStormThenKill(bool shared) {
  std::vector<InodeId> dirs;
  for (int d = 0; d < 4; ++d) {
    auto r = client_->Mkdir(root_, kRootInode, "d" + std::to_string(d), 0755);
    ASSERT_TRUE(r.ok());
    dirs.push_back(r->ino);
  }
  MetaClientOptions shared_options;
  shared_options.timeout_ms = 5'000;
  shared_options.max_in_flight = 1;
  auto made = MetaClient::Create(addr_, shared_options);
  ASSERT_TRUE(made.ok());
  std::unique_ptr<MetaClient> shared_client = std::move(made).value();
  std::atomic<bool> stop{false};
  std::vector<std::vector<std::string>> acked(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      MetaClient* c = shared_client.get();
      std::unique_ptr<MetaClient> own;
      if (!shared) {
        auto made = MetaClient::Create(addr_, 5'000);
        if (!made.ok()) return;
        own = std::move(made).value();
        c = own.get();
      }
      // Half the clients commit unsynced (as a FUSE mount does): written to
      // the WAL, so they too must survive kill -9 of the process.
      RequestContext ctx = root_;
      ctx.sync = t % 2 == 0;
      for (int i = 0; i < 50'000 && !stop; ++i) {
        std::string name = "t" + std::to_string(t) + "-" + std::to_string(i);
        if (c->Create(ctx, dirs[static_cast<size_t>(t % 4)], name, 0644, true).ok()) {
          acked[static_cast<size_t>(t)].push_back(name);
        }
      }
    });
  }
  std::this_thread::sleep_for(1500ms);
  if (shared) {
    const double calls = MetricValue(http_port_, "needlefs_meta_batch_calls_total");
    EXPECT_GT(MetricValue(http_port_, "needlefs_meta_batch_ops_total"), 1.5 * calls)
        << "the shared client's creates did not go out batched";
  }
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
  ASSERT_TRUE(client_->AddChunks(f->ino, {{ParseFid(fid), 0, 9, 0}}, 9, true).ok());
  ASSERT_TRUE(client_->Unlink(root_, kRootInode, "doomed").ok());
  int status = 200;
  for (int i = 0; i < 100 && status == 200; ++i) {  // the collector runs every 2 s
    std::this_thread::sleep_for(100ms);
    auto get = http.Request("GET", "/" + fid);
    ASSERT_TRUE(get.ok());
    status = get->status;
  }
  EXPECT_EQ(status, 404) << "the blob of the deleted file is still there";
  // The collector deletes the blob, then takes it off its queue: the 404
  // can be seen a moment before the queue is empty.
  bool empty = false;
  for (int i = 0; i < 50 && !empty; ++i) {
    auto queue = client_->PeekGarbage(10);
    ASSERT_TRUE(queue.ok());
    empty = queue->empty();
    if (!empty) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(empty) << "the deleted blob stayed queued for collection";
}

}  // namespace
}  // namespace needlefs::integration
