// HttpServer on Boost.Beast: one accept thread, one thread per connection.
#include "common/internal/http_socket.h"

namespace needlefs {
namespace {

using namespace http_internal;  // NOLINT: private helpers of this transport

// After an early error reply the peer may still be sending a body. Closing with unread data
// makes the kernel send RST, which can destroy the reply before the client reads it, so
// half-close and drain for a bounded time first.
void LingeringClose(int fd) {
  ::shutdown(fd, SHUT_WR);
  SetTimeout(fd, SO_RCVTIMEO, 200);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  char buf[16384];
  size_t drained = 0;
  while (drained < (64u << 20) && std::chrono::steady_clock::now() < deadline) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      drained += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
}

bool IsParseError(const error_code& ec) {
  if (ec.category() != make_error_code(http::error::bad_method).category()) return false;
  return ec != http::error::end_of_stream && ec != http::error::partial_message &&
         ec != http::error::short_read;
}

class BeastHttpServer final : public HttpServer {
 public:
  BeastHttpServer(HttpServerOptions options, HttpHandler handler)
      : options_(std::move(options)), handler_(std::move(handler)), acceptor_(io_) {}
  ~BeastHttpServer() override { Stop(); }

  Status Listen();
  void StartAccepting() {
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  uint16_t port() const override { return port_; }
  void Stop() override;

 private:
  struct Conn {
    std::thread thread;
    int fd = -1;  // -1 once the connection thread closed its socket
  };

  void AcceptLoop();
  void Spawn(tcp::socket sock);
  void ReapFinished();
  void Finish(uint64_t id, tcp::socket& sock);
  void Serve(tcp::socket& sock);
  bool WriteResponse(FdStream& stream, HttpResponse res, bool head, bool keep_alive);

  const HttpServerOptions options_;
  const HttpHandler handler_;
  net::io_context io_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;

  std::mutex mu_;  // guards everything below
  std::map<uint64_t, Conn> conns_;
  std::vector<uint64_t> finished_;  // ids whose thread has ended and awaits join
  uint64_t next_id_ = 0;
  int active_ = 0;
  std::string local_key_;                     // "host:port" registered for in-process calls
  std::shared_ptr<LocalHttpEndpoint> local_;  // null: not registered
};

Status BeastHttpServer::Listen() {
  const std::string where = JoinHostPort(options_.listen_address, options_.port);
  std::string host = options_.listen_address;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  error_code ec;
  net::ip::address addr = net::ip::make_address(host, ec);
  if (ec) {  // Not a literal: resolve a name such as "localhost", preferring IPv4.
    tcp::resolver resolver(io_);
    auto results = resolver.resolve(host, std::to_string(options_.port),
                                    tcp::resolver::passive | tcp::resolver::numeric_service, ec);
    if (ec || results.empty()) {
      return Status::InvalidArgument("bad listen address " + where + ": " + ec.message());
    }
    addr = results.begin()->endpoint().address();
    for (const auto& r : results) {
      if (r.endpoint().address().is_v4()) {
        addr = r.endpoint().address();
        break;
      }
    }
  }
  const tcp::endpoint ep(addr, options_.port);
  auto fail = [&](std::string_view what) {
    return Status(StatusCode::kUnavailable, std::string(what) + " " + where + ": " + ec.message(),
                  Errno(ec));
  };
  acceptor_.open(ep.protocol(), ec);
  if (ec) return fail("cannot open socket for");
  acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (ec) return fail("cannot set SO_REUSEADDR on");
  acceptor_.bind(ep, ec);
  if (ec) return fail("cannot bind");
  acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return fail("cannot listen on");
  port_ = acceptor_.local_endpoint(ec).port();
  if (ec) return fail("cannot get local port of");
  // Only for an address literal: a name ("localhost") binds one of its
  // addresses, and a client resolving it may reach another process on
  // another one.
  net::ip::make_address(host, ec);
  const bool literal = !ec;
  if (options_.in_process && literal && !addr.is_unspecified()) {
    local_key_ = JoinHostPort(addr.to_string(), port_);
    local_ = std::make_shared<LocalHttpEndpoint>(handler_, options_.max_body_bytes,
                                                 options_.server_name);
    RegisterLocalHttp(local_key_, local_);
  }
  return Status::OK();
}

void BeastHttpServer::AcceptLoop() {
  while (!stopping_.load()) {
    tcp::socket sock(io_);
    error_code ec;
    acceptor_.accept(sock, ec);  // Stop() shuts the listener down, which fails this call
    if (stopping_.load()) break;
    ReapFinished();
    if (ec) {  // EMFILE and the like: back off instead of spinning.
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    Spawn(std::move(sock));
  }
}

void BeastHttpServer::Spawn(tcp::socket sock) {
  // The thread is created under mu_, so its Finish() (which takes mu_) always finds the entry
  // complete.
  std::lock_guard<std::mutex> lock(mu_);
  if (active_ >= options_.max_connections) return;  // `sock` closes on return
  const uint64_t id = next_id_++;
  Conn& conn = conns_[id];
  conn.fd = sock.native_handle();
  try {
    conn.thread = std::thread([this, id, s = std::move(sock)]() mutable {
      Serve(s);
      Finish(id, s);
    });
    ++active_;
  } catch (const std::system_error&) {
    conns_.erase(id);  // the socket, owned by the discarded lambda, is already closed
  }
}

void BeastHttpServer::Finish(uint64_t id, tcp::socket& sock) {
  std::lock_guard<std::mutex> lock(mu_);
  // Closing under mu_ guarantees Stop() never shuts down an fd number that was reused.
  error_code ec;
  sock.close(ec);
  --active_;
  auto it = conns_.find(id);
  if (it != conns_.end()) {  // absent when Stop() already took the thread
    it->second.fd = -1;
    finished_.push_back(id);
  }
}

void BeastHttpServer::ReapFinished() {
  std::vector<std::thread> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (uint64_t id : finished_) {
      auto it = conns_.find(id);
      if (it == conns_.end()) continue;
      done.push_back(std::move(it->second.thread));
      conns_.erase(it);
    }
    finished_.clear();
  }
  for (auto& t : done) {
    if (t.joinable()) t.join();  // the thread is past Finish(), so this returns promptly
  }
}

void BeastHttpServer::Stop() {
  if (stopping_.exchange(true)) return;
  if (local_) {
    // Before the listener closes: no other process can take the address
    // while it is registered.
    UnregisterLocalHttp(local_key_, local_.get());
    local_->Stop();
  }
  // On Linux, shutdown() of a listening socket wakes a blocked accept() (EINVAL); close()
  // alone would not.
  if (acceptor_.is_open()) ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
  if (accept_thread_.joinable()) accept_thread_.join();
  error_code ec;
  acceptor_.close(ec);
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, conn] : conns_) {
      // Wakes blocked reads (EOF) and writes (EPIPE); the owning thread closes the fd.
      if (conn.fd >= 0) ::shutdown(conn.fd, SHUT_RDWR);
      threads.push_back(std::move(conn.thread));
    }
    conns_.clear();
    finished_.clear();
  }
  for (auto& t : threads) {
    if (!t.joinable()) continue;
    if (t.get_id() == std::this_thread::get_id()) {
      t.detach();  // Stop() called from a handler: cannot join ourselves
    } else {
      t.join();
    }
  }
}

