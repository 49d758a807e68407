// Integration tests of `needlefs master` with real volume servers that join
// by heartbeat (processes on loopback).
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "client/blob_client.h"
#include "common/file_id.h"
#include "common/http.h"
#include "integration/cluster_fixture.h"

namespace needlefs::integration {
namespace {

class MasterTest : public ClusterFixture {};

TEST_F(MasterTest, AssignUploadLookupAndGrowthFollowPlacement) {
  Proc a, b;
  ASSERT_NO_FATAL_FAILURE(StartTwoServers(&a, &b));

  int status = 0;
  auto as = Get("/dir/assign", &status);
  ASSERT_EQ(status, 200) << as;
  const std::string fid = as["fid"], url = as["url"];
  std::string host;
  uint16_t port;
  ASSERT_TRUE(SplitHostPort(url, &host, &port).ok());
  HttpClient vol(host, port);
  auto put = vol.Request("PUT", "/" + fid, "assigned by the master");
  ASSERT_TRUE(put.ok());
  ASSERT_EQ(put->status, 201) << put->body;
  auto lk = Get("/dir/lookup?fileId=" + fid, &status);
  ASSERT_EQ(status, 200) << lk;
  EXPECT_EQ(lk["locations"][0]["url"], url);
  EXPECT_EQ(vol.Request("GET", "/" + fid)->body, "assigned by the master");

  // 001 grows a volume with a copy on each server of the rack.
  auto as001 = Get("/dir/assign?replication=001", &status);
  ASSERT_EQ(status, 200) << as001;
  std::string vid001 = std::string(as001["fid"]).substr(0, std::string(as001["fid"]).find(','));
  EXPECT_EQ(Get("/dir/lookup?volumeId=" + vid001)["locations"].size(), 2u);
  // 100 needs another data center: refused, and the reason says so.
  auto as100 = Get("/dir/assign?replication=100", &status);
  EXPECT_EQ(status, 503) << as100;
  EXPECT_NE(std::string(as100["error"]).find("data centers"), std::string::npos) << as100;
  EXPECT_EQ(Get("/dir/lookup?volumeId=999", &status)["error"], "volume id 999 not found");
  EXPECT_EQ(status, 404);
  (void)b;
}

TEST_F(MasterTest, FileIdsStayUniqueAcrossAMasterRestart) {
  StartMaster();
  Proc a = StartVolume("a", "dc1", "r1");
  ASSERT_NO_FATAL_FAILURE(WaitForNodes(1));
  std::set<std::string> fids;
  for (int i = 0; i < 200; ++i) {
    auto j = Get("/dir/assign");
    ASSERT_TRUE(j.contains("fid")) << j;
    EXPECT_TRUE(
        fids.insert(std::string(j["fid"]).substr(0, std::string(j["fid"]).size() - 8)).second);
  }
  ASSERT_TRUE(master_.process->Kill(SIGKILL));
  master_.process->Wait();
  // The volume server keeps the master's old ports in its flags: start the
  // new master, then a new volume server pointing at it, on the same data.
  ASSERT_TRUE(a.process->Kill(SIGTERM));
  a.process->Wait();
  StartMaster();
  a = StartVolume("a", "dc1", "r1");
  ASSERT_NO_FATAL_FAILURE(WaitForNodes(1));
  for (int i = 0; i < 200; ++i) {
    auto j = Get("/dir/assign");
    ASSERT_TRUE(j.contains("fid")) << j;
    EXPECT_TRUE(
        fids.insert(std::string(j["fid"]).substr(0, std::string(j["fid"]).size() - 8)).second)
        << "key reused after restart: " << j["fid"];
  }
  // A master whose state is lost (a new -mdir) learns the largest stored
  // key from the heartbeats and hands out keys above it.
  auto last = Get("/dir/assign");
  std::string host;
  uint16_t port = 0;
  ASSERT_TRUE(SplitHostPort(std::string(last["url"]), &host, &port).ok());
  const std::string stored = last["fid"];
  HttpClient vc(host, port);
  ASSERT_EQ(vc.Request("PUT", "/" + stored, "the newest key")->status, 201);
  auto stored_id = FileId::Parse(stored);
  ASSERT_TRUE(stored_id.ok());
  ASSERT_TRUE(master_.process->Kill(SIGKILL));
  master_.process->Wait();
  ASSERT_TRUE(a.process->Kill(SIGTERM));
  a.process->Wait();
  StartMaster(-1, "master-new");
  a = StartVolume("a", "dc1", "r1");
  ASSERT_NO_FATAL_FAILURE(WaitForNodes(1));
  auto fresh = Get("/dir/assign");
  auto fresh_id = FileId::Parse(std::string(fresh.value("fid", "")));
  ASSERT_TRUE(fresh_id.ok()) << fresh;
  EXPECT_GT(fresh_id->key.value, stored_id->key.value) << "a key at or below a stored one";
}

TEST_F(MasterTest, ASilentVolumeServerIsDeclaredDeadAndItsVolumesUnderReplicated) {
  Proc a, b;
  ASSERT_NO_FATAL_FAILURE(StartTwoServers(&a, &b));
  int status = 0;
  auto j = Get("/dir/assign?replication=001", &status);
  ASSERT_EQ(status, 200) << j;
  ASSERT_TRUE(b.process->Kill(SIGKILL));
  b.process->Wait();
  ASSERT_NO_FATAL_FAILURE(WaitForNodes(1));  // after the 3 s dead-node timeout
  auto st = Get("/cluster/status");
  EXPECT_EQ(st["UnderReplicated"].size(), 1u) << st;
  std::string out;
  ASSERT_EQ(RunCommand(ShellQuote(NeedlefsBinary()) + " admin cluster.status -master 127.0.0.1:" +
                           std::to_string(master_.http) + " 2>&1",
                       &out),
            0)
      << out;
  EXPECT_NE(out.find("1 volume servers, 1 under-replicated volumes"), std::string::npos) << out;
  // The master's own metrics say the same (gauges refresh every second).
  std::string metrics;
  for (int i = 0; i < 30; ++i) {
    metrics = HttpClient("127.0.0.1", master_.http).Request("GET", "/metrics")->body;
    if (metrics.find("needlefs_master_volume_servers 1\n") != std::string::npos) break;
    std::this_thread::sleep_for(100ms);
  }
  for (const char* line :
       {"needlefs_master_volume_servers 1\n", "needlefs_master_under_replicated_volumes 1\n",
        "needlefs_master_dead_nodes_total 1\n",
        "needlefs_master_assign_requests_total{result=\"ok\"} 1\n",
        "needlefs_master_volumes_grown_total 1\n"}) {
    EXPECT_NE(metrics.find(line), std::string::npos) << line << metrics;
  }
  (void)a;
}

// Heartbeats send the full volume list on connect, then only changes. A
// server frozen past the dead-node timeout keeps its stream; when it wakes,
// its next (delta) heartbeat names a node the master dropped, so the master
// asks for the full state and the server's volumes are back.
TEST_F(MasterTest, AServerDeclaredDeadThenBackResendsItsFullState) {
  Proc a, b;
  ASSERT_NO_FATAL_FAILURE(StartTwoServers(&a, &b));
  int status = 0;
  auto grown = Get("/vol/grow?count=2&replication=001", &status);
  ASSERT_EQ(status, 200) << grown;
  const std::string b_url = "127.0.0.1:" + std::to_string(b.http);
  auto volumes_of = [&](const std::string& url) {
    const auto st = Get("/vol/status");
    for (const auto& n : st["Nodes"]) {
      if (n.value("url", "") == url) return n["volumes"].size();
    }
    return size_t{0};
  };
  ASSERT_EQ(volumes_of(b_url), 2u);
  ASSERT_TRUE(b.process->Kill(SIGSTOP));
  ASSERT_NO_FATAL_FAILURE(WaitForNodes(1));  // after the 3 s dead-node timeout
  ASSERT_TRUE(b.process->Kill(SIGCONT));
  ASSERT_NO_FATAL_FAILURE(WaitForNodes(2));
  bool back = false;
  for (int i = 0; i < 50 && !back; ++i) {
    back = volumes_of(b_url) == 2;
    if (!back) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(back) << Get("/vol/status");
  EXPECT_TRUE(Get("/cluster/status")["UnderReplicated"].empty()) << Get("/cluster/status");
}

TEST_F(MasterTest, ReplicatedWritesReachEveryReplicaOrFailLoudly) {
  Proc a, b;
  ASSERT_NO_FATAL_FAILURE(StartTwoServers(&a, &b));
  int status = 0;
  auto as = Get("/dir/assign?replication=001", &status);
  ASSERT_EQ(status, 200) << as;
  const std::string fid = as["fid"];
  std::string host;
  uint16_t port;
  ASSERT_TRUE(SplitHostPort(std::string(as["url"]), &host, &port).ok());
  HttpClient primary(host, port);
  auto put = primary.Request("PUT", "/" + fid, "two copies");
  ASSERT_TRUE(put.ok());
  ASSERT_EQ(put->status, 201) << put->body;
  // Both servers hold it, with the same Last-Modified.
  HttpClient ca("127.0.0.1", a.http), cb("127.0.0.1", b.http);
  auto ra = ca.Request("GET", "/" + fid), rb = cb.Request("GET", "/" + fid);
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_EQ(ra->body, "two copies");
  EXPECT_EQ(rb->body, "two copies");
  EXPECT_EQ(ra->Header("Last-Modified"), rb->Header("Last-Modified"));
  // A delete removes every copy.
  auto del = primary.Request("DELETE", "/" + fid);
  ASSERT_TRUE(del.ok());
  EXPECT_EQ(del->status, 202) << del->body;
  EXPECT_EQ(ca.Request("GET", "/" + fid)->status, 404);
  EXPECT_EQ(cb.Request("GET", "/" + fid)->status, 404);

  // With one replica dead, a write cannot be acknowledged, and says why.
  Proc& survivor = (port == a.http) ? a : b;
  Proc& victim = (port == a.http) ? b : a;
  ASSERT_TRUE(victim.process->Kill(SIGKILL));
  victim.process->Wait();
  const std::string fid2 = fid.substr(0, fid.find(',')) + ",ff0000000100000001";
  HttpClient sc("127.0.0.1", survivor.http);
  auto put2 = sc.Request("PUT", "/" + fid2, "lonely");
  ASSERT_TRUE(put2.ok());
  EXPECT_EQ(put2->status, 500) << put2->body;
  EXPECT_NE(put2->body.find("replica"), std::string::npos) << put2->body;
}

TEST_F(MasterTest, BlobClientUploadsReadsWithReplicaFallbackAndDeletes) {
  Proc a, b;
  ASSERT_NO_FATAL_FAILURE(StartTwoServers(&a, &b));
  BlobClientOptions o;
  o.master = "127.0.0.1:" + std::to_string(master_.http);
  BlobClient client(o);
  UploadRequest up;
  up.replication = "001";
  up.name = "notes.txt";
  std::vector<std::pair<FileId, std::string>> blobs;
  for (int i = 0; i < 20; ++i) {
    std::string data = "blob " + std::to_string(i) + std::string(static_cast<size_t>(i) * 100, 'x');
    auto fid = client.Upload(data, up);
    ASSERT_TRUE(fid.ok()) << fid.status().ToString();
    blobs.emplace_back(*fid, data);
  }
  for (const auto& [fid, data] : blobs) EXPECT_EQ(*client.Read(fid), data);

  // One replica dies: reads fall back to the other one.
  ASSERT_TRUE(a.process->Kill(SIGKILL));
  a.process->Wait();
  for (const auto& [fid, data] : blobs) {
    auto got = client.Read(fid);
    ASSERT_TRUE(got.ok()) << fid.ToString() << ": " << got.status().ToString();
    EXPECT_EQ(*got, data);
  }
  // A delete cannot reach every replica: the error says so (the survivor
  // deleted its copy; the dead replica is reconciled when it comes back).
  Status del = client.Delete(blobs[0].first);
  EXPECT_FALSE(del.ok());
  EXPECT_NE(del.message().find("replica"), std::string::npos) << del.ToString();
  // Not readable any more: the survivor says 404, and with the other replica
  // unreachable the client reports Unavailable rather than a certain NotFound.
  auto gone = client.Read(blobs[0].first);
  EXPECT_EQ(gone.status().code(), StatusCode::kUnavailable) << gone.status().ToString();
  // An impossible placement is refused with the master's reason.
  up.replication = "100";
  auto refused = client.Upload("x", up);
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("data centers"), std::string::npos)
      << refused.status().message();
  (void)b;
}

TEST_F(MasterTest, ACorruptReplicaIsRepairedFromAnotherOnRead) {
  Proc a, b;
  ASSERT_NO_FATAL_FAILURE(StartTwoServers(&a, &b));
  int status = 0;
  auto as = Get("/dir/assign?replication=001", &status);
  ASSERT_EQ(status, 200) << as;
  const std::string fid = as["fid"];
  const std::string vid = fid.substr(0, fid.find(','));
  std::string data(4000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + 3);
  HttpClient ca("127.0.0.1", a.http), cb("127.0.0.1", b.http);
  auto put = ca.Request("PUT", "/" + fid, data);
  ASSERT_TRUE(put.ok() && put->status == 201) << (put.ok() ? put->body : "");

  // A bit rots in server a's copy (inside the needle's data).
  const std::string dat = tmp_.path() + "/a/" + vid + ".dat";
  {
    std::fstream f(dat, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f.good()) << dat;
    f.seekg(0, std::ios::end);
    const std::streamoff size = f.tellg();
    f.seekg(size - 1000);
    char c;
    f.read(&c, 1);
    c ^= 0x10;
    f.seekp(size - 1000);
    f.write(&c, 1);
  }
  // The read on a still returns the right bytes (fetched from b) and a
  // keeps a repaired copy.
  auto got = ca.Request("GET", "/" + fid);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->status, 200) << got->body;
  EXPECT_EQ(got->body, data);
  auto metrics = ca.Request("GET", "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("needlefs_volume_read_repairs_total 1"), std::string::npos);
  // Now stop b: a serves its repaired copy alone.
  ASSERT_TRUE(b.process->Kill(SIGKILL));
  b.process->Wait();
  got = ca.Request("GET", "/" + fid);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->status, 200) << got->body;
  EXPECT_EQ(got->body, data);
}

// A volume server dies: after the grace period the master copies each of its
// volumes from the surviving replica to the third server, so the data
// survives the loss of the survivor too.
TEST_F(MasterTest, AKilledServersVolumesAreCopiedToAnotherServerAfterTheGracePeriod) {
  StartMaster(/*grace_ms=*/1000);
  std::map<std::string, Proc> servers;
  for (const char* name : {"a", "b", "c"}) servers[name] = StartVolume(name, "dc1", "r1");
  ASSERT_NO_FATAL_FAILURE(WaitForNodes(3));
  BlobClientOptions o;
  o.master = "127.0.0.1:" + std::to_string(master_.http);
  BlobClient client(o);
  auto blobs = UploadBlobs(client, 60);
  auto holders = Holders(Get("/vol/status"));
  ASSERT_FALSE(holders.empty());
  const uint32_t vid = holders.begin()->first;
  ASSERT_EQ(holders[vid].size(), 2u);
  // Kill one holder of the first volume.
  const std::string victim_url = *holders[vid].begin();
  Proc* victim = nullptr;
  Proc* survivor = nullptr;
  for (auto& [name, p] : servers) {
    if ("127.0.0.1:" + std::to_string(p.http) == victim_url) victim = &p;
  }
  ASSERT_NE(victim, nullptr);
  ASSERT_TRUE(victim->process->Kill(SIGKILL));
  victim->process->Wait();
  // Dead after 3 s, repaired 1 s later: every volume back to two replicas,
  // none on the dead server.
  bool repaired = false;
  nlohmann::json st;
  for (int i = 0; i < 150 && !repaired; ++i) {
    std::this_thread::sleep_for(200ms);
    st = Get("/vol/status");
    auto now = Holders(st);
    repaired = st["Nodes"].size() == 2 && !now.empty();
    for (const auto& [v, nodes] : now) {
      if (nodes.size() != 2 || nodes.count(victim_url)) repaired = false;
    }
  }
  ASSERT_TRUE(repaired) << st;
  EXPECT_TRUE(Get("/vol/fix_replication")["volumes"].empty());
  // Every blob on the new replica: kill the original survivor of volume vid.
  const std::string survivor_url = *std::next(holders[vid].begin());
  for (auto& [name, p] : servers) {
    if ("127.0.0.1:" + std::to_string(p.http) == survivor_url) survivor = &p;
  }
  ASSERT_NE(survivor, nullptr);
  // Reads fall back to the new replica once the survivor is gone.
  ASSERT_TRUE(survivor->process->Kill(SIGKILL));
  survivor->process->Wait();
  std::map<FileId, std::string> of_vid;
  for (const auto& [fid, data] : blobs) {
    if (fid.volume.value == vid) of_vid[fid] = data;
  }
  ASSERT_FALSE(of_vid.empty());
  ExpectBlobs(client, of_vid);
}

// Operators repair and balance by hand: volume.fix.replication (with -n for
// the plan) and volume.balance (-force to move), data intact throughout.
TEST_F(MasterTest, AdminFixReplicationAndBalanceMoveReplicasKeepingTheData) {
  StartMaster(/*grace_ms=*/-1);
  Proc a = StartVolume("a", "dc1", "r1", 8), b = StartVolume("b", "dc1", "r1", 8);
  ASSERT_NO_FATAL_FAILURE(WaitForNodes(2));
  BlobClientOptions o;
  o.master = "127.0.0.1:" + std::to_string(master_.http);
  BlobClient client(o);
  auto blobs = UploadBlobs(client, 40);
  auto run = [&](const std::string& args, std::string* out) { return Admin(args, out); };
  std::string out;
  ASSERT_EQ(run("volume.fix.replication", &out), 0) << out;
  EXPECT_NE(out.find("every volume has all its replicas"), std::string::npos) << out;

  // b dies; c joins. Nothing happens by itself (no grace period set).
  Proc c = StartVolume("c", "dc1", "r1", 8);
  ASSERT_TRUE(b.process->Kill(SIGKILL));
  b.process->Wait();
  const std::string b_url = "127.0.0.1:" + std::to_string(b.http);
  const std::string c_url = "127.0.0.1:" + std::to_string(c.http);
  auto nodes = [&] {
    std::set<std::string> out;
    const auto st = Get("/vol/status");
    for (const auto& n : st["Nodes"]) out.insert(n.value("url", ""));
    return out;
  };
  for (int i = 0; i < 100 && nodes().count(b_url); ++i) std::this_thread::sleep_for(100ms);
  ASSERT_EQ(nodes().size(), 2u);
  ASSERT_TRUE(nodes().count(c_url));
  ASSERT_EQ(run("volume.fix.replication -n", &out), 0) << out;
  EXPECT_NE(out.find("would copy to " + c_url), std::string::npos) << out;
  EXPECT_FALSE(Get("/vol/fix_replication")["volumes"].empty()) << "-n changed nothing";
  ASSERT_EQ(run("volume.fix.replication", &out), 0) << out;
  EXPECT_NE(out.find("volumes fixed, 0 failed"), std::string::npos) << out;
  EXPECT_NE(out.find("-> " + c_url), std::string::npos) << out;
  EXPECT_TRUE(Get("/vol/fix_replication")["volumes"].empty());
  {
    SCOPED_TRACE("after volume.fix.replication");
    ExpectBlobs(client, blobs);
  }

  // More volumes on a and c, then two empty servers join: balance plans
  // moves, -force makes them, and the counts even out.
  int status = 0;
  auto grown = Get("/vol/grow?count=3&replication=001", &status);
  ASSERT_EQ(status, 200) << grown;
  Proc d = StartVolume("d", "dc1", "r1", 8), e = StartVolume("e", "dc1", "r1", 8);
  ASSERT_NO_FATAL_FAILURE(WaitForNodes(4));
  ASSERT_EQ(run("volume.balance", &out), 0) << out;
  EXPECT_NE(out.find("moves planned; run with -force"), std::string::npos) << out;
  ASSERT_EQ(run("volume.balance -force", &out), 0) << out;
  EXPECT_NE(out.find("0 failed"), std::string::npos) << out;
  std::map<std::string, int> per_node;
  const auto balanced = Get("/vol/status");
  for (const auto& n : balanced["Nodes"]) {
    per_node[n.value("url", "")] = static_cast<int>(n["volumes"].size());
  }
  ASSERT_EQ(per_node.size(), 4u);
  int lo = 1 << 30, hi = 0;
  for (const auto& [url, count] : per_node) {
    lo = std::min(lo, count);
    hi = std::max(hi, count);
  }
  EXPECT_LE(hi - lo, 1) << Get("/vol/status");
  for (const auto& [v, nodes] : Holders(Get("/vol/status"))) EXPECT_EQ(nodes.size(), 2u) << v;
  ASSERT_EQ(run("volume.balance", &out), 0) << out;
  EXPECT_NE(out.find("balanced, nothing to move"), std::string::npos) << out;
  SCOPED_TRACE("after volume.balance");
  ExpectBlobs(client, blobs);
  // New writes reach both replicas of the moved volumes.
  auto more = UploadBlobs(client, 20);
  ExpectBlobs(client, more);
  (void)a;
  (void)d;
  (void)e;
}

}  // namespace
}  // namespace needlefs::integration
