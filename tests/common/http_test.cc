#include "common/http.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace needlefs {
namespace {

TEST(HttpTest, ServerAndClientRoundTripWithKeepAlive) {
  std::atomic<int> calls{0};
  auto server = HttpServer::Start({}, [&calls](HttpRequest& req) {
    ++calls;
    HttpResponse r;
    r.body = req.method + " " + req.path + " " + req.QueryParam("q") + " " + req.body;
    r.headers["X-Echo"] = std::string(req.Header("x-in"));
    return r;
  });
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  HttpClient client("127.0.0.1", (*server)->port());
  for (int i = 0; i < 50; ++i) {
    auto r = client.Request("POST", "/a%20b?q=x+y", "body", {{"X-In", "v"}});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "POST /a b x y body");
    EXPECT_EQ(r->Header("x-echo"), "v");
  }
  EXPECT_EQ(calls.load(), 50);
}

TEST(HttpTest, HeadReportsLengthWithoutBody) {
  auto server = HttpServer::Start({}, [](HttpRequest&) {
    HttpResponse r;
    r.content_length = 12345;
    return r;
  });
  ASSERT_TRUE(server.ok());
  HttpClient client("127.0.0.1", (*server)->port());
  auto r = client.Request("HEAD", "/x");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->Header("Content-Length"), "12345");
  EXPECT_TRUE(r->body.empty());
  auto again = client.Request("HEAD", "/y");  // the connection is still usable
  ASSERT_TRUE(again.ok());
}

TEST(HttpTest, OversizedBodyGets413) {
  HttpServerOptions o;
  o.max_body_bytes = 1000;
  auto server = HttpServer::Start(o, [](HttpRequest&) { return HttpResponse{}; });
  ASSERT_TRUE(server.ok());
  HttpClient client("127.0.0.1", (*server)->port());
  auto r = client.Request("PUT", "/x", std::string(5000, 'a'));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 413);
}

TEST(HttpTest, ConcurrentClients) {
  auto server = HttpServer::Start({}, [](HttpRequest& req) {
    HttpResponse r;
    r.body = req.body;
    return r;
  });
  ASSERT_TRUE(server.ok());
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      HttpClient c("127.0.0.1", (*server)->port());
      for (int i = 0; i < 100; ++i) {
        std::string body = std::to_string(t * 1000 + i);
        auto r = c.Request("PUT", "/", body);
        if (r.ok() && r->body == body) ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 800);
}

TEST(HttpTest, StopClosesTheListener) {
  auto server = HttpServer::Start({}, [](HttpRequest&) { return HttpResponse{}; });
  ASSERT_TRUE(server.ok());
  uint16_t port = (*server)->port();
  (*server)->Stop();
  HttpClient client("127.0.0.1", port, 2000);
  EXPECT_FALSE(client.Request("GET", "/").ok());
}

/// The pool's answers from `server` at `port` of this process, with the
/// thread each handler ran on.
struct Seen {
  std::thread::id thread;
  std::string method, path, query, body, host, remote;
};

TEST(HttpTest, APoolRequestToAServerOfThisProcessRunsOnTheCallersThread) {
  for (const bool in_process : {true, false}) {
    SCOPED_TRACE(in_process ? "in process" : "over TCP");
    Seen seen;
    std::mutex mu;
    HttpServerOptions o;
    o.max_body_bytes = 1000;
    o.in_process = in_process;
    auto server = HttpServer::Start(o, [&](HttpRequest& req) {
      std::lock_guard<std::mutex> g(mu);
      seen = Seen{std::this_thread::get_id(), req.method, req.path,
                  req.QueryParam("q"),        req.body,   std::string(req.Header("Host")),
                  req.remote_address};
      if (req.path == "/throw") throw std::runtime_error("boom");
      HttpResponse r;
      r.status = req.path == "/created" ? 201 : 200;
      r.headers["X-Echo"] = std::string(req.Header("x-in"));
      r.headers["Bad\r\nHeader"] = "dropped";
      if (req.method == "HEAD") {
        r.content_length = 12345;
      } else {
        r.body = "got " + req.body;
      }
      return r;
    });
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    const std::string where = "127.0.0.1:" + std::to_string((*server)->port());
    HttpClientPool pool(5000);
    auto r = pool.Request(where, "PUT", "/a%20b?q=x+y", "body", {{"X-In", "v"}});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "got body");
    EXPECT_EQ(r->Header("X-Echo"), "v");
    EXPECT_EQ(r->Header("Content-Length"), "8");
    EXPECT_EQ(r->Header("Server"), "needlefs");
    EXPECT_TRUE(r->Header("Bad\r\nHeader").empty());
    {
      std::lock_guard<std::mutex> g(mu);
      EXPECT_EQ(seen.thread == std::this_thread::get_id(), in_process);
      EXPECT_EQ(seen.method, "PUT");
      EXPECT_EQ(seen.path, "/a b");
      EXPECT_EQ(seen.query, "x y");
      EXPECT_EQ(seen.body, "body");
      EXPECT_EQ(seen.host, where);
    }
    // The same answers as over a socket: HEAD's length without a body, 413
    // for a body over the limit, a handler's exception as 500, any status.
    r = pool.Request(where, "HEAD", "/h");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->Header("Content-Length"), "12345");
    EXPECT_TRUE(r->body.empty());
    r = pool.Request(where, "PUT", "/big", std::string(5000, 'a'));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 413);
    r = pool.Request(where, "GET", "/throw");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 500);
    r = pool.Request(where, "POST", "/created", "x");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 201);
    // Stopped: nothing answers any more, in process or not.
    (*server)->Stop();
    EXPECT_FALSE(pool.Request(where, "GET", "/").ok());
  }
}

TEST(HttpTest, PercentEncodeRoundTrips) {
  const std::string odd = "caf\xe9 a+b/c?d=e&f%g~h_i.j-k";
  const std::string enc = PercentEncode(odd);
  EXPECT_EQ(enc, "caf%E9%20a%2Bb%2Fc%3Fd%3De%26f%25g~h_i.j-k");
  EXPECT_EQ(PercentDecode(enc), odd);
}

TEST(HttpTest, SplitHostPort) {
  std::string h;
  uint16_t p;
  ASSERT_TRUE(SplitHostPort("127.0.0.1:8080", &h, &p).ok());
  EXPECT_EQ(h, "127.0.0.1");
  EXPECT_EQ(p, 8080);
  ASSERT_TRUE(SplitHostPort("[::1]:9333", &h, &p).ok());
  EXPECT_EQ(h, "::1");
  EXPECT_EQ(JoinHostPort(h, p), "[::1]:9333");
  EXPECT_EQ(JoinHostPort("127.0.0.1", 8080), "127.0.0.1:8080");
  EXPECT_FALSE(SplitHostPort("host", &h, &p).ok());
  EXPECT_FALSE(SplitHostPort("host:99999", &h, &p).ok());
}

}  // namespace
}  // namespace needlefs
