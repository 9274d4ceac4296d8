// vtpm-setup's command line: every option of swtpm_setup 0.7.1, parsed with
// the same getopt_long rules, into one plain struct.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "vtpm/result.hpp"

namespace vtpm::bridge {

struct SetupOptions {
    enum class Action { Manufacture, Help, Version, PrintCapabilities, CreateConfigFiles };
    Action action = Action::Manufacture;
    bool bad_usage = false;  // help printed because of an unknown option: exit 1

    std::string state_uri;  // dir://... or file://...
    std::optional<std::string> tpm_program;  // --tpm (accepted, not needed: we manufacture in-process)
    bool tpm2 = false, ecc = false, create_ek = false, create_spk = false, take_ownership = false;
    std::optional<std::string> ownerpass, srkpass;
    bool owner_well_known = false, srk_well_known = false;
    bool ek_cert = false, platform_cert = false, lock_nvram = false, display = false;
    std::optional<std::string> config, vmid, keyfile, pwdfile, runas, logfile, write_ek_cert_files;
    long keyfile_fd = -1, pwdfile_fd = -1;
    std::string cipher = "aes-128-cbc";
    bool overwrite = false, not_overwrite = false, allow_signing = false, decryption = false;
    std::string pcr_banks;  // comma list, concatenated over repeated options
    std::string rsa_keysize = "2048";
    bool reconfigure = false;
    std::optional<std::string> create_config_files;  // its argument, possibly empty
    std::vector<std::string> warnings;               // deprecated options seen
};

/// Parse argv. Errors name the option.
Result<SetupOptions> parse_setup_options(int argc, char** argv);

/// swtpm_setup's --help text, with our program name and defaults.
std::string setup_usage(const std::string& prog, const std::string& default_config);
/// The --version line.
std::string setup_version_line();

}  // namespace vtpm::bridge
