// HttpClient on Boost.Beast: one keep-alive connection, reconnect once.
#include "common/internal/http_socket.h"

namespace needlefs {
namespace {

using namespace http_internal;  // NOLINT: private helpers of this transport

// Connects with a timeout: blocking connect() would ignore it, so connect non-blocking and poll.
error_code ConnectWithTimeout(tcp::socket& sock, const tcp::endpoint& ep, int timeout_ms) {
  error_code ec;
  sock.non_blocking(true, ec);
  if (ec) return ec;
  const int fd = sock.native_handle();
  if (::connect(fd, ep.data(), static_cast<socklen_t>(ep.size())) < 0) {
    if (errno != EINPROGRESS) return error_code(errno, boost::system::system_category());
    pollfd p{fd, POLLOUT, 0};
    int n;
    do {
      n = ::poll(&p, 1, timeout_ms > 0 ? timeout_ms : -1);
    } while (n < 0 && errno == EINTR);
    if (n == 0) return beast::error::timeout;
    if (n < 0) return error_code(errno, boost::system::system_category());
    int err = 0;
    socklen_t len = sizeof(err);
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err != 0) return error_code(err, boost::system::system_category());
  }
  sock.non_blocking(false, ec);
  return ec;
}

// True for errors meaning the server closed a kept-alive connection before our request.
bool IsStaleConnection(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == net::error::eof ||
         ec == net::error::connection_reset || ec == net::error::broken_pipe ||
         ec == net::error::connection_aborted;
}

}  // namespace

struct HttpClient::Impl {
  net::io_context io;
  tcp::socket sock{io};
  beast::flat_buffer buffer;
  std::string host;
  uint16_t port = 0;
  int timeout_ms = 0;

  std::string Where() const { return JoinHostPort(host, port); }

  void Close() {
    error_code ec;
    sock.close(ec);
    buffer.clear();
  }

  Status Fail(std::string_view what, const error_code& ec) const {
    const std::string msg = std::string(what) + " " + Where() + ": " + ec.message();
    if (ec == beast::error::timeout || ec == net::error::timed_out) {
      return Status(StatusCode::kDeadlineExceeded, msg, ETIMEDOUT);
    }
    return Status(StatusCode::kUnavailable, msg, Errno(ec));
  }

  Status Connect() {
    Close();
    error_code ec;
    tcp::resolver resolver(io);
    auto results = resolver.resolve(host, std::to_string(port), tcp::resolver::numeric_service, ec);
    if (ec) return Fail("cannot resolve", ec);
    if (results.empty()) ec = net::error::host_not_found;
    for (const auto& entry : results) {  // try each address in turn
      Close();
      sock.open(entry.endpoint().protocol(), ec);
      if (!ec) ec = ConnectWithTimeout(sock, entry.endpoint(), timeout_ms);
      if (!ec) {
        SetupSocket(sock.native_handle(), timeout_ms);
        return Status::OK();
      }
    }
    Close();
    return Fail("cannot connect to", ec);
  }

