// Integration tests of `needlefs volume` (src/objstore/volume_server.cc):
// a real server process per test on loopback, driven through real clients
// (the curl command line, HttpClient, the generated gRPC stub).
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/http.h"
#include "integration/process.h"
#include "volume_server.grpc.pb.h"

namespace needlefs::integration {
namespace {

namespace pb = ::needlefs::volume;
using namespace std::chrono_literals;

constexpr char kCurl[] = "/usr/bin/curl";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  return static_cast<bool>(out);
}

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

/// "<volume>,<key hex, even digits><cookie 8 hex>", as SeaweedFS writes it.
std::string Fid(uint32_t volume, uint64_t key, uint32_t cookie) {
  char key_hex[17];
  std::snprintf(key_hex, sizeof(key_hex), "%llx", static_cast<unsigned long long>(key));
  std::string k = key_hex;
  if (k.size() % 2 != 0) k = "0" + k;
  char cookie_hex[9];
  std::snprintf(cookie_hex, sizeof(cookie_hex), "%08x", cookie);
  return std::to_string(volume) + "," + k + cookie_hex;
}

/// Compares blobs without printing megabytes on failure.
::testing::AssertionResult SameBytes(const std::string& got, const std::string& want) {
  if (got == want) return ::testing::AssertionSuccess();
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  return ::testing::AssertionFailure() << "got " << got.size() << " bytes, want " << want.size()
                                       << "; first difference at offset " << i;
}

/// Headers of the last response in a `curl -D` dump (skips 100 Continue).
HttpHeaders ParseHeaderDump(const std::string& dump) {
  HttpHeaders headers;
  std::istringstream in(dump);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.rfind("HTTP/", 0) == 0) {
      headers.clear();
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    headers[line.substr(0, colon)] = value;
  }
  return headers;
}

struct CurlResult {
  int exit_code = -1;  // of the curl process
  int code = 0;        // HTTP status; 0 when curl failed
  HttpHeaders headers;
  std::string body;
  std::string stderr_text;

  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
  bool HasHeader(const std::string& name) const { return headers.count(name) != 0; }
  std::string Debug() const {
    return "curl exit " + std::to_string(exit_code) + ", HTTP " + std::to_string(code) +
           ", stderr: " + stderr_text + ", body: " + body.substr(0, 300);
  }
};

/// Parses a JSON body; fails the expectation and returns null when invalid.
nlohmann::json ParseJson(const std::string& body) {
  auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << "not JSON: " << body.substr(0, 300);
  return j.is_discarded() ? nlohmann::json() : j;
}

/// The /status entry of volume `id` (null when absent).
nlohmann::json StatusVolume(const nlohmann::json& status, uint32_t id) {
  if (!status.contains("volumes")) return nullptr;
  for (const auto& v : status["volumes"]) {
    if (v.value("id", 0u) == id) return v;
  }
  return nullptr;
}

uint32_t CookieFor(uint64_t key) { return static_cast<uint32_t>(key * 2654435761u) | 1u; }

std::string ContentFor(uint64_t key) { return RandomBytes(256 + key % 1024, key); }

class VolumeServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(tmp_.path().empty()) << "mkdtemp failed";
    data_dir_ = tmp_.path() + "/data";
    ASSERT_NO_FATAL_FAILURE(StartServer(&server_, data_dir_));
  }

  /// Starts a server on `dir` (logs in the temp dir) or fails the test.
  void StartServer(VolumeServerProcess* out, const std::string& dir,
                   const std::vector<std::string>& extra_args = {}) {
    std::string error;
    auto server = StartVolumeServer(dir, tmp_.path(), extra_args, &error);
    ASSERT_TRUE(server.has_value()) << error;
    *out = std::move(*server);
  }

  std::string Url(const std::string& path, uint16_t port = 0) const {
    return "http://127.0.0.1:" + std::to_string(port ? port : server_.http_port) + path;
  }

  /// Writes `data` to a file in the temp dir and returns its path.
  std::string WriteTemp(const std::string& name, const std::string& data) {
    std::string path = tmp_.path() + "/" + name;
    EXPECT_TRUE(WriteFile(path, data)) << path;
    return path;
  }

  /// Runs curl with `args` (the URL among them); body and headers are read
  /// back from files so binary bodies survive.
  CurlResult Curl(const std::vector<std::string>& args) {
    const std::string base = tmp_.path() + "/curl." + std::to_string(curl_calls_++);
    std::string cmd = std::string(kCurl) + " -sS --max-time 30 -o " + ShellQuote(base + ".body") +
                      " -D " + ShellQuote(base + ".headers") + " -w '%{http_code}'";
    for (const auto& a : args) cmd += " " + ShellQuote(a);
    cmd += " 2>" + ShellQuote(base + ".stderr");
    CurlResult r;
    std::string out;
    r.exit_code = RunCommand(cmd, &out);
    if (r.exit_code == 0 && !out.empty() &&
        out.find_first_not_of("0123456789") == std::string::npos) {
      r.code = std::stoi(out);
    }
    r.headers = ParseHeaderDump(ReadFile(base + ".headers"));
    r.body = ReadFile(base + ".body");
    r.stderr_text = ReadFile(base + ".stderr");
    return r;
  }

  /// PUTs `data` raw to `fid` with curl and asserts 201.
  void PutRaw(const std::string& fid, const std::string& data,
              const std::string& content_type = "application/octet-stream") {
    const std::string file = WriteTemp("put." + std::to_string(curl_calls_), data);
    auto put = Curl({"-X", "PUT", "-H", "Content-Type: " + content_type, "--data-binary",
                     "@" + file, Url("/" + fid)});
    ASSERT_EQ(put.code, 201) << put.Debug();
  }

  std::unique_ptr<pb::VolumeServer::Stub> NewStub() const {
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_.grpc_port),
                                       grpc::InsecureChannelCredentials());
    return pb::VolumeServer::NewStub(channel);
  }

  static void SetDeadline(grpc::ClientContext* ctx, std::chrono::seconds s = 10s) {
    ctx->set_deadline(std::chrono::system_clock::now() + s);
  }

  // Declared first so that it is destroyed last, after every process.
  TempDir tmp_{"needlefs-volume-test-"};
  std::string data_dir_;
  VolumeServerProcess server_;
  int curl_calls_ = 0;
};

TEST_F(VolumeServerTest, PutRawThenGet) {
  const std::string data = RandomBytes(300 * 1024, 1);
  const std::string file = WriteTemp("blob.bin", data);
  const std::string url = Url("/1,01637037d6");

  auto put = Curl({"-X", "PUT", "-H", "Content-Type: application/octet-stream", "--data-binary",
                   "@" + file, url});
  ASSERT_EQ(put.code, 201) << put.Debug();
  auto j = ParseJson(put.body);
  ASSERT_TRUE(j.contains("size")) << put.body;
  EXPECT_EQ(j["size"].get<uint64_t>(), data.size());

  auto get = Curl({url});
  ASSERT_EQ(get.code, 200) << get.Debug();
  EXPECT_TRUE(SameBytes(get.body, data));
  EXPECT_EQ(get.Header("Content-Length"), std::to_string(data.size()));
  EXPECT_EQ(get.Header("Content-Type"), "application/octet-stream");
  EXPECT_FALSE(get.Header("ETag").empty());
}

TEST_F(VolumeServerTest, MultipartUpload) {
  const std::string data = std::string("\xFF\xD8\xFF\xE0", 4) + RandomBytes(50 * 1024, 2);
  const std::string file = WriteTemp("photo.jpg", data);
  const std::string url = Url("/1,02a1b2c3d4");

  auto put = Curl({"-F", "file=@" + file, url});
  ASSERT_EQ(put.code, 201) << put.Debug();
  auto j = ParseJson(put.body);
  ASSERT_TRUE(j.is_object()) << put.body;
  EXPECT_EQ(j.value("name", ""), "photo.jpg") << put.body;
  EXPECT_EQ(j.value("size", uint64_t{0}), data.size()) << put.body;

  auto get = Curl({url});
  ASSERT_EQ(get.code, 200) << get.Debug();
  EXPECT_TRUE(SameBytes(get.body, data));
  EXPECT_EQ(get.Header("Content-Type"), "image/jpeg");
  EXPECT_NE(get.Header("Content-Disposition").find("filename=\"photo.jpg\""), std::string::npos)
      << get.Header("Content-Disposition");
}

