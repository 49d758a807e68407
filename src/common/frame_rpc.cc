// FrameRpcServer and FrameRpcClient: blocking sockets, one thread per
// server connection, a pool of idle connections in the client.
#include "common/frame_rpc.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <list>
#include <mutex>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/logging.h"

namespace needlefs {
namespace {

using Clock = std::chrono::steady_clock;

/// How long the server waits for the rest of a request once its first
/// byte came, and for a reply to drain, ms.
constexpr int kIoTimeoutMs = 30'000;
/// How long Shutdown lets a connection in a call finish its reply.
constexpr std::chrono::seconds kShutdownGrace{2};
/// Request buffers above this are released after their call.
constexpr size_t kKeepBufferBytes = 1 << 20;
/// A request buffer grows by at most this much ahead of the bytes read.
constexpr size_t kReadStep = 1 << 20;
/// Requests up to this size skip the server-wide budget (their memory is
/// bounded by max_connections of them), so clients that announce large
/// requests and send them slowly cannot hold up ordinary calls.
constexpr size_t kSmallRequest = 64 << 10;

void PutU32(char* p, uint32_t v) {
  p[0] = static_cast<char>(v >> 24);
  p[1] = static_cast<char>(v >> 16);
  p[2] = static_cast<char>(v >> 8);
  p[3] = static_cast<char>(v);
}

uint32_t GetU32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | u[3];
}

int RemainingMs(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left, 1 << 30));
}

/// Waits for `events` on `fd` until `deadline`. 1 ready, 0 timeout, -1 error.
int WaitFd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, RemainingMs(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return r;
    return 1;
  }
}

/// Reads exactly `n` bytes. 1 done, 0 the peer closed before any byte,
/// -1 error or timeout (*timed_out set for the latter). `*got` (may be
/// null) counts the bytes read. Reads first and waits only when nothing
/// is there (one system call where a reply has arrived).
int ReadFull(int fd, char* buf, size_t n, Clock::time_point deadline, bool* timed_out,
             size_t* got_out = nullptr) {
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::recv(fd, buf + got, n - got, MSG_DONTWAIT);
    if (r == 0) return got == 0 ? 0 : -1;
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
      const int w = WaitFd(fd, POLLIN, deadline);
      if (w == 0) {
        if (timed_out) *timed_out = true;
        return -1;
      }
      if (w < 0) return -1;
      continue;
    }
    got += static_cast<size_t>(r);
    if (got_out) *got_out = got;
  }
  return 1;
}

/// Writes the pieces fully. false on error or timeout.
bool WriteFull(int fd, std::vector<iovec> iov, Clock::time_point deadline) {
  size_t i = 0;
  while (i < iov.size()) {
    msghdr m{};
    m.msg_iov = iov.data() + i;
    m.msg_iovlen = iov.size() - i;
    const ssize_t w = ::sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (WaitFd(fd, POLLOUT, deadline) != 1) return false;
        continue;
      }
      return false;
    }
    size_t left = static_cast<size_t>(w);
    while (i < iov.size() && left >= iov[i].iov_len) {
      left -= iov[i].iov_len;
      ++i;
    }
    if (i < iov.size()) {
      iov[i].iov_base = static_cast<char*>(iov[i].iov_base) + left;
      iov[i].iov_len -= left;
    }
  }
  return true;
}

void SetNoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/// The method a client sends first, with an 8-byte ticket it put in this
/// process's registry: a server of this same process claims the ticket
/// with its endpoint (answered by the transport, never by a handler). A
/// server of another process claims it in its own registry, where no
/// client waits: the client finds its ticket unclaimed and uses the
/// socket. Nothing about a server can be learnt or replayed through it.
constexpr std::string_view kLocalMethod = "@local";

}  // namespace

/// A server's handler as callers in its own process reach it: on the
/// caller's thread, without a socket. Stop waits for the calls running.
struct FrameRpcLocalEndpoint {
  explicit FrameRpcLocalEndpoint(FrameRpcHandler h) : handler(std::move(h)) {}

  /// Enters a call; false once the server stopped.
  bool Enter() {
    std::lock_guard<std::mutex> g(mu);
    if (stopped) return false;
    ++running;
    return true;
  }
  void Leave() {
    std::lock_guard<std::mutex> g(mu);
    if (--running == 0) cv.notify_all();
  }
  /// Refuses new calls and waits for those running (the handler's objects
  /// must outlive them).
  void Stop() {
    std::unique_lock<std::mutex> l(mu);
    stopped = true;
    cv.wait(l, [&] { return running == 0; });
  }

