// Tests for Reader, the DCP-style sequential view of one object: with ranges, reads and seeks inside the current
// range, forward across ranges, backward only within the current range, and one clear error (kUnsupported,
// "only sequential access over the given ranges is supported") for everything else; without ranges, a stream of
// the whole object that may seek anywhere.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "ringfetch/ringfetch.hpp"
#include "servers/temp_dir.hpp"

namespace ringfetch {
namespace {

using testing::pattern_slice;
using testing::TempDir;
using testing::write_pattern_file;

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kSize = 1024 * kKiB + 333;
constexpr uint64_t kSeed = 909;
constexpr char kSequentialOnly[] = "only sequential access over the given ranges is supported";

std::vector<std::byte> expected(uint64_t offset, uint64_t length) { return pattern_slice(offset, length, kSeed); }

std::vector<std::byte> bytes_of(const ItemView& view) { return {view.bytes().begin(), view.bytes().end()}; }

// Checks that `body` throws Error(kUnsupported) with the sequential-access message.
template <typename Body>
void expect_sequential_only(Body&& body) {
  try {
    body();
    ADD_FAILURE() << "no Error thrown";
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kUnsupported) << error.what();
    EXPECT_NE(std::string(error.what()).find(kSequentialOnly), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("obj.bin"), std::string::npos) << error.what();
  }
}

class ReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write_pattern_file(dir_ / "obj.bin", kSize, kSeed);
    write_pattern_file(dir_ / "empty.bin", 0, kSeed);
  }
  static EngineOptions engine_options() {
    EngineOptions options;
    options.arena_bytes = 16 << 20;
    return options;
  }
  Store open_store(std::optional<uint64_t> part_size = std::nullopt) {
    StoreOptions options;
    options.part_size = part_size;
    return Store::open("file://" + dir_.path().string(), engine_, options);
  }

  TempDir dir_{"ringfetch-reader-"};
  Engine engine_{engine_options()};
};

// Ranges used by most tests: [1000, 4000), [10000, 15000), [20000, 20100).
std::vector<Range> three_ranges() { return {{10000, 5000}, {1000, 3000}, {20000, 100}}; }

TEST_F(ReaderTest, ReadsInsideARange) {
  Store store = open_store();
  Reader reader = store.reader("obj.bin", three_ranges());
  EXPECT_EQ(reader.size(), kSize);
  EXPECT_EQ(reader.tell(), 0u);
  EXPECT_EQ(reader.seek(1000), 1000u);
  ItemView view = reader.read(500);
  EXPECT_EQ(view.offset(), 1000u);
  EXPECT_EQ(bytes_of(view), expected(1000, 500));
  EXPECT_EQ(reader.tell(), 1500u);

  // A read never goes past the end of the range holding the position.
  view = reader.read(100000);
  EXPECT_EQ(bytes_of(view), expected(1500, 2500));
  EXPECT_EQ(reader.tell(), 4000u);

  // Views stay valid after the reader moves on.
  ItemView kept = view;
  EXPECT_EQ(reader.seek(10000), 10000u);
  view = reader.read(10);
  EXPECT_EQ(bytes_of(view), expected(10000, 10));
  EXPECT_EQ(bytes_of(kept), expected(1500, 2500));
  EXPECT_EQ(reader.read(0).size(), 0u);
}