TEST_F(VolumeServerTest, RangeRequests) {
  const std::string data = RandomBytes(1000, 3);
  const std::string url = Url("/1,03cafe0001");
  ASSERT_NO_FATAL_FAILURE(PutRaw("1,03cafe0001", data));

  auto mid = Curl({"-H", "Range: bytes=10-19", url});
  ASSERT_EQ(mid.code, 206) << mid.Debug();
  EXPECT_EQ(mid.Header("Content-Range"), "bytes 10-19/1000");
  EXPECT_TRUE(SameBytes(mid.body, data.substr(10, 10)));

  auto suffix = Curl({"-H", "Range: bytes=-5", url});
  ASSERT_EQ(suffix.code, 206) << suffix.Debug();
  EXPECT_EQ(suffix.Header("Content-Range"), "bytes 995-999/1000");
  EXPECT_TRUE(SameBytes(suffix.body, data.substr(995)));

  auto open_ended = Curl({"-H", "Range: bytes=990-", url});
  ASSERT_EQ(open_ended.code, 206) << open_ended.Debug();
  EXPECT_EQ(open_ended.Header("Content-Range"), "bytes 990-999/1000");
  EXPECT_TRUE(SameBytes(open_ended.body, data.substr(990)));

  auto past_end = Curl({"-H", "Range: bytes=1000-", url});
  EXPECT_EQ(past_end.code, 416) << past_end.Debug();
  EXPECT_EQ(past_end.Header("Content-Range"), "bytes */1000");
}

TEST_F(VolumeServerTest, ConditionalGet) {
  const std::string data = RandomBytes(4096, 4);
  const std::string url = Url("/2,04beef0001");
  ASSERT_NO_FATAL_FAILURE(PutRaw("2,04beef0001", data));

  auto first = Curl({url});
  ASSERT_EQ(first.code, 200) << first.Debug();
  const std::string etag = first.Header("ETag");
  const std::string last_modified = first.Header("Last-Modified");
  ASSERT_FALSE(etag.empty());
  ASSERT_FALSE(last_modified.empty());

  auto same_etag = Curl({"-H", "If-None-Match: " + etag, url});
  EXPECT_EQ(same_etag.code, 304) << same_etag.Debug();
  EXPECT_TRUE(same_etag.body.empty());

  auto same_date = Curl({"-H", "If-Modified-Since: " + last_modified, url});
  EXPECT_EQ(same_date.code, 304) << same_date.Debug();

  const std::string other_etag = etag == "\"0badf00d\"" ? "\"0badf00e\"" : "\"0badf00d\"";
  auto other = Curl({"-H", "If-None-Match: " + other_etag, url});
  ASSERT_EQ(other.code, 200) << other.Debug();
  EXPECT_TRUE(SameBytes(other.body, data));

  auto old_date = Curl({"-H", "If-Modified-Since: Thu, 01 Jan 1998 00:00:00 GMT", url});
  ASSERT_EQ(old_date.code, 200) << old_date.Debug();
  EXPECT_TRUE(SameBytes(old_date.body, data));
}

TEST_F(VolumeServerTest, GzipCompressible) {
  std::string text;
  for (int i = 0; text.size() < 200 * 1024; ++i) {
    char line[96];
    std::snprintf(line, sizeof(line), "line %06d: the quick brown fox jumps over the lazy dog\n",
                  i);
    text += line;
  }
  text.resize(200 * 1024);
  const std::string url = Url("/1,05f00d0001");
  ASSERT_NO_FATAL_FAILURE(PutRaw("1,05f00d0001", text, "text/plain"));

  auto compressed = Curl({"--compressed", url});
  ASSERT_EQ(compressed.code, 200) << compressed.Debug();
  EXPECT_EQ(compressed.Header("Content-Encoding"), "gzip");
  EXPECT_TRUE(SameBytes(compressed.body, text));  // decoded by curl

  // On the wire: a gzip stream much smaller than the text.
  auto wire = Curl({"-H", "Accept-Encoding: gzip", url});
  ASSERT_EQ(wire.code, 200) << wire.Debug();
  ASSERT_GE(wire.body.size(), 2u);
  EXPECT_EQ(wire.body.substr(0, 2), std::string("\x1f\x8b", 2));
  EXPECT_LT(wire.body.size(), text.size() / 2);

  auto plain = Curl({url});
  ASSERT_EQ(plain.code, 200) << plain.Debug();
  EXPECT_FALSE(plain.HasHeader("Content-Encoding")) << plain.Header("Content-Encoding");
  EXPECT_TRUE(SameBytes(plain.body, text));
  EXPECT_EQ(plain.Header("Content-Type"), "text/plain");

  auto status = Curl({Url("/status")});
  ASSERT_EQ(status.code, 200) << status.Debug();
  auto volume = StatusVolume(ParseJson(status.body), 1);
  ASSERT_TRUE(volume.is_object()) << status.body;
  EXPECT_GT(volume.value("data_bytes", uint64_t{0}), 0u);
  EXPECT_LT(volume.value("data_bytes", uint64_t{0}), text.size() / 2) << status.body;
}

