// Snapshot verification settings of one bridge: the --vm-memory, --vm-uuid
// and --vtpm-host options over the bridge config file (for bridges libvirt
// starts, whose command line we cannot extend). Pure: text in, settings out.
//
// Config file (default /etc/libvtpm/bridge.conf), "key = value" lines, '#'
// comments:
//   vm_memory   = peer | /path/to/ram-file   ("{uuid}" is the VM UUID)
//   policy      = refuse | taint | skip
//   required    = yes | no
//   host_socket = /run/libvtpm/hostd.sock    (vtpm-hostd, which signs records)
//   vendor_ctrl = yes | no                   (as --vtpm-vendor-ctrl)
//   verify      = load | before-run          (as --vm-memory ...,verify=)
//   admin_socket = /run/libvtpm/{uuid}.admin (as --vtpm-admin-socket)
//   state_key   = sealed | none              (as --vtpm-state-key)
//   log_level   = N                          (when --log gives no level=:
//                                             libvirt passes none)
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "bridge/options.hpp"
#include "snapshot/guard.hpp"

namespace vtpm::bridge {

inline constexpr const char* kDefaultBridgeConfig = "/etc/libvtpm/bridge.conf";

struct SnapshotSettings {
    bool enabled = false;  // a memory source or a host key is configured
    snapshot::GuardConfig guard;
    std::string host_socket;  // vtpm-hostd's socket; empty: no host key
    bool vendor_ctrl = false;
    std::optional<unsigned> log_level;
    /// The admin socket for CMD_VTPM_VERIFY_RAM ("{uuid}" replaced), or empty.
    std::string admin_socket;
    /// state_key = sealed: the state is encrypted at rest with the VM's key
    /// from vtpm-hostd (host_socket and the VM UUID are then required).
    bool sealed_state_key = false;
};

/// The VM UUID in a state location such as libvirt's
/// dir:///var/lib/libvirt/swtpm/<uuid>/tpm2 (the last path component that
/// is a UUID), in canonical lower-case form.
std::optional<std::string> uuid_from_state_path(std::string_view state_uri);

/// Options over `config_text` (empty: no file). Errors name the option or
/// the config line.
Result<SnapshotSettings> resolve_snapshot_settings(const BridgeOptions& o, std::string_view config_text);

/// The settings of this bridge: options over the config file (--vtpm-config,
/// else `env_path` from VTPM_BRIDGE_CONFIG, else the default; a missing
/// default file is no config).
Result<SnapshotSettings> read_snapshot_settings(const BridgeOptions& o, const std::string& env_path);

/// The snapshot guard these settings ask for, or null (exactly swtpm).
Result<std::unique_ptr<snapshot::SnapshotGuard>> make_guard(const SnapshotSettings& settings);

}  // namespace vtpm::bridge
