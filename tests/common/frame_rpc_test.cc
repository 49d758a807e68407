// FrameRpcServer and FrameRpcClient over real loopback sockets: calls,
// errors, malformed and hostile frames, timeouts, restarts, concurrency.
#include "common/frame_rpc.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace needlefs {
namespace {

/// "echo" returns its request, "fail" fails with code 5 and message
/// "nope", "sleep" sleeps for the milliseconds in its request, "big"
/// returns as many bytes as its request says; anything else is code 12.
FrameRpcResult TestHandler(std::string_view method, std::string_view in, std::string* out) {
  if (method == "echo") {
    *out = in;
    return {};
  }
  if (method == "fail") return {5, "nope"};
  if (method == "sleep") {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::stoi(std::string(in))));
    *out = "slept";
    return {};
  }
  if (method == "throw") throw std::runtime_error("handler bug");
  if (method == "big") {
    out->assign(std::stoul(std::string(in)), 'b');
    return {};
  }
  return {12, "no method " + std::string(method)};
}

std::unique_ptr<FrameRpcServer> StartServer(uint16_t port = 0, FrameRpcServerOptions o = {}) {
  auto s = FrameRpcServer::Start("127.0.0.1", port, TestHandler, o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

/// A raw connection to the server, for frames no client would send.
int RawConnect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  return fd;
}

/// Whether the server closed `fd` within 2 s (read returns 0 or an error).
bool ClosedByServer(int fd) {
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char c;
  const ssize_t n = read(fd, &c, 1);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

TEST(FrameRpcTest, CallsReturnRepliesAndErrors) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  FrameRpcClient client("127.0.0.1", server->port());
  std::string reply;
  auto r = client.Call("echo", std::string("hello\0world", 11), &reply, 5000);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->code, 0);
  EXPECT_EQ(reply, std::string("hello\0world", 11));
  // An empty request and an empty reply are fine.
  r = client.Call("echo", "", &reply, 5000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(reply, "");
  r = client.Call("fail", "x", &reply, 5000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->code, 5);
  EXPECT_EQ(r->message, "nope");
  r = client.Call("what", "x", &reply, 5000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->code, 12);
  // A reply of 3 MiB arrives whole.
  r = client.Call("big", std::to_string(3 << 20), &reply, 5000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(reply.size(), size_t{3} << 20);
  EXPECT_EQ(client.Call(std::string(256, 'm'), "", &reply, 5000).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(FrameRpcTest, ManyThreadsEachGetTheirOwnReply) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  FrameRpcClient client("127.0.0.1", server->port());
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::string reply;
      for (int i = 0; i < 300; ++i) {
        const std::string req = std::to_string(t) + ":" + std::to_string(i);
        auto r = client.Call("echo", req, &reply, 5000);
        if (!r.ok() || r->code != 0 || reply != req) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(FrameRpcTest, NoReplyInTimeIsDeadlineExceededAndTheNextCallWorks) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  FrameRpcClient client("127.0.0.1", server->port());
  std::string reply;
  bool sent = false;
  auto r = client.Call("sleep", "500", &reply, 100, &sent);
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(sent);
  // The late reply went to a closed connection, not to the next call.
  r = client.Call("echo", "after", &reply, 5000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(reply, "after");
}

TEST(FrameRpcTest, NoServerIsUnavailableAndNothingWasSent) {
  uint16_t port;
  {
    auto server = StartServer();
    ASSERT_NE(server, nullptr);
    port = server->port();
  }
  FrameRpcClient client("127.0.0.1", port);
  std::string reply;
  bool sent = true;
  auto r = client.Call("echo", "x", &reply, 2000, &sent);
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_FALSE(sent);
}

TEST(FrameRpcTest, APooledConnectionToARestartedServerIsDroppedNotUsed) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  const uint16_t port = server->port();
  FrameRpcClient client("127.0.0.1", port);
  std::string reply;
  ASSERT_TRUE(client.Call("echo", "one", &reply, 5000).ok());  // pooled now
  server.reset();
  server = StartServer(port);
  ASSERT_NE(server, nullptr);
  auto r = client.Call("echo", "two", &reply, 5000);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(reply, "two");
}

TEST(FrameRpcTest, HostileFramesCloseTheirConnectionAndHurtNoOne) {
  FrameRpcServerOptions o;
  o.max_request_bytes = 1024;
  auto server = StartServer(0, o);
  ASSERT_NE(server, nullptr);
  // A length over the cap.
  int fd = RawConnect(server->port());
  const unsigned char huge[] = {0x7f, 0xff, 0xff, 0xff, 4, 'e', 'c', 'h', 'o'};
  ASSERT_EQ(write(fd, huge, sizeof(huge)), static_cast<ssize_t>(sizeof(huge)));
  EXPECT_TRUE(ClosedByServer(fd));
  close(fd);
  // A zero length.
  fd = RawConnect(server->port());
  const unsigned char zero[] = {0, 0, 0, 0};
  ASSERT_EQ(write(fd, zero, sizeof(zero)), 4);
  EXPECT_TRUE(ClosedByServer(fd));
  close(fd);
  // A method name longer than the frame.
  fd = RawConnect(server->port());
  const unsigned char longname[] = {0, 0, 0, 3, 200, 'a', 'b'};
  ASSERT_EQ(write(fd, longname, sizeof(longname)), static_cast<ssize_t>(sizeof(longname)));
  EXPECT_TRUE(ClosedByServer(fd));
  close(fd);
  // A frame cut short, then the client goes away.
  fd = RawConnect(server->port());
  const unsigned char cut[] = {0, 0, 0, 100, 4, 'e'};
  ASSERT_EQ(write(fd, cut, sizeof(cut)), static_cast<ssize_t>(sizeof(cut)));
  close(fd);
  // The server still answers everyone else.
  FrameRpcClient client("127.0.0.1", server->port());
  std::string reply;
  auto r = client.Call("echo", "still here", &reply, 5000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(reply, "still here");
}

TEST(FrameRpcTest, AThrowingHandlerFailsItsCallNotTheServer) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  FrameRpcClient client("127.0.0.1", server->port());
  std::string reply;
  auto r = client.Call("throw", "", &reply, 5000);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->code, 2);
  EXPECT_NE(r->message.find("handler bug"), std::string::npos);
  r = client.Call("echo", "alive", &reply, 5000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(reply, "alive");
}

TEST(FrameRpcTest, AtTheConnectionLimitACallIsRefusedUnreadAndSaysSo) {
  FrameRpcServerOptions o;
  o.max_connections = 1;
  auto server = StartServer(0, o);
  ASSERT_NE(server, nullptr);
  FrameRpcClient first("127.0.0.1", server->port());
  std::string reply;
  ASSERT_TRUE(first.Call("echo", "x", &reply, 5000).ok());  // holds the one connection
  FrameRpcClient second("127.0.0.1", server->port());
  bool sent = true;
  auto r = second.Call("echo", "y", &reply, 5000, &sent);
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
  EXPECT_FALSE(sent) << "a refused call must say it did not run";
}

TEST(FrameRpcTest, ShutdownLetsACallInAHandlerSendItsReply) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  FrameRpcClient client("127.0.0.1", server->port());
  StatusOr<FrameRpcResult> r = Status::Internal("not run");
  std::string reply;
  std::thread caller([&] { r = client.Call("sleep", "300", &reply, 5000); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  server->Shutdown();
  caller.join();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(reply, "slept");
}

TEST(FrameRpcTest, SlowLargeRequestsDoNotHoldUpSmallCalls) {
  FrameRpcServerOptions o;
  o.max_request_bytes = 8 << 20;
  o.max_buffered_bytes = 1 << 20;
  auto server = StartServer(0, o);
  ASSERT_NE(server, nullptr);
  // Four clients announce 8 MiB each, send 600 KiB and stall: together
  // over the budget.
  std::vector<int> fds;
  const std::string part(600 << 10, 'p');
  for (int i = 0; i < 4; ++i) {
    int fd = RawConnect(server->port());
    const unsigned char hdr[] = {0x00, 0x80, 0x00, 0x00, 4, 'e', 'c', 'h', 'o'};
    ASSERT_EQ(write(fd, hdr, sizeof(hdr)), static_cast<ssize_t>(sizeof(hdr)));
    (void)!write(fd, part.data(), part.size());
    fds.push_back(fd);
  }
  FrameRpcClient client("127.0.0.1", server->port());
  std::string reply;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = client.Call("echo", "small", &reply, 5000);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(reply, "small");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  for (int fd : fds) close(fd);
}

TEST(FrameRpcTest, ShutdownEndsIdleConnectionsPromptly) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  FrameRpcClient client("127.0.0.1", server->port());
  std::string reply;
  ASSERT_TRUE(client.Call("echo", "x", &reply, 5000).ok());
  const auto t0 = std::chrono::steady_clock::now();
  server->Shutdown();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  EXPECT_FALSE(client.Call("echo", "x", &reply, 2000).ok());
}

}  // namespace
}  // namespace needlefs
