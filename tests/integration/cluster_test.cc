// The cluster of issue 3's test plan: 1 master and 4 volume servers over two
// data centers and two racks, all real processes on loopback:
//
//   dc1/r1: a, b     dc1/r2: c     dc2/r1: d
//
// Placement of every code, a volume server killed in the middle of a write
// load, vacuum through the master, and a restarted master.
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <mutex>

#include "client/master_client.h"
#include "common/file_id.h"
#include "integration/cluster_fixture.h"
#include "volume_rpc/volume_admin_client.h"

namespace needlefs::integration {
namespace {

class ClusterTest : public ClusterFixture {
 protected:
  void StartFour(int grace_ms = -1, uint16_t port = 0, uint16_t grpc_port = 0) {
    StartMaster(grace_ms, "master", port, grpc_port);
    a_ = StartVolume("a", "dc1", "r1", 8);
    b_ = StartVolume("b", "dc1", "r1", 8);
    c_ = StartVolume("c", "dc1", "r2", 8);
    d_ = StartVolume("d", "dc2", "r1", 8);
    ASSERT_NO_FATAL_FAILURE(WaitForNodes(4));
  }
  std::string Url(const Proc& p) const { return "127.0.0.1:" + std::to_string(p.http); }
  /// The tails of every process's log, for failure messages.
  std::string Logs() const {
    std::string out;
    for (const Proc* p : {&master_, &a_, &b_, &c_, &d_}) {
      if (p->process) out += "--- port " + std::to_string(p->http) + ":\n" + p->process->LogTail();
    }
    return out;
  }
  BlobClientOptions ClientOptions() const {
    BlobClientOptions o;
    o.master = "127.0.0.1:" + std::to_string(master_.http);
    return o;
  }
  /// Bytes in the files under `dir`.
  static uint64_t DiskBytes(const std::string& dir) {
    uint64_t total = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
      if (e.is_regular_file()) total += e.file_size();
    }
    return total;
  }
  Proc a_, b_, c_, d_;
};

TEST_F(ClusterTest, EveryPlacementCodeLandsWhereItSaysOrIsRefusedWithTheReason) {
  ASSERT_NO_FATAL_FAILURE(StartFour());
  struct Site {
    std::string dc, rack, url;
  };
  auto sites_of = [&](const std::string& code, int* status, std::string* error) {
    std::vector<Site> out;
    auto as = Get("/dir/assign?replication=" + code, status);
    if (*status != 200) {
      *error = as.value("error", "");
      return out;
    }
    const std::string fid = as["fid"];
    auto lk = Get("/dir/lookup?fileId=" + fid);
    for (const auto& l : lk["locations"]) {
      out.push_back({l.value("dataCenter", ""), l.value("rack", ""), l.value("url", "")});
    }
    return out;
  };
  int status = 0;
  std::string error;
  auto s = sites_of("000", &status, &error);
  ASSERT_EQ(status, 200) << error;
  EXPECT_EQ(s.size(), 1u);

  s = sites_of("001", &status, &error);  // two servers of one rack: only dc1/r1 has two
  ASSERT_EQ(status, 200) << error;
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(std::set<std::string>({s[0].url, s[1].url}), std::set<std::string>({Url(a_), Url(b_)}));

  s = sites_of("010", &status, &error);  // two racks of one data center
  ASSERT_EQ(status, 200) << error;
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].dc, "dc1");
  EXPECT_EQ(s[1].dc, "dc1");
  EXPECT_NE(s[0].rack, s[1].rack);

  s = sites_of("100", &status, &error);  // two data centers
  ASSERT_EQ(status, 200) << error;
  ASSERT_EQ(s.size(), 2u);
  EXPECT_NE(s[0].dc, s[1].dc);

  s = sites_of("011", &status, &error);  // a, b in r1 and c in r2
  ASSERT_EQ(status, 200) << error;
  ASSERT_EQ(s.size(), 3u);
  std::set<std::string> urls;
  for (const auto& x : s) urls.insert(x.url);
  EXPECT_EQ(urls, std::set<std::string>({Url(a_), Url(b_), Url(c_)}));

  s = sites_of("200", &status, &error);  // three data centers: there are two
  EXPECT_EQ(status, 503);
  EXPECT_NE(error.find("data centers"), std::string::npos) << error;
  s = sites_of("002", &status, &error);  // three servers in one rack: at most two
  EXPECT_EQ(status, 503);
  EXPECT_FALSE(error.empty());
  s = sites_of("bad", &status, &error);
  EXPECT_EQ(status, 400) << error;
}

