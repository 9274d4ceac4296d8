// Process-level setup shared by the programs: log target, user switch,
// daemonising, pid file. Kept out of main so main only wires parts together.
#pragma once

#include <optional>
#include <string>

#include "util/fd.hpp"
#include "vtpm/result.hpp"

namespace vtpm::bridge {

/// --log: where and how much.
struct LogOpts {
    std::string file;  // "-" suppresses
    int fd = -1;
    std::optional<unsigned> level;
    std::string prefix;
    bool truncate = false;
};


/// Open the --log target (or stderr) and configure vtpm::log.
Result<void> setup_logging(const std::optional<LogOpts>& log);

/// --runas: a user name (initgroups + setgid + setuid) or a number (setgid and
/// setuid to that number).
Result<void> switch_user(const std::string& who);

/// Keep the TPM's secrets out of core dumps and away from debuggers of the
/// same user: RLIMIT_CORE 0 and PR_SET_DUMPABLE 0 (left out in sanitizer
/// builds, whose leak check at exit needs ptrace). Call after switch_user,
/// which resets the dumpable flag.
Result<void> harden_process();

/// Fork into the background. The parent waits until the child calls
/// `daemon_ready()` (exits 0) or exits (exits 1). The child gets a new session
/// and /dev/null as stdio.
Result<void> daemonize();
/// Tell the waiting parent that the child serves now.
void daemon_ready();

/// Writes the pid file and removes it again on destruction.
class PidFile {
public:
    PidFile() = default;
    static Result<PidFile> write(const std::optional<std::string>& path, int fd);
    PidFile(PidFile&& o) noexcept;
    PidFile& operator=(PidFile&& o) noexcept;
    ~PidFile();

private:
    std::string path_;
};

}  // namespace vtpm::bridge
