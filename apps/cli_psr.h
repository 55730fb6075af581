// `vigil psr-*` (xl's layout) and `vigil noisy` (toolstack/api_psr.h), registered on the CLI app
// by vigil_main.cpp.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <string>

namespace vigil::cli {

// Adds the subcommands to `app`. After parsing, the returned function runs the one chosen and
// gives its exit status, or nullopt when none of them was chosen. `socket` is read then.
std::function<std::optional<int>()> add_psr_commands(CLI::App& app, const std::string& socket);

}  // namespace vigil::cli