// The gRPC Assign and LookupVolume answer as /dir/assign and /dir/lookup
// do, and both honour dataCenter and rack for volumes that exist already.
TEST_F(ClusterTest, GrpcAssignAndLookupMatchTheHttpApi) {
  ASSERT_NO_FATAL_FAILURE(StartFour());
  auto master = MasterClient::Create("127.0.0.1:" + std::to_string(master_.grpc));
  ASSERT_TRUE(master.ok());
  MasterAssignRequest req;
  req.replication = "100";
  req.data_center = "dc2";
  req.count = 5;
  auto a = (*master)->Assign(req);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->url, Url(d_)) << "the holder in the data center asked for";
  EXPECT_EQ(a->count, 5u);
  std::string host;
  uint16_t port = 0;
  ASSERT_TRUE(SplitHostPort(a->url, &host, &port).ok());
  HttpClient vc(host, port);
  auto put = vc.Request("PUT", "/" + a->fid, "assigned over gRPC");
  ASSERT_TRUE(put.ok());
  EXPECT_EQ(put->status, 201) << put->body;

  const auto fid = FileId::Parse(a->fid);
  ASSERT_TRUE(fid.ok());
  auto locs = (*master)->Lookup(fid->volume);
  ASSERT_TRUE(locs.ok()) << locs.status().ToString();
  ASSERT_EQ(locs->size(), 2u);
  const auto http = Get("/dir/lookup?volumeId=" + std::to_string(fid->volume.value));
  std::set<std::string> dcs, grpc_urls, http_grpc_urls;
  for (const auto& l : *locs) {
    dcs.insert(l.data_center);
    grpc_urls.insert(l.grpc);
    auto admin = VolumeAdminClient::Create(l.grpc);  // the gRPC address works
    ASSERT_TRUE(admin.ok());
    auto st = (*admin)->VolumeStatus(fid->volume);
    ASSERT_TRUE(st.ok()) << l.grpc << ": " << st.status().ToString();
    EXPECT_EQ(st->at(0).needle_count, 1u);
  }
  for (const auto& l : http["locations"]) http_grpc_urls.insert(l.value("grpcUrl", ""));
  EXPECT_EQ(dcs, std::set<std::string>({"dc1", "dc2"}));
  EXPECT_EQ(grpc_urls, http_grpc_urls);

  // An existing writable volume outside the asked data center or rack is
  // not used: one is grown where asked.
  int status = 0;
  auto any = Get("/dir/assign?replication=000&dataCenter=dc1&rack=r2", &status);
  ASSERT_EQ(status, 200) << any;
  EXPECT_EQ(any.value("url", ""), Url(c_));
  auto in_dc2 = Get("/dir/assign?replication=000&dataCenter=dc2", &status);
  ASSERT_EQ(status, 200) << in_dc2;
  EXPECT_EQ(in_dc2.value("url", ""), Url(d_));

  req = MasterAssignRequest();
  req.replication = "9x9";
  EXPECT_EQ((*master)->Assign(req).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*master)->Lookup(VolumeId(4242)).status().code(), StatusCode::kNotFound);
  auto bad = Get("/dir/assign?replication=9x9", &status);
  EXPECT_EQ(status, 400) << bad;
}

