// The bridge's command line: swtpm 0.7.1's `socket` grammar (plus the 0.8+
// options we implement). Parsing is pure: values are checked here, files and
// sockets are opened later by main.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "common/process.hpp"
#include "vtpm/result.hpp"

namespace vtpm::bridge {

struct ChannelOpts {
    enum class Type { None, Tcp, Unix } type = Type::None;
    std::optional<unsigned> port;
    std::string bindaddr = "127.0.0.1";
    std::string ifname;
    std::string path;
    int fd = -1;        // listening fd (ctrl fd=, unixio fd=) or connected fd (server tcp fd=)
    int clientfd = -1;  // ctrl clientfd=: an already connected control client
    mode_t mode = 0770;
    std::optional<uid_t> uid;
    std::optional<gid_t> gid;
    bool disconnect = false;  // --server ...,disconnect / -p
    bool terminate = false;   // --ctrl ...,terminate
};

/// The front end: `socket` (data and control over sockets), `chardev`
/// (data on a character device or an fd, control by --ctrl) or `cuse`
/// (/dev/NAME: ioctls for control, read/write for data), as swtpm's.
enum class Iface { Socket, Chardev, Cuse };

struct BridgeOptions {
    Iface iface = Iface::Socket;
    std::optional<std::string> chardev;  // chardev -c/--chardev PATH
    bool vtpm_proxy = false;             // chardev --vtpm-proxy
    std::string cuse_name;               // cuse -n/--name
    unsigned cuse_major = 0, cuse_minor = 0;  // cuse -M/--maj, -m/--min
    bool tpm2 = false;
    bool help = false;
    bool version = false;
    bool print_capabilities = false;
    bool vendor_ctrl = false;  // --vtpm-vendor-ctrl
    bool print_states = false;
    bool daemon = false;
    bool terminate = false;

    ChannelOpts server;   // data channel
    ChannelOpts ctrl;     // control channel
    int data_fd = -1;     // -f/--fd: connected data fd

    std::string state_uri;  // dir://PATH (from dir=, backend-uri= or TPM_PATH)
    mode_t state_mode = 0640;

    std::optional<LogOpts> log;
    std::optional<std::string> key;            // raw --key value, parsed by store::load_key_option
    std::optional<std::string> migration_key;  // raw --migration-key value
    std::optional<std::string> pid_file;
    int pid_fd = -1;

    bool reject_locality_4 = false;
    bool allow_set_locality = false;

    bool need_init = true;
    int startup_type = -1;  // -1 none, 0 clear, 1 state, 2 deactivated
    bool disable_auto_shutdown = false;

    bool incoming_migration = false;
    bool release_lock_outgoing = false;

    std::optional<std::string> runas;
    std::string seccomp_action = "kill";  // none, kill, log
    // libvtpm's snapshot verification (snapshot_settings.hpp resolves these
    // with the bridge config file): raw option values.
    std::optional<std::string> vm_memory;   // --vm-memory path=FILE|peer[,policy=][,required]
    std::optional<std::string> vm_uuid;     // --vm-uuid UUID
    std::optional<std::string> vtpm_host;   // --vtpm-host dir=HOSTDIR[,tcti=TCTI]
    std::optional<std::string> vtpm_config; // --vtpm-config FILE
    std::optional<std::string> vtpm_state_key;  // --vtpm-state-key sealed|none
    std::optional<std::string> vtpm_admin_socket;  // --vtpm-admin-socket PATH ({uuid} substituted)
};

/// Parse argv after the `socket` or `chardev` word (`iface`). `env_tpm_path`
/// is $TPM_PATH (or empty) and `env_tpm_port` $TPM_PORT. Errors name the
/// option; an option the other front end has is unrecognized, as with swtpm.
Result<BridgeOptions> parse_options(const std::vector<std::string>& args, const std::string& env_tpm_path,
                                    const std::string& env_tpm_port, Iface iface = Iface::Socket);

/// Usage text for --help.
std::string usage(const std::string& prog);

}  // namespace vtpm::bridge
