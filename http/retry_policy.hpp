// RetryPolicy: the one place that decides what happens after an attempt fails — for every request of the http and
// s3 sources and of the S3 client. Every retry resumes a ranged body at the byte the failed attempt reached (the
// caller keeps that count); this class decides only whether, where and when.
//  - A failure that is not retryable (a 404, an ETag that changed, a certificate that does not verify) ends the
//    request.
//  - A keep-alive connection the server closed while it sat idle (the request was sent on a reused connection and
//    no byte of an answer came back) is retried at once on a fresh connection, once per request, at no cost.
//  - A connect that is refused or times out moves at once to another address of the host or another endpoint, if
//    one is left that has not failed (bounded by their number; no backoff, no attempt spent).
//  - Anything else retryable (a reset, a timeout, a truncated body, 5xx, 429, S3's SlowDown) waits a backoff with
//    full jitter and tries again, up to max_attempts attempts in all; endpoints that failed on the network are
//    avoided while others are left.
#pragma once

#include <cstdint>
#include <random>

#include "ringfetch/options.hpp"

namespace ringfetch::http {

// Where in an attempt the failure happened: what a retry may assume.
enum class FailureStage {
  kConnect,        // no connection was made (refused, unreachable, connect timeout, TLS handshake)
  kBeforeAnswer,   // the request went out, nothing came back
  kInAnswer,       // part of an answer arrived (head or body), then the connection failed
  kAnswer,         // a complete error answer (an HTTP status the server chose)
  kLocal,          // refused before anything was sent (a bad request, a cancel)
};

struct Failure {
  FailureStage stage = FailureStage::kLocal;
  bool retryable = false;
  bool reused_connection = false;  // the attempt ran on a kept-alive connection
  bool elsewhere = false;          // another address or endpoint that has not failed is available
};

class RetryPolicy {
 public:
  enum class Action { kFail, kNow, kElsewhereNow, kAfterBackoff };
  struct Decision {
    Action action = Action::kFail;
    uint64_t delay_ms = 0;
  };

  explicit RetryPolicy(const HttpOptions& options) : options_(&options) {}
  void reset() { attempts_ = 0; stale_retry_used_ = false; }

  Decision after(const Failure& failure);
  // Failed attempts that counted against max_attempts so far.
  unsigned failures() const noexcept { return attempts_; }

 private:
  const HttpOptions* options_;
  unsigned attempts_ = 0;  // failed attempts that counted
  bool stale_retry_used_ = false;
};

}  // namespace ringfetch::http
