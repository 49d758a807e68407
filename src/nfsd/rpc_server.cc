// The ONC RPC transport, knfsd's way: a pool of threads all waiting on one
// epoll set. Every registration is EPOLLONESHOT, so one event wakes exactly
// one thread, and that thread owns what it woke for until it re-arms it.
//
// For a TCP connection the woken thread reads what has arrived, cuts out the
// whole records, queues all but the first for the other threads, re-arms the
// socket (so the next call of the same connection is taken at once), runs
// the first call itself and writes its reply straight to the socket. A call
// read alone -- every call of a client with one in flight -- thus costs one
// wake-up, the kernel's, of the thread that serves it. (The Boost.Asio
// transport before it handed each call from an io thread to a worker and its
// reply back to the io thread: for libnfs at one call in flight, stat 2,915
// -> 4,900 and read 1,432 -> 3,100 per second against `needlefs server`.)
//
// Nothing here waits on a TCP client. A reply that does not fit the socket's
// send buffer is queued on its connection and written by whichever thread
// takes the connection's writable event (a dup of its descriptor,
// registered apart from the readable one). A connection with too many calls
// running or too many reply bytes queued is not read until it drains: the
// client is held back by TCP, the pool stays free for everyone else. (A
// UDP reply waits up to a second for room in the one datagram socket.)
#include "nfsd/rpc_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
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
#include <cstring>
#include <deque>
#include <list>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/logging.h"

namespace needlefs::nfsd {
namespace {

constexpr uint32_t kLastFragment = 0x80000000u;
/// Bytes read from a connection per recv.
constexpr size_t kReadChunk = 64 << 10;
/// Bytes read from a connection per readable event, at most (plus a chunk);
/// what is left fires the re-armed event again at once.
constexpr size_t kReadBoundPerEvent = 4 << 20;
/// A connection is not read while it has more calls than this running or
/// queued...
constexpr int kMaxCallsPerConnection = 64;
/// ... or more reply bytes than this waiting for its client to read them.
constexpr size_t kMaxQueuedReplyBytes = 16 << 20;
/// How long a UDP reply waits for room in the socket's send buffer, ms.
constexpr int kDatagramSendWaitMs = 1000;

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

/// Parses a numeric address ("0.0.0.0", "127.0.0.1", "::", "::1",
/// "fe80::1%eth0") into *ss with `port`.
bool ParseAddress(const std::string& text, uint16_t port, sockaddr_storage* ss, socklen_t* len) {
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(text.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res) {
    return false;
  }
  std::memcpy(ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  ::freeaddrinfo(res);
  return true;
}

void SetPort(sockaddr_storage* ss, uint16_t port) {
  if (ss->ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(ss)->sin_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in6*>(ss)->sin6_port = htons(port);
  }
}

/// What an epoll registration stands for (epoll_event.data.ptr points at
/// one).
struct Source {
  enum Kind { kListener, kDatagram, kQueue, kStop, kReadable, kWritable };
  explicit Source(Kind k, int f = -1) : kind(k), fd(f) {}
  Source(const Source&) = delete;
  Source& operator=(const Source&) = delete;
  const Kind kind;
  const int fd;
};

/// An owned descriptor with its registration.
struct OwnedSource : Source {
  using Source::Source;
  ~OwnedSource() {
    if (fd >= 0) ::close(fd);
  }
};

struct Connection;

/// Bytes waiting for room in a connection's send buffer.
struct Pending {
  std::string bytes;
  size_t offset = 0;  // written already
};

/// One side of a connection in the epoll set.
struct ConnectionSide : Source {
  ConnectionSide(Kind k, int f, Connection* c) : Source(k, f), connection(c) {}
  Connection* const connection;
};

/// One TCP connection.
///  - The readable side (`fd`): the thread that took its event owns `in`
///    and `record` until it re-arms it.
///  - The writable side (`wfd`, a dup of `fd` so that its registration is
///    separate): registered at the first reply that had to wait, armed
///    while replies wait in `out`.
/// Descriptors close only when the last reference goes, so nothing ever
/// writes to a reused descriptor; ending a connection early is shutdown().
struct Connection {
  Connection(int fd, int wfd)
      : readable(Source::kReadable, fd, this), writable(Source::kWritable, wfd, this) {}
  ~Connection() {
    ::close(writable.fd);
    ::close(readable.fd);
  }
  ConnectionSide readable;
  ConnectionSide writable;
  Peer peer;
  std::string in;      // bytes read and not yet cut into records
  std::string record;  // the record being reassembled from fragments
  bool eof = false;    // the peer ended its stream (owned as `in`)

  std::atomic<bool> broken{false};  // shut down: run and answer nothing more
  std::atomic<int> calls{0};        // calls cut and not yet answered
  std::atomic<bool> paused{false};  // not re-armed for reading (too much work queued)

  std::mutex send_mu;                // the fields below; one reply at a time on the stream
  std::deque<Pending> out;           // GUARDED_BY(send_mu): what waits for room, in order
  std::atomic<size_t> out_bytes{0};  // bytes in `out` (written under send_mu)
  bool writer_registered = false;    // GUARDED_BY(send_mu): the writable side is in the set
  bool writer_armed = false;         // GUARDED_BY(send_mu): ... and waits for room
  bool read_done = false;            // GUARDED_BY(send_mu): the readable side left the epoll set
};

}  // namespace

class RpcServer::Impl {
 public:
  Impl(const RpcServerOptions& o, RpcHandler handler) : options_(o), handler_(std::move(handler)) {}

