#include "cold_start.hpp"

#include <chrono>
#include <filesystem>

#include "net.hpp"
#include "ops.hpp"
#include "server.hpp"
#include "tpm_cmds.hpp"

namespace bench {

namespace {

// Every regular file of `from` (not the lock) into `to`.
vtpm::Result<void> copy_state(const std::string& from, const std::string& to) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(from, ec))
        if (e.is_regular_file() && e.path().filename() != ".lock")
            if (auto r = copy_into(e.path().string(), to); !r) return r;
    if (ec) return vtpm::make_error(vtpm::rc::kFail, "cannot list " + from + ": " + ec.message());
    return {};
}

}  // namespace

vtpm::Result<std::string> prepare_existing_state(const ColdStartConfig& config) {
    const std::string dir = config.work_dir + "/existing-" + config.name;
    std::error_code ec;
    std::filesystem::create_directory(dir, ec);
    if (ec) return vtpm::make_error(vtpm::rc::kFail, "mkdir " + dir + ": " + ec.message());
    if (auto r = copy_into(config.permall, dir); !r) return r.error();
    // Stopped with SIGTERM: what the server leaves behind after a clean run.
    auto r = run_one_command({config.name, config.exe, dir, config.work_dir + "/existing-" + config.name + ".log",
                              config.cpu});
    if (!r) return r.error();
    return dir;
}

vtpm::Result<void> run_one_command(const ServerConfig& config) {
    Server server(config);
    if (auto t = server.start(); !t) return t.error();
    auto fd = server.connect_data();
    if (!fd) return fd.error();
    auto cmd = cmd_get_random(8);
    if (!cmd) return cmd.error();
    Bytes rsp;
    if (auto r = tpm_transact(fd->get(), *cmd, rsp); !r) return r.error();
    if (auto r = expect_success(rsp, ("TPM2_GetRandom on " + config.name).c_str()); !r) return r.error();
    server.stop();
    return {};
}

vtpm::Result<double> cold_start_once(const ColdStartConfig& config) {
    auto dir = TempDir::create(config.work_dir, "cold-" + config.name + "-");
    if (!dir) return dir.error();
    if (config.existing_state.empty()) {
        if (auto r = copy_into(config.permall, dir->path()); !r) return r.error();
    } else if (auto r = copy_state(config.existing_state, dir->path()); !r) {
        return r.error();
    }
    auto cmd = cmd_get_random(32);
    if (!cmd) return cmd.error();
    Server server(
        {config.name, config.exe, dir->path(), config.work_dir + "/cold-" + config.name + ".log", config.cpu});

    auto t0 = server.start();
    if (!t0) return t0.error();
    auto fd = server.connect_data();
    if (!fd) return fd.error();
    Bytes rsp;
    auto r = tpm_transact(fd->get(), *cmd, rsp);
    const auto t1 = std::chrono::steady_clock::now();
    if (!r) return r.error();
    if (auto ok = expect_success(rsp, "TPM2_GetRandom (first command)"); !ok) return ok.error();
    server.stop();
    return std::chrono::duration<double, std::micro>(t1 - *t0).count();
}

vtpm::Result<ColdStartSamples> measure_cold_starts(const ColdStartConfig& a, const ColdStartConfig& b, int rounds) {
    ColdStartSamples out;
    for (int round = 0; round <= rounds; ++round) {
        for (int k = 0; k < 2; ++k) {
            const bool first = (round + k) % 2 == 0;
            const ColdStartConfig& c = first ? a : b;
            auto us = cold_start_once(c);
            if (!us) return vtpm::make_error(us.code(), "cold start of " + c.name + ": " + us.error().message);
            if (round > 0) (first ? out.a : out.b).push_back({*us});
        }
    }
    return out;
}

}  // namespace bench