  const FrameRpcHandler handler;
  std::mutex mu;
  std::condition_variable cv;
  int running = 0;       // GUARDED_BY(mu)
  bool stopped = false;  // GUARDED_BY(mu)
};

namespace {

/// The in-process handshake's tickets: issued by clients, claimed by the
/// servers of this process that receive them.
struct LocalRegistry {
  std::mutex mu;
  std::unordered_map<uint64_t, std::shared_ptr<FrameRpcLocalEndpoint>> tickets;  // GUARDED_BY(mu)
  uint64_t next = 0;                                                             // GUARDED_BY(mu)

  static LocalRegistry& Get() {
    static LocalRegistry* r = new LocalRegistry;  // never destroyed: used at exit
    return *r;
  }
  /// A new ticket, unclaimed.
  uint64_t Issue() {
    std::lock_guard<std::mutex> g(mu);
    const uint64_t t = ++next;
    tickets[t] = nullptr;
    return t;
  }
  /// A server of this process received `ticket`: it names `e`. A ticket
  /// this process did not issue (or issued to another call) is ignored.
  void Claim(uint64_t ticket, const std::shared_ptr<FrameRpcLocalEndpoint>& e) {
    std::lock_guard<std::mutex> g(mu);
    auto it = tickets.find(ticket);
    if (it != tickets.end() && !it->second) it->second = e;
  }
  /// The endpoint that claimed `ticket` (null: none), and the ticket gone.
  std::shared_ptr<FrameRpcLocalEndpoint> Redeem(uint64_t ticket) {
    std::lock_guard<std::mutex> g(mu);
    auto it = tickets.find(ticket);
    if (it == tickets.end()) return nullptr;
    auto e = std::move(it->second);
    tickets.erase(it);
    return e;
  }
};

}  // namespace

// ---------------------------------------------------------------- server

class FrameRpcServer::Impl {
 public:
  Impl(FrameRpcHandler handler, FrameRpcServerOptions options)
      : handler_(std::move(handler)), options_(std::move(options)) {}
  ~Impl() { Shutdown(); }

