// `vigil migrate`, `vigil migrate-cancel`, `vigil migrate-status` (issue 11, live migration);
// toolstack/api_migrate.h on the vigild side. Registered by vigil_main.cpp.
//   vigil migrate DOMAIN HOST[:PORT] [--downtime MS] [--bandwidth MBPS] [--timeout S]
//       waits for the migration and prints its figures; exit 0 once the destination runs it
//   vigil migrate-cancel DOMAIN        the source keeps running
//   vigil migrate-status DOMAIN        phase, round, bytes sent, dirty pages left
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <string>

namespace vigil::cli {

std::function<std::optional<int>()> add_migrate_commands(CLI::App& app, const std::string& socket);

}  // namespace vigil::cli
