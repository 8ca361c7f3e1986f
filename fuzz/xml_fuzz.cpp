// S3's XML documents (errors, listings, multipart answers) through XmlDocument: never a crash or unbounded depth;
// and xml_escape's promise: printable ASCII text with tabs, CR and LF, escaped into an element, parses back to
// exactly that text (a key that comes back changed names another object in a batch delete).
#include <string>

#include "fuzz/fuzz_check.hpp"
#include "s3/xml_document.hpp"

namespace {

using ringfetch::s3::XmlDocument;
using ringfetch::s3::XmlElement;

size_t depth(const XmlElement& element) {
  size_t deepest = 0;
  for (const auto& child : element.children) deepest = std::max(deepest, depth(*child));
  return deepest + 1;
}

bool escapable(const std::string& text) {
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (!(byte >= 0x20 && byte < 0x7f) && c != '\t' && c != '\n' && c != '\r') return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  XmlDocument doc;
  if (XmlDocument::parse(text, &doc).ok()) {
    RINGFETCH_FUZZ_CHECK(doc.root() != nullptr, "parsed without a root");
    RINGFETCH_FUZZ_CHECK(depth(*doc.root()) <= XmlDocument::kMaxDepth, "deeper than the limit");
    (void)doc.root()->child_text("Code");
    (void)doc.root()->children_named("Contents");
  }
  if (escapable(text)) {
    XmlDocument round;
    const auto parsed = XmlDocument::parse("<Key>" + ringfetch::s3::xml_escape(text) + "</Key>", &round);
    RINGFETCH_FUZZ_CHECK(parsed.ok(), "escaped text does not parse");
    RINGFETCH_FUZZ_CHECK(round.root()->text == text, "escaped text parses back to other text");
  }
  return 0;
}
