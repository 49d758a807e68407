// The ONC RPC transport, knfsd's way: a pool of threads all waiting on one
// epoll set. Every socket is armed EPOLLONESHOT, so one event wakes exactly
// one thread, and that thread owns the socket until it re-arms it. For a TCP
// connection the woken thread reads what has arrived, cuts out the whole
// records, re-arms the socket (so another thread takes the next call of the
// same connection at once), runs the first call itself and writes its reply
// straight to the socket; further records read in the same go are queued
// for the other threads. A call thus costs one wake-up: the kernel's, of the
// thread that serves it. (The Boost.Asio transport before it handed every
// call from an io thread to a worker and its reply back: three wake-ups per
// call, about 40% of nfsd's CPU on this machine; docs/benchmarks.md.)
#include "nfsd/rpc_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/logging.h"

namespace needlefs::nfsd {
namespace {

constexpr uint32_t kLastFragment = 0x80000000u;
/// How long a reply may wait for room in a connection's send buffer before
/// the connection is given up (a client that stopped reading).
constexpr int kSendTimeoutMs = 60'000;
/// Bytes read from a connection per recv.
constexpr size_t kReadChunk = 64 << 10;
/// Bytes read from a connection per readable event, at most (plus a chunk).
constexpr size_t kReadBoundPerEvent = 4 << 20;

/// "127.0.0.1" for an IPv4-mapped IPv6 address too; the port in *port.
std::string AddressText(const sockaddr_storage& ss, uint16_t* port) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    *port = ntohs(a->sin_port);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    *port = ntohs(a->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
      inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], buf, sizeof buf);
    } else {
      inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    }
  }
  return buf;
}