// kill -9 of a volume server while a bounded load writes: every blob whose
// upload was acknowledged reads back, and the master copies the dead
// server's volumes to the server that fits their placement (a 010 volume
// that lost its r1 copy gets it back on the other server in dc1/r1).
TEST_F(ClusterTest, KillNineDuringAWriteLoadLosesNoAcknowledgedBlob) {
  ASSERT_NO_FATAL_FAILURE(StartFour(/*grace_ms=*/1000));
  BlobClient client(ClientOptions());
  std::mutex mu;
  std::map<FileId, std::string> acked;  // GUARDED_BY(mu)
  std::string last_error;               // GUARDED_BY(mu): of the last failed upload
  std::atomic<int> acked_after_kill{0};
  std::atomic<bool> killed{false};
  std::thread writer([&] {
    UploadRequest up;
    up.replication = "010";
    const auto deadline = std::chrono::steady_clock::now() + 25s;
    for (int i = 0; i < 600 && std::chrono::steady_clock::now() < deadline; ++i) {
      if (killed && acked_after_kill >= 100) break;
      std::string data = "load " + std::to_string(i) + std::string((i * 131) % 5000, 'k');
      auto fid = client.Upload(data, up);
      if (!fid.ok()) {  // not acknowledged: no promise made
        std::lock_guard<std::mutex> l(mu);
        last_error = fid.status().ToString();
        continue;
      }
      std::lock_guard<std::mutex> l(mu);
      acked[*fid] = data;
      if (killed) ++acked_after_kill;
    }
  });
  for (int i = 0; i < 200; ++i) {
    {
      std::lock_guard<std::mutex> l(mu);
      if (acked.size() >= 100) break;
    }
    std::this_thread::sleep_for(50ms);
  }
  // The victim: the r1 server holding the most volumes (010 puts one copy
  // on a or b and one on c).
  size_t on_a = 0, on_b = 0;
  for (const auto& [vid, nodes] : Holders(Get("/vol/status"))) {
    on_a += nodes.count(Url(a_));
    on_b += nodes.count(Url(b_));
  }
  Proc& victim = on_a >= on_b ? a_ : b_;
  ASSERT_GT(std::max(on_a, on_b), 0u);
  const std::string dead = Url(victim);
  ASSERT_TRUE(victim.process->Kill(SIGKILL));
  killed = true;
  victim.process->Wait();
  writer.join();
  {
    std::lock_guard<std::mutex> l(mu);
    EXPECT_GT(acked_after_kill.load(), 0)
        << "the load went on after the kill; last error: " << last_error << "\n"
        << Logs();
  }
  // After the dead-node timeout (3 s) and the grace period (1 s), each of
  // the victim's volumes gets its copy back, on the other r1 server.
  bool restored = false;
  for (int i = 0; i < 300 && !restored; ++i) {
    auto holders = Holders(Get("/vol/status"));
    restored = !holders.empty();
    for (const auto& [vid, nodes] : holders) {
      if (nodes.size() != 2 || nodes.count(dead)) restored = false;
    }
    if (!restored) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(restored) << Get("/vol/status") << "\n" << Logs();
  for (const auto& [vid, nodes] : Holders(Get("/vol/status"))) {
    EXPECT_EQ(nodes.size(), 2u) << "volume " << vid;
    std::set<std::string> racks;
    for (const auto& n : nodes) racks.insert(n == Url(c_) ? "r2" : "r1");
    EXPECT_EQ(racks.size(), 2u) << "volume " << vid << " keeps one copy per rack";
  }
  std::lock_guard<std::mutex> l(mu);
  ASSERT_GE(acked.size(), 100u);
  ExpectBlobs(client, acked);
  // The copies on b are real: with c gone too, reads still work from b.
  ASSERT_TRUE(c_.process->Kill(SIGKILL));
  c_.process->Wait();
  BlobClient fresh(ClientOptions());
  int checked = 0;
  for (const auto& [fid, data] : acked) {
    if (++checked > 50) break;
    auto got = fresh.Read(fid);
    ASSERT_TRUE(got.ok()) << fid.ToString() << ": " << got.status().ToString();
    EXPECT_EQ(*got, data);
  }
}

// volume.vacuum through the master compacts the volumes above the threshold
// on every replica and the disk space comes back; mark and delete work
// through the master too.
TEST_F(ClusterTest, VacuumThroughTheMasterReturnsDiskSpace) {
  ASSERT_NO_FATAL_FAILURE(StartFour());
  BlobClient client(ClientOptions());
  UploadRequest up;
  up.replication = "100";
  std::map<FileId, std::string> kept;
  std::vector<FileId> doomed;
  for (int i = 0; i < 120; ++i) {
    auto fid = client.Upload(std::string(20'000, static_cast<char>('a' + i % 26)), up);
    ASSERT_TRUE(fid.ok()) << fid.status().ToString();
    if (i % 4 == 0) {
      kept[*fid] = std::string(20'000, static_cast<char>('a' + i % 26));
    } else {
      doomed.push_back(*fid);
    }
  }
  for (const auto& fid : doomed) ASSERT_TRUE(client.Delete(fid).ok()) << fid.ToString();
  const std::string dir = tmp_.path();
  const uint64_t before =
      DiskBytes(dir + "/a") + DiskBytes(dir + "/b") + DiskBytes(dir + "/c") + DiskBytes(dir + "/d");
  std::string out;
  ASSERT_EQ(Admin("volume.vacuum -garbageThreshold 0.3", &out), 0) << out;
  EXPECT_NE(out.find("0 failed"), std::string::npos) << out;
  EXPECT_EQ(out.find(" 0 vacuumed"), std::string::npos) << out;
  const uint64_t after =
      DiskBytes(dir + "/a") + DiskBytes(dir + "/b") + DiskBytes(dir + "/c") + DiskBytes(dir + "/d");
  EXPECT_LT(after, before / 2) << "before " << before << " after " << after << "\n" << out;
  ExpectBlobs(client, kept);

  // mark -readonly reaches every replica of the volume through the master.
  const auto vid = kept.begin()->first.volume.value;
  ASSERT_EQ(Admin("volume.mark -readonly -volumeId " + std::to_string(vid), &out), 0) << out;
  bool all_ro = false;
  for (int i = 0; i < 50 && !all_ro; ++i) {
    all_ro = true;
    int holders = 0;
    const auto st = Get("/vol/status");
    for (const auto& n : st["Nodes"]) {
      for (const auto& v : n["volumes"]) {
        if (v.value("id", 0u) != vid) continue;
        ++holders;
        if (!v.value("readOnly", false)) all_ro = false;
      }
    }
    all_ro = all_ro && holders == 2;
    if (!all_ro) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(all_ro) << Get("/vol/status");
  ASSERT_EQ(Admin("volume.delete -volumeId " + std::to_string(vid), &out), 0) << out;
  bool gone = false;
  for (int i = 0; i < 50 && !gone; ++i) {
    gone = Holders(Get("/vol/status")).count(vid) == 0;
    if (!gone) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(gone) << Get("/vol/status");
}

// A master killed and restarted on the same ports relearns the topology from
// the running volume servers' heartbeats, finds every old blob and keeps
// handing out unique file ids.
TEST_F(ClusterTest, ARestartedMasterRelearnsTheTopologyAndKeepsIdsUnique) {
  const uint16_t port = PickFreePort(), grpc_port = PickFreePort();
  ASSERT_TRUE(port && grpc_port);
  ASSERT_NO_FATAL_FAILURE(StartFour(-1, port, grpc_port));
  BlobClient client(ClientOptions());
  std::map<FileId, std::string> blobs;
  std::set<std::pair<VolumeId, NeedleKey>> keys;
  for (const char* code : {"000", "001", "010", "100"}) {
    UploadRequest up;
    up.replication = code;
    for (int i = 0; i < 10; ++i) {
      std::string data = std::string(code) + " blob " + std::to_string(i);
      auto fid = client.Upload(data, up);
      ASSERT_TRUE(fid.ok()) << fid.status().ToString();
      blobs[*fid] = data;
      keys.insert({fid->volume, fid->key});
    }
  }
  const auto before = Holders(Get("/vol/status"));
  ASSERT_TRUE(master_.process->Kill(SIGKILL));
  master_.process->Wait();
  StartMaster(-1, "master", port, grpc_port);
  ASSERT_NO_FATAL_FAILURE(WaitForNodes(4));
  bool relearned = false;
  for (int i = 0; i < 100 && !relearned; ++i) {
    relearned = Holders(Get("/vol/status")) == before;
    if (!relearned) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(relearned) << Get("/vol/status");
  BlobClient fresh(ClientOptions());  // no cached locations
  ExpectBlobs(fresh, blobs);
  for (const char* code : {"000", "001", "010", "100"}) {
    UploadRequest up;
    up.replication = code;
    for (int i = 0; i < 10; ++i) {
      auto fid = fresh.Upload("after the restart", up);
      ASSERT_TRUE(fid.ok()) << fid.status().ToString();
      EXPECT_TRUE(keys.insert({fid->volume, fid->key}).second) << "key reused: " << fid->ToString();
    }
  }
}

}  // namespace
}  // namespace needlefs::integration