  ~Impl() {
    stopping_ = true;
    if (epoll_ >= 0 && listener_) {
      ::epoll_ctl(epoll_, EPOLL_CTL_DEL, listener_->fd, nullptr);
      ::shutdown(listener_->fd, SHUT_RDWR);
    }
    if (stop_) {
      const uint64_t one = 1;
      (void)!::write(stop_->fd, &one, sizeof one);  // level-triggered: wakes every thread
    }
    {
      // Every connection still known (one with a call running is) stops
      // now: its calls run no handler, its replies are dropped.
      std::lock_guard<std::mutex> g(mu_);
      for (auto& [raw, c] : connections_) Break(c.get());
    }
    for (auto& t : threads_) t.join();
    std::lock_guard<std::mutex> g(mu_);
    connections_.clear();
    queued_.clear();
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
      listener_ = std::make_unique<OwnedSource>(Source::kListener, OpenSocket(ss, SOCK_STREAM));
      if (listener_->fd < 0) {
        return Status::Unavailable("cannot listen on " + where + ": " + std::strerror(errno));
      }
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
      datagram_ = std::make_unique<OwnedSource>(Source::kDatagram, OpenSocket(ss, SOCK_DGRAM));
      sockaddr_storage uss = ss;
      SetPort(&uss, port_);
      int err = datagram_->fd < 0 ? errno : 0;
      if (err == 0 && ::bind(datagram_->fd, reinterpret_cast<sockaddr*>(&uss), len) == 0) break;
      if (err == 0) err = errno;
      datagram_.reset();
      listener_.reset();
      if (options_.port != 0 || err != EADDRINUSE || attempt == 20) {
        return Status::Unavailable("cannot bind UDP " + options_.address + ":" +
                                   std::to_string(port_) + ": " + std::strerror(err));
      }
    }
    queue_ = std::make_unique<OwnedSource>(
        Source::kQueue, ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE));
    stop_ = std::make_unique<OwnedSource>(Source::kStop, ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
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

  /// Arms `s` (registered, one-shot) for its next `events`.
  bool Arm(Source* s, uint32_t events) {
    epoll_event ev{};
    ev.events = events | EPOLLONESHOT;
    ev.data.ptr = s;
    return ::epoll_ctl(epoll_, EPOLL_CTL_MOD, s->fd, &ev) == 0;
  }

  /// One thread of the pool: takes events until the server stops.
  void Run() {
    for (;;) {
      epoll_event ev;
      const int n = ::epoll_wait(epoll_, &ev, 1, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        const int err = errno;
        spdlog::error("nfsd.epoll_wait: {}", std::strerror(err));
        return;
      }
      if (n == 0) continue;
      auto* s = static_cast<Source*>(ev.data.ptr);
      if (s->kind == Source::kStop) return;
      try {
        switch (s->kind) {
          case Source::kListener:
            Accept();
            break;
          case Source::kDatagram:
            ReceiveDatagram();
            break;
          case Source::kQueue:
            RunQueued();
            break;
          case Source::kReadable:
            Receive(static_cast<ConnectionSide*>(s)->connection);
            break;
          case Source::kWritable:
            Writable(static_cast<ConnectionSide*>(s)->connection);
            break;
          case Source::kStop:
            break;
        }
      } catch (...) {
        // Out of memory or the like: this event is lost (its connection
        // waits for the client's next bytes); the server goes on.
        spdlog::error("nfsd.event: failed (out of memory?)");
      }
    }
  }

  void Accept() {
    // The listener is re-armed whatever happens below (a lost re-arm would
    // end accepting for good).
    struct Rearm {
      Impl* self;
      ~Rearm() {
        if (!self->stopping_) self->Arm(self->listener_.get(), EPOLLIN);
      }
    } rearm{this};
    for (;;) {
      sockaddr_storage ss;
      socklen_t len = sizeof ss;
      const int fd = ::accept4(listener_->fd, reinterpret_cast<sockaddr*>(&ss), &len,
                               SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        const int err = errno;
        if (err == EINTR || err == ECONNABORTED) continue;
        if (err != EAGAIN && err != EWOULDBLOCK && !stopping_) {
          spdlog::warn("nfsd.accept: {}", std::strerror(err));
          if (err == EMFILE || err == ENFILE) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));  // back off
          }
        }
        break;
      }
      const int wfd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
      if (wfd < 0) {
        ::close(fd);
        continue;
      }
      std::shared_ptr<Connection> c;
      try {
        c = std::make_shared<Connection>(fd, wfd);
        c->peer.address = AddressText(ss, &c->peer.port);
        std::lock_guard<std::mutex> g(mu_);
        if (stopping_) {
          c.reset();  // the destructor's sweep is past: not one more
          continue;
        }
        connections_.emplace(c.get(), c);
      } catch (...) {
        if (!c) {
          ::close(fd);
          ::close(wfd);
        }
        continue;
      }
      const int on = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
      if (!Add(&c->readable, EPOLLIN | EPOLLRDHUP | EPOLLONESHOT)) {
        std::lock_guard<std::mutex> g(mu_);
        connections_.erase(c.get());
      }
    }
  }

  std::shared_ptr<Connection> Find(Connection* raw) {
    std::lock_guard<std::mutex> g(mu_);
    auto it = connections_.find(raw);
    return it == connections_.end() ? nullptr : it->second;
  }

  /// The connection's readable event.
  void Receive(Connection* raw) {
    std::shared_ptr<Connection> c = Find(raw);
    if (!c) return;
    std::string first;
    bool has_first = false;
    if (Pump(c, &first, &has_first) == Pumped::kPaused) MaybeResume(c);
    if (has_first) Serve(c, first);
  }

  enum class Pumped { kArmed, kPaused, kEnded };

  /// By the owner of c's readable side: reads what arrived, cuts out whole
  /// records (no more than the connection may have in hand), queues them
  /// -- but the first when `first` is given: that one is the caller's to
  /// run -- and then re-arms the readable side, pauses the connection
  /// (too much in hand: MaybeResume takes it up again) or ends reading.
  Pumped Pump(const std::shared_ptr<Connection>& c, std::string* first, bool* has_first) {
    std::vector<std::string> records;
    bool end = c->broken;
    try {
      thread_local std::vector<char> chunk(kReadChunk);
      size_t taken = 0;
      while (!end && !c->eof && taken < kReadBoundPerEvent) {
        const ssize_t n = ::recv(c->readable.fd, chunk.data(), chunk.size(), 0);
        if (n > 0) {
          c->in.append(chunk.data(), static_cast<size_t>(n));
          taken += static_cast<size_t>(n);
          if (static_cast<size_t>(n) < chunk.size()) break;  // drained for now
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        c->eof = true;  // or a reset; what came before it is still served
      }
      const int room = kMaxCallsPerConnection + 1 - c->calls.load();
      if (!c->broken && room > 0 && !CutRecords(c.get(), static_cast<size_t>(room), &records)) {
        Break(c.get());  // over the cap: nothing more is read, run or answered
        end = true;
      }
      // At the end of the stream, reading ends once every whole record is
      // cut (a cut stopped by the bound leaves some: the connection pauses).
      if (c->eof && records.size() < static_cast<size_t>(std::max(room, 0))) end = true;
      if (c->in.empty() && c->in.capacity() > kReadChunk) std::string().swap(c->in);
      // Everything that allocates comes before the calls are counted.
      const size_t from = first != nullptr && !records.empty() ? 1 : 0;
      std::list<Queued> batch;
      for (size_t i = from; i < records.size(); ++i)
        batch.push_back(Queued{c, std::move(records[i])});
      if (from == 1) *first = std::move(records[0]);
      c->calls += static_cast<int>(records.size());
      if (!batch.empty()) {
        {
          std::lock_guard<std::mutex> g(queue_mu_);
          queued_.splice(queued_.end(), batch);
        }
        const uint64_t k = records.size() - from;
        (void)!::write(queue_->fd, &k, sizeof k);
      }
      *has_first = from == 1;
    } catch (...) {
      // Out of memory: this stream cannot be kept in step any more. The
      // calls cut here were not counted and are not run.
      spdlog::error("nfsd.receive peer={}:{}: failed (out of memory?)", c->peer.address,
                    c->peer.port);
      Break(c.get());
      end = true;
      *has_first = false;
    }
    if (end) {
      EndReading(c);
      return Pumped::kEnded;
    }
    if (Busy(*c)) {
      c->paused = true;  // the caller re-checks (MaybeResume): a call may have ended meanwhile
      return Pumped::kPaused;
    }
    if (!Arm(&c->readable, EPOLLIN | EPOLLRDHUP)) {
      EndReading(c);
      return Pumped::kEnded;
    }
    return Pumped::kArmed;
  }

  /// Moves up to `most` whole records out of c->in (fragments joined).
  /// false: the connection sent a record over the cap and must end.
  bool CutRecords(Connection* c, size_t most, std::vector<std::string>* records) {
    size_t pos = 0;
    bool ok = true;
    while (c->in.size() - pos >= 4 && records->size() < most) {
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

  /// Too much in hand to read more of `c` now (never once it broke: it
  /// then only has to end).
  static bool Busy(const Connection& c) {
    if (c.broken.load()) return false;
    return c.calls.load() > kMaxCallsPerConnection || c.out_bytes.load() > kMaxQueuedReplyBytes;
  }

  /// Takes up a paused connection once it is no longer busy: the caller that
  /// wins the flag owns its readable side and pumps it (queuing every call:
  /// this may run inside a call of the same connection).
  void MaybeResume(const std::shared_ptr<Connection>& c) {
    for (;;) {
      if (!c->paused.load() || Busy(*c)) return;
      if (!c->paused.exchange(false)) return;
      bool none = false;
      if (Pump(c, nullptr, &none) != Pumped::kPaused) return;
      // Paused again: go round, a call may have ended meanwhile.
    }
  }

  /// Takes the readable side out of the epoll set (by the thread that owns
  /// it): the peer ended the stream, or the connection broke. Calls still
  /// running are answered (a client may half-close after its last call).
  void EndReading(const std::shared_ptr<Connection>& c) {
    ::epoll_ctl(epoll_, EPOLL_CTL_DEL, c->readable.fd, nullptr);
    {
      std::lock_guard<std::mutex> g(c->send_mu);
      c->read_done = true;
    }
    MaybeForget(c);
  }

  /// Forgets a connection that has nothing registered and nothing running;
  /// it closes when the last reference goes.
  void MaybeForget(const std::shared_ptr<Connection>& c) {
    {
      std::lock_guard<std::mutex> g(c->send_mu);
      if (!c->read_done || c->writer_armed || c->calls.load() != 0) return;
      if (c->writer_registered) ::epoll_ctl(epoll_, EPOLL_CTL_DEL, c->writable.fd, nullptr);
      c->writer_registered = false;
    }
    std::lock_guard<std::mutex> g(mu_);
    connections_.erase(c.get());
  }

  /// Runs one call of `c` and sends its reply.
  void Serve(const std::shared_ptr<Connection>& c, const std::string& record) {
    struct Done {  // whatever happens: the call is over
      Impl* self;
      const std::shared_ptr<Connection>& c;
      ~Done() {
        --c->calls;
        self->MaybeResume(c);
        self->MaybeForget(c);
      }
    } done{this, c};
    if (c->broken) return;
    std::optional<std::string> reply;
    try {
      reply = handler_(record, c->peer);
    } catch (...) {
      spdlog::error("nfsd.call peer={}:{}: the handler failed", c->peer.address, c->peer.port);
      reply.reset();
    }
    if (!reply) {
      Break(c.get());  // not RPC: nothing sensible can follow on this stream
    } else if (!reply->empty()) {
      Send(c, std::move(*reply));
    }
  }

  /// Writes `reply` as one last-fragment record: at once when the socket
  /// takes it, else (the rest) queued for the writable event. Never waits.
  void Send(const std::shared_ptr<Connection>& c, std::string reply) {
    const uint32_t m = kLastFragment | static_cast<uint32_t>(reply.size());
    char mark[4] = {static_cast<char>(m >> 24), static_cast<char>(m >> 16),
                    static_cast<char>(m >> 8), static_cast<char>(m)};
    std::lock_guard<std::mutex> g(c->send_mu);
    if (c->broken) return;
    size_t sent = 0;  // of mark + reply
    if (c->out.empty()) {
      for (;;) {
        iovec v[2];
        int k = 0;
        if (sent < 4) v[k++] = {mark + sent, 4 - sent};
        const size_t r = sent > 4 ? sent - 4 : 0;  // of reply
        if (r < reply.size()) v[k++] = {reply.data() + r, reply.size() - r};
        if (k == 0) return;  // all written
        msghdr msg{};
        msg.msg_iov = v;
        msg.msg_iovlen = k;
        const ssize_t n = ::sendmsg(c->readable.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
          sent += static_cast<size_t>(n);
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        BreakLocked(c.get());
        return;
      }
    }
    try {
      size_t added = 0;
      if (sent < 4) {
        c->out.push_back(Pending{std::string(mark + sent, 4 - sent), 0});
        added += 4 - sent;
        sent = 4;
      }
      added += reply.size() - (sent - 4);
      c->out.push_back(Pending{std::move(reply), sent - 4});
      c->out_bytes += added;
    } catch (...) {
      BreakLocked(c.get());  // half a record may be out: the stream cannot go on
      return;
    }
    if (!c->writer_armed) {
      // Registered at the first reply that had to wait (a registration
      // without events would still report a hang-up).
      const bool armed = c->writer_registered ? Arm(&c->writable, EPOLLOUT)
                                              : Add(&c->writable, EPOLLOUT | EPOLLONESHOT);
      if (armed) {
        c->writer_registered = c->writer_armed = true;
      } else {
        BreakLocked(c.get());
      }
    }
  }

  /// The connection's writable event: writes what is queued.
  void Writable(Connection* raw) {
    std::shared_ptr<Connection> c = Find(raw);
    if (!c) return;
    bool armed = false;
    {
      std::lock_guard<std::mutex> g(c->send_mu);
      while (!c->out.empty() && !c->broken) {
        Pending& front = c->out.front();
        const ssize_t n = ::send(c->writable.fd, front.bytes.data() + front.offset,
                                 front.bytes.size() - front.offset, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
          front.offset += static_cast<size_t>(n);
          c->out_bytes -= static_cast<size_t>(n);
          if (front.offset == front.bytes.size()) c->out.pop_front();
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && Arm(&c->writable, EPOLLOUT)) {
          armed = true;  // still armed: the next event goes on
          break;
        }
        BreakLocked(c.get());
      }
      if (c->broken) BreakLocked(c.get());  // what is queued will never go: free it
      if (!armed) c->writer_armed = false;
    }
    MaybeResume(c);  // reading may go on once the queue is under its bound
    MaybeForget(c);
  }

  /// Ends `c`'s stream now: no more calls run, no more replies go out, its
  /// reading ends at its next event (or at once when paused). Never waits
  /// for a writer.
  void Break(Connection* c) {
    c->broken = true;
    ::shutdown(c->readable.fd, SHUT_RDWR);
  }
  /// As Break, with send_mu held: also drops the queued replies.
  void BreakLocked(Connection* c) {
    Break(c);
    c->out.clear();
    c->out_bytes = 0;
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
    thread_local std::vector<char> buf(65536);
    sockaddr_storage from;
    socklen_t flen = sizeof from;
    ssize_t n;
    do {
      n = ::recvfrom(datagram_->fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from),
                     &flen);
    } while (n < 0 && errno == EINTR);
    const int err = errno;
    if (!stopping_) Arm(datagram_.get(), EPOLLIN);
    if (n < 0) {
      if (err != EAGAIN && err != EWOULDBLOCK) {
        spdlog::warn("nfsd.udp_receive: {}", std::strerror(err));
      }
      return;
    }
    const std::string record(buf.data(), static_cast<size_t>(n));
    Peer peer;
    peer.address = AddressText(from, &peer.port);
    peer.datagram = true;
    std::optional<std::string> reply;
    try {
      reply = handler_(record, peer);
    } catch (...) {
      spdlog::error("nfsd.call peer={}:{}: the handler failed", peer.address, peer.port);
    }
    if (!reply || reply->empty()) return;  // nothing to answer (or no call)
    if (reply->size() > kMaxDatagramBytes) {
      spdlog::warn("nfsd.udp_reply_too_large peer={}:{} bytes={}", peer.address, peer.port,
                   reply->size());
      return;
    }
    for (int waited = 0;;) {
      if (::sendto(datagram_->fd, reply->data(), reply->size(), MSG_NOSIGNAL,
                   reinterpret_cast<sockaddr*>(&from), flen) >= 0) {
        return;
      }
      const int e = errno;
      if (e == EINTR) continue;
      if ((e == EAGAIN || e == EWOULDBLOCK) && waited < kDatagramSendWaitMs) {
        pollfd pfd{datagram_->fd, POLLOUT, 0};
        ::poll(&pfd, 1, 100);
        waited += 100;
        continue;
      }
      spdlog::debug("nfsd.udp_send peer={}:{}: {}", peer.address, peer.port, std::strerror(e));
      return;
    }
  }

  struct Queued {
    std::shared_ptr<Connection> connection;
    std::string record;
  };

  RpcServerOptions options_;
  RpcHandler handler_;
  int epoll_ = -1;
  std::atomic<bool> stopping_{false};
  std::unique_ptr<OwnedSource> listener_;
  std::unique_ptr<OwnedSource> datagram_;
  std::unique_ptr<OwnedSource> queue_;  // eventfd (semaphore): one count per queued call
  std::unique_ptr<OwnedSource> stop_;   // eventfd, level-triggered: every thread ends
  uint16_t port_ = 0;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  // Every connection with a registration or a call running.
  std::unordered_map<Connection*, std::shared_ptr<Connection>> connections_;  // GUARDED_BY(mu_)
  std::mutex queue_mu_;
  std::list<Queued> queued_;  // GUARDED_BY(queue_mu_)
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
