// Integration tests of the one-command experience: `needlefs server` (every
// role in one process with a FUSE mount), the flow of scripts/run on a
// smaller tree, a restart that keeps every file, the master's HTML status
// page, and scripts/local-cluster with a volume server killed while the data
// stays readable through the mount.
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "integration/process.h"

namespace needlefs::integration {
namespace {

std::string Script(const std::string& name) {
  return ShellQuote(std::string(NEEDLEFS_SOURCE_DIR) + "/scripts/" + name);
}

std::string Env() { return "NEEDLEFS_BIN=" + ShellQuote(NeedlefsBinary()) + " "; }

/// "key=value" fields of a ready line.
std::map<std::string, std::string> Fields(const std::string& line) {
  std::map<std::string, std::string> out;
  std::istringstream in(line);
  std::string word;
  while (in >> word) {
    if (size_t eq = word.find('='); eq != std::string::npos) {
      out[word.substr(0, eq)] = word.substr(eq + 1);
    }
  }
  return out;
}

bool Mounted(const std::string& dir) {
  std::ifstream in("/proc/mounts");
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(" " + dir + " fuse") != std::string::npos) return true;
  }
  return false;
}

/// The trees the tests copy: real files no one here wrote, a few hundred.
const char* kTrees = "/usr/share/doc/bash /usr/share/doc/git /usr/include/linux/netfilter";

class ServerTest : public ::testing::Test {
 protected:
  void TearDown() override {
    // Whatever a failed test left: the mount first, then the processes.
    for (const auto& m : {tmp_.path() + "/mnt", tmp_.path() + "/cluster/mnt"}) {
      if (Mounted(m)) Sh("umount -l " + ShellQuote(m));
    }
    if (std::filesystem::exists(tmp_.path() + "/cluster")) {
      Sh(Env() + Script("local-cluster") + " stop --dir " + ShellQuote(tmp_.path() + "/cluster"));
    }
    if (std::filesystem::exists(tmp_.path() + "/data/server.pid")) {
      Sh("kill $(cat " + ShellQuote(tmp_.path() + "/data/server.pid") + ")");
    }
  }

