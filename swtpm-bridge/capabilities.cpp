#include "capabilities.hpp"

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

bool version_available(TPMLIB_TPMVersion v) { return TPMLIB_ChooseTPMVersion(v) == TPM_SUCCESS; }

// RSA key sizes from libtpms' TPMFeatures JSON: {"TPMFeatures":{"RSAKeySizes":[1024,2048,3072],...}}
std::vector<std::string> rsa_key_sizes() {
    std::vector<std::string> out;
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
        if (!n.empty()) out.push_back("rsa-keysize-" + n);
        pos = comma + 1;
    }
    return out;
}

}  // namespace

std::string capabilities_json(bool tpm2) {
    std::vector<std::string> f;
    if (version_available(TPMLIB_TPM_VERSION_1_2)) f.emplace_back("tpm-1.2");
    if (version_available(TPMLIB_TPM_VERSION_2)) f.emplace_back("tpm-2.0");
    for (const char* s : {"tpm-send-command-header", "flags-opt-startup", "cmdarg-seccomp", "flags-opt-disable-auto-shutdown",
                          "ctrl-opt-terminate", "cmdarg-key-fd", "cmdarg-pwd-fd", "cmdarg-print-states",
                          "cmdarg-migration", "nvram-backend-dir", "nvram-backend-file"})
        f.emplace_back(s);
    if (tpm2 && version_available(TPMLIB_TPM_VERSION_2)) {
        auto sizes = rsa_key_sizes();
        f.insert(f.end(), sizes.begin(), sizes.end());
    }
    // Leave libtpms set to the version the caller asked for.
    TPMLIB_ChooseTPMVersion(tpm2 ? TPMLIB_TPM_VERSION_2 : TPMLIB_TPM_VERSION_1_2);
    std::string out = "{ \"type\": \"swtpm\", \"features\": [ ";
    for (size_t i = 0; i < f.size(); ++i) {
        if (i) out += ", ";
        out += "\"" + f[i] + "\"";
    }
    out += " ], \"version\": \"" VTPM_SWTPM_COMPAT_VERSION "\" }";
    return out;
}

}  // namespace vtpm::bridge
