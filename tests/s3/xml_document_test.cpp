// XmlDocument and xml_escape: text escaped for a request body must come back unchanged from an XML parser, since
// S3 reads the keys of a batch delete that way; a key that changes on the way names another object.
#include "s3/xml_document.hpp"

#include <gtest/gtest.h>

#include <string>

namespace ringfetch::s3 {
namespace {

std::string round_trip(const std::string& text) {
  XmlDocument doc;
  const Status parsed = XmlDocument::parse("<Key>" + xml_escape(text) + "</Key>", &doc);
  EXPECT_TRUE(parsed.ok()) << parsed.message();
  return parsed.ok() ? doc.root()->text : std::string();
}

TEST(XmlEscape, MarkupCharactersAreEscaped) {
  EXPECT_EQ(xml_escape("a&b<c>d\"e'f"), "a&amp;b&lt;c&gt;d&quot;e&apos;f");
  EXPECT_EQ(xml_escape("plain/key.bin"), "plain/key.bin");
}

TEST(XmlEscape, CarriageReturnIsACharacterReferenceSoParsersKeepIt) {
  EXPECT_EQ(xml_escape("a\rb"), "a&#13;b");
  // Unescaped, XML end-of-line handling turns "\r" and "\r\n" into "\n": a different key.
  XmlDocument doc;
  ASSERT_TRUE(XmlDocument::parse("<Key>a\rb</Key>", &doc).ok());
  EXPECT_EQ(doc.root()->text, "a\nb");
  for (const std::string key : {"a\rb", "a\r\nb", "\r", "x\r\r\ny", "tab\there & <there>\n"}) {
    EXPECT_EQ(round_trip(key), key);
  }
}

}  // namespace
}  // namespace ringfetch::s3
