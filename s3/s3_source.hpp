// The s3:// source: s3://bucket/prefix roots read by SigV4-signed ranged GETs over the configured endpoints.
#pragma once

#include <memory>

#include "engine/source.hpp"
#include "engine/url.hpp"
#include "ringfetch/engine.hpp"
#include "ringfetch/options.hpp"

namespace ringfetch::s3 {

// A source for an s3:// root (bucket in root.host, prefix in root.path). Errors from resolving the AWS configuration.
Status make_s3_source(const engine::Url& root, Engine::Impl& engine, const StoreOptions& options,
                      std::unique_ptr<engine::Source>* out);

}  // namespace ringfetch::s3
