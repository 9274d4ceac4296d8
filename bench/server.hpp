// One server process under test (ours or swtpm): spawned pinned to a CPU,
// reached over loopback TCP, measured through /proc, stopped with SIGTERM.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "util/fd.hpp"
#include "vtpm/result.hpp"

namespace bench {

struct ServerConfig {
    std::string name;       // "ours" / "swtpm", used in every message
    std::string exe;        // invoked as `exe socket --tpm2 ...`
    std::string state_dir;  // --tpmstate dir=
    std::string log_path;   // the child's stdout and stderr go here
    int cpu = 1;            // sched_setaffinity in the child before exec; < 0: not pinned
};

class Server {
public:
    explicit Server(ServerConfig config) : config_(std::move(config)) {}
    ~Server() { stop(); }
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    /// Pick a port pair, fork, pin, exec: `exe socket --tpm2 --tpmstate
    /// dir=STATE --server type=tcp,port=P --ctrl type=tcp,port=P+1 --flags
    /// not-need-init,startup-clear`. Returns the time taken just before fork.
    vtpm::Result<std::chrono::steady_clock::time_point> start();
    /// Connect to the data (P) or control (P+1) port, retrying until the
    /// server listens; fails early if the process has exited.
    vtpm::Result<vtpm::UniqueFd> connect_data(std::chrono::milliseconds patience = std::chrono::seconds(10));
    vtpm::Result<vtpm::UniqueFd> connect_ctrl(std::chrono::milliseconds patience = std::chrono::seconds(10));
    /// SIGTERM, wait up to 5 s, then SIGKILL. Idempotent.
    void stop();
    /// Whether the process still runs (reaps it if it exited).
    bool alive();
    /// Whether it was started and has ended (without stop() being asked).
    bool died();

    /// A "Vm…:" field of /proc/PID/status in KiB (e.g. "VmRSS", "VmHWM").
    vtpm::Result<long> status_kb(const char* field) const;
    /// Private_Clean + Private_Dirty of /proc/PID/smaps_rollup, KiB.
    vtpm::Result<long> private_kb() const;
    /// Rss of each mapped file (executable, libraries) in /proc/PID/smaps,
    /// KiB by path, summed over that file's mappings.
    vtpm::Result<std::map<std::string, long>> file_rss_kb() const;
    /// CPU time the process has used so far (user + system, all its
    /// threads), ns: the sum of /proc/PID/task/*/schedstat's first field.
    vtpm::Result<uint64_t> cpu_ns() const;

    const std::string& name() const { return config_.name; }
    const std::string& state_dir() const { return config_.state_dir; }
    /// How the process ended ("running", "exit status 1", "killed by signal 11").
    std::string exit_description() const;
    /// The last lines of the child's log, for error messages.
    std::string log_tail() const;
    /// If the process died: how, and its log tail; given once, then "".
    std::string death_note();

private:
    vtpm::Result<vtpm::UniqueFd> connect(uint16_t port, std::chrono::milliseconds patience);

    ServerConfig config_;
    uint16_t port_ = 0;
    pid_t pid_ = -1;
    int wait_status_ = 0;
    bool exited_ = false;
    bool stopping_ = false;
    bool death_reported_ = false;
};

/// A fresh directory (mkdtemp) removed with its contents on destruction.
class TempDir {
public:
    static vtpm::Result<TempDir> create(const std::string& parent, const std::string& prefix);
    TempDir(TempDir&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
    TempDir& operator=(TempDir&&) = delete;
    TempDir(const TempDir&) = delete;
    ~TempDir();
    const std::string& path() const { return path_; }

private:
    explicit TempDir(std::string path) : path_(std::move(path)) {}
    std::string path_;
};

/// Copy a file (the manufactured permall) into a directory under the same name.
vtpm::Result<void> copy_into(const std::string& file, const std::string& dir);

}  // namespace bench