TEST_F(ReaderTest, ReadintoAndSeekWithinTheCurrentRange) {
  Store store = open_store();
  Reader reader = store.reader("obj.bin", three_ranges());
  reader.seek(1000);
  std::vector<std::byte> buf(700);
  EXPECT_EQ(reader.readinto(buf), 700u);
  EXPECT_EQ(buf, expected(1000, 700));
  EXPECT_EQ(reader.tell(), 1700u);

  // Backward within the current range is allowed.
  EXPECT_EQ(reader.seek(1200), 1200u);
  EXPECT_EQ(bytes_of(reader.read(50)), expected(1200, 50));
  EXPECT_EQ(reader.seek(-250, SEEK_CUR), 1000u);
  EXPECT_EQ(bytes_of(reader.read(10)), expected(1000, 10));
  EXPECT_EQ(reader.seek(2000, SEEK_CUR), 3010u);
  EXPECT_EQ(bytes_of(reader.read(5)), expected(3010, 5));

  // readinto stops at the end of the last range before a gap.
  reader.seek(3900);
  EXPECT_EQ(reader.readinto(buf), 100u);
  EXPECT_EQ(std::vector<std::byte>(buf.begin(), buf.begin() + 100), expected(3900, 100));
}

TEST_F(ReaderTest, ForwardAcrossRanges) {
  Store store = open_store();
  Reader reader = store.reader("obj.bin", three_ranges());
  // Skip the first range entirely.
  reader.seek(12000);
  EXPECT_EQ(bytes_of(reader.read(3000)), expected(12000, 3000));
  reader.seek(20050);
  EXPECT_EQ(bytes_of(reader.read(1000)), expected(20050, 50));
  EXPECT_EQ(reader.tell(), 20100u);
  // Back within the last range.
  reader.seek(20000);
  EXPECT_EQ(bytes_of(reader.read(100)), expected(20000, 100));
}

TEST_F(ReaderTest, BackwardToAnEarlierRangeIsUnsupported) {
  Store store = open_store();
  Reader reader = store.reader("obj.bin", three_ranges());
  reader.seek(10000);
  EXPECT_EQ(reader.read(10).size(), 10u);
  expect_sequential_only([&] { reader.seek(3000); });
  expect_sequential_only([&] { reader.seek(9999); });
  expect_sequential_only([&] { reader.seek(-11, SEEK_CUR); });
  // The failed seeks did not move the reader.
  EXPECT_EQ(reader.tell(), 10010u);
  EXPECT_EQ(bytes_of(reader.read(10)), expected(10010, 10));
}

TEST_F(ReaderTest, AccessOutsideTheRangesIsUnsupported) {
  Store store = open_store();
  Reader reader = store.reader("obj.bin", three_ranges());
  // Before the first range.
  expect_sequential_only([&] { reader.read(10); });
  // In a gap between ranges.
  reader.seek(5000);
  expect_sequential_only([&] { reader.read(10); });
  std::vector<std::byte> buf(10);
  expect_sequential_only([&] { reader.readinto(buf); });
  // Past the last range.
  reader.seek(30000);
  expect_sequential_only([&] { reader.read(10); });
  // The whole object, and SEEK_END.
  reader.seek(1000);
  expect_sequential_only([&] { reader.read(Reader::kAll); });
  expect_sequential_only([&] { reader.seek(0, SEEK_END); });
  expect_sequential_only([&] { reader.seek(-10, SEEK_END); });
  // None of this broke the reader.
  EXPECT_EQ(bytes_of(reader.read(10)), expected(1000, 10));
}

TEST_F(ReaderTest, BadArguments) {
  Store store = open_store();
  Reader reader = store.reader("obj.bin", three_ranges());
  EXPECT_THROW(reader.seek(-1), Error);
  EXPECT_THROW(reader.seek(0, 12345), Error);
  // Positions that do not fit in 64 bits are refused, not wrapped (or undefined behaviour).
  reader.seek(1000);
  EXPECT_THROW(reader.seek(std::numeric_limits<int64_t>::max(), SEEK_CUR), Error);
  EXPECT_THROW(reader.seek(std::numeric_limits<int64_t>::min(), SEEK_CUR), Error);
  EXPECT_EQ(reader.tell(), 1000u);
  Reader whole = store.reader("obj.bin");
  EXPECT_THROW(whole.seek(std::numeric_limits<int64_t>::max(), SEEK_END), Error);
  try {
    store.reader("obj.bin", {{kSize - 10, 11}});
    ADD_FAILURE() << "no Error for a range past the end";
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(std::string(error.what()).find("past the object's end"), std::string::npos) << error.what();
  }
  // A range whose end overflows is an error even when another range covers its start.
  try {
    store.reader("obj.bin", {{0, 100}, {50, std::numeric_limits<uint64_t>::max()}});
    ADD_FAILURE() << "no Error for an overflowing range";
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kInvalidArgument) << error.what();
  }
  EXPECT_THROW(store.reader("missing.bin", {{0, 1}}), Error);
}

