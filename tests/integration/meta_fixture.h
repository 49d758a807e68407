// A `needlefs meta` process on loopback for integration tests, with a
// MetaClient connected to it; Start() again after a kill restarts it on the
// same data directory.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "client/meta_client.h"
#include "integration/process.h"

namespace needlefs::integration {

class MetaFixture : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(Start()); }

  /// Starts `needlefs meta` on the test's data dir (again after a kill).
  void Start() {
    std::vector<std::string> args{"meta",       "-dir", tmp_.path() + "/meta", "-port", "0",
                                  "-log.level", "warn"};
    args.insert(args.end(), extra_args_.begin(), extra_args_.end());
    std::string error;
    auto d = StartDaemon(args, "needlefs meta ready", tmp_.path(), &error);
    ASSERT_TRUE(d.has_value()) << error;
    ASSERT_NE(d->grpc_port, 0);
    process_ = std::move(d->process);
    addr_ = "127.0.0.1:" + std::to_string(d->grpc_port);
    http_port_ = d->http_port;
    auto c = MetaClient::Create(addr_, 10'000);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::move(c).value();
  }

  TempDir tmp_{"needlefs-meta-test-"};
  std::vector<std::string> extra_args_;
  std::unique_ptr<ChildProcess> process_;
  std::string addr_;
  uint16_t http_port_ = 0;  // /metrics
  std::unique_ptr<MetaClient> client_;
  RequestContext root_ = RequestContext::Root();
};

}  // namespace needlefs::integration
