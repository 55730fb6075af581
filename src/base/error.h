// Host-side failures on control paths: one clear sentence for the user.
// Guest outcomes (traps, faults) are never Errors; they are architectural state of the hart.
#pragma once

#include <expected>
#include <string>
#include <utility>

#include <fmt/format.h>

namespace vigil {

struct Error {
  std::string message;
};

template <typename T>
using Result = std::expected<T, Error>;

template <typename... Args>
[[nodiscard]] std::unexpected<Error> make_error(fmt::format_string<Args...> fmt, Args&&... args) {
  return std::unexpected<Error>(Error{fmt::format(fmt, std::forward<Args>(args)...)});
}

}  // namespace vigil
