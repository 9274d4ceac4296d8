// The bridge's seccomp policy: a deny-list of system calls a vTPM server never
// needs (running programs, debugging other processes, administering the
// system, changing identity), installed just before serving.
#pragma once

#include <string_view>

#include "vtpm/result.hpp"

namespace vtpm::bridge {

/// Install the filter. action: "kill" (default, as swtpm), "log" (only log
/// violations), "none" (no filter).
Result<void> install_seccomp(std::string_view action);

}  // namespace vtpm::bridge
