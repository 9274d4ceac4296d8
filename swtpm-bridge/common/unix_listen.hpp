// A listening UNIX socket that never refuses a connection once its path
// exists: shared by the bridge's channels and vtpm-hostd, whose clients
// (libvirt and QEMU, the bridges) connect as soon as the path appears.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "util/fd.hpp"
#include "vtpm/result.hpp"

namespace vtpm::bridge {

/// A UNIX stream socket listening at `path` with `backlog`, chmod/chown'ed:
/// made under a temporary name beside it and renamed over `path` (replacing
/// what is there), so the path never names a socket that refuses
/// connections. The socket is close-on-exec and blocking.
Result<UniqueFd> listen_unix(const std::string& path, mode_t mode, std::optional<uid_t> uid, std::optional<gid_t> gid,
                             int backlog = 1);

}  // namespace vtpm::bridge