TEST_F(VolumeServerTest, Delete) {
  const std::string url = Url("/1,06d00d0001");
  ASSERT_NO_FATAL_FAILURE(PutRaw("1,06d00d0001", "soon gone"));

  auto del = Curl({"-X", "DELETE", url});
  EXPECT_EQ(del.code, 202) << del.Debug();
  auto get = Curl({url});
  EXPECT_EQ(get.code, 404) << get.Debug();
  EXPECT_TRUE(ParseJson(get.body).contains("error")) << get.body;
  auto again = Curl({"-X", "DELETE", url});
  EXPECT_EQ(again.code, 404) << again.Debug();
}

TEST_F(VolumeServerTest, Errors) {
  auto bad_fid = Curl({Url("/notafid")});
  EXPECT_EQ(bad_fid.code, 400) << bad_fid.Debug();
  EXPECT_TRUE(ParseJson(bad_fid.body).contains("error")) << bad_fid.body;

  auto no_volume = Curl({Url("/99,01637037d6")});
  EXPECT_EQ(no_volume.code, 404) << no_volume.Debug();

  // Same key 0x01, another cookie.
  ASSERT_NO_FATAL_FAILURE(PutRaw("1,01637037d6", "cookie protected"));
  auto right_cookie = Curl({Url("/1,01637037d6")});
  EXPECT_EQ(right_cookie.code, 200) << right_cookie.Debug();
  auto wrong_cookie = Curl({Url("/1,01deadbeef")});
  EXPECT_EQ(wrong_cookie.code, 404) << wrong_cookie.Debug();

  // A second server with a 1 MiB blob limit.
  VolumeServerProcess limited;
  const std::vector<std::string> limit_args = {"-fileSizeLimitMB", "1"};
  ASSERT_NO_FATAL_FAILURE(StartServer(&limited, tmp_.path() + "/limited", limit_args));
  const std::string big = WriteTemp("big.bin", RandomBytes(2 << 20, 5));
  auto too_large =
      Curl({"-X", "PUT", "--data-binary", "@" + big, Url("/1,07aaaa0001", limited.http_port)});
  EXPECT_EQ(too_large.code, 413) << too_large.Debug();
  const std::string small = WriteTemp("small.bin", RandomBytes(512 << 10, 6));
  auto fits =
      Curl({"-X", "PUT", "--data-binary", "@" + small, Url("/1,07aaaa0002", limited.http_port)});
  EXPECT_EQ(fits.code, 201) << fits.Debug();

  // Read-only volume: writes 409, reads still work; writable again after.
  auto stub = NewStub();
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    pb::MarkReadonlyRequest req;
    req.set_volume_id(1);
    req.set_read_only(true);
    pb::MarkReadonlyResponse resp;
    grpc::Status st = stub->MarkReadonly(&ctx, req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_code() << ": " << st.error_message();
  }
  const std::string payload = WriteTemp("ro.bin", "read-only write");
  auto ro_put = Curl({"-X", "PUT", "--data-binary", "@" + payload, Url("/1,08bbbb0001")});
  EXPECT_EQ(ro_put.code, 409) << ro_put.Debug();
  auto ro_get = Curl({Url("/1,01637037d6")});
  EXPECT_EQ(ro_get.code, 200) << ro_get.Debug();
  EXPECT_EQ(ro_get.body, "cookie protected");
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    pb::MarkReadonlyRequest req;
    req.set_volume_id(1);
    req.set_read_only(false);
    pb::MarkReadonlyResponse resp;
    grpc::Status st = stub->MarkReadonly(&ctx, req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_code() << ": " << st.error_message();
  }
  auto rw_put = Curl({"-X", "PUT", "--data-binary", "@" + payload, Url("/1,08bbbb0001")});
  EXPECT_EQ(rw_put.code, 201) << rw_put.Debug();
}