  // One request/response exchange on the open socket. On failure the socket is closed and
  // `*stale` tells whether the error looks like a server-closed idle connection.
  StatusOr<HttpClientResponse> RoundTrip(std::string_view method, std::string_view target,
                                         std::string_view body, const HttpHeaders& headers,
                                         bool* stale) {
    *stale = false;
    // buffer_body sends the caller's bytes without copying them into the message.
    http::request<http::buffer_body> req;
    req.version(11);
    const http::verb verb = http::string_to_verb(Bsv(method));
    if (verb == http::verb::unknown) {
      req.method_string(Bsv(method));
    } else {
      req.method(verb);
    }
    req.target(Bsv(target));
    req.set(http::field::host, Where());
    for (const auto& [name, value] : headers) req.set(name, value);
    if (!body.empty() || verb == http::verb::post || verb == http::verb::put ||
        verb == http::verb::patch) {
      req.content_length(body.size());
    }
    req.body().data = body.empty() ? nullptr : const_cast<char*>(body.data());
    req.body().size = body.size();
    req.body().more = false;

    FdStream stream(sock.native_handle());
    error_code ec;
    http::write(stream, req, ec);
    if (ec) {
      *stale = IsStaleConnection(ec);
      Close();
      return Fail("cannot send request to", ec);
    }
    std::optional<http::response_parser<http::string_body>> parser;
    do {  // skip interim 1xx responses (e.g. 100 Continue when the caller sent Expect)
      parser.emplace();
      parser->header_limit(1u << 20);
      parser->body_limit(std::numeric_limits<std::uint64_t>::max());  // boost::none is buggy
      if (verb == http::verb::head) parser->skip(true);
      http::read(stream, buffer, *parser, ec);
      if (ec) {
        *stale = IsStaleConnection(ec);
        Close();
        return Fail("cannot read response from", ec);
      }
    } while (parser->get().result_int() / 100 == 1 && parser->get().result_int() != 101);

    auto& msg = parser->get();
    HttpClientResponse out;
    out.status = static_cast<int>(msg.result_int());
    CopyFields(msg, &out.headers);
    out.body = std::move(msg.body());
    if (!msg.keep_alive() || parser->need_eof()) Close();
    return out;
  }
};

HttpClient::HttpClient(std::string host, uint16_t port, int timeout_ms)
    : impl_(std::make_unique<Impl>()) {
  // Beast reads into the buffer's spare capacity (at least 512 bytes, at
  // most 64 KiB a call): without this a 4 MiB blob took 8,192 recv calls.
  impl_->buffer.reserve(64 << 10);
  impl_->host = std::move(host);
  impl_->port = port;
  impl_->timeout_ms = timeout_ms;
}

HttpClient::~HttpClient() = default;

StatusOr<HttpClientResponse> HttpClient::Request(std::string_view method, std::string_view target,
                                                 std::string_view body,
                                                 const HttpHeaders& headers) {
  try {
    for (int attempt = 0;; ++attempt) {
      const bool reused = impl_->sock.is_open();
      if (!reused) NEEDLEFS_RETURN_IF_ERROR(impl_->Connect());
      bool stale = false;
      StatusOr<HttpClientResponse> result = impl_->RoundTrip(method, target, body, headers, &stale);
      // A kept-alive connection the server closed while idle is retried once on a fresh one.
      if (result.ok() || !stale || !reused || attempt > 0) return result;
    }
  } catch (const std::exception& e) {
    impl_->Close();
    return Status::Internal("HTTP request to " + impl_->Where() + " failed: " + e.what());
  }
}

StatusOr<HttpClientResponse> HttpClientPool::Request(const std::string& server,
                                                     std::string_view method,
                                                     std::string_view target, std::string_view body,
                                                     const HttpHeaders& headers) {
  if (auto local = FindLocalHttp(server)) {
    try {
      auto r = local->Call(server, method, target, body, headers);
      if (r) return std::move(*r);
    } catch (const std::exception& e) {  // out of memory copying the request or reply
      return Status::Internal(std::string("in-process request to ") + server + ": " + e.what());
    }
    // The server stopped meanwhile: the socket answers as it would.
  }
  std::unique_ptr<HttpClient> c;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto& idle = idle_[server];
    if (!idle.empty()) {
      c = std::move(idle.back());
      idle.pop_back();
    }
  }
  if (!c) {
    std::string host;
    uint16_t port = 0;
    NEEDLEFS_RETURN_IF_ERROR(SplitHostPort(server, &host, &port));
    c = std::make_unique<HttpClient>(host, port, timeout_ms_);
  }
  auto r = c->Request(method, target, body, headers);
  if (r.ok()) {  // a connection that failed is dropped
    std::lock_guard<std::mutex> l(mu_);
    auto& idle = idle_[server];
    if (idle.size() < max_idle_) idle.push_back(std::move(c));
  }
  return r;
}

}  // namespace needlefs
