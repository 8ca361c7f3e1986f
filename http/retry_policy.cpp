#include "http/retry_policy.hpp"

#include <algorithm>

namespace ringfetch::http {
namespace {

// Seeded once per thread: std::random_device can cost tens of microseconds per call in a VM.
std::minstd_rand& jitter() {
  thread_local std::minstd_rand generator(std::random_device{}());
  return generator;
}

}  // namespace

RetryPolicy::Decision RetryPolicy::after(const Failure& failure) {
  if (!failure.retryable) return {Action::kFail, 0};
  if (failure.stage == FailureStage::kBeforeAnswer && failure.reused_connection && !stale_retry_used_) {
    stale_retry_used_ = true;
    return {Action::kNow, 0};
  }
  if (failure.stage == FailureStage::kConnect && failure.elsewhere) return {Action::kElsewhereNow, 0};
  ++attempts_;
  if (attempts_ >= std::max(1u, options_->max_attempts)) return {Action::kFail, 0};
  const uint64_t cap = std::min<uint64_t>(options_->backoff_max_ms,
                                          uint64_t{options_->backoff_base_ms} << std::min(attempts_, 20u));
  const uint64_t delay = cap == 0 ? 0 : std::uniform_int_distribution<uint64_t>(0, cap)(jitter());
  return {Action::kAfterBackoff, delay};
}

}  // namespace ringfetch::http