TEST_F(VolumeServerTest, KeepAliveManyRequests) {
  HttpClient client("127.0.0.1", server_.http_port, 10'000);
  for (int i = 0; i < 500; ++i) {
    const std::string target = "/" + Fid(1 + i % 2, 0x100 + i, CookieFor(i));
    const std::string body = "blob " + std::to_string(i) + ":" + RandomBytes(16 + i % 300, i);
    auto put = client.Request("PUT", target, body);
    ASSERT_TRUE(put.ok()) << "PUT #" << i << ": " << put.status().ToString();
    ASSERT_EQ(put->status, 201) << "PUT #" << i << ": " << put->body;
    auto get = client.Request("GET", target);
    ASSERT_TRUE(get.ok()) << "GET #" << i << ": " << get.status().ToString();
    ASSERT_EQ(get->status, 200) << "GET #" << i << ": " << get->body;
    ASSERT_TRUE(SameBytes(get->body, body)) << "GET #" << i;
  }
}

TEST_F(VolumeServerTest, MetricsAndStatus) {
  auto health = Curl({Url("/healthz")});
  ASSERT_EQ(health.code, 200) << health.Debug();
  EXPECT_EQ(health.body, "ok\n");

  // The counter exists once a request has been counted (the one above).
  auto metrics = Curl({Url("/metrics")});
  ASSERT_EQ(metrics.code, 200) << metrics.Debug();
  EXPECT_NE(metrics.body.find("needlefs_volume_server_requests_total"), std::string::npos)
      << metrics.body.substr(0, 2000);

  auto status = Curl({Url("/status")});
  ASSERT_EQ(status.code, 200) << status.Debug();
  EXPECT_NE(status.Header("Content-Type").find("application/json"), std::string::npos);
  auto j = ParseJson(status.body);
  ASSERT_TRUE(j.contains("volumes") && j["volumes"].is_array()) << status.body;
  std::set<uint32_t> ids;
  for (const auto& v : j["volumes"]) ids.insert(v.value("id", 0u));
  EXPECT_EQ(ids, (std::set<uint32_t>{1, 2})) << status.body;
  EXPECT_EQ(j.value("durability", ""), "group") << status.body;
}

TEST_F(VolumeServerTest, GrpcAdmin) {
  auto stub = NewStub();
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    pb::AllocateVolumeRequest req;
    req.set_volume_id(7);
    pb::AllocateVolumeResponse resp;
    grpc::Status st = stub->AllocateVolume(&ctx, req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_code() << ": " << st.error_message();
  }
  auto volume_status = [&](uint32_t id, pb::VolumeStatusResponse* resp) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    pb::VolumeStatusRequest req;
    req.set_volume_id(id);
    return stub->VolumeStatus(&ctx, req, resp);
  };
  {
    pb::VolumeStatusResponse all;
    grpc::Status st = volume_status(0, &all);
    ASSERT_TRUE(st.ok()) << st.error_message();
    std::set<uint32_t> ids;
    for (const auto& v : all.volumes()) ids.insert(v.id());
    EXPECT_EQ(ids, (std::set<uint32_t>{1, 2, 7}));
  }

  // 20 blobs of 16 KiB, then delete the even ones.
  HttpClient client("127.0.0.1", server_.http_port, 10'000);
  std::vector<std::string> targets, blobs;
  for (int i = 0; i < 20; ++i) {
    targets.push_back("/" + Fid(7, 0x700 + i, CookieFor(0x700 + i)));
    blobs.push_back(RandomBytes(16 * 1024, 700 + i));
    auto put = client.Request("PUT", targets.back(), blobs.back());
    ASSERT_TRUE(put.ok()) << put.status().ToString();
    ASSERT_EQ(put->status, 201) << put->body;
  }
  for (int i = 0; i < 20; i += 2) {
    auto del = client.Request("DELETE", targets[i]);
    ASSERT_TRUE(del.ok()) << del.status().ToString();
    ASSERT_EQ(del->status, 202) << del->body;
  }
  pb::VolumeStatusResponse before;
  ASSERT_TRUE(volume_status(7, &before).ok());
  ASSERT_EQ(before.volumes_size(), 1);
  EXPECT_EQ(before.volumes(0).id(), 7u);
  EXPECT_GT(before.volumes(0).garbage_bytes(), 0u);

  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 60s);
    pb::CompactRequest req;
    req.set_volume_id(7);
    auto reader = stub->Compact(&ctx, req);
    pb::CompactProgress msg, last;
    int messages = 0;
    while (reader->Read(&msg)) {
      last = msg;
      ++messages;
    }
    grpc::Status st = reader->Finish();
    ASSERT_TRUE(st.ok()) << st.error_code() << ": " << st.error_message();
    ASSERT_GT(messages, 0);
    EXPECT_TRUE(last.done_all());
    EXPECT_FALSE(last.skipped());
    EXPECT_LT(last.bytes_after(), last.bytes_before());
  }
  pb::VolumeStatusResponse after;
  ASSERT_TRUE(volume_status(7, &after).ok());
  ASSERT_EQ(after.volumes_size(), 1);
  const uint64_t bytes_before = before.volumes(0).data_bytes();
  const uint64_t bytes_after = after.volumes(0).data_bytes();
  EXPECT_LT(bytes_after + 100 * 1024, bytes_before) << "before " << bytes_before;

  for (int i = 0; i < 20; ++i) {
    auto get = client.Request("GET", targets[i]);
    ASSERT_TRUE(get.ok()) << get.status().ToString();
    if (i % 2 == 0) {
      EXPECT_EQ(get->status, 404) << targets[i];
    } else {
      EXPECT_EQ(get->status, 200) << targets[i] << ": " << get->body.substr(0, 200);
      EXPECT_TRUE(SameBytes(get->body, blobs[i])) << targets[i];
    }
  }

  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    pb::DeleteVolumeRequest req;
    req.set_volume_id(7);
    pb::DeleteVolumeResponse resp;
    grpc::Status st = stub->DeleteVolume(&ctx, req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_code() << ": " << st.error_message();
  }
  auto gone = client.Request("GET", targets[1]);
  ASSERT_TRUE(gone.ok()) << gone.status().ToString();
  EXPECT_EQ(gone->status, 404);
  pb::VolumeStatusResponse missing;
  EXPECT_EQ(volume_status(7, &missing).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(VolumeServerTest, KillDuringWritesLosesNoAcknowledgedWrite) {
  constexpr int kThreads = 4;
  constexpr int kMaxWrites = 20'000;
  struct Writer {
    std::vector<uint64_t> acked_keys;
    int unexpected = 0;
    std::string first_unexpected;
  };
  std::vector<Writer> writers(kThreads);
  std::atomic<int> attempts{0};
  std::atomic<bool> stop{false};
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  const uint16_t port = server_.http_port;
  auto fid_of = [](uint64_t key) { return Fid(1 + key % 2, key, CookieFor(key)); };

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      HttpClient client("127.0.0.1", port, 5'000);
      Writer& w = writers[t];
      for (uint64_t i = 1; !stop.load() && std::chrono::steady_clock::now() < deadline; ++i) {
        if (attempts.fetch_add(1) >= kMaxWrites) break;
        const uint64_t key = (static_cast<uint64_t>(t + 1) << 32) | i;
        // Half the writers write unstably (no fsync wait, as the FUSE mount
        // does before an fsync): appended, so they survive kill -9 too.
        auto r = client.Request("PUT", "/" + fid_of(key) + (t % 2 ? "?unstable=1" : ""),
                                ContentFor(key));
        if (!r.ok()) break;  // the server is gone
        if (r->status == 201) {
          w.acked_keys.push_back(key);
        } else if (w.unexpected++ == 0) {
          w.first_unexpected = std::to_string(r->status) + " " + r->body;
        }
      }
    });
  }
  std::this_thread::sleep_for(1500ms);
  const bool killed = server_.process->Kill(SIGKILL);
  stop = true;
  for (auto& th : threads) th.join();
  ASSERT_TRUE(killed) << "server exited early; stderr:\n" << server_.process->LogTail();
  EXPECT_EQ(server_.process->Wait(), 128 + SIGKILL);

  size_t acked = 0;
  for (const auto& w : writers) {
    acked += w.acked_keys.size();
    EXPECT_EQ(w.unexpected, 0) << "first unexpected response: " << w.first_unexpected;
  }
  ASSERT_GT(acked, 0u) << "no write was acknowledged before the kill";

  ASSERT_NO_FATAL_FAILURE(StartServer(&server_, data_dir_));
  HttpClient client("127.0.0.1", server_.http_port, 10'000);
  size_t lost = 0;
  std::string first_lost;
  for (const auto& w : writers) {
    for (uint64_t key : w.acked_keys) {
      auto get = client.Request("GET", "/" + fid_of(key));
      ASSERT_TRUE(get.ok()) << get.status().ToString();
      if (get->status != 200 || get->body != ContentFor(key)) {
        if (lost++ == 0) first_lost = fid_of(key) + " -> HTTP " + std::to_string(get->status);
      }
    }
  }
  EXPECT_EQ(lost, 0u) << "of " << acked << " acknowledged writes; first: " << first_lost;
}

