#include "cli_snapshot.h"
#include "cli_common.h"

#include <cstdio>
#include <filesystem>
#include <memory>

#include "toolstack/api.h"

namespace vigil::cli {
namespace {

using toolstack::Json;

struct Options {
  std::string domain, file, config;
  bool keep = false, pause = false, restore_paused = false;
};

// vigild runs elsewhere in the filesystem: paths go to it absolute.
std::string absolute(const std::string& path) {
  std::error_code ec;
  const auto abs = std::filesystem::absolute(path, ec);
  return ec ? path : abs.lexically_normal().string();
}

}  // namespace

std::function<std::optional<int>()> add_snapshot_commands(CLI::App& app, const std::string& socket) {
  auto o = std::make_shared<Options>();
  CLI::App* save = app.add_subcommand("save", "Save a domain's state to a file (then destroy it, as xl save)");
  save->add_flag("-c", o->keep, "leave the domain running after the save");
  save->add_flag("-p", o->pause, "leave the domain paused after the save");
  save->add_option("domain", o->domain, "domain name or id")->required();
  save->add_option("file", o->file, "snapshot file to create (must not exist)")->required();
  CLI::App* restore = app.add_subcommand("restore", "Create a domain from a saved snapshot");
  restore->add_flag("-p", o->restore_paused, "leave the restored domain paused");
  restore->add_option("file", o->file, "snapshot file")->required();
  restore->add_option("config", o->config, "xl.cfg-style config to use instead of the saved one");

  return [o, save, restore, &socket]() -> std::optional<int> {
    if (*save) {
      if (o->keep && o->pause) {
        std::fprintf(stderr, "vigil: save takes -c or -p, not both\n");
        return 1;
      }
      const char* after = o->keep ? "keep" : o->pause ? "pause" : "destroy";
      auto r = call(socket, Json{{"op", "save"}, {"domain", o->domain}, {"file", absolute(o->file)}, {"after", after}});
      if (!r) return 1;
      std::printf("saved domain %s to %s (%llu bytes, paused %.1f ms)\n", o->domain.c_str(), o->file.c_str(),
                  static_cast<unsigned long long>(r->value("bytes", uint64_t{0})), r->value("pause_ms", 0.0));
      return 0;
    }
    if (*restore) {
      Json req{{"op", "restore"}, {"file", absolute(o->file)}, {"paused", o->restore_paused}};
      if (!o->config.empty()) req["config"] = absolute(o->config);
      auto r = call(socket, req);
      if (!r) return 1;
      std::printf("restored domain %u from %s (%.1f ms)\n", r->value("id", 0u), o->file.c_str(),
                  r->value("read_ms", 0.0) + r->value("parse_ms", 0.0) + r->value("restore_ms", 0.0));
      return 0;
    }
    return std::nullopt;
  };
}

}  // namespace vigil::cli
