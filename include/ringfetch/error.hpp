// ringfetch::Error: the one exception type that crosses the public API. Inside the engine errors travel as
// values (ringfetch::Status); they become an Error only where a synchronous public call returns.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace ringfetch {

enum class ErrorKind {
  kInvalidArgument,  // bad URL, bad range, overlapping destinations, unknown option value
  kIo,               // a local read/open failed (errno in the message)
  kNetwork,          // connect/reset/closed connection, DNS
  kTimeout,          // connect, first-byte or idle timeout after the retry budget
  kHttpStatus,       // unexpected HTTP status; http_status() holds it
  kS3,               // S3 error document; s3_code() holds <Code>
  kIntegrity,        // truncated body, wrong Content-Range, object changed mid-read
  kUnsupported,      // the kernel or the access pattern does not support what was asked
  kCancelled,        // the engine shut down (or the batch was dropped) with the operation in flight
  kResourceExhausted,  // the memory limit is reached and every byte of it is held by views the caller keeps
};

// Human-readable name of a kind ("invalid argument", "timeout", ...).
std::string_view to_string(ErrorKind kind) noexcept;

// A failed operation: kind, a message that names object, range and cause, and protocol details where known.
class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message, int http_status = 0, std::string s3_code = {},
        std::string request_id = {})
      : std::runtime_error(message), kind_(kind), http_status_(http_status), s3_code_(std::move(s3_code)),
        request_id_(std::move(request_id)) {}

  ErrorKind kind() const noexcept { return kind_; }
  int http_status() const noexcept { return http_status_; }     // 0 when no HTTP answer is involved
  const std::string& s3_code() const noexcept { return s3_code_; }  // S3's <Code>, empty otherwise
  const std::string& request_id() const noexcept { return request_id_; }  // S3's request id, when known

 private:
  ErrorKind kind_;
  int http_status_;
  std::string s3_code_;
  std::string request_id_;
};

// Error as a value, for completions and the engine's internals. ok() when kind is absent.
class Status {
 public:
  Status() = default;
  Status(ErrorKind kind, std::string message, int http_status = 0, std::string s3_code = {},
         std::string request_id = {})
      : ok_(false), kind_(kind), message_(std::move(message)), http_status_(http_status),
        s3_code_(std::move(s3_code)), request_id_(std::move(request_id)) {}

  bool ok() const noexcept { return ok_; }
  ErrorKind kind() const noexcept { return kind_; }
  const std::string& message() const noexcept { return message_; }
  int http_status() const noexcept { return http_status_; }
  const std::string& s3_code() const noexcept { return s3_code_; }
  const std::string& request_id() const noexcept { return request_id_; }

  // Throws Error when not ok.
  void check() const {
    if (!ok_) throw to_error();
  }
  Error to_error() const { return Error(kind_, message_, http_status_, s3_code_, request_id_); }

 private:
  bool ok_ = true;
  ErrorKind kind_ = ErrorKind::kInvalidArgument;
  std::string message_;
  int http_status_ = 0;
  std::string s3_code_;
  std::string request_id_;
};

}  // namespace ringfetch
