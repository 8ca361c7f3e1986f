// The file:// and direct:// sources: local files read on the engine's loops (direct:// with O_DIRECT, 4 KiB aligned).
#pragma once

#include <memory>

#include "engine/source.hpp"
#include "engine/url.hpp"

namespace ringfetch::engine {

// A source for a file:// or direct:// root (root.scheme says which). kInvalidArgument when the root is not a
// directory.
Status make_file_source(const Url& root, std::unique_ptr<Source>* out);

}  // namespace ringfetch::engine
