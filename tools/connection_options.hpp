// How a command reaches a store, spelled as awscli spells it: --endpoint-url (or --endpoint), --region,
// --profile, --no-verify-ssl and --ca-bundle. Every command that talks to a store (load, cat, get, put, ls, rm)
// accepts them; they fill StoreOptions.s3 and StoreOptions.http, and whatever they leave empty the library
// resolves from the usual AWS environment variables and files. The TLS flags apply to https:// roots too.
#pragma once

#include <initializer_list>
#include <vector>

#include "command_line.hpp"
#include "ringfetch/ringfetch.hpp"
#include "ringfetch/s3/s3_options.hpp"

namespace ringfetch::cli {

// The options block of a command's --help, for the flags below.
extern const char kConnectionHelp[];

// `own` followed by the connection flags, for CommandLine.
std::vector<OptionSpec> with_connection_options(std::initializer_list<OptionSpec> own);

// StoreOptions with the given connection flags applied (everything else at the library's defaults).
StoreOptions connection_options(const CommandLine& line);

}  // namespace ringfetch::cli
