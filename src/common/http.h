// A small HTTP/1.1 server and client, the transport every NeedleFS role uses
// for its HTTP face (volume blobs, /status, /metrics, later the master API and
// the S3 gateway). Boost.Beast stays inside http.cc; this header exposes plain
// structs so that widely included code never pulls in Beast or Asio.
//
// Server model: one accept thread and one thread per connection (bounded by
// HttpServerOptions::max_connections), keep-alive, synchronous handlers. A
// handler may block (for example until a group-commit fsync); that blocks only
// its own connection, so concurrent clients batch naturally.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace needlefs {

/// Case-insensitive header map (names compared without regard to ASCII case).
struct CaseInsensitiveLess {
  bool operator()(std::string_view a, std::string_view b) const;
  using is_transparent = void;
};
using HttpHeaders = std::map<std::string, std::string, CaseInsensitiveLess>;

/// One parsed request. `target` is the raw request-target ("/3,01ab?x=1").
struct HttpRequest {
  std::string method;                        ///< "GET", "PUT", ... upper case as sent
  std::string target;                        ///< raw target, path plus optional "?query"
  std::string path;                          ///< target before '?', percent-decoded
  std::map<std::string, std::string> query;  ///< decoded query parameters
  HttpHeaders headers;
  std::string body;
  std::string remote_address;  ///< peer "ip:port"

  /// Returns the header value or "" when absent.
  std::string_view Header(std::string_view name) const;
  /// Returns the query parameter or `def` when absent.
  std::string QueryParam(const std::string& name, const std::string& def = "") const;
};

/// A response. Content-Length is set by the server from `body` (or from
/// `content_length` for HEAD responses, which carry no body).
struct HttpResponse {
  int status = 200;
  HttpHeaders headers;
  std::string body;
  /// For HEAD: the Content-Length to report. Ignored when unset.
  std::optional<uint64_t> content_length;

  /// A response with a JSON body and Content-Type application/json.
  static HttpResponse Json(int status, std::string json_body);
  /// A JSON error body {"error": message}.
  static HttpResponse Error(int status, std::string_view message);
};

using HttpHandler = std::function<HttpResponse(HttpRequest&)>;

struct HttpServerOptions {
  /// Address to listen on (IPv4 or IPv6 literal, or "localhost").
  /// Default: 127.0.0.1.
  std::string listen_address = "127.0.0.1";
  /// TCP port; 0 picks a free one (see HttpServer::port()). Default: 0.
  uint16_t port = 0;
  /// Requests with a larger body are answered 413 without reading the body.
  /// Default: 1 GiB.
  uint64_t max_body_bytes = 1ull << 30;
  /// Connections beyond this are closed right after accept. Default: 4096.
  int max_connections = 4096;
  /// An idle keep-alive connection is closed after this long. Default: 120 s.
  int idle_timeout_ms = 120'000;
  /// Value of the Server header. Default: "needlefs".
  std::string server_name = "needlefs";
  /// Let HttpClientPool requests of this same process to exactly this
  /// listen address and port run the handler on the caller's thread, with
  /// no socket (the answer is the same; timeouts and connection limits do
  /// not apply: a handler that never returns blocks its caller). Only for
  /// an address literal, never a wildcard or a name. false: every request
  /// goes over TCP (tests of the transport). Default: true.
  bool in_process = true;
};

/// HTTP/1.1 server. Thread-safe: the handler is called concurrently from many
/// connection threads and must be thread-safe itself.
class HttpServer {
 public:
  /// Binds and listens. Errors: kUnavailable when the address cannot be
  /// bound (with the errno as sub-code), kInvalidArgument for a bad address.
  static StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                     HttpHandler handler);
  virtual ~HttpServer() = default;
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// The bound port (useful when options.port was 0).
  virtual uint16_t port() const = 0;
  /// Stops accepting, closes every connection, and joins all threads.
  /// Idempotent; also done by the destructor.
  virtual void Stop() = 0;

 protected:
  HttpServer() = default;
};

/// Result of one client request.
struct HttpClientResponse {
  int status = 0;
  HttpHeaders headers;
  std::string body;
  std::string_view Header(std::string_view name) const;
};

/// A keep-alive HTTP/1.1 client connection to one host:port. Reconnects
/// transparently once when the server closed an idle connection. Not
/// thread-safe: use one per thread.
class HttpClient {
 public:
  /// `host` is a name or IP literal; nothing is connected until the first
  /// request.
  HttpClient(std::string host, uint16_t port, int timeout_ms = 30'000);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  /// Sends one request and reads the whole response (any status code is a
  /// success here). Errors: kUnavailable when connecting or the connection
  /// fails, kDeadlineExceeded on timeout.
  StatusOr<HttpClientResponse> Request(std::string_view method, std::string_view target,
                                       std::string_view body = {}, const HttpHeaders& headers = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Keep-alive connections to many servers, shared by threads: a request
/// takes an idle connection to its server (or opens one) and returns it after
/// a successful exchange. A request to an HttpServer of this same process
/// (HttpServerOptions::in_process) runs its handler on the calling thread
/// instead. Thread-safe.
class HttpClientPool {
 public:
  explicit HttpClientPool(int timeout_ms = 30'000, size_t max_idle_per_server = 64)
      : timeout_ms_(timeout_ms), max_idle_(max_idle_per_server) {}
  /// As HttpClient::Request, to `server` ("host:port"). Errors: also
  /// kInvalidArgument for a malformed address.
  StatusOr<HttpClientResponse> Request(const std::string& server, std::string_view method,
                                       std::string_view target, std::string_view body = {},
                                       const HttpHeaders& headers = {});

 private:
  const int timeout_ms_;
  const size_t max_idle_;
  std::mutex mu_;
  std::map<std::string, std::vector<std::unique_ptr<HttpClient>>> idle_;  // GUARDED_BY(mu_)
};

/// Percent-encodes `s` for a URL query component (RFC 3986 unreserved
/// characters stay as they are).
std::string PercentEncode(std::string_view s);

/// Percent-decodes `s` ('+' stays '+'). Invalid escapes are kept verbatim.
std::string PercentDecode(std::string_view s);

/// The value of hex digit `c` (either case), or -1.
int HexDigit(char c);

/// `s` with & < > " ' as character references: safe in XML and HTML text
/// and attribute values.
std::string XmlEscape(std::string_view s);

/// Joins host and port into "host:port", bracketing an IPv6 literal
/// ("[::1]:9333"): the inverse of SplitHostPort.
std::string JoinHostPort(std::string_view host, uint16_t port);

/// Splits "host:port" (or "[v6]:port"). Errors: kInvalidArgument.
Status SplitHostPort(std::string_view hostport, std::string* host, uint16_t* port);

}  // namespace needlefs
