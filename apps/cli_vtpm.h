// `vigil vtpm-list [DOMAIN] [--json]`: each domain's vTPM (toolstack/api_vtpm.h), as xl vtpm-list.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <string>

namespace vigil::cli {

// Adds the subcommand to `app`; after parsing, the returned function runs it and gives its exit
// status, or nullopt when it was not chosen. `socket` is read then.
std::function<std::optional<int>()> add_vtpm_commands(CLI::App& app, const std::string& socket);

}  // namespace vigil::cli
