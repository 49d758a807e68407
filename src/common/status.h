// needlefs::Status and needlefs::StatusOr<T>: the one error type of NeedleFS.
//
// A Status is either OK or carries a canonical code (absl/gRPC's set plus
// kCorruption), a message, and optionally a POSIX errno sub-code that the
// namespace uses (ENOTEMPTY, ENOTDIR, ...) and that front ends carry unchanged
// to NFS and FUSE. No exception crosses a module boundary: fallible calls
// return Status or StatusOr<T>.
//
// Threading: Status and StatusOr are values; const methods are safe from many
// threads, mutation needs outside synchronization.
//
// Retry guidance per code (abseil's): kUnavailable = retry the call,
// kAborted = redo the whole read-modify-write, kFailedPrecondition = wait for
// an operator fix, kResourceExhausted = disk or volume full.
#pragma once

#include <cassert>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace needlefs {

/// Canonical status codes. Values are those of absl/gRPC (persisted in logs
/// and sent over gRPC), never renumbered; kCorruption is NeedleFS's own.
enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
  kCorruption = 100,  ///< stored bytes fail a checksum or a format check
};

/// Returns the code's name, e.g. "NotFound".
std::string_view StatusCodeName(StatusCode code);

/// The result of a fallible operation. OK costs one null pointer.
class [[nodiscard]] Status {
 public:
  /// OK.
  Status() = default;
  /// A status with `code` (not kOk), message, and optional errno sub-code
  /// (0 = none).
  Status(StatusCode code, std::string_view msg, int posix_errno = 0);

  Status(const Status& other);
  Status& operator=(const Status& other);
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;

  static Status OK() { return Status(); }
  static Status InvalidArgument(std::string_view msg) {
    return {StatusCode::kInvalidArgument, msg};
  }
  static Status NotFound(std::string_view msg) { return {StatusCode::kNotFound, msg}; }
  static Status AlreadyExists(std::string_view msg) { return {StatusCode::kAlreadyExists, msg}; }
  static Status PermissionDenied(std::string_view msg) {
    return {StatusCode::kPermissionDenied, msg};
  }
  static Status ResourceExhausted(std::string_view msg) {
    return {StatusCode::kResourceExhausted, msg};
  }
  static Status FailedPrecondition(std::string_view msg) {
    return {StatusCode::kFailedPrecondition, msg};
  }
  static Status Aborted(std::string_view msg) { return {StatusCode::kAborted, msg}; }
  static Status OutOfRange(std::string_view msg) { return {StatusCode::kOutOfRange, msg}; }
  static Status Unimplemented(std::string_view msg) { return {StatusCode::kUnimplemented, msg}; }
  static Status Internal(std::string_view msg) { return {StatusCode::kInternal, msg}; }
  static Status Unavailable(std::string_view msg) { return {StatusCode::kUnavailable, msg}; }
  static Status DataLoss(std::string_view msg) { return {StatusCode::kDataLoss, msg}; }
  static Status Corruption(std::string_view msg) { return {StatusCode::kCorruption, msg}; }
  /// A POSIX error `err` (ENOENT, ENOTEMPTY, ...) with the canonical code
  /// that fits it (ENOENT -> kNotFound, EEXIST -> kAlreadyExists, EACCES and
  /// EPERM -> kPermissionDenied, ENOSPC -> kResourceExhausted, EIO ->
  /// kInternal, the rest -> kFailedPrecondition); posix_errno() returns `err`.
  static Status Posix(int err, std::string_view msg);
  /// An I/O failure from a system call: kInternal (kResourceExhausted for
  /// ENOSPC/EDQUOT) with the errno as sub-code and strerror in the message.
  static Status IOError(std::string_view context, int posix_errno);

  bool ok() const { return rep_ == nullptr; }
  StatusCode code() const { return rep_ ? rep_->code : StatusCode::kOk; }
  /// The message; empty for OK.
  std::string_view message() const { return rep_ ? std::string_view(rep_->msg) : ""; }
  /// The POSIX errno sub-code, 0 when none.
  int posix_errno() const { return rep_ ? rep_->posix_errno : 0; }

  bool IsNotFound() const { return code() == StatusCode::kNotFound; }
  bool IsCorruption() const { return code() == StatusCode::kCorruption; }
  bool IsAborted() const { return code() == StatusCode::kAborted; }

  /// "OK" or "<CodeName>: <message>".
  std::string ToString() const;

  /// Returns a copy whose message is "<prefix>: <message>"; OK stays OK.
  Status WithContext(std::string_view prefix) const;

  /// Marks a status as deliberately ignored (greppable).
  void IgnoreError() const {}

  friend bool operator==(const Status& a, const Status& b) {
    return a.code() == b.code() && a.message() == b.message();
  }

 private:
  struct Rep {
    StatusCode code;
    int posix_errno;
    std::string msg;
  };
  std::unique_ptr<Rep> rep_;
};

/// Either a value of T or a non-OK Status.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  /// REQUIRES: !status.ok().
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    assert(!status_.ok());
    if (status_.ok()) status_ = Status::Internal("StatusOr built from OK status");
  }
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }

  /// REQUIRES: ok().
  T& value() & {
    assert(ok());
    return *value_;
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace needlefs

/// Returns from the enclosing function when `expr` (a Status) is not OK.
#define NEEDLEFS_RETURN_IF_ERROR(expr)   \
  do {                                   \
    ::needlefs::Status _nfs_st = (expr); \
    if (!_nfs_st.ok()) return _nfs_st;   \
  } while (0)

#define NEEDLEFS_CONCAT_INNER(a, b) a##b
#define NEEDLEFS_CONCAT(a, b) NEEDLEFS_CONCAT_INNER(a, b)

/// `NEEDLEFS_ASSIGN_OR_RETURN(auto x, Fn());` binds the value or returns the
/// error status from the enclosing function.
#define NEEDLEFS_ASSIGN_OR_RETURN(lhs, expr)              \
  auto NEEDLEFS_CONCAT(_nfs_sor_, __LINE__) = (expr);     \
  if (!NEEDLEFS_CONCAT(_nfs_sor_, __LINE__).ok())         \
    return NEEDLEFS_CONCAT(_nfs_sor_, __LINE__).status(); \
  lhs = std::move(NEEDLEFS_CONCAT(_nfs_sor_, __LINE__)).value()
