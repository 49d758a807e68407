// Child processes, temp dirs and shell commands for integration tests.
#include "integration/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace needlefs::integration {
namespace {

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

void CloseFd(int* fd) {
  if (*fd >= 0) ::close(*fd);
  *fd = -1;
}

/// Parses "IP:PORT" from the "<key>=IP:PORT" token of `line`; 0 on failure.
uint16_t PortFromToken(const std::string& line, const std::string& key) {
  size_t pos = line.find(" " + key + "=");
  if (pos == std::string::npos) return 0;
  pos += key.size() + 2;
  std::string token = line.substr(pos, line.find(' ', pos) - pos);
  size_t colon = token.rfind(':');
  if (colon == std::string::npos) return 0;
  std::string digits = token.substr(colon + 1);
  if (digits.empty() || digits.size() > 5 ||
      digits.find_first_not_of("0123456789") != std::string::npos) {
    return 0;
  }
  unsigned long port = std::stoul(digits);
  return port > 0 && port <= 65535 ? static_cast<uint16_t>(port) : 0;
}

}  // namespace

ChildProcess::ChildProcess(std::vector<std::string> argv, std::string log_dir)
    : argv_(std::move(argv)) {
  static std::atomic<int> counter{0};
  std::string base = argv_.empty() ? "child" : std::filesystem::path(argv_[0]).filename().string();
  log_path_ = log_dir + "/" + base + "." + std::to_string(counter.fetch_add(1)) + ".log";
}

ChildProcess::~ChildProcess() {
  if (running()) {
    Kill(SIGKILL);
    Wait();
  }
  CloseFd(&stdout_fd_);
}

bool ChildProcess::Start(std::string* error) {
  auto fail = [error](const std::string& msg) {
    if (error) *error = msg;
    return false;
  };
  if (pid_ > 0) return fail("already started");
  if (argv_.empty()) return fail("empty argv");
  // Everything the child needs is prepared before fork(): after it only
  // async-signal-safe calls are allowed (the test process has threads).
  std::vector<char*> cargv;
  for (auto& a : argv_) cargv.push_back(a.data());
  cargv.push_back(nullptr);

  int log_fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return fail(Errno("open " + log_path_));
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int out[2], exec_err[2];
  if (null_fd < 0 || ::pipe2(out, O_CLOEXEC) != 0) {
    std::string msg = Errno("pipe");
    ::close(log_fd);
    if (null_fd >= 0) ::close(null_fd);
    return fail(msg);
  }
  if (::pipe2(exec_err, O_CLOEXEC) != 0) {
    std::string msg = Errno("pipe");
    for (int fd : {log_fd, null_fd, out[0], out[1]}) ::close(fd);
    return fail(msg);
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    std::string msg = Errno("fork");
    for (int fd : {log_fd, null_fd, out[0], out[1], exec_err[0], exec_err[1]}) ::close(fd);
    return fail(msg);
  }
  if (pid == 0) {
    // Child: die with the parent; the check closes the race with its exit.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    // Drop inherited descriptors (client sockets etc.), keeping exec_err[1]
    // (close-on-exec) to report a failed exec.
    const int keep = exec_err[1];
    if (keep > 3) ::close_range(3, static_cast<unsigned>(keep - 1), 0);
    ::close_range(static_cast<unsigned>(keep + 1), ~0u, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::execv(cargv[0], cargv.data());
    int e = errno;
    ssize_t ignored = ::write(keep, &e, sizeof(e));
    (void)ignored;
    ::_exit(127);
  }
  // Parent.
  for (int fd : {log_fd, null_fd, out[1], exec_err[1]}) ::close(fd);
  pid_ = pid;
  stdout_fd_ = out[0];
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_err[0], &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  ::close(exec_err[0]);
  if (n > 0) {  // exec failed; EOF (n == 0) means it succeeded
    Wait();
    return fail("exec " + argv_[0] + ": " + std::strerror(child_errno));
  }
  return true;
}

std::optional<std::string> ChildProcess::WaitForLine(const std::string& prefix, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    size_t nl;
    while ((nl = buffer_.find('\n')) != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.rfind(prefix, 0) == 0) return line;
    }
    if (stdout_fd_ < 0) return std::nullopt;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) return std::nullopt;
    pollfd p{stdout_fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return std::nullopt;
    char buf[4096];
    ssize_t n = ::read(stdout_fd_, buf, sizeof(buf));
    if (n > 0) {
      buffer_.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
      CloseFd(&stdout_fd_);  // EOF: a last line without '\n' still counts
      if (!buffer_.empty()) buffer_ += '\n';
    }
  }
}

