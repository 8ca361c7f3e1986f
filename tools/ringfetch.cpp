// The `ringfetch` command: dispatches to a subcommand (demo, load, cat, get, put, ls, rm, bench) and turns what escapes
// it into the program's contract with shells and scripts: usage mistakes -> one line on stderr and exit 2,
// runtime failures -> "ringfetch: <message>" and exit 1, success -> 0. The subcommands use only the public API.
#include <cstdio>
#include <exception>
#include <string_view>

#include "command_line.hpp"
#include "commands.hpp"
#include "ringfetch/error.hpp"

namespace ringfetch::cli {
namespace {

constexpr int kExitRuntimeError = 1;
constexpr int kExitUsage = 2;

constexpr char kProgramHelp[] =
    "usage: ringfetch <command> [options]\n"
    "\n"
    "Fetch byte ranges from file://, direct://, http(s):// and s3:// stores through io_uring.\n"
    "\n"
    "commands:\n"
    "  demo   generate a checkpoint-like file locally, load it through file:// and verify every byte\n"
    "  load   load the items of a JSON plan file from a store root and report speed and counters\n"
    "  cat    write an object (or a byte range of it) to stdout\n"
    "  get    download an object into a file with parallel ranged reads\n"
    "  put    upload a file to S3 (multipart with parallel parts for large files)\n"
    "  ls     list the objects under an s3:// prefix with their sizes\n"
    "  rm     delete S3 objects\n"
    "  mb     create an S3 bucket\n"
    "  uploads  list (or --abort) the multipart uploads in progress under an s3:// prefix\n"
    "  bench  measure reads (and S3 writes) against a store root with objects it makes and removes\n"
    "\n"
    "Run 'ringfetch <command> --help' for a command's options.\n"
    "Exit status: 0 on success, 1 when the work failed, 2 when the command line (a flag or a URL) is wrong,\n"
    "128+N when ended by signal N (130 for Ctrl-C). 'ringfetch --version' prints the version.\n";

// A URL that cannot be right (the library's "bad URL", the commands' "bad object URL") is a mistake in the
// command line, as curl and awscli treat it; a well-formed URL naming something absent is a runtime failure.
bool is_bad_url(const Error& e) {
  const std::string_view message = e.what();
  return e.kind() == ErrorKind::kInvalidArgument && (message.starts_with("bad URL ") ||
                                                     message.starts_with("bad object URL "));
}

int dispatch(const Arguments& words) {
  if (words.empty()) throw UsageError("ringfetch: missing command (see 'ringfetch --help')");
  const std::string_view command = words[0];
  const Arguments rest(words.begin() + 1, words.end());
  if (command == "--version" || command == "version") {
    std::printf("ringfetch %s\n", RINGFETCH_VERSION);
    return 0;
  }
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(kProgramHelp, stdout);
    return 0;
  }
  if (command == "demo") return run_demo(rest);
  if (command == "load") return run_load(rest);
  if (command == "cat") return run_cat(rest);
  if (command == "get") return run_get(rest);
  if (command == "put") return run_put(rest);
  if (command == "ls") return run_ls(rest);
  if (command == "rm") return run_rm(rest);
  if (command == "uploads") return run_uploads(rest);
  if (command == "mb") return run_mb(rest);
  if (command == "bench") return run_bench(rest);
  throw UsageError("ringfetch: unknown command '" + std::string(command) +
                   "' (expected demo, load, cat, get, put, ls, rm, mb, uploads or bench; see 'ringfetch --help')");
}

int run(const Arguments& words) {
  try {
    return dispatch(words);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return kExitUsage;
  } catch (const Error& e) {
    std::fprintf(stderr, "ringfetch: %s\n", e.what());
    return is_bad_url(e) ? kExitUsage : kExitRuntimeError;
  } catch (const std::exception& e) {  // ringfetch::Error and anything unexpected (bad_alloc, ...)
    std::fprintf(stderr, "ringfetch: %s\n", e.what());
    return kExitRuntimeError;
  }
}

}  // namespace
}  // namespace ringfetch::cli

int main(int argc, char** argv) {
  return ringfetch::cli::run(ringfetch::cli::Arguments(argv + 1, argv + argc));
}
