// Tests of the `ringfetch` command-line program, run as a separate process (RINGFETCH_CLI_PATH) with its stdout,
// stderr and exit status captured: the demo end to end, `load --json` counts against a plan whose distinct bytes
// are known, `cat` output against the file, and the usage (exit 2) and runtime (exit 1) errors with messages
// that name the problem. The program is run through servers/run_cli.hpp.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "servers/run_cli.hpp"

namespace ringfetch {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::CliResult;
using testing::describe;
using testing::failed_with;
using testing::line_count;
using testing::run_cli;

using testing::kExitRuntimeError;
using testing::kExitUsage;
constexpr uint64_t kBlobBytes = (3 << 20) + 12345;  // not a multiple of any block size

// A fresh directory under $TMPDIR (or /tmp), removed with its contents at the end of the test.
class ScratchDir {
 public:
  ScratchDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/ringfetch-cli-test-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp: " + std::string(strerror(errno)));
    path_ = fs::canonical(pattern);
  }
  ~ScratchDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};


std::string random_bytes(uint64_t size, uint64_t seed) {
  std::mt19937_64 generator(seed);
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(generator());
  return bytes;
}

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

struct Span {
  uint64_t offset;
  uint64_t length;
};

// Size of the union of the spans: what the engine reports as bytes_requested.
uint64_t distinct_bytes(std::vector<Span> spans) {
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.offset < b.offset; });
  uint64_t total = 0;
  uint64_t covered_to = 0;
  for (const Span& s : spans) {
    const uint64_t start = std::max(s.offset, covered_to);
    const uint64_t end = s.offset + s.length;
    if (end > start) total += end - start;
    covered_to = std::max(covered_to, end);
  }
  return total;
}

// A store root with one object, "data/blob", of kBlobBytes random bytes.
class CliStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    blob_ = random_bytes(kBlobBytes, 7);
    write_text(dir_.path() / "data" / "blob", blob_);
  }
  std::string root() const { return "file://" + dir_.path().string(); }
  std::string blob_url() const { return root() + "/data/blob"; }
  fs::path write_plan(const std::string& name, const json& plan) {
    const fs::path path = dir_.path() / name;
    write_text(path, plan.dump());
    return path;
  }

  ScratchDir dir_;
  std::string blob_;
};

TEST(CliDemo, SmallDemoSucceedsAndPrintsOneRowPerLoad) {
  ScratchDir dir;
  const CliResult r = run_cli({"demo", "--size-mib", "64", "--dir", dir.path().string()});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  for (const char* column : {"items", "bytes", "requests", "over-fetch", "GB/s", "CPU s/GB", "user copies"}) {
    EXPECT_NE(r.out.find(column), std::string::npos) << "no column '" << column << "'\n" << describe(r);
  }
  EXPECT_NE(r.out.find("\npartial ("), std::string::npos) << describe(r);
  EXPECT_NE(r.out.find("\nfull "), std::string::npos) << describe(r);
  EXPECT_NE(r.out.find("page cache: warm"), std::string::npos) << describe(r);
  EXPECT_NE(r.out.find("verified"), std::string::npos) << describe(r);
  EXPECT_TRUE(fs::is_empty(dir.path())) << "the demo left its dataset behind\n" << describe(r);
}