  Status Listen(const std::string& ip, uint16_t port) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    const std::string port_s = std::to_string(port);
    if (int rc = ::getaddrinfo(ip.empty() ? nullptr : ip.c_str(), port_s.c_str(), &hints, &res);
        rc != 0) {
      return Status::InvalidArgument(options_.name + ": bad listen address " + ip + ": " +
                                     ::gai_strerror(rc));
    }
    std::string err = "no address";
    for (addrinfo* a = res; a; a = a->ai_next) {
      int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0);
      if (fd < 0) continue;
      int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 128) == 0) {
        listen_fd_ = fd;
        break;
      }
      err = std::strerror(errno);
      ::close(fd);
    }
    ::freeaddrinfo(res);
    if (listen_fd_ < 0) {
      return Status::Unavailable(options_.name + ": cannot listen on " + ip + ":" + port_s + ": " +
                                 err);
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len);
    port_ = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                           : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    local_ = std::make_shared<FrameRpcLocalEndpoint>(handler_);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
    return Status::OK();
  }

  uint16_t port() const { return port_; }

  void Shutdown() {
    if (stopping_.exchange(true)) return;
    if (local_) local_->Stop();
    if (wake_fd_ >= 0) {
      uint64_t one = 1;
      ssize_t ignored = ::write(wake_fd_, &one, sizeof(one));
      (void)ignored;
    }
    if (accept_thread_.joinable()) accept_thread_.join();
    {
      // Idle readers wake now; a call in a handler still sends its reply.
      std::lock_guard<std::mutex> g(mu_);
      for (Conn& c : conns_) ::shutdown(c.fd, SHUT_RD);
    }
    budget_cv_.notify_all();
    const auto grace = Clock::now() + kShutdownGrace;
    for (;;) {
      bool all_done = true;
      {
        std::lock_guard<std::mutex> g(mu_);
        for (Conn& c : conns_) all_done = all_done && c.done.load();
      }
      if (all_done || Clock::now() >= grace) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::list<Conn> conns;
    {
      std::lock_guard<std::mutex> g(mu_);
      for (Conn& c : conns_) ::shutdown(c.fd, SHUT_RDWR);
      conns.swap(conns_);
    }
    for (Conn& c : conns) {
      if (c.thread.joinable()) c.thread.join();
      ::close(c.fd);
    }
    if (listen_fd_ >= 0) ::close(listen_fd_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
    listen_fd_ = wake_fd_ = -1;
  }

 private:
  struct Conn {
    int fd = -1;
    std::thread thread;
    std::atomic<bool> done{false};
  };

  void AcceptLoop() {
    while (!stopping_.load()) {
      pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
      const int r = ::poll(p, 2, 1000);
      ReapDone();
      if (r <= 0 || stopping_.load()) continue;
      if (!(p[0].revents & POLLIN)) continue;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));  // back off
        }
        continue;
      }
      SetNoDelay(fd);
      std::lock_guard<std::mutex> g(mu_);
      if (static_cast<int>(conns_.size()) >= options_.max_connections) {
        RefuseLocked(fd, "connection limit");
        continue;
      }
      conns_.emplace_back();
      Conn& c = conns_.back();
      c.fd = fd;
      try {
        c.thread = std::thread([this, &c] {
          try {
            Serve(c.fd);
          } catch (const std::exception& e) {
            spdlog::warn("{}: connection ended: {}", options_.name, e.what());
          }
          // The peer sees the end now; the fd is closed when reaped (its
          // number must not be reused while Shutdown may still use it).
          ::shutdown(c.fd, SHUT_RDWR);
          c.done.store(true);
        });
      } catch (const std::system_error& e) {
        conns_.pop_back();
        RefuseLocked(fd, std::string("no thread: ") + e.what());
      }
    }
  }

  /// Tells a client its call was not run (kFrameRpcNotRun) and closes `fd`.
  void RefuseLocked(int fd, const std::string& why) {
    spdlog::warn("{}: refusing a connection ({} open): {}", options_.name, conns_.size(), why);
    char hdr[8];
    PutU32(hdr, 4);
    PutU32(hdr + 4, static_cast<uint32_t>(kFrameRpcNotRun));
    (void)::send(fd, hdr, sizeof(hdr), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::close(fd);
  }

  /// Joins and closes the connections whose threads ended.
  void ReapDone() {
    std::list<Conn> done;
    {
      std::lock_guard<std::mutex> g(mu_);
      for (auto it = conns_.begin(); it != conns_.end();) {
        auto next = std::next(it);
        if (it->done.load()) done.splice(done.end(), conns_, it);
        it = next;
      }
    }
    for (Conn& c : done) {
      c.thread.join();
      ::close(c.fd);
    }
  }

  /// Takes `n` bytes of the server-wide request budget, waiting while
  /// others hold it (when nothing is held, any `n` passes). false when the
  /// server stops or `deadline` passes.
  bool TakeBudget(uint64_t n, Clock::time_point deadline) {
    std::unique_lock<std::mutex> l(budget_mu_);
    const bool got = budget_cv_.wait_until(l, deadline, [&] {
      return stopping_.load() || buffered_ == 0 || buffered_ + n <= options_.max_buffered_bytes;
    });
    if (!got || stopping_.load()) return false;
    buffered_ += n;
    return true;
  }
  void GiveBudget(uint64_t n) {
    if (n == 0) return;
    {
      std::lock_guard<std::mutex> g(budget_mu_);
      buffered_ -= n;
    }
    budget_cv_.notify_all();
  }

  /// Reads a request of `len` bytes into `*in`, growing the buffer and
  /// taking the budget as the bytes arrive (an announced length costs
  /// nothing until it is sent). `*taken`: the budget held after.
  bool ReadRequest(int fd, uint32_t len, std::string* in, uint64_t* taken) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(kIoTimeoutMs);
    size_t have = 0;
    in->clear();
    const bool small = len <= kSmallRequest;
    while (have < len) {
      const size_t step = std::min<size_t>(len - have, kReadStep);
      if (!small) {
        if (!TakeBudget(step, deadline)) return false;
        *taken += step;
      }
      in->resize(have + step);
      if (ReadFull(fd, in->data() + have, step, deadline, nullptr) != 1) return false;
      have += step;
    }
    return true;
  }

  /// One connection: calls until the peer closes, an error, the idle
  /// timeout or shutdown.
  void Serve(int fd) {
    std::string in, out;
    char hdr[8];
    while (!stopping_.load()) {
      const auto idle_deadline = Clock::now() + std::chrono::milliseconds(options_.idle_timeout_ms);
      if (ReadFull(fd, hdr, 4, idle_deadline, nullptr) != 1) return;
      const uint32_t len = GetU32(hdr);
      if (len < 1 || uint64_t{len} > uint64_t{options_.max_request_bytes} + 256) {
        spdlog::warn("{}: a request of {} bytes, closing the connection", options_.name, len);
        return;
      }
      uint64_t taken = 0;
      const bool read = ReadRequest(fd, len, &in, &taken);
      FrameRpcResult r;
      if (read) {
        const size_t name_len = static_cast<unsigned char>(in[0]);
        if (1 + name_len > len) {
          GiveBudget(taken);
          spdlog::warn("{}: a malformed request, closing the connection", options_.name);
          return;
        }
        const std::string_view method(in.data() + 1, name_len);
        const std::string_view request(in.data() + 1 + name_len, len - 1 - name_len);
        out.clear();
        if (method == kLocalMethod) {
          if (request.size() == 8) {
            LocalRegistry::Get().Claim(
                uint64_t{GetU32(request.data())} << 32 | GetU32(request.data() + 4), local_);
          }
        } else {
          try {
            r = handler_(method, request, &out);
          } catch (const std::exception& e) {
            r = {2, std::string("the server failed: ") + e.what()};
          }
        }
      }
      GiveBudget(taken);
      if (in.capacity() > kKeepBufferBytes) std::string().swap(in);
      if (!read) return;
      if (r.code == 0 && out.size() > 0xFFFFFFF0u) r = {8, "reply too large"};
      const std::string& body = r.code == 0 ? out : r.message;
      PutU32(hdr, static_cast<uint32_t>(4 + body.size()));
      PutU32(hdr + 4, static_cast<uint32_t>(r.code));
      std::vector<iovec> iov{{hdr, 8}, {const_cast<char*>(body.data()), body.size()}};
      const bool ok =
          WriteFull(fd, std::move(iov), Clock::now() + std::chrono::milliseconds(kIoTimeoutMs));
      if (out.capacity() > kKeepBufferBytes) std::string().swap(out);
      if (!ok) return;
    }
  }

  const FrameRpcHandler handler_;
  const FrameRpcServerOptions options_;
  std::shared_ptr<FrameRpcLocalEndpoint> local_;  // set by Listen
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;
  std::mutex mu_;
  std::list<Conn> conns_;  // GUARDED_BY(mu_)
  std::mutex budget_mu_;
  std::condition_variable budget_cv_;
  uint64_t buffered_ = 0;  // GUARDED_BY(budget_mu_): request bytes held
};

