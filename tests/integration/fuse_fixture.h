// The fixture of the FUSE integration suites: one cluster of real processes
// on loopback per suite (master, one volume server, meta), a main mount of
// it started by the test (`needlefs mount -f`), and helpers to start and
// stop more mounts. Each test works in its own directory of the main mount,
// named after the test.
//
// FuseFixture<Suite> is a CRTP base so that every suite deriving from it
// gets its own static cluster (the members are per instantiation). A suite
// calls StartCluster from its SetUpTestSuite and StopCluster from its
// TearDownTestSuite; gtest runs the latter even when the former failed, so
// the mount and the daemons go away whatever happened.
//
// Thread-safety: none; use from the test's main thread (daemons die with the
// thread that started them, see ChildProcess::Start).
#pragma once

#include <gtest/gtest.h>

#include <csignal>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "integration/process.h"

namespace needlefs::integration {

/// "127.0.0.1:<port>", where every daemon of the test listens.
inline std::string Addr(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

/// The whole contents of file `path` ("" when unreadable).
inline std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

template <typename Suite>
class FuseFixture : public ::testing::Test {
 protected:
  /// Starts master, volume server and meta with their data and logs in a
  /// new temp dir "<tmp>/<tmp_prefix>XXXXXX", then the main mount at mnt()
  /// with `mount_args` added to `needlefs mount`. Failures are test
  /// failures of the suite; SetUp then fails every test (mount_ is null).
  static void StartCluster(const std::string& tmp_prefix,
                           const std::vector<std::string>& mount_args) {
    tmp_ = new TempDir(tmp_prefix);
    const std::string dir = tmp_->path();
    master_ = Start(
        {"master", "-mdir", dir + "/master", "-port", "0", "-grpcPort", "0", "-log.level", "warn"},
        "needlefs master ready");
    ASSERT_NE(master_.http_port, 0);
    volume_ = Start({"volume", "-dir", dir + "/volume", "-port", "0", "-grpcPort", "0", "-max",
                     "16", "-mserver", Addr(master_.http_port), "-mserverGrpcPort",
                     std::to_string(master_.grpc_port), "-log.level", "warn"},
                    "needlefs volume ready");
    ASSERT_NE(volume_.http_port, 0);
    meta_ = Start({"meta", "-dir", dir + "/meta", "-port", "0", "-volumeServers",
                   Addr(volume_.http_port), "-log.level", "warn"},
                  "needlefs meta ready");
    ASSERT_NE(meta_.grpc_port, 0);
    mount_ = StartMount(dir + "/mnt", mount_args);
    ASSERT_TRUE(mount_ != nullptr);
  }

  /// Unmounts the main mount, stops the daemons and removes the temp dir.
  static void StopCluster() {
    if (tmp_ == nullptr) return;
    StopMount(std::move(mount_), tmp_->path() + "/mnt");
    master_.process.reset();
    volume_.process.reset();
    meta_.process.reset();
    delete tmp_;
    tmp_ = nullptr;
  }

  /// Creates this test's directory work_ (mnt() + "/" + test name).
  void SetUp() override {
    ASSERT_TRUE(mount_ != nullptr) << "the suite's mount did not start";
    name_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    work_ = mnt() + "/" + name_;
    std::error_code ec;
    std::filesystem::create_directory(work_, ec);
    ASSERT_FALSE(ec) << work_ << ": " << ec.message();
  }

  /// The main mount's mountpoint.
  static std::string mnt() { return tmp_->path() + "/mnt"; }

  /// `needlefs <args...>`, ready once it printed `ready`; an empty
  /// DaemonProcess (ports 0) and a test failure when it did not start.
  static DaemonProcess Start(const std::vector<std::string>& args, const std::string& ready) {
    std::string error;
    auto d = StartDaemon(args, ready, tmp_->path(), &error, 15'000);
    if (!d) {
      ADD_FAILURE() << error;
      return {};
    }
    return std::move(*d);
  }

  /// `needlefs mount -f` on `mountpoint` (created), ready when it returns;
  /// null (and a test failure) when it did not come up.
  static std::unique_ptr<ChildProcess> StartMount(const std::string& mountpoint,
                                                  const std::vector<std::string>& extra = {}) {
    std::filesystem::create_directories(mountpoint);
    std::vector<std::string> argv{
        NeedlefsBinary(),        "mount",      "-f",  "-meta", Addr(meta_.grpc_port), "-master",
        Addr(master_.http_port), "-log.level", "warn"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(mountpoint);
    auto p = std::make_unique<ChildProcess>(argv, tmp_->path());
    std::string error;
    if (!p->Start(&error)) {
      ADD_FAILURE() << error;
      return nullptr;
    }
    if (!p->WaitForLine("needlefs mount ready", 15'000)) {
      ADD_FAILURE() << "mount did not start: " << p->LogTail();
      return nullptr;
    }
    return p;
  }

  /// SIGTERM (the clean way), then SIGKILL if it hangs; a lazy unmount
  /// cleans up whatever is left. `p` may be null (only the unmount).
  static void StopMount(std::unique_ptr<ChildProcess> p, const std::string& mountpoint) {
    if (p && p->running()) {
      p->Kill(SIGTERM);
      if (!p->WaitFor(15'000)) {
        ADD_FAILURE() << "mount did not stop on SIGTERM";
        p->Kill(SIGKILL);
        p->Wait();
      }
    }
    Sh("umount -l " + ShellQuote(mountpoint) + " 2>/dev/null");
  }

  inline static TempDir* tmp_ = nullptr;
  inline static DaemonProcess master_, volume_, meta_;
  inline static std::unique_ptr<ChildProcess> mount_;
  std::string name_;
  std::string work_;  // this test's directory inside the mount
};

}  // namespace needlefs::integration