bool ChildProcess::Kill(int sig) { return running() && ::kill(pid_, sig) == 0; }

int ChildProcess::DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

int ChildProcess::Wait() {
  if (pid_ <= 0 || reaped_) return exit_status_;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, 0);
  } while (r < 0 && errno == EINTR);
  reaped_ = true;
  exit_status_ = r == pid_ ? DecodeWaitStatus(status) : -1;
  return exit_status_;
}

std::optional<int> ChildProcess::WaitFor(int timeout_ms) {
  if (pid_ <= 0 || reaped_) return exit_status_;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      exit_status_ = DecodeWaitStatus(status);
      return exit_status_;
    }
    if (r < 0 && errno != EINTR) {
      reaped_ = true;  // not our child any more; nothing left to wait for
      return exit_status_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::string ChildProcess::LogTail(size_t max_bytes) const {
  std::ifstream in(log_path_, std::ios::binary);
  if (!in) return "";
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > max_bytes ? s.substr(s.size() - max_bytes) : s;
}

int RunCommand(const std::string& shell_cmd, std::string* out) {
  if (out) out->clear();
  std::fflush(nullptr);  // the shell must not inherit unflushed stdio buffers
  FILE* f = ::popen(shell_cmd.c_str(), "r");
  if (f == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) {
    if (out) out->append(buf, n);
  }
  int status = ::pclose(f);
  if (status < 0) return -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

int Sh(const std::string& cmd, std::string* out) { return RunCommand("(" + cmd + ") 2>&1", out); }

std::string ShellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') {
      q += "'\\''";
    } else {
      q += c;
    }
  }
  return q + "'";
}

uint16_t PickFreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

std::string NeedlefsBinary() {
  if (const char* env = std::getenv("NEEDLEFS_BINARY"); env != nullptr && *env != '\0') {
    return env;
  }
#ifdef NEEDLEFS_BINARY
  return NEEDLEFS_BINARY;
#else
  return "needlefs";
#endif
}

std::optional<DaemonProcess> StartDaemon(const std::vector<std::string>& args,
                                         const std::string& ready_prefix,
                                         const std::string& log_dir, std::string* error,
                                         int timeout_ms) {
  std::vector<std::string> argv{NeedlefsBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  DaemonProcess d;
  d.process = std::make_unique<ChildProcess>(argv, log_dir);
  std::string err;
  if (!d.process->Start(&err)) {
    if (error) *error = err;
    return std::nullopt;
  }
  auto line = d.process->WaitForLine(ready_prefix, timeout_ms);
  if (!line) {
    d.process->Kill(SIGKILL);
    const int code = d.process->Wait();
    if (error) {
      std::string what = code == 128 + SIGKILL
                             ? "no ready line within " + std::to_string(timeout_ms) + " ms"
                             : "exited with " + std::to_string(code) + " before its ready line";
      *error = args.front() + ": " + what + "; stderr tail:\n" + d.process->LogTail();
    }
    return std::nullopt;
  }
  d.http_port = PortFromToken(*line, "http");
  d.grpc_port = PortFromToken(*line, "grpc");
  return d;
}

std::optional<VolumeServerProcess> StartVolumeServer(const std::string& data_dir,
                                                     const std::string& log_dir,
                                                     const std::vector<std::string>& extra_args,
                                                     std::string* error, int timeout_ms) {
  std::vector<std::string> args = {"volume", "-dir",        data_dir, "-port",
                                   "0",      "-grpcPort",   "0",      "-allocate",
                                   "2",      "-durability", "group"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  auto server = StartDaemon(args, "needlefs volume ready ", log_dir, error, timeout_ms);
  if (server && (server->http_port == 0 || server->grpc_port == 0)) {
    server->process->Kill(SIGKILL);
    server->process->Wait();
    if (error) *error = "bad ready line; stderr tail:\n" + server->process->LogTail();
    return std::nullopt;
  }
  return server;
}

}  // namespace needlefs::integration
