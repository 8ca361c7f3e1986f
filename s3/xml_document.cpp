// XmlDocument implementation on expat (Debian libexpat1-dev): a stack of open elements built from the
// start/end/character callbacks; depth and size are bounded so a hostile answer cannot exhaust memory.
#include "s3/xml_document.hpp"

#include <expat.h>

namespace ringfetch::s3 {
namespace {

struct ParseState {
  std::vector<XmlElement*> open;
  std::unique_ptr<XmlElement> root;
  bool too_deep = false;
};

std::string_view local_name(const char* name) {
  std::string_view full(name);
  const size_t sep = full.rfind('\x1f');  // namespace separator set below
  return sep == std::string_view::npos ? full : full.substr(sep + 1);
}

void on_start(void* data, const char* name, const char**) {
  auto* state = static_cast<ParseState*>(data);
  if (state->open.size() >= XmlDocument::kMaxDepth) {
    state->too_deep = true;
    return;
  }
  auto element = std::make_unique<XmlElement>();
  element->name = std::string(local_name(name));
  XmlElement* raw = element.get();
  if (state->open.empty()) state->root = std::move(element);
  else state->open.back()->children.push_back(std::move(element));
  state->open.push_back(raw);
}

void on_end(void* data, const char*) {
  auto* state = static_cast<ParseState*>(data);
  if (state->too_deep || state->open.empty()) return;
  state->open.pop_back();
}

void on_text(void* data, const char* text, int length) {
  auto* state = static_cast<ParseState*>(data);
  if (!state->open.empty() && !state->too_deep) state->open.back()->text.append(text, static_cast<size_t>(length));
}

}  // namespace

const XmlElement* XmlElement::child(std::string_view wanted) const {
  for (const auto& c : children)
    if (c->name == wanted) return c.get();
  return nullptr;
}

std::string XmlElement::child_text(std::string_view wanted) const {
  const XmlElement* c = child(wanted);
  return c == nullptr ? std::string() : c->text;
}

std::vector<const XmlElement*> XmlElement::children_named(std::string_view wanted) const {
  std::vector<const XmlElement*> out;
  for (const auto& c : children)
    if (c->name == wanted) out.push_back(c.get());
  return out;
}

Status XmlDocument::parse(std::string_view text, XmlDocument* out) {
  if (text.size() > kMaxDocumentBytes) {
    return Status(ErrorKind::kIntegrity, "XML document of " + std::to_string(text.size()) + " bytes is too large");
  }
  XML_Parser parser = XML_ParserCreateNS(nullptr, '\x1f');
  ParseState state;
  XML_SetUserData(parser, &state);
  XML_SetElementHandler(parser, &on_start, &on_end);
  XML_SetCharacterDataHandler(parser, &on_text);
  const bool ok = XML_Parse(parser, text.data(), static_cast<int>(text.size()), 1) == XML_STATUS_OK;
  std::string error;
  if (!ok) {
    error = std::string(XML_ErrorString(XML_GetErrorCode(parser))) + " at line " +
            std::to_string(XML_GetCurrentLineNumber(parser));
  }
  XML_ParserFree(parser);
  if (!ok) return Status(ErrorKind::kIntegrity, "malformed XML: " + error);
  if (state.too_deep) return Status(ErrorKind::kIntegrity, "XML nested deeper than " + std::to_string(kMaxDepth));
  if (!state.root) return Status(ErrorKind::kIntegrity, "empty XML document");
  out->root_ = std::move(state.root);
  return {};
}

std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      // A literal CR is read back as LF (XML end-of-line handling), so a key holding one would name another key.
      case '\r': out += "&#13;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

}  // namespace ringfetch::s3