  /// Starts `needlefs server` on dir/data with the mount on dir/mnt.
  std::unique_ptr<ChildProcess> StartServer(std::map<std::string, std::string>* fields) {
    std::filesystem::create_directories(tmp_.path() + "/mnt");
    auto p = std::make_unique<ChildProcess>(
        std::vector<std::string>{NeedlefsBinary(), "server", "-dir", tmp_.path() + "/data",
                                 "-mount", tmp_.path() + "/mnt", "-master.port", "0",
                                 "-volume.port", "0", "-meta.port", "0", "-log.level", "warn"},
        tmp_.path());
    std::string error;
    if (!p->Start(&error)) {
      ADD_FAILURE() << error;
      return nullptr;
    }
    auto line = p->WaitForLine("needlefs server ready", 30'000);
    if (!line) {
      ADD_FAILURE() << "server did not start: " << p->LogTail();
      return nullptr;
    }
    *fields = Fields(*line);
    return p;
  }

  TempDir tmp_{"needlefs-server-test-"};
};

// The flow of scripts/run (server, mount, rsync in, diff -r, --stop), then a
// restart of `needlefs server` on the same data: every file is there.
TEST_F(ServerTest, ScriptsRunFlowThenRestartKeepsEveryFile) {
  const std::string data = tmp_.path() + "/data", mnt = tmp_.path() + "/mnt";
  std::string out;
  ASSERT_EQ(Sh(Env() + Script("run") + " --stop --free-ports --dir " + ShellQuote(data) +
                   " --mount " + ShellQuote(mnt) + " --src '" + kTrees + "'",
               &out),
            0)
      << out;
  EXPECT_NE(out.find("needlefs server running"), std::string::npos) << out;
  EXPECT_NE(out.find("copied in"), std::string::npos) << out;
  EXPECT_NE(out.find("MiB/s"), std::string::npos) << out;
  EXPECT_NE(out.find("diff -r: the copy is identical"), std::string::npos) << out;
  EXPECT_NE(out.find("stored: 1 volume servers"), std::string::npos) << out;
  EXPECT_NE(out.find("needlefs server stopped"), std::string::npos) << out;
  EXPECT_FALSE(Mounted(mnt)) << "--stop left the mount behind";
  EXPECT_TRUE(std::filesystem::exists(data + "/meta/meta.rocksdb"));
  EXPECT_TRUE(std::filesystem::exists(data + "/volume-1"));

  // Restart: the same data directory, every file as it was.
  std::map<std::string, std::string> f;
  auto server = StartServer(&f);
  ASSERT_TRUE(server);
  ASSERT_TRUE(Mounted(mnt));
  for (const char* tree :
       {"/usr/share/doc/bash", "/usr/share/doc/git", "/usr/include/linux/netfilter"}) {
    std::string name = std::filesystem::path(tree).filename();
    EXPECT_EQ(
        Sh("diff -r --no-dereference " + std::string(tree) + " " + ShellQuote(mnt + "/" + name),
           &out),
        0)
        << out;
  }
  // New writes after the restart work too, and a second restart keeps them.
  ASSERT_EQ(Sh("head -c 3000000 /dev/urandom > " + ShellQuote(mnt + "/after-restart") +
                   " && sha256sum < " + ShellQuote(mnt + "/after-restart"),
               &out),
            0)
      << out;
  const std::string sum = out;
  server->Kill(SIGTERM);
  ASSERT_EQ(server->Wait(), 0) << server->LogTail();
  EXPECT_FALSE(Mounted(mnt)) << "SIGTERM left the mount behind";
  server = StartServer(&f);
  ASSERT_TRUE(server);
  ASSERT_EQ(Sh("sha256sum < " + ShellQuote(mnt + "/after-restart"), &out), 0) << out;
  EXPECT_EQ(out, sum);
  server->Kill(SIGINT);  // Ctrl-C
  EXPECT_EQ(server->Wait(), 0) << server->LogTail();
  EXPECT_FALSE(Mounted(mnt));
}

// The master's HTML status page: servers, volumes, free space and
// replication health, without JavaScript; JSON and metrics beside it.
TEST_F(ServerTest, StatusPageShowsServersVolumesAndHealth) {
  std::filesystem::create_directories(tmp_.path() + "/mnt");
  ChildProcess p({NeedlefsBinary(), "server", "-dir", tmp_.path() + "/data", "-volumes", "3",
                  "-mount", tmp_.path() + "/mnt", "-master.port", "0", "-volume.port", "0",
                  "-meta.port", "0", "-log.level", "warn"},
                 tmp_.path());
  ASSERT_TRUE(p.Start());
  auto line = p.WaitForLine("needlefs server ready", 30'000);
  ASSERT_TRUE(line) << p.LogTail();
  auto f = Fields(*line);
  EXPECT_EQ(f["replication"], "010");  // three volume servers in two racks
  std::string out;
  ASSERT_EQ(Sh("cp -a /usr/share/doc/bash " + ShellQuote(tmp_.path() + "/mnt/")), 0);
  ASSERT_EQ(Sh("diff -r /usr/share/doc/bash " + ShellQuote(tmp_.path() + "/mnt/bash"), &out), 0)
      << out;

  const std::string master = f["master"];
  std::string page;
  for (int i = 0; i < 50; ++i) {  // the volume grown for the copy is there at once
    ASSERT_EQ(Sh("curl -sf http://" + master + "/", &page), 0);
    if (page.find("<td class=\"n\">1</td><td>-</td><td>010</td>") != std::string::npos) break;
    usleep(200'000);
  }
  EXPECT_NE(page.find("<!DOCTYPE html>"), std::string::npos);
  EXPECT_EQ(page.find("<script"), std::string::npos) << "no JavaScript";
  EXPECT_NE(page.find("<b>3</b> volume servers in 2 racks"), std::string::npos) << page;
  EXPECT_NE(page.find("replication healthy"), std::string::npos) << page;
  EXPECT_NE(page.find("rack2"), std::string::npos) << page;
  EXPECT_NE(page.find("free of"), std::string::npos) << page;
  EXPECT_NE(page.find("<td class=\"n\">1</td><td>-</td><td>010</td>"), std::string::npos) << page;
  // Every volume server of the ready line is on the page.
  std::stringstream vols(f["volumes"]);
  std::string v;
  int servers = 0;
  while (std::getline(vols, v, ',')) {
    EXPECT_NE(page.find(v), std::string::npos) << v;
    ++servers;
  }
  EXPECT_EQ(servers, 3);
  EXPECT_EQ(Sh("curl -sf http://" + master + "/vol/status | grep -c '\"grpcPort\"'", &out), 0);
  EXPECT_EQ(out, "3\n");
  EXPECT_EQ(Sh("curl -sf http://" + f["meta_http"] + "/metrics | grep -c '^needlefs_'", &out), 0);
  EXPECT_EQ(Sh("curl -sf http://" + f["meta_http"] + "/status", &out), 0);
  EXPECT_NE(out.find("\"Role\": \"meta\""), std::string::npos) << out;
  // admin through the master sees every replica and no problem.
  EXPECT_EQ(Sh(ShellQuote(NeedlefsBinary()) + " admin volume.check -master " + master, &out), 0)
      << out;
  EXPECT_NE(out.find("0 problems"), std::string::npos) << out;
  EXPECT_EQ(Sh(ShellQuote(NeedlefsBinary()) + " admin volume.list -master " + master, &out), 0)
      << out;
  EXPECT_NE(out.find("2 volume replicas on 3 servers"), std::string::npos) << out;
  p.Kill(SIGTERM);
  EXPECT_EQ(p.Wait(), 0) << p.LogTail();
  EXPECT_FALSE(Mounted(tmp_.path() + "/mnt"));
}

// scripts/local-cluster: five processes and a mount; a volume server killed
// with SIGKILL, and everything written before reads back intact through a
// fresh mount (replica fallback); the master then reports the loss.
TEST_F(ServerTest, LocalClusterSurvivesAKilledVolumeServer) {
  const std::string dir = tmp_.path() + "/cluster";
  std::string out;
  ASSERT_EQ(
      Sh(Env() + Script("local-cluster") + " start --free-ports --dir " + ShellQuote(dir), &out), 0)
      << out;
  EXPECT_NE(out.find("3 volume servers, 0 under-replicated volumes"), std::string::npos) << out;
  std::map<std::string, std::string> env;
  {
    std::ifstream in(dir + "/cluster.env");
    std::string l;
    while (std::getline(in, l)) {
      if (size_t eq = l.find('='); eq != std::string::npos) env[l.substr(0, eq)] = l.substr(eq + 1);
    }
  }
  ASSERT_FALSE(env["MASTER"].empty());
  ASSERT_TRUE(Mounted(dir + "/mnt")) << out;
  ASSERT_EQ(Sh("cp -a /usr/share/doc/git " + ShellQuote(dir + "/mnt/") +
                   " && head -c 12000000 "
                   "/dev/urandom > " +
                   ShellQuote(dir + "/mnt/big") + " && sha256sum < " + ShellQuote(dir + "/mnt/big"),
               &out),
            0)
      << out;
  const std::string sum = out;
  // Every volume written has a copy on v3 (the only server in rack2 with
  // replication 010): killing it loses one replica of each.
  ASSERT_EQ(Sh("kill -9 $(cat " + ShellQuote(dir + "/v3.pid") + ")"), 0);
  ASSERT_EQ(Sh("umount " + ShellQuote(dir + "/mnt")), 0);
  std::filesystem::create_directories(tmp_.path() + "/mnt");
  ASSERT_EQ(Sh(ShellQuote(NeedlefsBinary()) + " mount -meta " + env["META"] + " -master " +
                   env["MASTER"] + " " + ShellQuote(tmp_.path() + "/mnt"),
               &out),
            0)
      << out;
  EXPECT_EQ(
      Sh("diff -r --no-dereference /usr/share/doc/git " + ShellQuote(tmp_.path() + "/mnt/git"),
         &out),
      0)
      << out;
  EXPECT_EQ(Sh("sha256sum < " + ShellQuote(tmp_.path() + "/mnt/big"), &out), 0);
  EXPECT_EQ(out, sum);
  Sh("umount " + ShellQuote(tmp_.path() + "/mnt"));

  // status names the dead server; after the dead-node timeout (10 s) the
  // master reports the volumes under-replicated.
  ASSERT_EQ(Sh(Env() + Script("local-cluster") + " status --dir " + ShellQuote(dir), &out), 0)
      << out;
  EXPECT_NE(out.find("v3      "), std::string::npos) << out;
  EXPECT_NE(out.find("dead"), std::string::npos) << out;
  bool reported = false;
  for (int i = 0; i < 60 && !reported; ++i) {
    Sh(ShellQuote(NeedlefsBinary()) + " admin cluster.status -master " + env["MASTER"], &out);
    reported = out.find("2 volume servers, 0 under") == std::string::npos &&
               out.find("2 volume servers,") != std::string::npos;
    if (!reported) usleep(500'000);
  }
  EXPECT_TRUE(reported) << out;
  ASSERT_EQ(Sh(Env() + Script("local-cluster") + " stop --dir " + ShellQuote(dir), &out), 0) << out;
  ASSERT_EQ(Sh(Env() + Script("local-cluster") + " status --dir " + ShellQuote(dir), &out), 0)
      << out;
  EXPECT_EQ(out.find("running"), std::string::npos) << out;
}

}  // namespace
}  // namespace needlefs::integration
