// The multi-process cluster the master and replica tests share: a master and
// volume servers on loopback started by the test, plus blob helpers.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "client/blob_client.h"
#include "common/http.h"
#include "integration/process.h"

namespace needlefs::integration {

using namespace std::chrono_literals;

struct Proc {
  std::unique_ptr<ChildProcess> process;
  uint16_t http = 0;
  uint16_t grpc = 0;
};

class ClusterFixture : public ::testing::Test {
 protected:
  /// Starts a process and takes the ports from its ready line.
  Proc StartProc(const std::vector<std::string>& args, const std::string& ready) {
    std::string error;
    auto d = StartDaemon(args, ready, tmp_.path(), &error);
    EXPECT_TRUE(d.has_value()) << error;
    if (!d) return {};
    return Proc{std::move(d->process), d->http_port, d->grpc_port};
  }
  /// `grace_ms`: the master's -replicationGraceMs (-1 = no automatic repair).
  /// `mdir`: the master's directory under the test's. `port`/`grpc_port`:
  /// 0 = any free one (a restarted master passes its old ones).
  void StartMaster(int grace_ms = -1, const std::string& mdir = "master", uint16_t port = 0,
                   uint16_t grpc_port = 0) {
    master_ = StartProc({"master", "-mdir", tmp_.path() + "/" + mdir, "-port", std::to_string(port),
                         "-grpcPort", std::to_string(grpc_port), "-deadNodeTimeoutMs", "3000",
                         "-replicationGraceMs", std::to_string(grace_ms), "-log.level", "warn"},
                        "needlefs master ready");
  }
  /// A volume server in `dc`/`rack` joining the master; `extra` flags are
  /// appended. `port`/`grpc_port`: 0 = any free one (a restarted server
  /// passes its old ones).
  Proc StartVolume(const std::string& name, const std::string& dc, const std::string& rack,
                   int max_volumes = 4, const std::vector<std::string>& extra = {},
                   uint16_t port = 0, uint16_t grpc_port = 0) {
    std::vector<std::string> args = {"volume",
                                     "-dir",
                                     tmp_.path() + "/" + name,
                                     "-port",
                                     std::to_string(port),
                                     "-grpcPort",
                                     std::to_string(grpc_port),
                                     "-max",
                                     std::to_string(max_volumes),
                                     "-mserver",
                                     "127.0.0.1:" + std::to_string(master_.http),
                                     "-mserverGrpcPort",
                                     std::to_string(master_.grpc),
                                     "-dataCenter",
                                     dc,
                                     "-rack",
                                     rack,
                                     "-log.level",
                                     "warn"};
    args.insert(args.end(), extra.begin(), extra.end());
    return StartProc(args, "needlefs volume ready");
  }
  /// Runs `needlefs admin <args> -master <this master>`; returns the exit
  /// status with stdout and stderr in `*out`.
  int Admin(const std::string& args, std::string* out) {
    return RunCommand(ShellQuote(NeedlefsBinary()) + " admin " + args +
                          " -master 127.0.0.1:" + std::to_string(master_.http) + " 2>&1",
                      out);
  }
  nlohmann::json Get(const std::string& target, int* status = nullptr) {
    HttpClient c("127.0.0.1", master_.http);
    auto r = c.Request("GET", target);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return {};
    if (status) *status = r->status;
    return nlohmann::json::parse(r->body, nullptr, false);
  }
  /// Waits until the master knows `n` volume servers.
  void WaitForNodes(size_t n) {
    for (int i = 0; i < 100; ++i) {
      auto j = Get("/cluster/status");
      size_t count = 0;
      for (auto& [dc, racks] : j["Topology"].items()) {
        for (auto& [rack, nodes] : racks.items()) count += nodes.size();
      }
      if (count == n) return;
      std::this_thread::sleep_for(100ms);
    }
    FAIL() << "the master did not see " << n << " volume servers: " << Get("/cluster/status");
  }

  /// A master and two volume servers in dc1/r1, both joined.
  void StartTwoServers(Proc* a, Proc* b) {
    StartMaster();
    *a = StartVolume("a", "dc1", "r1");
    *b = StartVolume("b", "dc1", "r1");
    ASSERT_NO_FATAL_FAILURE(WaitForNodes(2));
  }

  TempDir tmp_{"needlefs-master-test-"};
  Proc master_;
};

/// Volume id -> node ids holding it, from the master's /vol/status.
inline std::map<uint32_t, std::set<std::string>> Holders(const nlohmann::json& vol_status) {
  std::map<uint32_t, std::set<std::string>> out;
  for (const auto& n : vol_status["Nodes"]) {
    for (const auto& v : n["volumes"]) out[v.value("id", 0u)].insert(n.value("url", ""));
  }
  return out;
}

/// Uploads `n` blobs with replication 001, deletes every tenth; returns
/// fid -> data ("" for the deleted ones).
inline std::map<FileId, std::string> UploadBlobs(BlobClient& client, int n) {
  std::map<FileId, std::string> blobs;
  UploadRequest up;
  up.replication = "001";
  for (int i = 0; i < n; ++i) {
    std::string data = "blob " + std::to_string(i) + std::string(static_cast<size_t>(i) * 37, 'q');
    auto fid = client.Upload(data, up);
    EXPECT_TRUE(fid.ok()) << fid.status().ToString();
    if (!fid.ok()) continue;
    if (i % 10 == 0) {
      EXPECT_TRUE(client.Delete(*fid).ok());
      data.clear();
    }
    blobs[*fid] = data;
  }
  return blobs;
}

/// Every blob reads as uploaded; deleted ones stay deleted.
inline void ExpectBlobs(BlobClient& client, const std::map<FileId, std::string>& blobs) {
  for (const auto& [fid, data] : blobs) {
    auto got = client.Read(fid);
    if (data.empty()) {
      // NotFound, or Unavailable while a replica that could have it is down.
      EXPECT_TRUE(got.status().code() == StatusCode::kNotFound ||
                  got.status().code() == StatusCode::kUnavailable)
          << fid.ToString() << " came back: " << got.status().ToString();
    } else {
      ASSERT_TRUE(got.ok()) << fid.ToString() << ": " << got.status().ToString();
      EXPECT_EQ(*got, data) << fid.ToString();
    }
  }
}

}  // namespace needlefs::integration
