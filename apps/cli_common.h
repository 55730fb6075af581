// What the `vigil` subcommand files share.
#pragma once

#include <cstdio>
#include <optional>
#include <string>

#include "toolstack/api.h"

namespace vigil::cli {

// Sends one request to vigild; on failure prints "vigil: <the reason>" to stderr and
// returns nullopt, else the answer.
inline std::optional<toolstack::Json> call(const std::string& socket, const toolstack::Json& request) {
  auto r = toolstack::api_request(socket, request);
  if (!r) {
    std::fprintf(stderr, "vigil: %s\n", r.error().message.c_str());
    return std::nullopt;
  }
  return *r;
}

}  // namespace vigil::cli