TEST(CliDemo, JsonReportsBothLoadsAndKeepsTheDatasetWhenAsked) {
  ScratchDir dir;
  const CliResult r = run_cli({"demo", "--size-mib", "16", "--dir", dir.path().string(), "--json", "--keep"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const json report = json::parse(r.out);
  EXPECT_TRUE(report.at("verified").get<bool>());
  ASSERT_EQ(report.at("loads").size(), 2u);
  const json& partial = report.at("loads")[0];
  const json& full = report.at("loads")[1];
  EXPECT_EQ(full.at("items").get<uint64_t>(), report.at("dataset").at("items").get<uint64_t>());
  EXPECT_LT(partial.at("items").get<uint64_t>(), full.at("items").get<uint64_t>());
  EXPECT_GE(full.at("bytes_fetched").get<uint64_t>(), full.at("bytes_requested").get<uint64_t>());
  EXPECT_EQ(full.at("bytes_copied_user").get<uint64_t>(), 0u);
  const fs::path kept = report.at("dataset").at("path").get<std::string>();
  EXPECT_TRUE(fs::exists(kept));
  EXPECT_EQ(fs::file_size(kept), report.at("dataset").at("file_bytes").get<uint64_t>());
}

TEST_F(CliStoreTest, LoadJsonCountsItemsAndDistinctBytes) {
  // Neighbours, a gap, an overlap, a duplicate, a zero-length item, and the last byte of the object.
  const std::vector<Span> spans = {{0, 4096},       {4096, 100000}, {300000, 65536}, {330000, 50000},
                                   {300000, 65536}, {1 << 20, 0},   {2 << 20, 777},  {kBlobBytes - 1, 1}};
  json items = json::array();
  uint64_t non_empty = 0;
  for (const Span& s : spans) {
    items.push_back({{"key", "data/blob"}, {"offset", s.offset}, {"length", s.length}});
    non_empty += s.length > 0 ? 1 : 0;
  }
  const fs::path plan = write_plan("plan.json", {{"items", items}});
  const CliResult r = run_cli({"load", root(), "--plan", plan.string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  ASSERT_EQ(line_count(r.out), 1u) << "--json must print one object\n" << describe(r);
  const json report = json::parse(r.out);
  EXPECT_EQ(report.at("items").get<uint64_t>(), non_empty);
  EXPECT_EQ(report.at("bytes_requested").get<uint64_t>(), distinct_bytes(spans));
  EXPECT_GE(report.at("bytes_fetched").get<uint64_t>(), report.at("bytes_requested").get<uint64_t>());
  EXPECT_EQ(report.at("bytes_copied_user").get<uint64_t>(), 0u);
  EXPECT_GE(report.at("requests").get<uint64_t>(), 1u);
  EXPECT_GT(report.at("seconds").get<double>(), 0.0);
  EXPECT_GE(report.at("gbps").get<double>(), 0.0);
  EXPECT_GE(report.at("cpu_seconds").get<double>(), 0.0);
  const std::string backend = report.at("backend").get<std::string>();
  EXPECT_TRUE(backend == "io_uring" || backend == "epoll") << backend;
}

TEST_F(CliStoreTest, LoadPrintsATableRowAndHonoursTuningFlags) {
  const fs::path plan = write_plan("whole.json", {{"items", {{{"key", "data/blob"}, {"offset", 0}, {"length", kBlobBytes}}}}});
  const CliResult r = run_cli({"load", root(), "--plan", plan.string(), "--threads", "2", "--arena-mib", "8",
                               "--part-size", "1M", "--max-gap", "0"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("over-fetch"), std::string::npos) << describe(r);
  EXPECT_NE(r.out.find("whole.json"), std::string::npos) << describe(r);

  const CliResult json_run = run_cli({"load", root(), "--plan", plan.string(), "--part-size", "1M", "--json"});
  ASSERT_EQ(json_run.exit_code, 0) << describe(json_run);
  // 1 MiB parts: the planner cuts the object into ceil(size / 1 MiB) requests.
  EXPECT_EQ(json::parse(json_run.out).at("requests").get<uint64_t>(), (kBlobBytes + (1 << 20) - 1) >> 20);
}

TEST_F(CliStoreTest, PlanDashIsReadFromStdin) {
  const fs::path plan = write_plan("stdin.json", {{"items", {{{"key", "data/blob"}, {"offset", 5}, {"length", 100}}}}});
  const CliResult r = testing::run_cli_with_stdin({"load", root(), "--plan", "-", "--json"}, plan.string());
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(json::parse(r.out).at("bytes_requested").get<uint64_t>(), 100u);

  const fs::path bad = dir_.path() / "bad.json";
  write_text(bad, "{\"items\": [");
  EXPECT_TRUE(failed_with(testing::run_cli_with_stdin({"load", root(), "--plan", "-"}, bad.string()),
                          kExitRuntimeError, "plan file '-': not valid JSON"));
}

TEST(CliUsage, VersionNamesTheProgramAndItsVersion) {
  for (const char* word : {"--version", "version"}) {
    const CliResult r = run_cli({word});
    EXPECT_EQ(r.exit_code, 0) << describe(r);
    EXPECT_EQ(r.out.rfind("ringfetch 0.", 0), 0u) << describe(r);
    EXPECT_EQ(line_count(r.out), 1u) << describe(r);
  }
}

TEST_F(CliStoreTest, AnItemLargerThanMemoryIsRefusedWithAdvice) {
  // 10 GB (the size users tried) and 1 PiB: refused before any object is opened, with the CLI's advice rather than
  // the library's option names.
  for (const uint64_t length : {uint64_t{10} << 30, uint64_t{1} << 50}) {
    const fs::path plan =
        write_plan("huge.json", {{"items", {{{"key", "data/blob"}, {"offset", 0}, {"length", length}}}}});
    const CliResult r = run_cli({"load", root(), "--plan", plan.string()});
    EXPECT_TRUE(failed_with(r, kExitRuntimeError, "split it into smaller items"));
    EXPECT_NE(r.err.find("'data/blob'"), std::string::npos) << describe(r);
    EXPECT_EQ(r.err.find("arena_bytes"), std::string::npos) << "the library's option named\n" << describe(r);
  }
}

TEST_F(CliStoreTest, ATinyLoadPrintsNoPerGigabyteFigures) {
  const fs::path plan = write_plan("tiny.json", {{"items", {{{"key", "data/blob"}, {"offset", 0}, {"length", 10}}}}});
  const CliResult r = run_cli({"load", root(), "--plan", plan.string()});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  // The row: label, items, bytes, requests, over-fetch, GB/s, CPU s/GB, user copies. Start-up cost over 10 bytes
  // printed six-digit CPU seconds per GB; the table shows "-" there instead.
  const size_t row = r.out.find("tiny.json");
  ASSERT_NE(row, std::string::npos) << describe(r);
  std::istringstream fields(r.out.substr(row, r.out.find('\n', row) - row));
  std::vector<std::string> columns;
  for (std::string field; fields >> field;) columns.push_back(field);
  ASSERT_GE(columns.size(), 9u) << describe(r);
  EXPECT_EQ(columns[columns.size() - 4], "-") << describe(r);  // GB/s ("10 B" is two words)
  EXPECT_EQ(columns[columns.size() - 3], "-") << describe(r);  // CPU s/GB
}

TEST_F(CliStoreTest, CatRangeWritesExactlyThoseBytes) {
  const CliResult r = run_cli({"cat", blob_url(), "--range", "1000-1999"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(r.out, blob_.substr(1000, 1000));

  const CliResult big = run_cli({"cat", blob_url(), "--range", "12345-" + std::to_string(kBlobBytes - 2)});
  ASSERT_EQ(big.exit_code, 0) << big.err;
  EXPECT_TRUE(big.out == blob_.substr(12345, kBlobBytes - 1 - 12345)) << "a multi-MiB range differs";

  const CliResult open_ended = run_cli({"cat", blob_url(), "--range", std::to_string(kBlobBytes - 10) + "-"});
  ASSERT_EQ(open_ended.exit_code, 0) << describe(open_ended);
  EXPECT_EQ(open_ended.out, blob_.substr(kBlobBytes - 10));

  const CliResult clamped = run_cli({"cat", blob_url(), "--range", std::to_string(kBlobBytes - 3) + "-99999999999"});
  ASSERT_EQ(clamped.exit_code, 0) << describe(clamped);
  EXPECT_EQ(clamped.out, blob_.substr(kBlobBytes - 3));
}

TEST_F(CliStoreTest, CatWithoutRangeStreamsTheWholeObject) {
  const CliResult r = run_cli({"cat", blob_url()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.out == blob_) << "got " << r.out.size() << " bytes, expected " << blob_.size();
}

TEST_F(CliStoreTest, MissingPlanFileIsARuntimeErrorNamingTheFile) {
  const std::string missing = (dir_.path() / "no-such-plan.json").string();
  const CliResult r = run_cli({"load", root(), "--plan", missing});
  EXPECT_EQ(r.exit_code, kExitRuntimeError) << describe(r);
  EXPECT_EQ(line_count(r.err), 1u) << describe(r);
  EXPECT_NE(r.err.find("ringfetch: cannot open plan file"), std::string::npos) << describe(r);
  EXPECT_NE(r.err.find(missing), std::string::npos) << describe(r);
  EXPECT_NE(r.err.find("No such file"), std::string::npos) << describe(r);
}

TEST_F(CliStoreTest, MalformedPlansAreRejectedWithTheReason) {
  struct Case {
    const char* text;
    const char* expected;
  };
  const Case cases[] = {
      {R"({"items":[{"key":"data/blob","offset":0,)", "not valid JSON"},
      {R"([1,2])", "\"items\" array"},
      {R"({"items":{}})", "\"items\" is not an array"},
      {R"({"items":[{"key":"data/blob","offset":0}]})", "item 0 has no \"length\""},
      {R"({"items":[{"offset":0,"length":1}]})", "item 0 has no \"key\""},
      {R"({"items":[{"key":"data/blob","offset":0,"length":1},{"key":"data/blob","offset":-5,"length":1}]})",
       "item 1 field \"offset\" is negative"},
      {R"({"items":[{"key":"data/blob","offset":"0","length":1}]})", "field \"offset\" is not a number"},
      {R"({"items":[{"key":"data/blob","offset":0,"length":2.5}]})", "field \"length\" must be an integer"},
      {R"({"items":[{"key":7,"offset":0,"length":1}]})", "field \"key\" is not a string"},
      // Too large for a double: the JSON library's out_of_range, which escaped with its own text before.
      {R"({"items":[{"key":"data/blob","offset":1e808,"length":1}]})", "a number is out of range"},
  };
  for (const Case& c : cases) {
    const fs::path plan = dir_.path() / "bad.json";
    write_text(plan, c.text);
    const CliResult r = run_cli({"load", root(), "--plan", plan.string()});
    EXPECT_EQ(r.exit_code, kExitRuntimeError) << c.text << "\n" << describe(r);
    EXPECT_EQ(line_count(r.err), 1u) << c.text << "\n" << describe(r);
    EXPECT_NE(r.err.find(c.expected), std::string::npos) << c.text << "\n" << describe(r);
    EXPECT_NE(r.err.find(plan.string()), std::string::npos) << "message should name the plan file\n" << describe(r);
  }
}

TEST_F(CliStoreTest, PlanItemsPastTheObjectOrMissingObjectsFail) {
  const fs::path past = write_plan("past.json", {{"items", {{{"key", "data/blob"}, {"offset", kBlobBytes}, {"length", 1}}}}});
  const CliResult r = run_cli({"load", root(), "--plan", past.string()});
  EXPECT_EQ(r.exit_code, kExitRuntimeError) << describe(r);
  EXPECT_NE(r.err.find("past the object's end"), std::string::npos) << describe(r);

  const fs::path absent = write_plan("absent.json", {{"items", {{{"key", "data/nope"}, {"offset", 0}, {"length", 1}}}}});
  const CliResult missing = run_cli({"load", root(), "--plan", absent.string()});
  EXPECT_EQ(missing.exit_code, kExitRuntimeError) << describe(missing);
  EXPECT_NE(missing.err.find("data/nope"), std::string::npos) << describe(missing);
}

TEST_F(CliStoreTest, BadRangesAreUsageErrors) {
  for (const char* range : {"5-2", "7", "a-9", "-", "1-2-3"}) {
    const CliResult r = run_cli({"cat", blob_url(), "--range", range});
    EXPECT_EQ(r.exit_code, kExitUsage) << range << "\n" << describe(r);
    EXPECT_EQ(line_count(r.err), 1u) << describe(r);
    EXPECT_NE(r.err.find(std::string("--range ") + range), std::string::npos) << describe(r);
    EXPECT_TRUE(r.out.empty()) << describe(r);
  }
  const CliResult past_end = run_cli({"cat", blob_url(), "--range", std::to_string(kBlobBytes) + "-" +
                                                                        std::to_string(kBlobBytes + 5)});
  EXPECT_EQ(past_end.exit_code, kExitRuntimeError) << describe(past_end);
  EXPECT_NE(past_end.err.find("range starts at byte"), std::string::npos) << describe(past_end);
}

TEST_F(CliStoreTest, BadUrlsAreUsageErrorsNamingTheUrl) {
  const CliResult scheme = run_cli({"cat", "gopher://host/blob"});
  EXPECT_EQ(scheme.exit_code, kExitUsage) << describe(scheme);
  EXPECT_NE(scheme.err.find("gopher"), std::string::npos) << describe(scheme);

  const CliResult no_scheme = run_cli({"cat", (dir_.path() / "data" / "blob").string()});
  EXPECT_EQ(no_scheme.exit_code, kExitUsage) << describe(no_scheme);
  EXPECT_NE(no_scheme.err.find("bad object URL"), std::string::npos) << describe(no_scheme);

  const CliResult no_key = run_cli({"cat", root() + "/data/"});
  EXPECT_EQ(no_key.exit_code, kExitUsage) << describe(no_key);
  EXPECT_NE(no_key.err.find("names no object"), std::string::npos) << describe(no_key);

  const CliResult bad_port = run_cli({"cat", "http://127.0.0.1:99999/blob"});
  EXPECT_EQ(bad_port.exit_code, kExitUsage) << describe(bad_port);
  EXPECT_NE(bad_port.err.find("bad port"), std::string::npos) << describe(bad_port);

  // A well-formed URL naming something absent is a failure of the work, not of the command line.
  const CliResult missing_root = run_cli({"cat", "file:///no/such/dir/blob"});
  EXPECT_EQ(missing_root.exit_code, kExitRuntimeError) << describe(missing_root);
  EXPECT_NE(missing_root.err.find("/no/such/dir"), std::string::npos) << describe(missing_root);

  const fs::path plan = write_plan("one.json", {{"items", {{{"key", "data/blob"}, {"offset", 0}, {"length", 1}}}}});
  const CliResult bad_root = run_cli({"load", "not-a-url", "--plan", plan.string()});
  EXPECT_EQ(bad_root.exit_code, kExitUsage) << describe(bad_root);
  EXPECT_NE(bad_root.err.find("not-a-url"), std::string::npos) << describe(bad_root);
}

TEST(CliUsage, UnknownCommandsFlagsAndMissingArgumentsExitTwoWithOneLine) {
  struct Case {
    std::vector<std::string> args;
    const char* expected;
  };
  const Case cases[] = {
      {{"frobnicate"}, "unknown command 'frobnicate'"},
      {{}, "missing command"},
      {{"load"}, "missing ROOT"},
      {{"load", "file:///tmp"}, "missing --plan"},
      {{"load", "file:///tmp", "--plan"}, "'--plan' needs a value"},
      {{"load", "file:///tmp", "--plan", "p.json", "--threads", "0"}, "--threads 0"},
      {{"load", "file:///tmp", "--plan", "p.json", "--part-size", "12Q"}, "--part-size 12Q"},
      {{"cat"}, "missing OBJECT_URL"},
      {{"cat", "file:///tmp/a", "file:///tmp/b"}, "unexpected argument"},
      {{"cat", "file:///tmp/a", "--bogus"}, "unknown option '--bogus'"},
      {{"demo", "--size-mib", "lots"}, "--size-mib lots"},
      {{"demo", "--keep=yes"}, "takes no value"},
  };
  for (const Case& c : cases) {
    EXPECT_TRUE(failed_with(run_cli(c.args), kExitUsage, c.expected));
  }
}

TEST(CliUsage, HelpExitsZeroForTheProgramAndEachCommand) {
  const std::vector<std::vector<std::string>> invocations = {
      {"--help"}, {"demo", "--help"}, {"load", "--help"}, {"cat", "-h"}};
  for (const auto& args : invocations) {
    const CliResult r = run_cli(args);
    EXPECT_EQ(r.exit_code, 0) << describe(r);
    EXPECT_EQ(r.out.rfind("usage: ringfetch", 0), 0u) << describe(r);
    EXPECT_TRUE(r.err.empty()) << describe(r);
  }
}

}  // namespace
}  // namespace ringfetch
