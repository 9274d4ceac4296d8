// Starting, reaching and stopping one server process (ours or swtpm) for the
// benchmark, pinned to a CPU.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "tpm_cmds.hpp"

namespace bench {

class ServerProc {
public:
    /// exe is invoked as `exe socket --tpm2 --tpmstate dir=STATE --server ... --ctrl ... --flags ...`.
    ServerProc(std::string name, std::string exe, std::string state_dir, int cpu);
    ~ServerProc();
    ServerProc(const ServerProc&) = delete;
    ServerProc& operator=(const ServerProc&) = delete;

    /// Spawn the process; returns the time it was exec'd.
    std::chrono::steady_clock::time_point start();
    void stop();
    bool running() const { return pid_ > 0; }
    /// Connect to the data (or control) port, retrying until `deadline_ms`.
    int connect_data(int deadline_ms = 5000) const;
    int connect_ctrl(int deadline_ms = 5000) const;
    long rss_kb() const;
    /// Private (unshared) memory: Private_Clean + Private_Dirty of smaps_rollup.
    long uss_kb() const;

    const std::string& name() const { return name_; }
    const std::string& state_dir() const { return state_dir_; }

private:
    std::string name_, exe_, state_dir_;
    int cpu_;
    uint16_t port_;
    pid_t pid_ = -1;
};

/// Send a TPM command and read the whole response.
Bytes transact(int fd, const Bytes& cmd);
/// Send raw bytes and read exactly n bytes.
Bytes exchange(int fd, const Bytes& msg, size_t n);
/// Read exactly n bytes.
Bytes read_n(int fd, size_t n);
/// A free TCP port pair P, P+1 on loopback.
uint16_t free_port_pair();

}  // namespace bench
