// `vigil save` and `vigil restore` (issue 11), as xl has them; toolstack/api_snapshot.h on
// the vigild side. Registered by vigil_main.cpp.
//   vigil save [-c] [-p] DOMAIN FILE     default: the domain is destroyed once saved;
//                                        -c: it keeps running; -p: it is left paused
//   vigil restore [-p] FILE [CONFIG]     -p: the restored domain starts paused
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <string>

namespace vigil::cli {

// Adds the subcommands to `app`. After parsing, the returned function runs the one chosen and
// gives its exit status, or nullopt when neither was chosen. `socket` is read then.
std::function<std::optional<int>()> add_snapshot_commands(CLI::App& app, const std::string& socket);

}  // namespace vigil::cli
