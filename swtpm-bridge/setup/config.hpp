// vtpm-setup's configuration file: swtpm_setup.conf's `key = value` lines
// (active_pcr_banks is honoured; create_certs_tool* are ignored because
// certificates are issued in-process) plus our keys for the issuer and the
// platform certificate.
#pragma once

#include <optional>
#include <string>

#include "vtpm/result.hpp"

namespace vtpm::bridge {

struct SetupConfig {
    std::string path;  // where it was read from; empty: built-in defaults
    std::string active_pcr_banks = "sha256";
    std::string issuer = "localca";  // "localca" or "hosttpm"
    std::string localca_dir;         // default: see default_localca_dir()
    /// certificate_issuer = hosttpm: EK certificates signed by the host's
    /// hardware-TPM AuthKey, asked of vtpm-hostd on this socket.
    std::string host_socket = "/run/libvtpm/hostd.sock";
    std::string platform_manufacturer = "libvtpm";
    std::string platform_model = "libvtpm vTPM";
    std::string platform_version = "0.1";
    int cert_validity_days = -1;
};

/// $XDG_CONFIG_HOME/vtpm-setup.conf if it exists, else <sysconfdir>/vtpm-setup.conf.
std::string default_config_path();

/// /var/lib/libvtpm/localca for root or when writable; else
/// $XDG_DATA_HOME/libvtpm/localca.
std::string default_localca_dir();

/// Read `path`; a missing default file gives the built-in defaults, a
/// missing explicit one (`explicit_path`) is an error.
Result<SetupConfig> load_setup_config(const std::string& path, bool explicit_path);

/// --create-config-files: write the user's config file. `flags` is
/// swtpm_setup's list of overwrite, skip-if-exist, root.
Result<void> create_config_files(const std::string& flags);

}  // namespace vtpm::bridge