TEST_F(ReaderTest, ReadintoAcrossAdjacentRanges) {
  Store store = open_store();
  // Touching and overlapping ranges, given out of order, read as one.
  Reader reader = store.reader("obj.bin", {{100, 100}, {0, 100}, {150, 150}, {5000, 10}});
  std::vector<std::byte> buf(1000);
  EXPECT_EQ(reader.readinto(buf), 300u);
  EXPECT_EQ(std::vector<std::byte>(buf.begin(), buf.begin() + 300), expected(0, 300));
  EXPECT_EQ(reader.tell(), 300u);
  reader.seek(5000);
  EXPECT_EQ(reader.readinto(buf), 10u);
  EXPECT_EQ(std::vector<std::byte>(buf.begin(), buf.begin() + 10), expected(5000, 10));
  EXPECT_EQ(reader.tell(), 5010u);
}

TEST_F(ReaderTest, ManyRangesInOrderAcrossASmallArena) {
  Store store = open_store(64 * kKiB);
  std::vector<Range> ranges;
  for (uint64_t off = 0; off + 9000 <= kSize; off += 10000) ranges.push_back({off, 9000});
  Reader reader = store.reader("obj.bin", ranges);
  std::vector<std::byte> buf(9000);
  for (const Range& r : ranges) {
    reader.seek(static_cast<int64_t>(r.offset));
    ASSERT_EQ(reader.readinto(buf), 9000u);
    ASSERT_EQ(buf, expected(r.offset, 9000)) << r.offset;
  }
}

TEST_F(ReaderTest, NoRangesStreamsTheWholeObject) {
  Store store = open_store(64 * kKiB);  // several pieces
  Reader reader = store.reader("obj.bin");
  EXPECT_EQ(reader.size(), kSize);
  std::vector<std::byte> all;
  for (;;) {
    ItemView view = reader.read(Reader::kAll);
    if (view.size() == 0) break;
    EXPECT_EQ(view.offset(), all.size());
    all.insert(all.end(), view.bytes().begin(), view.bytes().end());
  }
  EXPECT_EQ(all.size(), kSize);
  EXPECT_EQ(all, expected(0, kSize));
  EXPECT_EQ(reader.tell(), kSize);
  EXPECT_EQ(reader.read(10).size(), 0u);
}

TEST_F(ReaderTest, NoRangesSeeksAnywhere) {
  Store store = open_store(64 * kKiB);
  Reader reader = store.reader("obj.bin");
  std::vector<std::byte> buf(200 * kKiB);
  // readinto spans pieces.
  EXPECT_EQ(reader.readinto(buf), buf.size());
  EXPECT_EQ(buf, expected(0, buf.size()));
  // Backward past the current piece: the stream restarts there.
  EXPECT_EQ(reader.seek(10), 10u);
  EXPECT_EQ(bytes_of(reader.read(100)), expected(10, 100));
  // Forward far, then back again.
  reader.seek(900 * kKiB);
  EXPECT_EQ(bytes_of(reader.read(1000)), expected(900 * kKiB, 1000));
  reader.seek(70 * kKiB);
  EXPECT_EQ(bytes_of(reader.read(1000)), expected(70 * kKiB, 1000));
  // SEEK_END and SEEK_CUR.
  EXPECT_EQ(reader.seek(-100, SEEK_END), kSize - 100);
  std::vector<std::byte> tail(1000);
  EXPECT_EQ(reader.readinto(tail), 100u);
  EXPECT_EQ(std::vector<std::byte>(tail.begin(), tail.begin() + 100), expected(kSize - 100, 100));
  EXPECT_EQ(reader.seek(-5000, SEEK_CUR), kSize - 5000);
  std::vector<std::byte> last(5000);  // crosses the last piece boundary (a read() would stop there)
  EXPECT_EQ(reader.readinto(last), 5000u);
  EXPECT_EQ(last, expected(kSize - 5000, 5000));
  // Past the end reads nothing.
  EXPECT_EQ(reader.seek(10, SEEK_END), kSize + 10);
  EXPECT_EQ(reader.read(10).size(), 0u);
  EXPECT_EQ(reader.readinto(tail), 0u);
}