void BeastHttpServer::Serve(tcp::socket& sock) {
  const int fd = sock.native_handle();
  SetupSocket(fd, options_.idle_timeout_ms);
  error_code ec;
  const tcp::endpoint peer = sock.remote_endpoint(ec);
  const std::string remote = JoinHostPort(peer.address().to_string(), peer.port());
  FdStream stream(fd);
  beast::flat_buffer buffer;
  // Beast reads into the buffer's spare capacity (at least 512 bytes, at
  // most 64 KiB a call): without this a 4 MiB body took 8,192 recv calls.
  buffer.reserve(64 << 10);
  try {
    while (!stopping_.load()) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(64 * 1024);
      parser.body_limit(options_.max_body_bytes);  // checked against Content-Length up front
      http::read_header(stream, buffer, parser, ec);
      if (!ec && !parser.is_done()) {
        // Clients such as curl wait (up to 1 s) for this before sending a large body.
        if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
          static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          net::write(stream, net::buffer(kContinue.data(), kContinue.size()), ec);
        }
        if (!ec) http::read(stream, buffer, parser, ec);
      }
      if (ec == http::error::body_limit || IsParseError(ec)) {
        const bool too_large = ec == http::error::body_limit;
        WriteResponse(stream,
                      HttpResponse::Error(too_large ? 413 : 400,
                                          too_large ? "request body too large"
                                                    : "malformed request: " + ec.message()),
                      false, false);
        LingeringClose(fd);
        return;
      }
      if (ec) return;  // timeout, EOF, reset: close quietly

      http::request<http::string_body> msg = parser.release();
      HttpRequest req;
      req.method = Str(msg.method_string());
      SetTarget(std::string_view(msg.target().data(), msg.target().size()), &req);
      CopyFields(msg, &req.headers);
      req.body = std::move(msg.body());
      req.remote_address = remote;
      const bool keep_alive = msg.keep_alive() && !stopping_.load();
      const bool head = msg.method() == http::verb::head;

      HttpResponse res = RunHandler(handler_, req);
      if (!WriteResponse(stream, std::move(res), head, keep_alive) || !keep_alive) return;
    }
  } catch (const std::exception&) {
    // Allocation or serialization failure: drop the connection.
  }
}

bool BeastHttpServer::WriteResponse(FdStream& stream, HttpResponse res, bool head,
                                    bool keep_alive) {
  const auto status = static_cast<http::status>(res.status);
  const bool no_body = res.status == 204 || res.status == 304;
  auto fill = [&](auto& out) {
    out.set(http::field::server, options_.server_name);
    for (const auto& [name, value] : res.headers) {
      if (ValidResponseHeader(name, value)) out.set(name, value);
    }
    out.keep_alive(keep_alive);
  };
  error_code ec;
  if (head || no_body) {
    // Header only. Content-Length is set by hand (no prepare_payload, which would say 0).
    http::response<http::empty_body> out{status, 11};
    fill(out);
    out.erase(http::field::transfer_encoding);
    if (res.status == 204) {
      out.erase(http::field::content_length);
    } else if (head && (res.content_length || !res.body.empty() ||
                        out.find(http::field::content_length) == out.end())) {
      out.set(http::field::content_length,
              std::to_string(res.content_length.value_or(res.body.size())));
    }
    http::write(stream, out, ec);
  } else {
    http::response<http::string_body> out{status, 11, std::move(res.body)};
    fill(out);
    out.prepare_payload();
    http::write(stream, out, ec);
  }
  return !ec;
}

}  // namespace

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                        HttpHandler handler) {
  try {
    auto server = std::make_unique<BeastHttpServer>(options, std::move(handler));
    NEEDLEFS_RETURN_IF_ERROR(server->Listen());
    server->StartAccepting();
    return std::unique_ptr<HttpServer>(std::move(server));
  } catch (const std::exception& e) {
    return Status::Internal(std::string("cannot start HTTP server: ") + e.what());
  }
}

}  // namespace needlefs
