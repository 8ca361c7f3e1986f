// The `ringfetch` subcommands. Each takes the words after its name, returns the process exit status, and
// throws cli::UsageError (exit 2) for a bad invocation or ringfetch::Error (exit 1) for a failure while running.
#pragma once

#include <string_view>
#include <vector>

namespace ringfetch::cli {

using Arguments = std::vector<std::string_view>;

int run_demo(const Arguments& args);
int run_load(const Arguments& args);
// `load --safetensors OBJECT_URL`: the tensors of a safetensors file as the plan (safetensors_plan.cpp).
bool is_safetensors_load(const Arguments& args);
int run_load_safetensors(const Arguments& args);
int run_cat(const Arguments& args);
int run_get(const Arguments& args);
int run_put(const Arguments& args);
int run_ls(const Arguments& args);
int run_rm(const Arguments& args);
int run_uploads(const Arguments& args);
int run_mb(const Arguments& args);
int run_bench(const Arguments& args);

}  // namespace ringfetch::cli