TEST_F(ReaderTest, EmptyObject) {
  Store store = open_store();
  Reader reader = store.reader("empty.bin");
  EXPECT_EQ(reader.size(), 0u);
  EXPECT_EQ(reader.read(10).size(), 0u);
  std::vector<std::byte> buf(10);
  EXPECT_EQ(reader.readinto(buf), 0u);
  EXPECT_EQ(reader.seek(0, SEEK_END), 0u);
}

// A range whose fetch failed (here: the file shrank under the reader) reports the error, and reading it again
// fetches it again: the reader never hands out another range's bytes in its place.
TEST_F(ReaderTest, AFailedRangeCanBeReadAgain) {
  constexpr uint64_t kMiB = 1024 * kKiB;
  const auto path = dir_ / "shrinking.bin";
  write_pattern_file(path, 32 * kMiB, 77);
  EngineOptions small = engine_options();
  small.arena_bytes = 8 * kMiB;  // one 6 MiB range at a time
  Engine engine(small);
  Store store = Store::open("file://" + dir_.path().string(), engine);
  std::vector<Range> ranges;
  for (uint64_t i = 0; i < 4; ++i) ranges.push_back({i * 8 * kMiB, 6 * kMiB});
  Reader reader = store.reader("shrinking.bin", ranges);
  std::vector<std::byte> buf(100);
  ASSERT_EQ(reader.readinto(buf), 100u);
  EXPECT_EQ(buf, pattern_slice(0, 100, 77));
  ASSERT_EQ(truncate(path.c_str(), 10 * kMiB), 0);  // range 1 has not been read yet: range 0 holds the arena

  reader.seek(8 * kMiB + 10);
  try {
    reader.read(100);
    ADD_FAILURE() << "no Error for a truncated range";
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kIntegrity) << error.what();
  }
  EXPECT_EQ(reader.tell(), 8 * kMiB + 10);

  write_pattern_file(path, 32 * kMiB, 77);  // restored
  EXPECT_EQ(bytes_of(reader.read(100)), pattern_slice(8 * kMiB + 10, 100, 77));
  reader.seek(24 * kMiB);
  EXPECT_EQ(bytes_of(reader.read(100)), pattern_slice(24 * kMiB, 100, 77));
}

TEST_F(ReaderTest, ReadersMoveAndDropMidStream) {
  Store store = open_store(64 * kKiB);
  {
    Reader reader = store.reader("obj.bin");
    EXPECT_EQ(reader.read(10).size(), 10u);
    Reader moved = std::move(reader);
    EXPECT_EQ(moved.tell(), 10u);
    EXPECT_EQ(bytes_of(moved.read(10)), expected(10, 10));
  }  // dropped with read-ahead in flight
  Reader ranged = store.reader("obj.bin", three_ranges());
  ranged.seek(1000);
  ItemView view = ranged.read(10);
  ranged = store.reader("obj.bin", {{0, 10}});
  EXPECT_EQ(bytes_of(ranged.read(10)), expected(0, 10));
  EXPECT_EQ(bytes_of(view), expected(1000, 10));
}

}  // namespace
}  // namespace ringfetch
