// How the host reaches a VM's vTPM to install its identity: offline on the
// state directory (libtpms in this process, one atomic write at the end) or
// online through a running bridge's control socket (the vendor control
// command CMD_VTPM_TPM_COMMAND, advertised by its capability bit).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::issuance {

class VtpmChannel {
public:
    virtual ~VtpmChannel() = default;
    /// One TPM 2.0 command, its complete response.
    virtual Result<Bytes> transact(ByteView command) = 0;
    /// Make everything done so far durable (offline: the atomic state
    /// write; online: the bridge already persisted each NV change).
    virtual Result<void> commit() = 0;
    virtual std::string describe() const = 0;
};

/// Open the state at `state_uri` (dir://, file:// or a plain directory),
/// taking its lock as swtpm does: refused while a bridge or swtpm runs it.
/// `key_option`: swtpm's --key argument for encrypted state, if any.
Result<std::unique_ptr<VtpmChannel>> open_offline(const std::string& state_uri,
                                                  const std::optional<std::string>& key_option);

/// Connect to a bridge's control socket: a unix path or tcp:HOST:PORT.
Result<std::unique_ptr<VtpmChannel>> connect_ctrl(const std::string& socket_path);

}  // namespace vtpm::issuance
