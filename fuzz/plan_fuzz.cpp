// Plan files (JSON) on hostile text: the only exception that may escape is ringfetch::Error, with the file's name
// in its message (the CLI prints it as is); an accepted plan has items with a non-empty key and no overflowing
// range.
#include <string>

#include "fuzz/fuzz_check.hpp"
#include "ringfetch/error.hpp"
#include "tools/plan_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const ringfetch::Plan plan = ringfetch::cli::parse_plan_text(text, "fuzz.json");
    for (const ringfetch::PlanItem& item : plan.items()) {
      RINGFETCH_FUZZ_CHECK(!item.object.empty(), "item with an empty key");
    }
  } catch (const ringfetch::Error& e) {
    RINGFETCH_FUZZ_CHECK(std::string(e.what()).find("fuzz.json") != std::string::npos, "message without the file");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "escaped: %s\n", e.what());
    RINGFETCH_FUZZ_CHECK(false, "an exception other than ringfetch::Error escaped");
  }
  return 0;
}
