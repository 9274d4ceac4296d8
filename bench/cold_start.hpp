// Cold start: fork/exec of a server on a fresh state directory holding a
// manufactured permall, until its first TPM2_GetRandom response arrives.
#pragma once

#include <string>

#include "server.hpp"
#include "stats.hpp"
#include "vtpm/result.hpp"

namespace bench {

struct ColdStartConfig {
    std::string name, exe;
    std::string permall;   // copied into the fresh state directory
    /// When set: a state directory whose files are copied instead (what the
    /// server left after a clean run: its second boot).
    std::string existing_state;
    std::string work_dir;  // where the state directory and the log go
    int cpu = 1;
};

/// Start a server, answer one TPM2_GetRandom, stop it with SIGTERM.
vtpm::Result<void> run_one_command(const ServerConfig& config);

/// Start the server once on a copy of `config.permall`, answer one command,
/// stop it: the directory (returned) then holds what a clean run leaves.
vtpm::Result<std::string> prepare_existing_state(const ColdStartConfig& config);

/// One sample in µs: time from just before fork() to the complete GetRandom
/// response on a data connection opened with connect-retry. The server is
/// stopped and its directory removed afterwards (untimed).
vtpm::Result<double> cold_start_once(const ColdStartConfig& config);

struct ColdStartSamples {
    Rounds a, b;  // one single-sample round per measured round
};

/// `rounds` measured pairs, alternating who goes first, after one warm-up
/// pair (discarded).
vtpm::Result<ColdStartSamples> measure_cold_starts(const ColdStartConfig& a, const ColdStartConfig& b, int rounds);

}  // namespace bench
