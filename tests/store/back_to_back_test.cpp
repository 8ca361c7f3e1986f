// A DCP-like file: ~700 MiB of items from 8 B to 64 MiB sitting back to back. Read through a 64 MiB arena by the
// sequential reader and by `ringfetch load direct://`, every byte checked, and peak memory well under the file size:
// touching ranges stay separate items, each with its own memory, and read-ahead is bounded.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "ringfetch/ringfetch.hpp"
#include "servers/run_cli.hpp"
#include "servers/temp_dir.hpp"

namespace ringfetch {
namespace {

using testing::fill_pattern;
using testing::run_cli;
using testing::TempDir;
using testing::write_pattern_file;

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kSeed = 31;
constexpr uint64_t kFileBytes = 700 * kMiB;
constexpr uint64_t kPeakLimit = 200 * kMiB;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;  // shadow memory (and ASan's quarantine) inflate the resident set
#else
constexpr bool kSanitized = false;
#endif

std::vector<Range> back_to_back_items() {
  const uint64_t sizes[] = {8, 495, 4096, 70'001, 1 * kMiB + 7, 3 * kMiB + 1, 8 * kMiB + 3, 64 * kMiB};
  std::mt19937_64 rng(7);
  std::vector<Range> items;
  uint64_t offset = 0;
  while (offset < kFileBytes) {
    // Mostly small items, a few huge ones: what a checkpoint of many tensors looks like.
    const unsigned pick = rng() % 100;
    const uint64_t size = sizes[pick < 40 ? pick % 3 : pick < 80 ? 3 + pick % 2 : pick < 97 ? 5 + pick % 2 : 7];
    const uint64_t length = std::min(size, kFileBytes - offset);
    items.push_back({offset, length});
    offset += length;
  }
  return items;
}

// Resets the kernel's peak-resident figure for this process, so a later VmHWM covers only what follows.
void reset_peak_rss() { std::ofstream("/proc/self/clear_refs") << "5"; }

uint64_t peak_rss() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

class BackToBackTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    write_pattern_file(dir_->path() / "__0_0.distcp", kFileBytes, kSeed);
  }
  static void TearDownTestSuite() { delete dir_; }
  static inline TempDir* dir_ = nullptr;
};

TEST_F(BackToBackTest, ReaderWalksEveryItemThroughA64MiBArena) {
  const std::vector<Range> items = back_to_back_items();
  ASSERT_GT(items.size(), 100u);
  EngineOptions options;
  options.arena_bytes = 64 * kMiB;
  Engine engine(options);
  Store store = Store::open("file://" + dir_->path().string(), engine);
  reset_peak_rss();
  Reader reader = store.reader("__0_0.distcp", items);
  std::vector<std::byte> expected(kMiB);
  uint64_t checked = 0;
  for (const Range& item : items) {
    ASSERT_EQ(reader.tell(), item.offset);
    ItemView view = reader.read(item.length);
    ASSERT_EQ(view.size(), item.length) << "a read inside one item is never short";
    for (uint64_t done = 0; done < item.length; done += expected.size()) {
      const uint64_t n = std::min<uint64_t>(expected.size(), item.length - done);
      fill_pattern(std::span(expected.data(), n), item.offset + done, kSeed);
      ASSERT_EQ(std::memcmp(view.bytes().data() + done, expected.data(), n), 0) << "item at " << item.offset;
    }
    checked += view.size();
  }
  EXPECT_EQ(checked, kFileBytes);
  EXPECT_EQ(reader.read(1).size(), 0u);
  const Stats stats = engine.stats();
  EXPECT_EQ(stats.items, items.size());
  EXPECT_LT(stats.arena_peak_bytes, 160 * kMiB);
  if (!kSanitized) {
    EXPECT_LT(peak_rss(), kPeakLimit) << "peak resident set while reading";
  }
}

TEST_F(BackToBackTest, LoadDirectReadsEveryItemThroughA64MiBArena) {
  const std::vector<Range> items = back_to_back_items();
  const std::string plan_path = (dir_->path() / "plan.json").string();
  {
    std::ofstream plan(plan_path);
    plan << "{\"items\":[";
    for (size_t i = 0; i < items.size(); ++i) {
      plan << (i ? "," : "") << "{\"key\":\"__0_0.distcp\",\"offset\":" << items[i].offset
           << ",\"length\":" << items[i].length << "}";
    }
    plan << "]}";
  }
  const testing::CliResult result =
      run_cli({"load", "direct://" + dir_->path().string(), "--plan", plan_path, "--arena-mib", "64", "--json"});
  ASSERT_EQ(result.exit_code, 0) << testing::describe(result);
  EXPECT_NE(result.out.find("\"items\":" + std::to_string(items.size())), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("\"bytes_requested\":" + std::to_string(kFileBytes)), std::string::npos) << result.out;
  if (!kSanitized) {
    EXPECT_LT(result.max_rss_kib * 1024, kPeakLimit) << "peak resident set of the load";
  }
}

}  // namespace
}  // namespace ringfetch
