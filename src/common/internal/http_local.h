// Private to src/common: an HttpServer as the clients of its own process
// reach it (HttpServerOptions::in_process). `needlefs server` runs master,
// volume servers, meta and the front ends in one process; a blob upload or
// read from its FUSE mount, nfsd or S3 gateway to its own volume server then
// runs the volume's handler on the caller's thread, with no socket, no HTTP
// parsing and no copies through the kernel. Over a socket the same handler
// runs on a connection thread: the answer is the same.
//
// How a client knows the server is its own: the server registers the exact
// "host:port" it listens on. No other process can listen on that address
// and port while this one does, and the server unregisters before it stops
// listening. Wildcard listeners (0.0.0.0, ::) register nothing.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/http.h"

namespace needlefs::http_internal {

/// Parses "a=b&c=d" (form-style: '+' is a space, then %XX escapes).
std::map<std::string, std::string> ParseQuery(std::string_view q);

/// Sets req->target to `target` and its decoded path and query from it.
void SetTarget(std::string_view target, HttpRequest* req);

/// Whether a handler's response header may be sent (no CR, LF, ':' or
/// space in the name, no CR or LF in the value: no header injection).
bool ValidResponseHeader(const std::string& name, const std::string& value);

/// handler(req) as a server answers it: an exception is a 500, and so is a
/// status outside 200-999.
HttpResponse RunHandler(const HttpHandler& handler, HttpRequest& req);

/// A server's handler as callers in its own process reach it. Thread-safe.
class LocalHttpEndpoint {
 public:
  LocalHttpEndpoint(HttpHandler handler, uint64_t max_body_bytes, std::string server_name)
      : handler_(std::move(handler)),
        max_body_bytes_(max_body_bytes),
        server_name_(std::move(server_name)) {}

  /// Runs one request as the server does for one read off a socket (the
  /// request's path and query decoded, a Host header, the handler's
  /// exceptions as 500, Content-Length and Server set on the response, no
  /// body for HEAD, 204 and 304, 413 for a body over the server's limit).
  /// nullopt once the server stopped (the caller goes over the socket, which
  /// then fails as it would).
  std::optional<HttpClientResponse> Call(const std::string& hostport, std::string_view method,
                                         std::string_view target, std::string_view body,
                                         const HttpHeaders& headers);
  /// Refuses new calls and waits for those running, but for the calling
  /// thread's own (a handler stopping its server).
  void Stop();

 private:
  bool Enter();
  void Leave();

  const HttpHandler handler_;
  const uint64_t max_body_bytes_;
  const std::string server_name_;
  std::mutex mu_;
  std::condition_variable cv_;
  int running_ = 0;       // GUARDED_BY(mu_)
  bool stopped_ = false;  // GUARDED_BY(mu_)
};

/// Makes `e` the endpoint of the server listening on `hostport` (brackets
/// around an IPv6 literal as JoinHostPort writes them).
void RegisterLocalHttp(const std::string& hostport, std::shared_ptr<LocalHttpEndpoint> e);
/// Forgets `hostport`'s endpoint if it is `e`.
void UnregisterLocalHttp(const std::string& hostport, const LocalHttpEndpoint* e);
/// The endpoint of this process listening on exactly `hostport`, or null.
std::shared_ptr<LocalHttpEndpoint> FindLocalHttp(const std::string& hostport);

}  // namespace needlefs::http_internal