StatusOr<std::unique_ptr<FrameRpcServer>> FrameRpcServer::Start(
    const std::string& ip, uint16_t port, FrameRpcHandler handler,
    const FrameRpcServerOptions& options) {
  auto impl = std::make_unique<Impl>(std::move(handler), options);
  NEEDLEFS_RETURN_IF_ERROR(impl->Listen(ip, port));
  return std::unique_ptr<FrameRpcServer>(new FrameRpcServer(std::move(impl)));
}

FrameRpcServer::FrameRpcServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FrameRpcServer::~FrameRpcServer() = default;
uint16_t FrameRpcServer::port() const { return impl_->port(); }
void FrameRpcServer::Shutdown() { impl_->Shutdown(); }

// ---------------------------------------------------------------- client

struct FrameRpcClient::Pool {
  struct Idle {
    int fd;
    Clock::time_point since;
  };
  std::mutex mu;
  std::vector<Idle> idle;  // GUARDED_BY(mu)
};

FrameRpcClient::FrameRpcClient(std::string host, uint16_t port,
                               const FrameRpcClientOptions& options)
    : host_(std::move(host)), port_(port), options_(options), pool_(std::make_unique<Pool>()) {}

FrameRpcClient::~FrameRpcClient() {
  std::lock_guard<std::mutex> g(pool_->mu);
  for (const auto& i : pool_->idle) ::close(i.fd);
}

