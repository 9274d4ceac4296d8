#include "setup/options.hpp"

#include <getopt.h>

#include <cerrno>
#include <climits>
#include <cstdlib>

#include "vtpm_config.h"

namespace vtpm::bridge {

namespace {

Result<long> parse_fd(const char* arg, const char* opt) {
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(arg, &end, 10);
    if (errno || !*arg || *end || v < 0 || v >= INT_MAX)
        return make_error(rc::kBadParameter, std::string("Invalid file descriptor '") + arg + "' for " + opt);
    return v;
}

}  // namespace

Result<SetupOptions> parse_setup_options(int argc, char** argv) {
    enum : int {
        kTpmState = 256, kTpm, kSwtpmIoctl, kTpm2, kEcc, kCreateEk, kCreateSpk, kTakeOwnership, kOwnerpass,
        kOwnerWellKnown, kSrkpass, kSrkWellKnown, kEkCert, kPlatformCert, kLockNvram, kDisplay, kConfig, kVmid,
        kKeyfile, kKeyfileFd, kPwdfile, kPwdfileFd, kCipher, kRunas, kLogfile, kOverwrite, kNotOverwrite,
        kAllowSigning, kDecryption, kPcrBanks, kRsaKeysize, kWriteEkCertFiles, kCreateConfigFiles, kTcsd, kVersion,
        kPrintCaps, kReconfigure, kHelp
    };
    static const struct option longopts[] = {
        {"tpm-state", required_argument, nullptr, kTpmState},
        {"tpmstate", required_argument, nullptr, kTpmState},
        {"tpm", required_argument, nullptr, kTpm},
        {"swtpm_ioctl", required_argument, nullptr, kSwtpmIoctl},
        {"tpm2", no_argument, nullptr, kTpm2},
        {"ecc", no_argument, nullptr, kEcc},
        {"createek", no_argument, nullptr, kCreateEk},
        {"create-spk", no_argument, nullptr, kCreateSpk},
        {"take-ownership", no_argument, nullptr, kTakeOwnership},
        {"ownerpass", required_argument, nullptr, kOwnerpass},
        {"owner-well-known", no_argument, nullptr, kOwnerWellKnown},
        {"srkpass", required_argument, nullptr, kSrkpass},
        {"srk-well-known", no_argument, nullptr, kSrkWellKnown},
        {"create-ek-cert", no_argument, nullptr, kEkCert},
        {"create-platform-cert", no_argument, nullptr, kPlatformCert},
        {"lock-nvram", no_argument, nullptr, kLockNvram},
        {"display", no_argument, nullptr, kDisplay},
        {"config", required_argument, nullptr, kConfig},
        {"vmid", required_argument, nullptr, kVmid},
        {"keyfile", required_argument, nullptr, kKeyfile},
        {"keyfile-fd", required_argument, nullptr, kKeyfileFd},
        {"pwdfile", required_argument, nullptr, kPwdfile},
        {"pwdfile-fd", required_argument, nullptr, kPwdfileFd},
        {"cipher", required_argument, nullptr, kCipher},
        {"runas", required_argument, nullptr, kRunas},
        {"logfile", required_argument, nullptr, kLogfile},
        {"overwrite", no_argument, nullptr, kOverwrite},
        {"not-overwrite", no_argument, nullptr, kNotOverwrite},
        {"allow-signing", no_argument, nullptr, kAllowSigning},
        {"decryption", no_argument, nullptr, kDecryption},
        {"pcr-banks", required_argument, nullptr, kPcrBanks},
        {"rsa-keysize", required_argument, nullptr, kRsaKeysize},
        {"write-ek-cert-files", required_argument, nullptr, kWriteEkCertFiles},
        {"create-config-files", optional_argument, nullptr, kCreateConfigFiles},
        {"tcsd-system-ps-file", required_argument, nullptr, kTcsd},
        {"version", no_argument, nullptr, kVersion},
        {"print-capabilities", no_argument, nullptr, kPrintCaps},
        {"reconfigure", no_argument, nullptr, kReconfigure},
        {"help", no_argument, nullptr, kHelp},
        {nullptr, 0, nullptr, 0},
    };
    SetupOptions o;
    optind = 1;
    opterr = 1;  // getopt prints "unrecognized option" like swtpm_setup
    int c;
    while ((c = getopt_long(argc, argv, "h?", longopts, nullptr)) != -1) {
        switch (c) {
            case kTpmState: {
                std::string v = optarg;
                o.state_uri = (v.rfind("dir://", 0) == 0 || v.rfind("file://", 0) == 0) ? v : "dir://" + v;
                break;
            }
            case kTpm: o.tpm_program = optarg; break;
            case kSwtpmIoctl: o.warnings.emplace_back("Warning: --swtpm_ioctl is deprecated and has no effect."); break;
            case kTpm2: o.tpm2 = true; break;
            case kEcc: o.ecc = true; break;
            case kCreateEk: o.create_ek = true; break;
            case kCreateSpk: o.create_spk = true; break;
            case kTakeOwnership: o.create_ek = o.take_ownership = true; break;
            case kOwnerpass: o.ownerpass = optarg; break;
            case kOwnerWellKnown: o.owner_well_known = true; break;
            case kSrkpass: o.srkpass = optarg; break;
            case kSrkWellKnown: o.srk_well_known = true; break;
            case kEkCert: o.create_ek = o.ek_cert = true; break;
            case kPlatformCert: o.create_ek = o.platform_cert = true; break;
            case kLockNvram: o.lock_nvram = true; break;
            case kDisplay: o.display = true; break;
            case kConfig: o.config = optarg; break;
            case kVmid: o.vmid = optarg; break;
            case kKeyfile: o.keyfile = optarg; break;
            case kKeyfileFd: {
                auto fd = parse_fd(optarg, "--keyfile-fd");
                if (!fd) return fd.error();
                o.keyfile_fd = *fd;
                break;
            }
            case kPwdfile: o.pwdfile = optarg; break;
            case kPwdfileFd: {
                auto fd = parse_fd(optarg, "--pwdfile-fd");
                if (!fd) return fd.error();
                o.pwdfile_fd = *fd;
                break;
            }
            case kCipher: o.cipher = optarg; break;
            case kRunas: o.runas = optarg; break;
            case kLogfile: o.logfile = optarg; break;
            case kOverwrite: o.overwrite = true; break;
            case kNotOverwrite: o.not_overwrite = true; break;
            case kAllowSigning: o.allow_signing = true; break;
            case kDecryption: o.decryption = true; break;
            case kPcrBanks: {
                std::string v = optarg;
                v.erase(0, v.find_first_not_of(" \t"));
                v.erase(v.find_last_not_of(" \t") + 1);
                o.pcr_banks += (o.pcr_banks.empty() ? "" : ",") + v;
                break;
            }
            case kRsaKeysize: o.rsa_keysize = optarg; break;
            case kWriteEkCertFiles: o.write_ek_cert_files = optarg; break;
            case kCreateConfigFiles:
                // swtpm_setup also takes the flags as the next word.
                if (!optarg && optind < argc && argv[optind][0] != '-') optarg = argv[optind++];
                o.create_config_files = optarg ? optarg : "";
                o.action = SetupOptions::Action::CreateConfigFiles;
                return o;
            case kTcsd:
                o.warnings.emplace_back("Warning: --tcsd-system-ps-file is deprecated and has no effect.");
                break;
            case kVersion: o.action = SetupOptions::Action::Version; return o;
            case kPrintCaps: o.action = SetupOptions::Action::PrintCapabilities; break;
            case kReconfigure: o.reconfigure = true; break;
            case kHelp:
            case 'h':
                o.action = SetupOptions::Action::Help;
                return o;
            default:
                o.action = SetupOptions::Action::Help;
                o.bad_usage = true;
                return o;
        }
    }
    if (optind < argc) return make_error(rc::kBadParameter, std::string("Unexpected argument '") + argv[optind] + "'");
    return o;
}

std::string setup_version_line() {
    return "TPM emulator setup tool version " VTPM_SWTPM_COMPAT_VERSION " (libvtpm " VTPM_VERSION ")\n";
}

std::string setup_usage(const std::string& prog, const std::string& default_config) {
    return setup_version_line() + "Usage: " + prog + R"( [options]

Manufactures a vTPM in-process (no swtpm child); accepts swtpm_setup's options.

--runas <user>   : Run this program under the given user's account.
--tpm-state <dir>: Path where the TPM's state will be written to; mandatory.
                   Prefix with dir:// for the directory backend or file:// for
                   a linear file.
--tpmstate <dir> : Alias for --tpm-state <dir>.
--tpm <executable>
                 : Accepted for compatibility; the TPM runs in this process.
--swtpm_ioctl <executable>
                 : Deprecated; no effect.
--tpm2           : Set up a TPM 2; by default a TPM 1.2 is set up.
--createek       : Create the EK; a TPM 2 gets an RSA and an ECC (P-256) EK.
--allow-signing  : Create EKs that can sign (non-standard; needs --tpm2).
--decryption     : With --allow-signing, keep key encipherment.
--ecc            : Make the storage primary key an ECC key (needs --tpm2).
--take-ownership : Take ownership (TPM 1.2); implies --createek
  --ownerpass <password>  : owner password; default ooo
  --owner-well-known      : owner password of 20 zero bytes
  --srkpass <password>    : SRK password; default sss
  --srk-well-known        : SRK password of 20 zero bytes
--create-ek-cert : Create EK certificates; implies --createek
--create-platform-cert
                 : Create a platform certificate; implies --createek
--create-spk     : Create a storage primary key (needs --tpm2)
--lock-nvram     : Lock the certificate NV indices (TPM 2) or NVRAM (TPM 1.2)
--display        : Show the certificates made and verify their chain
--config <file>  : Configuration file; default is )" +
           default_config + R"(
--logfile <file> : Log file; default: stdout/stderr
--keyfile <file> : Key file (hex) to encrypt the state with
--keyfile-fd <fd>: Like --keyfile, read from a file descriptor
--pwdfile <file> : Passphrase file to derive the state key from
--pwdfile-fd <fd>: Like --pwdfile, read from a file descriptor
--cipher <cipher>: aes-128-cbc (default) or aes-256-cbc
--overwrite      : Overwrite existing TPM state
--not-overwrite  : Keep existing TPM state and end successfully
--pcr-banks <banks>
                 : PCR banks to activate, e.g. 'sha1,sha256'; '-' leaves all.
                   Default: from the configuration file, else sha256
--rsa-keysize <keysize>
                 : RSA EK size: 2048 (default), 3072 or max
--write-ek-cert-files <directory>
                 : Also write the EK certificates into this directory
--tcsd-system-ps-file <file>
                 : Deprecated; no effect.
--print-capabilities
                 : Print the JSON capabilities and exit
--create-config-files [[overwrite|skip-if-exist][,root]]
                 : Create the user's configuration file
--reconfigure    : Change the active PCR banks of an existing state
--version        : Display version and exit
--help,-h        : Display this help screen
)";
}

}  // namespace vtpm::bridge
