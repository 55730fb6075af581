#include "cli_monitor.h"

#include <cstdio>
#include <memory>
#include <sstream>

#include "toolstack/monitor_client.h"

namespace vigil::cli {

namespace {

using monitor::Action;
using toolstack::Json;
using toolstack::MonitorClient;

struct Options {
  std::string domain;
  std::optional<int64_t> pid;
  uint64_t count = 0;  // stop after this many events (0: run until interrupted)
  unsigned timeout_ms = 1500;
  std::string transport = "shm";
  unsigned spin_us = 200;
  // trace
  bool syscalls = false, no_returns = false;
  std::vector<uint64_t> numbers;
  // protect
  bool kernel_text = false, allow = false;
  std::vector<std::string> ranges;
  // monitor
  std::string events;
  bool sync = false, deny = false, on_change = false, quiet = false;
  std::vector<std::string> breakpoints, csrs;
  std::vector<unsigned> single_step;
};

int fail(const std::string& message) {
  std::fprintf(stderr, "vigil: %s\n", message.c_str());
  return 1;
}

// Printed lines are flushed when no further event is already waiting (event_loop), so a
// burst of events costs one write, and a reader still sees each event without delay.
void print(const Json& j) {
  std::fputs((j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n").c_str(), stdout);
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

Json base_request(const Options& o) {
  Json req = {{"domain", o.domain}, {"timeout_ms", o.timeout_ms}, {"transport", o.transport}};
  if (o.pid) req["pid"] = *o.pid;
  return req;
}

Result<MonitorClient> open_session(const std::string& socket, const Json& req, const Options& o) {
  auto client = MonitorClient::open(socket, req);
  if (client) client->set_spin(std::chrono::microseconds(o.spin_us));
  return client;
}

// Reads events until `count` of them passed `handle` (which returns false for lines it
// does not count, like acknowledgements) or the session ends.
int event_loop(MonitorClient& client, uint64_t count, const std::function<bool(const Json&)>& handle) {
  uint64_t seen = 0;
  while (count == 0 || seen < count) {
    if (!client.has_line()) std::fflush(stdout);
    auto ev = client.next();
    if (!ev) return fail(ev.error().message);
    if (!ev->contains("seq")) continue;
    if (handle(*ev)) ++seen;
  }
  std::fflush(stdout);
  return 0;
}

// `vigil trace DOMAIN --syscalls`: every system call of the guest (or of one process) at
// entry, and with its return value when it returns to user mode.
int trace(const std::string& socket, const Options& o) {
  if (!o.syscalls) return fail("trace needs --syscalls (the only kind of trace so far)");
  Json req = base_request(o);
  req["name"] = "vigil trace";
  Json sub = {{"type", "syscall"}};
  if (!o.numbers.empty()) sub["numbers"] = o.numbers;
  req["events"] = Json::array({sub});
  if (!o.no_returns) {
    sub["type"] = "sysret";
    req["events"].push_back(sub);
  }
  auto client = open_session(socket, req, o);
  if (!client) return fail(client.error().message);
  return event_loop(*client, o.count, [](const Json& ev) {
    Json out = {{"event", ev["type"] == "sysret" ? "return" : "call"}, {"vcpu", ev["vcpu"]}};
    if (ev.contains("pid")) out["pid"] = ev["pid"];
    if (ev.contains("comm")) out["comm"] = ev["comm"];
    out["nr"] = ev["nr"];
    out["args"] = ev["args"];
    if (ev.contains("ret")) out["ret"] = ev["ret"];
    out["pc"] = ev["pc"];
    out["satp"] = ev["satp"];
    print(out);
    return true;
  });
}

// `vigil protect DOMAIN --kernel-text`: writes to kernel text and the system call table
// are denied (or let through with --allow) and reported: a rootkit detector.
int protect(const std::string& socket, const Options& o) {
  Json req = base_request(o);
  req["name"] = "vigil protect";
  req["kernel_text"] = o.kernel_text;
  req["rights"] = "r-x";
  req["protect"] = Json::array();
  for (const std::string& r : o.ranges) {
    const auto colon = r.find(':');
    if (colon == std::string::npos) return fail(fmt::format("--range takes GPA:LENGTH, not '{}'", r));
    req["protect"].push_back({{"gpa", r.substr(0, colon)}, {"length", r.substr(colon + 1)}});
  }
  if (!o.kernel_text && o.ranges.empty()) return fail("protect needs --kernel-text or --range");
  req["events"] = Json::array({{{"type", "mem"}, {"sync", true}}});
  auto client = open_session(socket, req, o);
  if (!client) return fail(client.error().message);
  std::fprintf(stderr, "vigil: protecting %zu range(s)\n", client->opened()["protected"].size());
  MonitorClient& c = *client;
  return event_loop(c, o.count, [&](const Json& ev) {
    const Action action = o.allow ? Action::kContinue : Action::kDeny;
    if (ev.value("sync", false)) {
      if (auto r = c.answer(ev["seq"].get<uint64_t>(), action); !r) return false;
    }
    Json out = ev;
    out.erase("sync");
    out["action"] = monitor::to_string(action);
    print(out);
    return true;
  });
}

// `vigil monitor DOMAIN --events LIST`: any events as JSON lines; with --sync the guest
// waits for this command's answer to each (continue, or deny with --deny).
int monitor_cmd(const std::string& socket, const Options& o) {
  Json req = base_request(o);
  req["name"] = "vigil monitor";
  req["events"] = Json::array();
  for (const std::string& type : split(o.events)) {
    if (!monitor::event_type_from(type)) {
      return fail(fmt::format(
          "unknown event '{}' (mem, csr, breakpoint, singlestep, syscall, sysret, request, trap)", type));
    }
    Json sub = {{"type", type}, {"sync", o.sync}};
    if (type == "csr") {
      if (!o.csrs.empty()) sub["numbers"] = o.csrs;
      sub["on_change"] = o.on_change;
    }
    req["events"].push_back(sub);
  }
  if (req["events"].empty()) return fail("--events needs at least one event type");
  req["breakpoints"] = Json::array();
  for (const std::string& b : o.breakpoints) {
    const bool number = b.starts_with("0x") || (!b.empty() && std::isdigit(static_cast<unsigned char>(b[0])));
    req["breakpoints"].push_back(number ? Json{{"va", b}} : Json{{"symbol", b}});
  }
  if (!o.single_step.empty()) req["singlestep"] = o.single_step;
  auto client = open_session(socket, req, o);
  if (!client) return fail(client.error().message);
  if (!o.quiet) {
    for (const Json& b : client->opened()["breakpoints"]) print({{"breakpoint", b}});
  }
  MonitorClient& c = *client;
  const Action action = o.deny ? Action::kDeny : Action::kContinue;
  return event_loop(c, o.count, [&](const Json& ev) {
    if (ev.value("sync", false)) {
      if (auto r = c.answer(ev["seq"].get<uint64_t>(), action); !r) return false;
    }
    if (!o.quiet) print(ev);
    return true;
  });
}

}  // namespace

std::function<std::optional<int>()> add_monitor_commands(CLI::App& app, const std::string& socket) {
  auto o = std::make_shared<Options>();
  auto common = [&](CLI::App* c) {
    c->add_option("domain", o->domain, "domain name or id")->required();
    c->add_option("--count", o->count, "exit after this many events");
    c->add_option("--timeout-ms", o->timeout_ms,
                  "vigild drops this monitor if it does not answer within this time")
        ->capture_default_str();
    c->add_option("--transport", o->transport,
                  "shm: synchronous events and answers through shared memory; socket: JSON lines only")
        ->check(CLI::IsMember({"shm", "socket"}))
        ->capture_default_str();
    c->add_option("--spin-us", o->spin_us, "poll for events this long before sleeping (shm)")->capture_default_str();
  };
  CLI::App* trace_cmd =
      app.add_subcommand("trace", "Trace a domain's system calls from outside (JSON lines)");
  common(trace_cmd);
  trace_cmd->add_flag("--syscalls", o->syscalls, "trace system calls (ECALL from user mode)");
  trace_cmd->add_option("--pid", o->pid, "only this process (its address space)");
  trace_cmd->add_option("--nr", o->numbers, "only these system call numbers");
  trace_cmd->add_flag("--no-returns", o->no_returns, "do not report return values");
  CLI::App* protect_cmd =
      app.add_subcommand("protect", "Write-protect guest memory in the P2m; report (and deny) writes");
  common(protect_cmd);
  protect_cmd->add_flag("--kernel-text", o->kernel_text, "kernel text (_stext.._etext) and sys_call_table");
  protect_cmd->add_option("--range", o->ranges, "guest-physical GPA:LENGTH (repeatable)");
  protect_cmd->add_flag("--allow", o->allow, "report writes but let them happen");
  CLI::App* mon = app.add_subcommand("monitor", "Watch a domain's vm_events (JSON lines)");
  common(mon);
  mon->add_option("--events", o->events, "mem,csr,breakpoint,singlestep,syscall,sysret,request,trap")
      ->required();
  mon->add_flag("--sync", o->sync, "the guest waits for an answer to each event");
  mon->add_flag("--deny", o->deny, "answer synchronous events with deny");
  mon->add_option("--breakpoint", o->breakpoints, "kernel symbol or guest-virtual address (repeatable)");
  mon->add_option("--csr", o->csrs, "CSRs to watch (default satp, stvec, sstatus, sie and M-mode trap CSRs)");
  mon->add_flag("--on-change", o->on_change, "CSR writes only when the value changes");
  mon->add_option("--pid", o->pid, "only events of this process (its address space)");
  mon->add_option("--singlestep", o->single_step, "single-step these vCPUs");
  mon->add_flag("--quiet", o->quiet, "answer events without printing them (benchmarks)");
  return [=, &socket]() -> std::optional<int> {
    if (trace_cmd->parsed()) return trace(socket, *o);
    if (protect_cmd->parsed()) return protect(socket, *o);
    if (mon->parsed()) return monitor_cmd(socket, *o);
    return std::nullopt;
  };
}

}  // namespace vigil::cli