// ?unstable=1 answers before the fsync; /admin/sync makes a volume durable.
TEST_F(VolumeServerTest, UnstableWriteThenSync) {
  HttpClient client("127.0.0.1", server_.http_port, 10'000);
  auto put = client.Request("PUT", "/1,0caaaa0001?unstable=1", "not yet synced");
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  ASSERT_EQ(put->status, 201) << put->body;
  auto get = client.Request("GET", "/1,0caaaa0001");
  ASSERT_TRUE(get.ok());
  EXPECT_EQ(get->status, 200);
  EXPECT_EQ(get->body, "not yet synced");
  auto sync = client.Request("POST", "/admin/sync?volume=1");
  ASSERT_TRUE(sync.ok());
  EXPECT_EQ(sync->status, 200) << sync->body;
  auto unknown = client.Request("POST", "/admin/sync?volume=77");
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(unknown->status, 404) << unknown->body;
  for (const char* bad :
       {"/admin/sync", "/admin/sync?volume=x", "/admin/sync?volume=99999999999"}) {
    auto r = client.Request("POST", bad);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 400) << bad << ": " << r->body;
  }
  auto get_sync = client.Request("GET", "/admin/sync?volume=1");
  ASSERT_TRUE(get_sync.ok());
  EXPECT_EQ(get_sync->status, 405);
}

