// `vigil monitor`, `vigil trace` and `vigil protect`: out-of-process vm_event monitors
// (toolstack/api_monitor.h) printing events as JSON lines; registered by vigil_main.cpp.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <string>

namespace vigil::cli {

// Adds the subcommands to `app`. After parsing, the returned function runs the one chosen and
// gives its exit status, or nullopt when none of them was chosen. `socket` is read then.
std::function<std::optional<int>()> add_monitor_commands(CLI::App& app, const std::string& socket);

}  // namespace vigil::cli
