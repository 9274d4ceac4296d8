#include "common/capabilities.hpp"

extern "C" {
#include <libtpms/tpm_error.h>
#include <libtpms/tpm_library.h>
}

#include <cstdlib>
#include <memory>
#include <vector>

#include "vtpm_config.h"

namespace vtpm::bridge {
namespace {

struct FreeDeleter {
    void operator()(void* p) const noexcept { std::free(p); }
};

}  // namespace

bool version_available(TPMLIB_TPMVersion v) { return TPMLIB_ChooseTPMVersion(v) == TPM_SUCCESS; }

// RSA key sizes from libtpms' TPMFeatures JSON: {"TPMFeatures":{"RSAKeySizes":[1024,2048,3072],...}}
std::vector<unsigned> rsa_key_sizes() {
    std::vector<unsigned> out;
    // libtpms answers for the TPM version chosen last (1.2 until one is):
    // a TPM 1.2 lists no RSAKeySizes, and vtpm-setup asks before its engine
    // chooses TPM 2.
    if (!version_available(TPMLIB_TPM_VERSION_2)) return out;
    std::unique_ptr<char, FreeDeleter> info(TPMLIB_GetInfo(TPMLIB_INFO_TPMFEATURES));
    if (!info) return out;
    std::string s(info.get());
    auto p = s.find("\"RSAKeySizes\"");
    if (p == std::string::npos) return out;
    auto open = s.find('[', p), close = s.find(']', p);
    if (open == std::string::npos || close == std::string::npos || close < open) return out;
    std::string list = s.substr(open + 1, close - open - 1);
    size_t pos = 0;
    while (pos < list.size()) {
        size_t comma = list.find(',', pos);
        if (comma == std::string::npos) comma = list.size();
        std::string n = list.substr(pos, comma - pos);
        n.erase(0, n.find_first_not_of(' '));
        n.erase(n.find_last_not_of(' ') + 1);
        if (!n.empty()) out.push_back(static_cast<unsigned>(std::strtoul(n.c_str(), nullptr, 10)));
        pos = comma + 1;
    }
    return out;
}

namespace {

std::string json_object(const char* type, const std::vector<std::string>& f) {
    std::string out = std::string("{ \"type\": \"") + type + "\", \"features\": [ ";
    for (size_t i = 0; i < f.size(); ++i) {
        if (i) out += ", ";
        out += "\"" + f[i] + "\"";
    }
    out += " ], \"version\": \"" VTPM_SWTPM_COMPAT_VERSION "\" }";
    return out;
}

}  // namespace

std::string capabilities_json(bool tpm2) {
    std::vector<std::string> f;
    if (version_available(TPMLIB_TPM_VERSION_1_2)) f.emplace_back("tpm-1.2");
    if (version_available(TPMLIB_TPM_VERSION_2)) f.emplace_back("tpm-2.0");
    for (const char* s : {"tpm-send-command-header", "flags-opt-startup", "cmdarg-seccomp",
                          "flags-opt-disable-auto-shutdown", "ctrl-opt-terminate", "cmdarg-key-fd", "cmdarg-pwd-fd",
                          "cmdarg-print-states", "cmdarg-migration", "nvram-backend-dir", "nvram-backend-file"})
        f.emplace_back(s);
    if (tpm2 && version_available(TPMLIB_TPM_VERSION_2))
        for (unsigned n : rsa_key_sizes()) f.push_back("rsa-keysize-" + std::to_string(n));
    // Leave libtpms set to the version the caller asked for.
    TPMLIB_ChooseTPMVersion(tpm2 ? TPMLIB_TPM_VERSION_2 : TPMLIB_TPM_VERSION_1_2);
    return json_object("swtpm", f);
}

std::string setup_capabilities_json() {
    std::vector<std::string> f;
    const bool has12 = version_available(TPMLIB_TPM_VERSION_1_2);
    const bool has2 = version_available(TPMLIB_TPM_VERSION_2);
    if (has12) f.emplace_back("tpm-1.2");
    if (has2) f.emplace_back("tpm-2.0");
    for (const char* s : {"cmdarg-keyfile-fd", "cmdarg-pwdfile-fd", "tpm12-not-need-root", "cmdarg-write-ek-cert-files",
                          "cmdarg-create-config-files", "cmdarg-reconfigure-pcr-banks"})
        f.emplace_back(s);
    if (has2)
        for (unsigned n : rsa_key_sizes())
            if (n >= 2048) f.push_back("tpm2-rsa-keysize-" + std::to_string(n));
    return json_object("swtpm_setup", f);
}

}  // namespace vtpm::bridge
