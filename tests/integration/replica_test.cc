// Replicas across real volume servers: anti-entropy reconciling diverged
// replicas (on admin volume.check and by themselves), placement across data
// centers and racks, and a server killed in the middle of a write load.
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>

#include "integration/cluster_fixture.h"

namespace needlefs::integration {
namespace {

class ReplicaTest : public ClusterFixture {
 protected:
  /// One request to a volume server; the answer's status and body.
  static std::pair<int, std::string> Call(uint16_t port, const std::string& method,
                                          const std::string& target, const std::string& body = "") {
    HttpClient c("127.0.0.1", port);
    auto r = c.Request(method, target, body);
    if (!r.ok()) return {0, r.status().ToString()};
    return {r->status, r->body};
  }
  /// A new fid of a 001 volume (both servers of the fixture hold every one).
  std::string Assign() {
    int status = 0;
    auto j = Get("/dir/assign?replication=001", &status);
    EXPECT_EQ(status, 200) << j;
    return j.value("fid", "");
  }
};

// Writes that reached one replica only (as when a replica failed mid-write:
// type=replicate stores without forwarding) are reconciled by volume.check:
// missing needles, a missed overwrite and a missed delete, both directions.
TEST_F(ReplicaTest, DivergedReplicasAreReconciledByVolumeCheck) {
  StartMaster();
  const std::vector<std::string> no_rounds = {"-antiEntropyIntervalMs", "0"};
  Proc a = StartVolume("a", "dc1", "r1", 4, no_rounds);
  Proc b = StartVolume("b", "dc1", "r1", 4, no_rounds);
  ASSERT_NO_FATAL_FAILURE(WaitForNodes(2));
  std::vector<std::string> fids;
  for (int i = 0; i < 6; ++i) {
    fids.push_back(Assign());
    ASSERT_EQ(Call(a.http, "PUT", "/" + fids[i], "both " + std::to_string(i)).first, 201);
  }
  ASSERT_EQ(Call(a.http, "PUT", "/" + fids[0] + "?type=replicate", "only on a").first, 201);
  const std::string only_b = Assign();
  ASSERT_EQ(Call(b.http, "PUT", "/" + only_b + "?type=replicate", "only on b").first, 201);
  ASSERT_EQ(Call(b.http, "PUT", "/" + fids[1] + "?type=replicate", "overwritten on b").first, 201);
  ASSERT_EQ(Call(a.http, "DELETE", "/" + fids[2] + "?type=replicate").first, 202);
  const std::string only_a = Assign();
  ASSERT_EQ(Call(a.http, "PUT", "/" + only_a + "?type=replicate", std::string(70'000, 'z')).first,
            201);
  ASSERT_EQ(Call(b.http, "GET", "/" + only_a).first, 404) << "diverged before the check";

  std::string out;
  EXPECT_EQ(Admin("volume.check", &out), 0) << out;
  EXPECT_NE(out.find("reconciled"), std::string::npos) << out;
  EXPECT_NE(out.find(", 0 problems"), std::string::npos) << out;
  for (uint16_t port : {a.http, b.http}) {
    SCOPED_TRACE("server port " + std::to_string(port));
    EXPECT_EQ(Call(port, "GET", "/" + fids[0]).second, "only on a");
    EXPECT_EQ(Call(port, "GET", "/" + only_b).second, "only on b");
    EXPECT_EQ(Call(port, "GET", "/" + fids[1]).second, "overwritten on b");
    EXPECT_EQ(Call(port, "GET", "/" + fids[2]).first, 404);
    EXPECT_EQ(Call(port, "GET", "/" + only_a).second, std::string(70'000, 'z'));
    EXPECT_EQ(Call(port, "GET", "/" + fids[5]).second, "both 5");
  }
  // In sync now: a second check copies nothing.
  EXPECT_EQ(Admin("volume.check", &out), 0) << out;
  EXPECT_NE(out.find("0 reconciled (0 records"), std::string::npos) << out;
  auto metrics = Call(a.http, "GET", "/metrics").second + Call(b.http, "GET", "/metrics").second;
  EXPECT_NE(metrics.find("needlefs_volume_anti_entropy_pulled_total{kind=\"tombstone\"} 1"),
            std::string::npos)
      << metrics;
}

// A write that reached a but not b (b was killed) fails for the client and
// reports the volume for repair on a: once b is back, a has it pull the
// write, with no periodic rounds and no operator.
TEST_F(ReplicaTest, AFailedReplicatedWriteIsRepairedWhenTheReplicaReturns) {
  StartMaster();
  const std::vector<std::string> no_rounds = {"-antiEntropyIntervalMs", "0"};
  Proc a = StartVolume("a", "dc1", "r1", 4, no_rounds);
  const uint16_t b_port = PickFreePort(), b_grpc = PickFreePort();
  ASSERT_TRUE(b_port && b_grpc);
  auto start_b = [&] { return StartVolume("b", "dc1", "r1", 4, no_rounds, b_port, b_grpc); };
  Proc b = start_b();
  ASSERT_NO_FATAL_FAILURE(WaitForNodes(2));
  const std::string fid = Assign();
  ASSERT_EQ(Call(a.http, "PUT", "/" + fid, "before").first, 201);
  ASSERT_TRUE(b.process->Kill(SIGKILL));
  b.process->Wait();
  auto put = Call(a.http, "PUT", "/" + fid, "after, on a only");
  EXPECT_EQ(put.first, 500) << put.second;
  auto status = nlohmann::json::parse(Call(a.http, "GET", "/status").second, nullptr, false);
  EXPECT_EQ(status["volumes_needing_repair"].size(), 1u) << status.dump();
  // The master hears of it with the next heartbeat (within 250 ms).
  bool reported = false;
  for (int i = 0; i < 30 && !reported; ++i) {
    reported = Get("/cluster/status")["NeedsRepair"].size() == 1;
    if (!reported) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(reported) << Get("/cluster/status");
  b = start_b();
  bool repaired = false;
  for (int i = 0; i < 150 && !repaired; ++i) {
    repaired = Call(b.http, "GET", "/" + fid).second == "after, on a only";
    if (!repaired) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(repaired) << "b still serves the old version 15 s after it came back";
  for (int i = 0; i < 50; ++i) {
    status = nlohmann::json::parse(Call(a.http, "GET", "/status").second, nullptr, false);
    if (status["volumes_needing_repair"].empty()) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(status["volumes_needing_repair"].empty()) << status.dump();
  bool cleared = false;
  for (int i = 0; i < 30 && !cleared; ++i) {
    cleared = Get("/cluster/status")["NeedsRepair"].empty();
    if (!cleared) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(cleared) << Get("/cluster/status");
}

// The replica side of replicated writes refuses malformed batches with a
// clear error and stores nothing of a record that fails its checksum.
TEST_F(ReplicaTest, MalformedReplicationBatchesAreRefused) {
  StartMaster();
  Proc a = StartVolume("a", "dc1", "r1");
  Proc b = StartVolume("b", "dc1", "r1");
  ASSERT_NO_FATAL_FAILURE(WaitForNodes(2));
  const std::string fid = Assign();
  const std::string vid = fid.substr(0, fid.find(','));
  EXPECT_EQ(Call(a.http, "POST", "/admin/replicate?volume=4294967299", "").first, 400);
  EXPECT_EQ(Call(a.http, "POST", "/admin/replicate?volume=" + vid, "short").first, 400);
  EXPECT_EQ(Call(a.http, "POST", "/admin/replicate?volume=99999", "").first, 404);
  EXPECT_EQ(Call(a.http, "GET", "/admin/replicate?volume=" + vid).first, 405);
  // Records stamped by another cluster (a stale address now used by someone
  // else's server) are refused once the server knows its own cluster.
  int foreign = 0;
  for (int i = 0; i < 30 && foreign != 409; ++i) {
    foreign = Call(a.http, "POST", "/admin/replicate?volume=" + vid + "&cluster=12345", "").first;
    if (foreign != 409) std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(foreign, 409);
  EXPECT_EQ(
      Call(a.http, "POST", "/admin/replicate?volume=" + vid + "&cluster=18446744073709551615", "")
          .first,
      409)
      << "a 20-digit id is an id";
  // Past 64 bits is no id at all (unknown): no exception, an empty batch.
  EXPECT_EQ(
      Call(a.http, "POST", "/admin/replicate?volume=" + vid + "&cluster=99999999999999999999", "")
          .first,
      200);
  // A real record, then one byte of it flipped.
  ASSERT_EQ(Call(a.http, "PUT", "/" + fid, "replicated bytes").first, 201);
  ASSERT_EQ(Call(b.http, "GET", "/" + fid).second, "replicated bytes");
  std::string header(16, '\0');  // cookie, key, body_size = 0: 32-byte record
  auto bad = Call(a.http, "POST", "/admin/replicate?volume=" + vid, header + std::string(16, 'x'));
  EXPECT_GE(bad.first, 400) << bad.second;
  EXPECT_EQ(Call(a.http, "GET", "/" + fid).second, "replicated bytes");
}

// Without any operator: each server's background round pulls what it lacks.
TEST_F(ReplicaTest, DivergedReplicasReconcileByThemselves) {
  StartMaster();
  const std::vector<std::string> fast = {"-antiEntropyIntervalMs", "300"};
  Proc a = StartVolume("a", "dc1", "r1", 4, fast);
  Proc b = StartVolume("b", "dc1", "r1", 4, fast);
  ASSERT_NO_FATAL_FAILURE(WaitForNodes(2));
  const std::string on_a = Assign(), on_b = Assign();
  ASSERT_EQ(Call(a.http, "PUT", "/" + on_a + "?type=replicate", "written on a").first, 201);
  ASSERT_EQ(Call(b.http, "PUT", "/" + on_b + "?type=replicate", "written on b").first, 201);
  bool converged = false;
  for (int i = 0; i < 100 && !converged; ++i) {
    converged = Call(b.http, "GET", "/" + on_a).second == "written on a" &&
                Call(a.http, "GET", "/" + on_b).second == "written on b";
    if (!converged) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(converged) << "replicas still differ after 10 s of 300 ms rounds";
}

}  // namespace
}  // namespace needlefs::integration
