// FrameRpcServer and FrameRpcClient over real loopback sockets: calls,
// errors, malformed and hostile frames, timeouts, restarts, concurrency;
// and the in-process path to a server of the same process.
#include "common/frame_rpc.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace needlefs {
namespace {

/// "echo" returns its request, "fail" fails with code 5 and message
/// "nope", "sleep" sleeps for the milliseconds in its request, "big"
/// returns as many bytes as its request says, "thread" the hash of the
/// thread it runs on; anything else is code 12.
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
  if (method == "thread") {
    *out = std::to_string(std::hash<std::thread::id>()(std::this_thread::get_id()));
    return {};
  }
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

/// A client that always uses the socket, even to a server in this process
/// (every test but the in-process ones is about the wire).
FrameRpcClientOptions Socket() {
  FrameRpcClientOptions o;
  o.in_process = false;
  return o;
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

void CheckCalls(bool in_process);

TEST(FrameRpcTest, CallsReturnRepliesAndErrors) {
  for (bool in_process : {false, true}) {
    SCOPED_TRACE(in_process ? "in process" : "over the socket");
    CheckCalls(in_process);
  }
}

void CheckCalls(bool in_process) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  FrameRpcClientOptions o;
  o.in_process = in_process;
  FrameRpcClient client("127.0.0.1", server->port(), o);
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
  FrameRpcClient client("127.0.0.1", server->port(), Socket());
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
  FrameRpcClient client("127.0.0.1", server->port(), Socket());
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
  FrameRpcClient client("127.0.0.1", port, Socket());
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
  FrameRpcClient client("127.0.0.1", port, Socket());
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
  FrameRpcClient client("127.0.0.1", server->port(), Socket());
  std::string reply;
  auto r = client.Call("echo", "still here", &reply, 5000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(reply, "still here");
}

TEST(FrameRpcTest, AThrowingHandlerFailsItsCallNotTheServer) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  FrameRpcClient client("127.0.0.1", server->port(), Socket());
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
  FrameRpcClient first("127.0.0.1", server->port(), Socket());
  std::string reply;
  ASSERT_TRUE(first.Call("echo", "x", &reply, 5000).ok());  // holds the one connection
  FrameRpcClient second("127.0.0.1", server->port(), Socket());
  bool sent = true;
  auto r = second.Call("echo", "y", &reply, 5000, &sent);
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
  EXPECT_FALSE(sent) << "a refused call must say it did not run";
}

TEST(FrameRpcTest, ShutdownLetsACallInAHandlerSendItsReply) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  FrameRpcClient client("127.0.0.1", server->port(), Socket());
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
  FrameRpcClient client("127.0.0.1", server->port(), Socket());
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
  FrameRpcClient client("127.0.0.1", server->port(), Socket());
  std::string reply;
  ASSERT_TRUE(client.Call("echo", "x", &reply, 5000).ok());
  const auto t0 = std::chrono::steady_clock::now();
  server->Shutdown();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  EXPECT_FALSE(client.Call("echo", "x", &reply, 2000).ok());
}

std::string ThisThread() {
  return std::to_string(std::hash<std::thread::id>()(std::this_thread::get_id()));
}

TEST(FrameRpcTest, AServerInThisProcessRunsCallsOnTheCallersThread) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  FrameRpcClient local("127.0.0.1", server->port());
  FrameRpcClient remote("127.0.0.1", server->port(), Socket());
  std::string reply;
  for (int i = 0; i < 3; ++i) {
    auto r = local.Call("thread", "", &reply, 5000);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(reply, ThisThread());
  }
  ASSERT_TRUE(remote.Call("thread", "", &reply, 5000).ok());
  EXPECT_NE(reply, ThisThread()) << "over the socket, the server's thread runs it";
  // An exception in the handler fails the call, as over the socket.
  auto r = local.Call("throw", "", &reply, 5000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->code, 2);
  EXPECT_NE(r->message.find("handler bug"), std::string::npos);
}

TEST(FrameRpcTest, AServerThatDoesNotKnowTheProbeIsCalledOverTheSocket) {
  // A server of another process (or an older one): a raw socket server
  // that answers the probe as a server would (code 0, even with bytes),
  // but claims nothing in this process, then echoes. Every call must reach
  // it over the socket.
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(listen(lfd, 4), 0);
  socklen_t len = sizeof(a);
  getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
  std::atomic<int> served{0};
  std::thread fake([&] {
    int fd = accept(lfd, nullptr, nullptr);
    auto read_n = [&](char* p, size_t n) {
      size_t got = 0;
      while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r <= 0) return false;
        got += r;
      }
      return true;
    };
    for (;;) {
      unsigned char h[4];
      if (!read_n(reinterpret_cast<char*>(h), 4)) break;
      std::string body((size_t{h[0]} << 24) | (h[1] << 16) | (h[2] << 8) | h[3], '\0');
      if (!read_n(body.data(), body.size())) break;
      const size_t name = static_cast<unsigned char>(body[0]);
      std::string out = body.substr(1 + name);
      if (body.substr(1, name) == "@local") out = "\x01\x02\x03\x04\x05\x06\x07\x08";
      ++served;
      const uint32_t n = 4 + out.size();
      unsigned char rh[8] = {static_cast<unsigned char>(n >> 24),
                             static_cast<unsigned char>(n >> 16),
                             static_cast<unsigned char>(n >> 8),
                             static_cast<unsigned char>(n),
                             0,
                             0,
                             0,
                             0};
      std::string reply(reinterpret_cast<char*>(rh), 8);
      reply += out;
      if (write(fd, reply.data(), reply.size()) != static_cast<ssize_t>(reply.size())) break;
    }
    close(fd);
  });
  {
    FrameRpcClient client("127.0.0.1", ntohs(a.sin_port));
    std::string reply;
    for (int i = 0; i < 2; ++i) {
      auto r = client.Call("echo", "over the wire", &reply, 5000);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_EQ(reply, "over the wire");
    }
  }  // closes the connection: the fake ends
  fake.join();
  close(lfd);
  EXPECT_EQ(served.load(), 3) << "the probe and both calls went over the socket";
}

TEST(FrameRpcTest, ShutdownWaitsForInProcessCallsAndRefusesNewOnes) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  FrameRpcClient client("127.0.0.1", server->port());
  std::string reply;
  ASSERT_TRUE(client.Call("echo", "x", &reply, 5000).ok());
  StatusOr<FrameRpcResult> r = Status::Internal("not run");
  std::string slow_reply;
  std::thread caller([&] { r = client.Call("sleep", "300", &slow_reply, 5000); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto t0 = std::chrono::steady_clock::now();
  server->Shutdown();
  // The handler's objects may go right after Shutdown: it returned only
  // once the call running in it was done.
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(100));
  caller.join();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(slow_reply, "slept");
  bool sent = true;
  auto after = client.Call("echo", "x", &reply, 2000, &sent);
  EXPECT_EQ(after.status().code(), StatusCode::kUnavailable) << after.status().ToString();
  EXPECT_FALSE(sent) << "a call the stopped server never ran must say so";
}

}  // namespace
}  // namespace needlefs
