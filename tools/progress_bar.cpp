// ProgressBar implementation: draws with '\r' and erases with "\r\033[K" (clear to end of line), which every
// terminal ringfetch is likely to meet understands; nothing is written when stderr is not a terminal.
#include "progress_bar.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "byte_units.hpp"

namespace ringfetch::cli {
namespace {

constexpr int kBarWidth = 30;

}  // namespace

ProgressBar::ProgressBar(uint64_t total_bytes)
    : total_bytes_(total_bytes), enabled_(isatty(STDERR_FILENO) == 1), start_(Clock::now()), last_draw_(start_) {}

ProgressBar::~ProgressBar() { clear(); }

void ProgressBar::update(uint64_t done_bytes) {
  if (!enabled_) return;
  const Clock::time_point now = Clock::now();
  if (now - start_ < kShowAfter || (drawn_ && now - last_draw_ < kRedrawInterval)) return;
  draw(done_bytes, now);
}

void ProgressBar::draw(uint64_t done_bytes, Clock::time_point now) {
  const double fraction =
      total_bytes_ == 0 ? 1.0 : std::min(1.0, static_cast<double>(done_bytes) / static_cast<double>(total_bytes_));
  const double seconds = std::chrono::duration<double>(now - start_).count();
  const double gbps = seconds > 0 ? static_cast<double>(done_bytes) / seconds / kBytesPerGB : 0.0;
  const int filled = static_cast<int>(fraction * kBarWidth);
  const std::string bar = std::string(static_cast<size_t>(filled), '#') + std::string(kBarWidth - filled, '.');
  std::fprintf(stderr, "\r[%s] %s / %s  %.2f GB/s", bar.c_str(), human_bytes(done_bytes).c_str(),
               human_bytes(total_bytes_).c_str(), gbps);
  std::fflush(stderr);
  drawn_ = true;
  last_draw_ = now;
}

void ProgressBar::clear() {
  if (!drawn_) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
  drawn_ = false;
}

}  // namespace ringfetch::cli