TEST_F(VolumeServerTest, RestartKeepsData) {
  const std::string raw = RandomBytes(100 * 1024, 9);
  std::string text;
  while (text.size() < 50 * 1024) text += "restart keeps this text line\n";
  {
    HttpClient client("127.0.0.1", server_.http_port, 10'000);
    auto put_raw = client.Request("PUT", "/1,09aaaa0001", raw);
    ASSERT_TRUE(put_raw.ok()) << put_raw.status().ToString();
    ASSERT_EQ(put_raw->status, 201) << put_raw->body;
    auto put_text =
        client.Request("PUT", "/2,0aaaaa0002", text, HttpHeaders{{"Content-Type", "text/plain"}});
    ASSERT_TRUE(put_text.ok()) << put_text.status().ToString();
    ASSERT_EQ(put_text->status, 201) << put_text->body;
    auto put_doomed = client.Request("PUT", "/1,0baaaa0003", "deleted before the restart");
    ASSERT_TRUE(put_doomed.ok()) << put_doomed.status().ToString();
    ASSERT_EQ(put_doomed->status, 201) << put_doomed->body;
    auto del = client.Request("DELETE", "/1,0baaaa0003");
    ASSERT_TRUE(del.ok()) << del.status().ToString();
    ASSERT_EQ(del->status, 202) << del->body;
  }

  ASSERT_TRUE(server_.process->Kill(SIGTERM));
  auto code = server_.process->WaitFor(10'000);
  ASSERT_TRUE(code.has_value()) << "no exit within 10 s of SIGTERM";
  EXPECT_EQ(*code, 0) << server_.process->LogTail();

  ASSERT_NO_FATAL_FAILURE(StartServer(&server_, data_dir_));
  HttpClient client("127.0.0.1", server_.http_port, 10'000);
  auto get_raw = client.Request("GET", "/1,09aaaa0001");
  ASSERT_TRUE(get_raw.ok()) << get_raw.status().ToString();
  EXPECT_EQ(get_raw->status, 200);
  EXPECT_TRUE(SameBytes(get_raw->body, raw));
  auto get_text = client.Request("GET", "/2,0aaaaa0002");
  ASSERT_TRUE(get_text.ok()) << get_text.status().ToString();
  EXPECT_EQ(get_text->status, 200);
  EXPECT_TRUE(SameBytes(get_text->body, text));
  EXPECT_EQ(get_text->Header("Content-Type"), "text/plain");
  auto get_doomed = client.Request("GET", "/1,0baaaa0003");
  ASSERT_TRUE(get_doomed.ok()) << get_doomed.status().ToString();
  EXPECT_EQ(get_doomed->status, 404);
}

}  // namespace
}  // namespace needlefs::integration

namespace needlefs::integration {
namespace {

/// Opens a raw TCP connection to 127.0.0.1:port, or returns -1.
int ConnectRaw(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST_F(VolumeServerTest, TruncatedUploadStoresNothing) {
  // The client promises 1000 bytes, sends 400 and goes away.
  int fd = ConnectRaw(server_.http_port);
  ASSERT_GE(fd, 0);
  std::string req = "PUT /1,0c11223344 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" +
                    std::string(400, 'a');
  ASSERT_EQ(::write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
  ::close(fd);
  std::this_thread::sleep_for(200ms);
  auto get = Curl({Url("/1,0c11223344")});
  EXPECT_EQ(get.code, 404) << get.Debug();
  // A request that is not HTTP at all gets 400; the server keeps serving.
  fd = ConnectRaw(server_.http_port);
  ASSERT_GE(fd, 0);
  std::string junk = "\x16\x03\x01 this is not http\r\n\r\n";
  ASSERT_EQ(::write(fd, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
  char buf[64] = {};
  ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  ASSERT_GT(n, 0);
  EXPECT_NE(std::string(buf).find(" 400 "), std::string::npos) << buf;
  PutRaw("1,0d11223344", "still here");
  EXPECT_EQ(Curl({Url("/1,0d11223344")}).body, "still here");
}

TEST_F(VolumeServerTest, AdminCommandsAllocateVacuumMarkDelete) {
  const std::string server = "127.0.0.1:" + std::to_string(server_.grpc_port);
  auto admin = [&](const std::string& args, std::string* out) {
    return RunCommand(
        ShellQuote(NeedlefsBinary()) + " admin " + args + " -server " + server + " 2>&1", out);
  };
  std::string out;
  ASSERT_EQ(admin("volume.allocate -volumeId 9 -collection pics -replication 000", &out), 0) << out;
  for (int k = 1; k <= 40; ++k) PutRaw(Fid(9, k, 0xabcdef), RandomBytes(20'000, k));
  for (int k = 1; k <= 40; ++k) {
    if (k % 4 != 0) {
      ASSERT_EQ(Curl({"-X", "DELETE", Url("/" + Fid(9, k, 0xabcdef))}).code, 202);
    }
  }
  ASSERT_EQ(admin("volume.list", &out), 0) << out;
  EXPECT_NE(out.find("pics"), std::string::npos) << out;

  ASSERT_EQ(admin("volume.vacuum -garbageThreshold 0.5", &out), 0) << out;
  EXPECT_NE(out.find("volume 9: "), std::string::npos) << out;
  EXPECT_NE(out.find("1 vacuumed"), std::string::npos) << out;
  EXPECT_NE(out.find("100%"), std::string::npos) << out;  // the progress bar
  for (int k = 4; k <= 40; k += 4) {
    EXPECT_EQ(Curl({Url("/" + Fid(9, k, 0xabcdef))}).body, RandomBytes(20'000, k)) << k;
  }

  ASSERT_EQ(admin("volume.mark -volumeId 9 -readonly", &out), 0) << out;
  auto put = Curl({"-X", "PUT", "--data-binary", "x", Url("/" + Fid(9, 99, 1))});
  EXPECT_EQ(put.code, 409) << put.Debug();
  EXPECT_NE(admin("volume.mark -volumeId 9", &out), 0);  // neither flag: refused
  ASSERT_EQ(admin("volume.mark -volumeId 9 -writable", &out), 0) << out;
  ASSERT_EQ(admin("volume.delete -volumeId 9", &out), 0) << out;
  EXPECT_EQ(Curl({Url("/" + Fid(9, 4, 0xabcdef))}).code, 404);
  EXPECT_NE(admin("volume.delete -volumeId 9", &out), 0);
  EXPECT_NE(out.find("NotFound"), std::string::npos) << out;
}

}  // namespace
}  // namespace needlefs::integration