int FrameRpcClient::Connect(int timeout_ms, Status* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port_s = std::to_string(port_);
  if (int rc = ::getaddrinfo(host_.c_str(), port_s.c_str(), &hints, &res); rc != 0) {
    *error = Status::Unavailable("cannot resolve " + host_ + ": " + ::gai_strerror(rc));
    return -1;
  }
  const auto deadline =
      Clock::now() + std::chrono::milliseconds(std::min(timeout_ms, options_.connect_timeout_ms));
  std::string err = "no address";
  int out = -1;
  for (addrinfo* a = res; a && out < 0; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) continue;
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      if (WaitFd(fd, POLLOUT, deadline) == 1) {
        int so = 0;
        socklen_t sl = sizeof(so);
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl);
        rc = so == 0 ? 0 : -1;
        errno = so;
      } else {
        errno = ETIMEDOUT;
      }
    }
    if (rc == 0) {
      SetNoDelay(fd);
      out = fd;
    } else {
      err = std::strerror(errno);
      ::close(fd);
    }
  }
  ::freeaddrinfo(res);
  if (out < 0)
    *error = Status::Unavailable("cannot connect to " + host_ + ":" + port_s + ": " + err);
  return out;
}

int FrameRpcClient::TakeIdle() {
  const auto now = Clock::now();
  for (;;) {
    Pool::Idle i;
    {
      std::lock_guard<std::mutex> g(pool_->mu);
      if (pool_->idle.empty()) return -1;
      i = pool_->idle.back();
      pool_->idle.pop_back();
    }
    // An old one may be about to be closed by the server; one with
    // anything to read was closed already (a restart, its idle timeout).
    pollfd p{i.fd, POLLIN | POLLRDHUP, 0};
    if (now - i.since < std::chrono::milliseconds(options_.max_idle_ms) && ::poll(&p, 1, 0) == 0) {
      return i.fd;
    }
    ::close(i.fd);
  }
}

void FrameRpcClient::PutIdle(int fd) {
  {
    std::lock_guard<std::mutex> g(pool_->mu);
    if (static_cast<int>(pool_->idle.size()) < options_.max_idle_connections) {
      pool_->idle.push_back({fd, Clock::now()});
      return;
    }
  }
  ::close(fd);
}

StatusOr<FrameRpcResult> FrameRpcClient::Attempt(int fd, std::string_view method,
                                                 std::string_view request, std::string* reply,
                                                 Clock::time_point deadline, bool* any_reply) {
  *any_reply = false;
  char hdr[8];
  PutU32(hdr, static_cast<uint32_t>(1 + method.size() + request.size()));
  hdr[4] = static_cast<char>(method.size());
  std::vector<iovec> iov{{hdr, 5},
                         {const_cast<char*>(method.data()), method.size()},
                         {const_cast<char*>(request.data()), request.size()}};
  const std::string where = std::string(method) + " to " + host_ + ":" + std::to_string(port_);
  if (!WriteFull(fd, std::move(iov), deadline)) {
    ::close(fd);
    return Status::Unavailable("frame rpc: cannot send " + where);
  }
  bool timed_out = false;
  size_t got = 0;
  if (ReadFull(fd, hdr, 8, deadline, &timed_out, &got) != 1) {
    ::close(fd);
    *any_reply = got > 0;
    if (timed_out) return Status(StatusCode::kDeadlineExceeded, "frame rpc: no reply to " + where);
    return Status::Unavailable("frame rpc: connection lost during " + where);
  }
  *any_reply = true;
  const uint32_t len = GetU32(hdr);
  if (len < 4 || len - 4 > options_.max_reply_bytes) {
    ::close(fd);
    return Status(StatusCode::kResourceExhausted,
                  "frame rpc: a reply of " + std::to_string(len) + " bytes from " + where);
  }
  FrameRpcResult r;
  r.code = static_cast<int32_t>(GetU32(hdr + 4));
  std::string body(len - 4, '\0');
  if (ReadFull(fd, body.data(), body.size(), deadline, &timed_out) != 1) {
    ::close(fd);
    if (timed_out) return Status(StatusCode::kDeadlineExceeded, "frame rpc: no reply to " + where);
    return Status::Unavailable("frame rpc: connection lost during " + where);
  }
  if (r.code == kFrameRpcNotRun) {
    ::close(fd);
  } else {
    PutIdle(fd);
  }
  if (r.code == 0) {
    reply->swap(body);
  } else {
    r.message = std::move(body);
  }
  return r;
}

