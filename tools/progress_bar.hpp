// ProgressBar: a one-line "bytes done / total, GB/s" bar on stderr for loads that take a while. It stays silent
// unless stderr is a terminal and the load has run for kShowAfter, redraws at most every kRedrawInterval (the
// consumer loop calls update() per item, which may be thousands of times a second), and erases itself when done
// so that the table printed afterwards starts on a clean line.
#pragma once

#include <chrono>
#include <cstdint>

namespace ringfetch::cli {

class ProgressBar {
 public:
  static constexpr std::chrono::milliseconds kShowAfter{1000};
  static constexpr std::chrono::milliseconds kRedrawInterval{100};

  explicit ProgressBar(uint64_t total_bytes);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // Reports that `done_bytes` of the total are in; cheap when no redraw is due.
  void update(uint64_t done_bytes);
  // Erases the bar (if it was ever drawn); called by the destructor too.
  void clear();

 private:
  using Clock = std::chrono::steady_clock;
  void draw(uint64_t done_bytes, Clock::time_point now);

  uint64_t total_bytes_;
  bool enabled_;
  bool drawn_ = false;
  Clock::time_point start_;
  Clock::time_point last_draw_;
};

}  // namespace ringfetch::cli
