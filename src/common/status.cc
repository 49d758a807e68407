#include "common/status.h"

#include <cerrno>
#include <cstring>

namespace needlefs {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "OK";
    case StatusCode::kCancelled:
      return "Cancelled";
    case StatusCode::kUnknown:
      return "Unknown";
    case StatusCode::kInvalidArgument:
      return "InvalidArgument";
    case StatusCode::kDeadlineExceeded:
      return "DeadlineExceeded";
    case StatusCode::kNotFound:
      return "NotFound";
    case StatusCode::kAlreadyExists:
      return "AlreadyExists";
    case StatusCode::kPermissionDenied:
      return "PermissionDenied";
    case StatusCode::kResourceExhausted:
      return "ResourceExhausted";
    case StatusCode::kFailedPrecondition:
      return "FailedPrecondition";
    case StatusCode::kAborted:
      return "Aborted";
    case StatusCode::kOutOfRange:
      return "OutOfRange";
    case StatusCode::kUnimplemented:
      return "Unimplemented";
    case StatusCode::kInternal:
      return "Internal";
    case StatusCode::kUnavailable:
      return "Unavailable";
    case StatusCode::kDataLoss:
      return "DataLoss";
    case StatusCode::kUnauthenticated:
      return "Unauthenticated";
    case StatusCode::kCorruption:
      return "Corruption";
  }
  return "Unknown";
}

Status::Status(StatusCode code, std::string_view msg, int posix_errno) {
  if (code == StatusCode::kOk) return;
  rep_ = std::make_unique<Rep>(Rep{code, posix_errno, std::string(msg)});
}

Status::Status(const Status& other)
    : rep_(other.rep_ ? std::make_unique<Rep>(*other.rep_) : nullptr) {}

Status& Status::operator=(const Status& other) {
  if (this != &other) rep_ = other.rep_ ? std::make_unique<Rep>(*other.rep_) : nullptr;
  return *this;
}

Status Status::IOError(std::string_view context, int posix_errno) {
  std::string msg(context);
  msg += ": ";
  msg += std::strerror(posix_errno);
  StatusCode code = (posix_errno == ENOSPC || posix_errno == EDQUOT)
                        ? StatusCode::kResourceExhausted
                        : StatusCode::kInternal;
  return Status(code, msg, posix_errno);
}

Status Status::Posix(int err, std::string_view msg) {
  StatusCode code;
  switch (err) {
    case ENOENT:
      code = StatusCode::kNotFound;
      break;
    case EEXIST:
      code = StatusCode::kAlreadyExists;
      break;
    case EACCES:
    case EPERM:
      code = StatusCode::kPermissionDenied;
      break;
    case ENOSPC:
    case EDQUOT:
      code = StatusCode::kResourceExhausted;
      break;
    case EIO:
      code = StatusCode::kInternal;
      break;
    case EINVAL:
    case ENAMETOOLONG:
    case ERANGE:
    case E2BIG:
      code = StatusCode::kInvalidArgument;
      break;
    default:
      code = StatusCode::kFailedPrecondition;
      break;
  }
  std::string m(msg);
  m += " (";
  m += std::strerror(err);
  m += ")";
  return Status(code, m, err);
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s(StatusCodeName(rep_->code));
  s += ": ";
  s += rep_->msg;
  return s;
}

Status Status::WithContext(std::string_view prefix) const {
  if (ok()) return Status();
  std::string msg(prefix);
  msg += ": ";
  msg += rep_->msg;
  return Status(rep_->code, msg, rep_->posix_errno);
}

}  // namespace needlefs
