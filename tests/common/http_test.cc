#include "common/http.h"

#include <gtest/gtest.h>

#include <atomic>
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
