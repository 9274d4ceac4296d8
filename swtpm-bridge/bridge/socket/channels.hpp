// The socket front end's channels as `swtpm socket` opens them from its
// command line: --ctrl and --server as unix or TCP listeners, inherited fds
// (swtpm_setup's socketpair, libvirt's), or --fd.
#pragma once

#include <string>
#include <vector>

#include "bridge/options.hpp"
#include "bridge/socket/server.hpp"

namespace vtpm::bridge {

/// Sockets the process created and must unlink at exit.
struct UnlinkAtExit {
    std::vector<std::string> paths;
    ~UnlinkAtExit();
};

/// Open (or adopt) the control and data channels `o` names into `sc`.
Result<void> open_channels(const BridgeOptions& o, ServerConfig& sc, UnlinkAtExit& created);

}  // namespace vtpm::bridge