Status FrameRpcClient::FindLocal(Clock::time_point deadline,
                                 std::shared_ptr<FrameRpcLocalEndpoint>* local) {
  {
    std::lock_guard<std::mutex> g(local_mu_);
    if (local_probed_) {
      *local = local_;
      return Status::OK();
    }
  }
  int fd = TakeIdle();
  if (fd < 0) {
    Status err;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    fd = Connect(static_cast<int>(std::max<int64_t>(left.count(), 1)), &err);
    if (fd < 0) return err;  // the call fails as it would have: nothing sent
  }
  const uint64_t ticket = LocalRegistry::Get().Issue();
  char t[8];
  PutU32(t, static_cast<uint32_t>(ticket >> 32));
  PutU32(t + 4, static_cast<uint32_t>(ticket));
  std::string ignored;
  bool any_reply = false;
  auto r =
      Attempt(fd, kLocalMethod, std::string_view(t, sizeof(t)), &ignored, deadline, &any_reply);
  std::shared_ptr<FrameRpcLocalEndpoint> found = LocalRegistry::Get().Redeem(ticket);
  if (!r.ok()) return r.status();
  // A server that refused the probe unread (its connection limit) may
  // still be ours: ask again with the next call.
  if (r->code == kFrameRpcNotRun) return Status::OK();
  // Answered: a server of this process claimed the ticket, or it is
  // another process's (an older one says "no method").
  std::lock_guard<std::mutex> g(local_mu_);
  local_probed_ = true;
  local_ = found;
  *local = local_;
  return Status::OK();
}

StatusOr<FrameRpcResult> FrameRpcClient::CallLocal(FrameRpcLocalEndpoint* local,
                                                   std::string_view method,
                                                   std::string_view request, std::string* reply,
                                                   bool* sent) {
  if (!local->Enter()) {
    // That server stopped: the next call asks whoever listens now.
    std::lock_guard<std::mutex> g(local_mu_);
    local_probed_ = false;
    local_.reset();
    return Status::Unavailable("frame rpc: the in-process server of " + host_ + ":" +
                               std::to_string(port_) + " stopped");
  }
  struct Leave {
    FrameRpcLocalEndpoint* e;
    ~Leave() { e->Leave(); }
  } leave{local};
  if (sent) *sent = true;
  FrameRpcResult r;
  std::string out;
  try {
    r = local->handler(method, request, &out);
  } catch (const std::exception& e) {
    r = {2, std::string("the server failed: ") + e.what()};
  } catch (...) {
    r = {2, "the server failed"};
  }
  if (r.code == 0) reply->swap(out);
  return r;
}

StatusOr<FrameRpcResult> FrameRpcClient::Call(std::string_view method, std::string_view request,
                                              std::string* reply, int timeout_ms, bool* sent,
                                              bool idempotent) {
  if (sent) *sent = false;
  if (method.size() > 255) return Status::InvalidArgument("frame rpc: method name too long");
  if (request.size() > 0xFFFFFF00u) return Status::InvalidArgument("frame rpc: request too large");
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  if (options_.in_process) {
    std::shared_ptr<FrameRpcLocalEndpoint> local;
    NEEDLEFS_RETURN_IF_ERROR(FindLocal(deadline, &local));
    if (local) return CallLocal(local.get(), method, request, reply, sent);
  }
  for (int attempt = 0;; ++attempt) {
    int fd = TakeIdle();
    const bool reused = fd >= 0;
    if (fd < 0) {
      Status err;
      fd = Connect(timeout_ms, &err);
      if (fd < 0) return err;
    }
    bool any_reply = false;
    auto r = Attempt(fd, method, request, reply, deadline, &any_reply);
    if (r.ok() && r->code == kFrameRpcNotRun) {
      return Status::Unavailable("frame rpc: the server refused " + std::string(method) +
                                 " unread: " + r->message);
    }
    // A reused connection the server had closed, with nothing back: an
    // idempotent call may safely go once more on a new one.
    if (!r.ok() && reused && idempotent && !any_reply && attempt == 0 &&
        r.status().code() == StatusCode::kUnavailable) {
      continue;
    }
    if (sent) *sent = true;
    return r;
  }
}

}  // namespace needlefs
