#include "common/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <utility>

namespace needlefs {

File::~File() {
  if (fd_ >= 0) ::close(fd_);
}

File::File(File&& other) noexcept : fd_(other.fd_), path_(std::move(other.path_)) {
  other.fd_ = -1;
}

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

StatusOr<File> File::Open(const std::string& path, int flags, int mode) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT) return Status(StatusCode::kNotFound, "no such file: " + path, e);
    return Status::IOError("open " + path, e);
  }
  return File(fd, path);
}

StatusOr<size_t> File::ReadSomeAt(uint64_t offset, void* buf, size_t len) const {
  size_t done = 0;
  auto* p = static_cast<char*>(buf);
  while (done < len) {
    ssize_t n = ::pread(fd_, p + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IOError("pread " + path_, errno);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

Status File::ReadAt(uint64_t offset, void* buf, size_t len) const {
  auto n = ReadSomeAt(offset, buf, len);
  if (!n.ok()) return n.status();
  if (*n != len) {
    return Status::OutOfRange("short read of " + path_ + " at " + std::to_string(offset) +
                              ": wanted " + std::to_string(len) + " bytes, got " +
                              std::to_string(*n));
  }
  return Status::OK();
}

Status File::WriteAt(uint64_t offset, const void* buf, size_t len) const {
  size_t done = 0;
  auto* p = static_cast<const char*>(buf);
  while (done < len) {
    ssize_t n = ::pwrite(fd_, p + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IOError("pwrite " + path_, errno);
    }
    done += static_cast<size_t>(n);
  }
  return Status::OK();
}

Status File::DataSync() const {
  if (::fdatasync(fd_) != 0) return Status::IOError("fdatasync " + path_, errno);
  return Status::OK();
}

Status File::Sync() const {
  if (::fsync(fd_) != 0) return Status::IOError("fsync " + path_, errno);
  return Status::OK();
}

Status File::Truncate(uint64_t size) const {
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
    return Status::IOError("ftruncate " + path_, errno);
  }
  return Status::OK();
}

StatusOr<uint64_t> File::Size() const {
  struct stat st;
  if (::fstat(fd_, &st) != 0) return Status::IOError("fstat " + path_, errno);
  return static_cast<uint64_t>(st.st_size);
}

Status File::Close() {
  if (fd_ < 0) return Status::OK();
  int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0) return Status::IOError("close " + path_, errno);
  return Status::OK();
}

Status SyncDir(const std::string& dir) {
  auto f = File::Open(dir, O_RDONLY | O_DIRECTORY);
  if (!f.ok()) return f.status();
  return f->Sync();
}

StatusOr<std::string> ReadFileToString(const std::string& path) {
  NEEDLEFS_ASSIGN_OR_RETURN(File f, File::Open(path, O_RDONLY));
  NEEDLEFS_ASSIGN_OR_RETURN(uint64_t size, f.Size());
  std::string out(size, '\0');
  NEEDLEFS_ASSIGN_OR_RETURN(size_t n, f.ReadSomeAt(0, out.data(), size));
  out.resize(n);
  return out;
}

Status WriteFileAtomic(const std::string& path, std::string_view data) {
  std::string tmp = path + ".tmp";
  {
    NEEDLEFS_ASSIGN_OR_RETURN(File f, File::Open(tmp, O_WRONLY | O_CREAT | O_TRUNC));
    NEEDLEFS_RETURN_IF_ERROR(f.WriteAt(0, data.data(), data.size()));
    NEEDLEFS_RETURN_IF_ERROR(f.Sync());
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Status::IOError("rename " + tmp, errno);
  std::string dir = std::filesystem::path(path).parent_path().string();
  return SyncDir(dir.empty() ? "." : dir);
}

bool PathExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace needlefs
