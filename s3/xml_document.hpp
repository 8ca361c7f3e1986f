// XmlDocument: S3's small XML answers (errors, listings, multipart results) parsed with expat into a tree, with
// bounds on size and depth. S3 documents are namespaced; element names are kept without the namespace.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ringfetch/error.hpp"

namespace ringfetch::s3 {

struct XmlElement {
  std::string name;  // local name, namespace stripped
  std::string text;  // concatenated character data directly inside this element
  std::vector<std::unique_ptr<XmlElement>> children;

  // First child called `name`, or nullptr.
  const XmlElement* child(std::string_view name) const;
  // Text of the first child called `name`, or "" when absent.
  std::string child_text(std::string_view name) const;
  // All children called `name`, in document order.
  std::vector<const XmlElement*> children_named(std::string_view name) const;
};

class XmlDocument {
 public:
  static constexpr size_t kMaxDocumentBytes = 16 << 20;
  static constexpr size_t kMaxDepth = 32;

  // Parses `text`. Errors (kIntegrity) say where the document is malformed.
  static Status parse(std::string_view text, XmlDocument* out);
  const XmlElement* root() const noexcept { return root_.get(); }

 private:
  std::unique_ptr<XmlElement> root_;
};

// Escapes &, <, >, " and ' for element text, and CR as &#13; (a literal CR would be read back as LF).
std::string xml_escape(std::string_view text);

}  // namespace ringfetch::s3