/// Parses "0.0.0.0", "127.0.0.1", "::", "::1" into *ss with `port`.
bool ParseAddress(const std::string& text, uint16_t port, sockaddr_storage* ss, socklen_t* len) {
  std::memset(ss, 0, sizeof *ss);
  auto* v4 = reinterpret_cast<sockaddr_in*>(ss);
  if (inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    *len = sizeof(sockaddr_in);
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(ss);
  if (inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    *len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

/// A socket in the epoll set; epoll_event.data.ptr points at it.
struct Source {
  enum Kind { kListener, kDatagram, kConnection, kQueue, kStop };
  explicit Source(Kind k, int f = -1) : kind(k), fd(f) {}
  virtual ~Source() {
    if (fd >= 0) ::close(fd);
  }
  const Kind kind;
  int fd;
};

/// One TCP connection. The thread that took its readable event owns `in`
/// and the fragment state until it re-arms the socket; replies are written
/// by whichever thread ran the call, one at a time (send_mu). The file
/// descriptor is closed only when the last reference goes, so a reply being
/// written never meets a reused descriptor; ending a connection early is a
/// shutdown().
struct Connection : Source {
  explicit Connection(int f) : Source(kConnection, f) {}
  Peer peer;
  std::string in;       // bytes read and not yet cut into records
  std::string record;   // the record being reassembled from fragments
  std::mutex send_mu;   // one reply at a time on the stream
  bool broken = false;  // GUARDED_BY(send_mu): shut down, write nothing more
};

}  // namespace

class RpcServer::Impl {
 public:
  Impl(const RpcServerOptions& o, RpcHandler handler) : options_(o), handler_(std::move(handler)) {}

  ~Impl() {
    if (stop_ != nullptr) {
      const uint64_t one = 1;
      (void)!::write(stop_->fd, &one, sizeof one);  // level-triggered: wakes every thread
    }
    {
      // A call blocked writing to a client that stopped reading ends now.
      std::lock_guard<std::mutex> g(mu_);
      for (auto& [raw, c] : connections_) ::shutdown(raw->fd, SHUT_RDWR);
    }
    for (auto& t : threads_) t.join();
    // No thread runs a call any more: the connections can go.
    std::lock_guard<std::mutex> g(mu_);
    connections_.clear();
    if (epoll_ >= 0) ::close(epoll_);
  }

  Status Listen() {
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) return Status::IOError("epoll_create1", errno);
    sockaddr_storage ss;
    socklen_t len = 0;
    if (!ParseAddress(options_.address, options_.port, &ss, &len)) {
      return Status::InvalidArgument("bad address " + options_.address);
    }
    const std::string where = options_.address + ":" + std::to_string(options_.port);
    // Port 0: TCP picks a port, UDP takes the same one; when another socket
    // holds that UDP port, try again with another.
    for (int attempt = 0;; ++attempt) {
      listener_ = std::make_unique<Source>(Source::kListener, OpenSocket(ss, SOCK_STREAM));
      if (listener_->fd < 0) return Status::Unavailable("cannot listen on " + where + ": socket");
      const int on = 1;
      ::setsockopt(listener_->fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
      if (::bind(listener_->fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
          ::listen(listener_->fd, SOMAXCONN) != 0) {
        return Status::Unavailable("cannot listen on " + where + ": " + std::strerror(errno));
      }
      sockaddr_storage bound;
      socklen_t blen = sizeof bound;
      ::getsockname(listener_->fd, reinterpret_cast<sockaddr*>(&bound), &blen);
      AddressText(bound, &port_);
      if (!options_.udp) break;
      datagram_ = std::make_unique<Source>(Source::kDatagram, OpenSocket(ss, SOCK_DGRAM));
      sockaddr_storage uss = ss;
      if (uss.ss_family == AF_INET) {
        reinterpret_cast<sockaddr_in*>(&uss)->sin_port = htons(port_);
      } else {
        reinterpret_cast<sockaddr_in6*>(&uss)->sin6_port = htons(port_);
      }
      if (datagram_->fd >= 0 &&
          ::bind(datagram_->fd, reinterpret_cast<sockaddr*>(&uss), len) == 0) {
        break;
      }
      const int err = errno;
      datagram_.reset();
      listener_.reset();
      if (options_.port != 0 || attempt == 20) {
        return Status::Unavailable("cannot bind UDP " + options_.address + ":" +
                                   std::to_string(port_) + ": " + std::strerror(err));
      }
    }
    queue_ = std::make_unique<Source>(Source::kQueue,
                                      ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE));
    stop_ = std::make_unique<Source>(Source::kStop, ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (queue_->fd < 0 || stop_->fd < 0) return Status::IOError("eventfd", errno);
    if (!Add(listener_.get(), EPOLLIN | EPOLLONESHOT) ||
        (datagram_ && !Add(datagram_.get(), EPOLLIN | EPOLLONESHOT)) ||
        !Add(queue_.get(), EPOLLIN) || !Add(stop_.get(), EPOLLIN)) {
      return Status::IOError("epoll_ctl", errno);
    }
    const int n = std::max(1, options_.threads);
    for (int i = 0; i < n; ++i) threads_.emplace_back([this] { Run(); });
    return Status::OK();
  }

  uint16_t port() const { return port_; }

 private:
  /// A non-blocking socket of `ss`'s family; IPv6 ones take IPv4 too.
  static int OpenSocket(const sockaddr_storage& ss, int type) {
    const int fd = ::socket(ss.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && ss.ss_family == AF_INET6) {
      const int off = 0;
      ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    }
    return fd;
  }

  bool Add(Source* s, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = s;
    return ::epoll_ctl(epoll_, EPOLL_CTL_ADD, s->fd, &ev) == 0;
  }

  /// Hands `s` back to the epoll set for its next event.
  void Rearm(Source* s) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
    ev.data.ptr = s;
    ::epoll_ctl(epoll_, EPOLL_CTL_MOD, s->fd, &ev);
  }

  /// One thread of the pool: takes events until the server stops.
  void Run() {
    for (;;) {
      epoll_event ev;
      const int n = ::epoll_wait(epoll_, &ev, 1, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        spdlog::error("nfsd.epoll_wait: {}", std::strerror(errno));
        return;
      }
      if (n == 0) continue;
      auto* s = static_cast<Source*>(ev.data.ptr);
      switch (s->kind) {
        case Source::kStop:
          return;
        case Source::kListener:
          Accept();
          break;
        case Source::kDatagram:
          ReceiveDatagram();
          break;
        case Source::kQueue:
          RunQueued();
          break;
        case Source::kConnection:
          Receive(static_cast<Connection*>(s));
          break;
      }
    }
  }

  void Accept() {
    for (;;) {
      sockaddr_storage ss;
      socklen_t len = sizeof ss;
      const int fd = ::accept4(listener_->fd, reinterpret_cast<sockaddr*>(&ss), &len,
                               SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
          spdlog::warn("nfsd.accept: {}", std::strerror(errno));
          if (errno == EMFILE || errno == ENFILE) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));  // back off
          }
        }
        break;
      }
      const int on = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
      auto c = std::make_shared<Connection>(fd);
      c->peer.address = AddressText(ss, &c->peer.port);
      {
        std::lock_guard<std::mutex> g(mu_);
        connections_.emplace(c.get(), c);
      }
      if (!Add(c.get(), EPOLLIN | EPOLLRDHUP | EPOLLONESHOT)) {
        std::lock_guard<std::mutex> g(mu_);
        connections_.erase(c.get());
      }
    }
    Rearm(listener_.get());
  }

  /// The connection's readable event: reads what arrived, cuts out the
  /// whole records, re-arms, runs the first and queues the rest.
  void Receive(Connection* raw) {
    std::shared_ptr<Connection> c;
    {
      std::lock_guard<std::mutex> g(mu_);
      auto it = connections_.find(raw);
      if (it == connections_.end()) return;
      c = it->second;
    }
    // Read until the socket is drained or a bound per event is reached
    // (what is left re-arms the event at once: a fast client cannot grow
    // the buffer without bound).
    thread_local std::vector<char> chunk(kReadChunk);
    bool end = false;
    size_t taken = 0;
    while (taken < kReadBoundPerEvent) {
      const ssize_t n = ::recv(c->fd, chunk.data(), chunk.size(), 0);
      if (n > 0) {
        c->in.append(chunk.data(), static_cast<size_t>(n));
        taken += static_cast<size_t>(n);
        if (static_cast<size_t>(n) < chunk.size()) break;  // drained for now
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      end = true;  // EOF or a reset
      break;
    }
    std::vector<std::string> records;
    if (!CutRecords(c.get(), &records)) {
      Shutdown(c.get());  // over the cap: nothing more is read or answered
      end = true;
    }
    if (end) {
      Drop(c);
    } else {
      Rearm(c.get());
    }
    if (records.empty()) return;
    if (records.size() > 1) {
      {
        std::lock_guard<std::mutex> g(queue_mu_);
        for (size_t i = 1; i < records.size(); ++i) {
          queued_.push_back(Queued{c, std::move(records[i])});
        }
      }
      const uint64_t k = records.size() - 1;
      (void)!::write(queue_->fd, &k, sizeof k);
    }
    Serve(c, records[0]);
  }

  /// Moves every whole record out of c->in (fragments joined). false: the
  /// connection sent a record over the cap and must end.
  bool CutRecords(Connection* c, std::vector<std::string>* records) {
    size_t pos = 0;
    bool ok = true;
    while (c->in.size() - pos >= 4) {
      const auto* p = reinterpret_cast<const unsigned char*>(c->in.data() + pos);
      const uint32_t m =
          (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
      const size_t len = m & ~kLastFragment;
      if (c->record.size() + len > options_.max_record_bytes) {
        spdlog::warn("nfsd.record_too_large peer={}:{} bytes={}", c->peer.address, c->peer.port,
                     c->record.size() + len);
        ok = false;
        break;
      }
      if (c->in.size() - pos - 4 < len) break;  // the fragment is not all here yet
      c->record.append(c->in, pos + 4, len);
      pos += 4 + len;
      if (m & kLastFragment) {
        records->push_back(std::move(c->record));
        c->record.clear();
      }
    }
    c->in.erase(0, pos);
    return ok;
  }

  /// Runs one call of `c` and writes its reply.
  void Serve(const std::shared_ptr<Connection>& c, const std::string& record) {
    std::optional<std::string> reply;
    try {
      reply = handler_(record, c->peer);
    } catch (const std::exception& e) {
      spdlog::error("nfsd.call peer={}:{}: {}", c->peer.address, c->peer.port, e.what());
      reply.reset();
    }
    if (!reply) {
      Shutdown(c.get());  // not RPC: nothing sensible can follow on this stream
      return;
    }
    if (!reply->empty()) Send(c.get(), *reply);
  }

  /// Writes `reply` as one last-fragment record, waiting for room in the
  /// send buffer up to kSendTimeoutMs; a failure ends the connection.
  void Send(Connection* c, const std::string& reply) {
    const uint32_t m = kLastFragment | static_cast<uint32_t>(reply.size());
    unsigned char mark[4] = {static_cast<unsigned char>(m >> 24),
                             static_cast<unsigned char>(m >> 16),
                             static_cast<unsigned char>(m >> 8), static_cast<unsigned char>(m)};
    std::lock_guard<std::mutex> g(c->send_mu);
    if (c->broken) return;
    iovec iov[2] = {{mark, 4}, {const_cast<char*>(reply.data()), reply.size()}};
    int iovcnt = 2;
    iovec* v = iov;
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(kSendTimeoutMs);
    while (iovcnt > 0) {
      msghdr msg{};
      msg.msg_iov = v;
      msg.msg_iovlen = iovcnt;
      ssize_t n = ::sendmsg(c->fd, &msg, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                              deadline - std::chrono::steady_clock::now())
                              .count();
        if ((errno == EAGAIN || errno == EWOULDBLOCK) && left > 0) {
          pollfd pfd{c->fd, POLLOUT, 0};
          ::poll(&pfd, 1, static_cast<int>(left));
          continue;
        }
        spdlog::debug("nfsd.send peer={}:{}: {}", c->peer.address, c->peer.port,
                      n < 0 && left <= 0 ? "timed out" : std::strerror(errno));
        c->broken = true;
        ::shutdown(c->fd, SHUT_RDWR);
        return;
      }
      while (iovcnt > 0 && static_cast<size_t>(n) >= v->iov_len) {
        n -= static_cast<ssize_t>(v->iov_len);
        ++v;
        --iovcnt;
      }
      if (iovcnt > 0) {
        v->iov_base = static_cast<char*>(v->iov_base) + n;
        v->iov_len -= static_cast<size_t>(n);
      }
    }
  }

  /// Ends `c`'s stream: its pending read event reports the end, and the
  /// thread that takes it drops the connection.
  void Shutdown(Connection* c) {
    std::lock_guard<std::mutex> g(c->send_mu);
    c->broken = true;
    ::shutdown(c->fd, SHUT_RDWR);
  }

  /// Takes `c` out of the epoll set and the table (by the thread that owns
  /// its event) once its peer ended the stream; calls still running keep it
  /// alive, and their replies are still written (a client may half-close
  /// after its last call), until they end and the descriptor closes.
  void Drop(const std::shared_ptr<Connection>& c) {
    ::epoll_ctl(epoll_, EPOLL_CTL_DEL, c->fd, nullptr);
    std::lock_guard<std::mutex> g(mu_);
    connections_.erase(c.get());
  }

  /// One queued call (a record that came in with others).
  void RunQueued() {
    uint64_t one;
    if (::read(queue_->fd, &one, sizeof one) != sizeof one) return;  // another thread took it
    Queued q;
    {
      std::lock_guard<std::mutex> g(queue_mu_);
      if (queued_.empty()) return;
      q = std::move(queued_.front());
      queued_.pop_front();
    }
    Serve(q.connection, q.record);
  }

  /// One datagram = one record (RFC 5531 section 11 frames only streams).
  void ReceiveDatagram() {
    std::string record(65536, '\0');
    sockaddr_storage from;
    socklen_t flen = sizeof from;
    ssize_t n;
    do {
      n = ::recvfrom(datagram_->fd, record.data(), record.size(), 0,
                     reinterpret_cast<sockaddr*>(&from), &flen);
    } while (n < 0 && errno == EINTR);
    Rearm(datagram_.get());
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        spdlog::warn("nfsd.udp_receive: {}", std::strerror(errno));
      }
      return;
    }
    record.resize(static_cast<size_t>(n));
    Peer peer;
    peer.address = AddressText(from, &peer.port);
    peer.datagram = true;
    std::optional<std::string> reply;
    try {
      reply = handler_(record, peer);
    } catch (const std::exception& e) {
      spdlog::error("nfsd.call peer={}:{}: {}", peer.address, peer.port, e.what());
    }
    if (!reply || reply->empty()) return;  // nothing to answer (or no call)
    if (reply->size() > kMaxDatagramBytes) {
      spdlog::warn("nfsd.udp_reply_too_large peer={}:{} bytes={}", peer.address, peer.port,
                   reply->size());
      return;
    }
    ::sendto(datagram_->fd, reply->data(), reply->size(), MSG_NOSIGNAL,
             reinterpret_cast<sockaddr*>(&from), flen);
  }

  struct Queued {
    std::shared_ptr<Connection> connection;
    std::string record;
  };

  RpcServerOptions options_;
  RpcHandler handler_;
  int epoll_ = -1;
  std::unique_ptr<Source> listener_;
  std::unique_ptr<Source> datagram_;
  std::unique_ptr<Source> queue_;  // eventfd (semaphore): one count per queued call
  std::unique_ptr<Source> stop_;   // eventfd, level-triggered: every thread ends
  uint16_t port_ = 0;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::unordered_map<Connection*, std::shared_ptr<Connection>> connections_;  // GUARDED_BY(mu_)
  std::mutex queue_mu_;
  std::deque<Queued> queued_;  // GUARDED_BY(queue_mu_)
};

RpcServer::RpcServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RpcServer::~RpcServer() = default;

StatusOr<std::unique_ptr<RpcServer>> RpcServer::Start(const RpcServerOptions& options,
                                                      RpcHandler handler) {
  auto impl = std::make_unique<Impl>(options, std::move(handler));
  NEEDLEFS_RETURN_IF_ERROR(impl->Listen());
  return std::unique_ptr<RpcServer>(new RpcServer(std::move(impl)));
}

uint16_t RpcServer::port() const { return impl_->port(); }

}  // namespace needlefs::nfsd
