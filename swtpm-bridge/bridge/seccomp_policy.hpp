// The bridge's seccomp policy: an allow-list of the system calls the bridge
// makes once it serves (socket and state file I/O, memory, the page hasher's
// threads, guest-memory hashing, the vtpm-hostd client), installed just before
// serving. Everything else gets the configured action.
#pragma once

#include <string_view>

#include "vtpm/result.hpp"

namespace vtpm::bridge {

/// Install the filter. action: "kill" (default, as swtpm: kill the process),
/// "log" (allow but log calls outside the list), "none" (no filter). Left out,
/// with a warning, in sanitizer builds (LeakSanitizer needs ptrace at exit).
Result<void> install_seccomp(std::string_view action);

/// The filter itself, also in sanitizer builds: action "kill" or "log".
/// For install_seccomp and for tests that load it into a forked child.
Result<void> load_seccomp_filter(std::string_view action);

}  // namespace vtpm::bridge
